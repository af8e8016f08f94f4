"""The store overview: every experiment of a store, each opening its board."""
from __future__ import annotations

import math
import os
import re
import signal
import subprocess
import sys

import pytest

from pagetools import div_text, header_titles, poll, row_texts, screenshot, table_rows

pytestmark = pytest.mark.browser


def overview_rows(page) -> dict[str, list[str]]:
    return {cells[0]: cells for cells in row_texts(page, ".eg-experiments")}


def expected_row(ex) -> dict[str, str]:
    """What the overview should say of ``ex``, from its history."""
    history = ex.get_history(verbose=True)
    succeeded = history[history["Status"] == "succeeded"]
    counts = history["Status"].value_counts()
    best = max(float(v) for v in succeeded["Result"]) if len(succeeded) else math.nan
    return {"Trials": str(len(history)), "Best result (max)": f"{best:.6f}".rstrip("0")
            .rstrip("."), **{s.capitalize(): str(int(counts.get(s, 0)))
                             for s in ("succeeded", "failed", "running", "interrupted")}}


@pytest.fixture
def other_experiment(make_experiment):
    """A second experiment in the same store: two trials, one of them failed."""
    ex = make_experiment(id="other-experiment")
    x = ex.parameter("x")

    @ex.result
    def inverse(x):
        return 1 / x

    inverse(x)
    ex.set_parameters(x=4).compute(seed=1)
    with pytest.raises(ZeroDivisionError):
        ex.set_parameters(x=0).compute(seed=1)
    return ex


def test_overview_lists_the_experiments_and_opens_their_boards(page, board_experiment,
                                                                other_experiment):
    ex, _ = board_experiment
    page.locator("a.eg-overview-link").click()  # the header's link
    page.wait_for_selector(".eg-experiments .slick-row")
    rows = poll(lambda: (r := overview_rows(page)) and len(r) == 2 and r, "two experiments")
    titles = [t.strip() for t in page.locator(".eg-experiments .slick-header-column")
              .all_inner_texts()]
    assert titles == ["Experiment", "Trials", "Last activity", "Best result (max)",
                      "Succeeded", "Failed", "Running", "Interrupted"]
    for each in (ex, other_experiment):
        cells = dict(zip(titles, rows[each.id]))
        for title, value in expected_row(each).items():
            assert cells[title] == value, (each.id, title)
        finished = each.get_history()["Finished"]
        assert cells["Last activity"] == max(finished).strftime("%Y-%m-%d %H:%M:%S")
    assert rows[ex.id][1:] == ["4", rows[ex.id][2], "6.666667", "3", "1", "0", "0"]
    assert "2 experiments" in div_text(page, "eg-overview-header")
    screenshot(page, "board-overview")

    page.locator("a.eg-experiment-link", has_text=other_experiment.id).click()
    page.wait_for_selector(".eg-trials .slick-row")
    poll(lambda: f"experigraph \u00b7 {other_experiment.id}" in div_text(page, "eg-header"),
         "the other experiment's board")
    board_rows = poll(lambda: (r := table_rows(page)) and len(r) == 2 and r, "its two trials")
    col = header_titles(page).index("Status")
    assert [board_rows[t][col] for t in (1, 2)] == ["succeeded", "failed"]


def test_board_command_without_an_id_serves_the_overview(open_page, board_experiment,
                                                         other_experiment, backend_root):
    env = {**os.environ, "EXPERIGRAPH_LOG_LEVEL": "WARNING"}
    proc = subprocess.Popen([sys.executable, "-m", "experigraph.cli", "board", "--port", "0",
                             "--backend", str(backend_root)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    try:
        line = proc.stdout.readline()
        url = re.search(r"http://127\.0\.0\.1:\d+/", line)
        assert url, f"no URL in {line!r}"
        page = open_page(url.group(0), wait_for=".eg-experiments .slick-row")
        rows = poll(lambda: (r := overview_rows(page)) and len(r) == 2 and r,
                    "the store's two experiments")
        assert sorted(rows) == sorted([board_experiment[0].id, other_experiment.id])
        assert rows[other_experiment.id][1] == "2"
        open_page.close()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err


def test_an_unknown_experiment_shows_the_overview_with_a_note(open_page, dashboard):
    page = open_page(dashboard.url + "?experiment=nope", wait_for=".eg-experiments .slick-row")
    assert "No experiment 'nope'" in div_text(page, "eg-overview-header")
