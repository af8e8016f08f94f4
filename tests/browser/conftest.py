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


@pytest.fixture
def page(browser, dashboard, request):
    """The dashboard loaded in a new page; a screenshot is saved when the test ends."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    pg.set_default_timeout(PAGE_TIMEOUT_MS)
    pg.goto(dashboard.url)
    pg.wait_for_selector(".slick-row")
    yield pg
    ARTIFACTS.mkdir(exist_ok=True)
    pg.screenshot(path=str(ARTIFACTS / f"{request.node.name}.png"), full_page=True)
    context.close()
    assert not errors, f"JavaScript errors in the page: {errors}"

