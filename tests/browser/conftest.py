"""The dashboard in headless Chromium: a small experiment, its dashboard, and a page.

Chromium is Debian's (``/usr/bin/chromium``, or ``$EXPERIGRAPH_CHROMIUM``), driven
by Playwright for Python; Playwright's own browsers are never downloaded. Without
Chromium the tests skip, except under CI (``$CI`` set), where they fail.
Each test leaves a screenshot in ``test-artifacts/`` at the repository root.
"""
from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = os.environ.get("EXPERIGRAPH_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu",
                 "--disable-background-networking", "--disable-component-update"]
PAGE_TIMEOUT_MS = 30_000


def _unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI is set: the browser tests must run)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """One headless Chromium for the session."""
    if not os.path.exists(CHROMIUM):
        _unavailable(f"Chromium is not installed at {CHROMIUM}")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("playwright is not installed")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def board_experiment(make_experiment, tmp_path):
    """An experiment with four trials: two succeed, one fails, and one after code and data drift.

    Returns ``(ex, compute)`` where ``compute(a)`` runs one more trial.
    """
    ex = make_experiment()
    a = ex.parameter("a")
    b = ex.parameter("b", default=2)
    data = tmp_path / "data.csv"
    data.write_text("x\n1\n2\n", encoding="utf-8")

    @ex
    def prepare_data(a, b):
        ex.input(data)
        for epoch in range(5):
            ex.save_metric("loss", epoch, 1.0 / (1 + epoch) + 0.1 * a)
        ex.metric("accuracy", 0.5 + a / 10)
        ex.label("group", "small" if a < 2 else "large")
        return a + b

    @ex.result
    def calculate_score(s):
        return 10 / s

    score = calculate_score(prepare_data(a, b))
    ex.set_parameters(a=1).compute(seed=1)
    ex.set_parameters(a=2).compute(seed=1)
    with pytest.raises(ZeroDivisionError):
        ex.set_parameters(a=-2).compute(seed=1)

    @ex.result  # noqa: F811 - a changed step: code drift in trial 4
    def calculate_score(s):
        return 20 / s

    score = calculate_score(prepare_data(a, b))
    data.write_text("x\n1\n2\n3\n", encoding="utf-8")  # data drift in trial 4
    ex.set_parameters(a=1).compute(seed=1)

    def compute(value: int) -> Any:
        return ex.set_parameters(a=value).compute(seed=1)

    return ex, compute


@pytest.fixture
def dashboard(board_experiment):
    ex, _ = board_experiment
    board = ex.start_dashboard(port=0, blocking=False, refresh_ms=300)
    yield board
    board.stop()


def watch_console(pg: Any) -> list[str]:
    """Collect what a person would see as a problem in the browser's console.

    JavaScript errors, console errors and warnings (e.g. Bokeh's "jquery-ui is
    required"), requests that fail and responses with an HTTP error status.
    """
    problems: list[str] = []
    pg.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
    pg.on("console", lambda msg: problems.append(f"console {msg.type}: {msg.text}")
          if msg.type in ("error", "warning") else None)
    pg.on("requestfailed", lambda req: problems.append(
        f"request failed: {req.url} ({req.failure})"))
    pg.on("response", lambda resp: problems.append(f"HTTP {resp.status}: {resp.url}")
          if resp.status >= 400 else None)
    return problems


class Pages:
    """Opens pages watched by :func:`watch_console`; :meth:`close` screenshots and checks them."""

    def __init__(self, browser: Any, name: str) -> None:
        self.browser, self.name = browser, name
        self.opened: list[tuple[Any, Any, list[str]]] = []
        self.problems: list[str] = []

    def __call__(self, url: str, wait_for: str | None = ".slick-row", **options: Any) -> Any:
        context = self.browser.new_context(viewport={"width": 1400, "height": 1000}, **options)
        pg = context.new_page()
        problems = watch_console(pg)
        pg.set_default_timeout(PAGE_TIMEOUT_MS)
        pg.goto(url)
        if wait_for:
            pg.wait_for_selector(wait_for)
        self.opened.append((context, pg, problems))
        return pg

    def close(self) -> None:
        """Screenshot every page into ``test-artifacts/`` and close it (before its server
        stops: a page that loses its server reports it in the console)."""
        ARTIFACTS.mkdir(exist_ok=True)
        for i, (context, pg, problems) in enumerate(self.opened):
            suffix = f"-{i + 1}" if i else ""
            pg.screenshot(path=str(ARTIFACTS / f"{self.name}{suffix}.png"), full_page=True)
            context.close()
            self.problems += problems
        self.opened = []


@pytest.fixture
def open_page(browser, request):
    """``open_page(url, wait_for=..., **context_options)``: a new page.

    When the test ends (or at ``open_page.close()``) each page is screenshotted
    into ``test-artifacts/``, and the test fails if its console reported a problem.
    """
    pages = Pages(browser, request.node.name)
    yield pages
    pages.close()
    assert not pages.problems, f"problems in the browser console: {pages.problems}"


@pytest.fixture
def page(dashboard, open_page):
    """The dashboard loaded in a new page; a screenshot is saved when the test ends, and
    the test fails on any JavaScript error, console warning or missing resource."""
    return open_page(dashboard.url)



@pytest.fixture
def sweep_experiment(make_experiment):
    """Eight trials of a five-step chain: C spans three decades, kernel is text, shrinking
    a bool, max_iter the same in every trial; C feeds two steps three layers apart."""
    ex = make_experiment()
    C = ex.parameter("C")
    kernel = ex.parameter("kernel")
    shrinking = ex.parameter("shrinking")
    max_iter = ex.parameter("max_iter", default=100)

    @ex
    def load(max_iter):
        return list(range(max_iter // 10))

    @ex
    def clean(rows):
        return [r for r in rows if r >= 0]

    @ex
    def features(rows, kernel, C):
        for epoch in range(4):
            ex.save_metric("loss", epoch, C / (epoch + 1))
        return [r * C for r in rows] if kernel == "rbf" else rows

    @ex
    def fit(feats, shrinking):
        return sum(feats) + (1 if shrinking else 0)

    @ex.result
    def score(model, C):
        return model / (1 + C)

    score(fit(features(clean(load(max_iter)), kernel, C), shrinking), C)
    grid = [{"C": c, "kernel": k, "shrinking": i % 3 == 0}
            for i, (c, k) in enumerate((c, k) for c in (0.01, 0.1, 1, 10)
                                       for k in ("rbf", "linear"))]
    for values in grid:
        ex.set_parameters(**values).compute(seed=1)
    return ex
