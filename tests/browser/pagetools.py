"""What a test reads from, and does to, a dashboard page in headless Chromium."""
from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

SOURCE_DATA_JS = """name => {
    const model = Bokeh.documents[0].get_model_by_name(name);
    if (model === null) return {};  // not built yet: a tab's models come when it opens
    const source = model.data_source !== undefined ? model.data_source : model;
    const data = source.data;
    const entries = data instanceof Map ? [...data.entries()] : Object.entries(data);
    return Object.fromEntries(entries.map(([k, v]) => [k, Array.from(v, x =>
        (x !== null && typeof x === "object" && x.length !== undefined) ? Array.from(x) : x)]));
}"""


def poll(check: Callable[[], Any], what: str, timeout: float = 15.0) -> Any:
    """``check()`` once it returns something true; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"gave up after {timeout} s waiting for {what}; last value {value!r}")
        time.sleep(0.1)


def div_text(page, css_class: str) -> str:
    """The text a Bokeh Div shows (its content lives in the element's shadow root)."""
    return page.locator(f".{css_class}").first.evaluate("""e => [...(e.shadowRoot || e).children]
        .filter(c => c.tagName !== "STYLE" && c.tagName !== "LINK")
        .map(c => c.innerText).join("\\n")""")


def source_data(page, name: str) -> dict[str, list[Any]]:
    """The columns of a ColumnDataSource (or of a renderer's), ``{}`` if not there yet."""
    return page.evaluate(SOURCE_DATA_JS, name)


ROW_TEXTS_JS = """rows => rows.map(r => [...r.querySelectorAll('.slick-cell')]
    .map(c => c.innerText.trim()))"""


def row_texts(page, css: str) -> list[list[str]]:
    """The cell texts of the rows of a table, read at once (the grid redraws between reads)."""
    return [cells for cells in page.locator(f"{css} .slick-row").evaluate_all(ROW_TEXTS_JS)
            if cells]


def table_rows(page) -> dict[int, list[str]]:
    """The trial table as shown: trial id -> the texts of its cells."""
    return {int(cells[0]): cells for cells in row_texts(page, ".eg-trials")
            if cells[0].strip()}  # a row being re-rendered is read at the next poll


def header_titles(page) -> list[str]:
    return [t.strip() for t in
            page.locator(".eg-trials .slick-header-column").all_inner_texts()]


def click_row(page, trial_id: int, modifiers: list[str] | None = None) -> None:
    row = page.locator(".eg-trials .slick-row", has=page.locator(
        ".slick-cell.l0", has_text=str(trial_id))).first
    row.locator(".slick-cell").nth(2).click(modifiers=modifiers or [])


def open_tab(page, title: str) -> None:
    page.locator(".bk-tab", has_text=title).first.click()


def glyph_positions(page, plot: str, source: str) -> list[tuple[float, float]]:
    """Page coordinates of the points of ``source`` drawn in figure ``plot``."""
    return [tuple(p) for p in page.evaluate("""([plotName, sourceName]) => {
        const doc = Bokeh.documents[0];
        const view = Bokeh.index.find_one(doc.get_model_by_name(plotName));
        const data = doc.get_model_by_name(sourceName).data;
        const col = k => Array.from(data instanceof Map ? data.get(k) : data[k]);
        const box = view.canvas_view.el.getBoundingClientRect();
        const ys = col("y");
        return col("x").map((x, i) => [box.left + view.frame.x_scale.compute(x),
                                       box.top + view.frame.y_scale.compute(ys[i])]);
    }""", [plot, source])]


def model_property(page, name: str, expression: str) -> Any:
    """``expression`` evaluated on the model named ``name`` (``m``), e.g. ``m.x_scale.type``."""
    return page.evaluate(f"""() => {{
        const m = Bokeh.documents[0].get_model_by_name({name!r});
        return m === null ? null : ({expression});
    }}""")


def diff_lines(page, css_class: str) -> dict[str, list[tuple[str, str]]]:
    """The diff lines shown in a Div, by kind: their text and background colour."""
    return page.locator(f".{css_class}").first.evaluate("""e => {
        const out = {};
        for (const s of (e.shadowRoot || e).querySelectorAll('pre.eg-diff span')) {
            (out[s.className] = out[s.className] || []).push(
                [s.textContent, getComputedStyle(s).backgroundColor]);
        }
        return out;
    }""")


def screenshot(page, name: str) -> None:
    """Save what the page shows now as ``test-artifacts/<name>.png``."""
    from conftest import ARTIFACTS

    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"))
