"""Live trials: a running trial shows at once, and its metric curve grows while it runs."""
from __future__ import annotations

import threading
import time

import pytest

from pagetools import (
    div_text, header_titles, open_tab, poll, screenshot, source_data, table_rows)

pytestmark = pytest.mark.browser


def gated_experiment(make_experiment, gate):
    """A trial that saves one loss point per epoch, then waits for the test to open the
    epoch's gate (a file): the test decides when the trial moves on."""
    ex = make_experiment()
    epochs = ex.parameter("epochs")

    @ex.result
    def train(epochs):
        for epoch in range(epochs):
            ex.save_metric("loss", epoch, 1.0 / (epoch + 1))
            deadline = time.monotonic() + 120
            while not (gate / f"{epochs}-{epoch}").exists():
                if time.monotonic() > deadline:
                    raise TimeoutError(f"gate {epochs}-{epoch} never opened")
                time.sleep(0.05)
        return epochs

    train(epochs)
    return ex


@pytest.mark.parametrize("where", ["threaded scheduler", "distributed LocalCluster"])
def test_running_trial_appears_at_once_and_its_curve_grows(where, request, open_page,
                                                           make_experiment, tmp_path):
    gate = tmp_path / "gate"
    gate.mkdir()
    ex = gated_experiment(make_experiment, gate)
    (gate / "1-0").touch()
    ex.set_parameters(epochs=1).compute(seed=1)  # one finished trial
    compute_kwargs = ({"scheduler": "threads"} if where == "threaded scheduler" else
                      {"client": request.getfixturevalue("client")})
    board = ex.start_dashboard(port=0, blocking=False, refresh_ms=300)
    outcome: list[object] = []
    ex.set_parameters(epochs=3)
    runner = threading.Thread(target=lambda: outcome.append(ex.compute(seed=1,
                                                                       **compute_kwargs)))
    try:
        page = open_page(board.url)
        open_tab(page, "Metrics")  # without a selection: the latest trials' curves
        status = header_titles(page).index("Status")
        runner.start()
        rows = poll(lambda: (r := table_rows(page)) and 2 in r and r,
                    "the running trial in the table", timeout=60)
        assert rows[2][status] == "running"
        poll(lambda: "1 running" in div_text(page, "eg-header"), "the running count")

        def curve() -> list[float]:
            data = source_data(page, "metric_curves")
            return dict(zip(data.get("trial_id", []), data.get("ys", []))).get(2, [])

        poll(lambda: curve() == [1.0], "the first point of the running trial", timeout=30)

        def points() -> list[tuple[float, float]]:  # a one-point curve is drawn as its point
            data = source_data(page, "metric_curves:points")
            return [(x, y) for x, y, t in zip(data["x"], data["y"], data["trial_id"]) if t == 2]

        poll(lambda: points() == [(0, 1.0)], "the running trial's point drawn")
        (gate / "3-0").touch()
        poll(lambda: curve() == [1.0, 0.5], "its second point, without reloading", timeout=30)
        assert table_rows(page)[2][status] == "running"
        if where == "threaded scheduler":
            screenshot(page, "board-live-trial")
        (gate / "3-1").touch()
        poll(lambda: curve() == pytest.approx([1.0, 0.5, 1 / 3]), "its third point",
             timeout=30)
        (gate / "3-2").touch()
        poll(lambda: source_data(page, "trials")["status"] == ["succeeded", "succeeded"],
             "the trial finished, in the page's data", timeout=60)
        poll(lambda: table_rows(page)[2][status] == "succeeded", "the trial finished",
             timeout=10)
        poll(lambda: "0 running" in div_text(page, "eg-header"), "no trial running")
        assert curve() == pytest.approx(list(ex.load_metric("loss", 2)[2]))
        open_page.close()
    finally:
        for epoch in range(3):
            (gate / f"3-{epoch}").touch()
        if runner.is_alive() or runner.ident is not None:
            runner.join(timeout=120)
        board.stop()
    assert outcome == [3]
