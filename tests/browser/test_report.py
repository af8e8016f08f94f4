"""The report to send: one HTML file, opened offline in Chromium, showing the board's numbers."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from pagetools import (
    diff_lines, div_text, header_titles, model_property, poll, source_data, table_rows)

pytestmark = pytest.mark.browser


def loaded_urls(text: str) -> list[str]:
    """The ``src`` and ``href`` of the elements of an HTML page (not of its scripts' strings)."""
    from html.parser import HTMLParser

    found: list[str] = []

    class Parser(HTMLParser):
        def handle_starttag(self, tag, attrs):
            found.extend(v or "" for k, v in attrs if k in ("src", "href"))

    Parser().feed(text)
    return found


def test_report_is_one_offline_file_with_the_boards_numbers(page, open_page,
                                                            board_experiment, tmp_path):
    ex, _ = board_experiment
    folder = tmp_path / "to-send"
    folder.mkdir()
    path = ex.report(folder / "report.html", trials=[1, 4])
    assert path == folder / "report.html"
    text = path.read_text(encoding="utf-8")
    # no element loads anything: Bokeh's JavaScript and CSS are inline
    assert loaded_urls(text) == []
    assert "cdn.bokeh.org" not in text
    assert [p.name for p in folder.iterdir()] == ["report.html"]  # one file

    board_rows = poll(lambda: (r := table_rows(page)) and len(r) == 4 and r, "the board")
    # offline: a request for anything outside the file would fail (and fail the test)
    report = open_page(path.as_uri(), offline=True)
    assert header_titles(report) == header_titles(page)
    assert table_rows(report) == board_rows
    assert source_data(report, "trials")["result_value"] == \
        source_data(page, "trials")["result_value"]
    assert "4 trials \u00b7 1 failed" in div_text(report, "eg-header")
    assert "fixed: b=2" in div_text(report, "eg-header")
    assert model_property(report, "scatter_points:a", "m.glyph.x.field") == "p:a"

    # the metric curves of the chosen trials, as recorded
    curves = source_data(report, "metric_curves:loss")
    expected = ex.load_metric("loss", [1, 4])
    assert curves["trial_id"] == [1, 4]
    for trial_id, xs, ys in zip(curves["trial_id"], curves["xs"], curves["ys"]):
        assert xs == list(expected.index)
        assert ys == pytest.approx(list(expected[trial_id]))

    # the first two chosen trials compared, the code diff coloured
    compare = div_text(report, "eg-compare")
    assert "Trial 1 \u2192 trial 4" in compare
    lines = diff_lines(report, "eg-compare")
    assert "+    return 20 / s" in [t for t, _ in lines["eg-diff-add"]]
    assert {bg for _, bg in lines["eg-diff-del"]} == {"rgb(255, 235, 233)"}
    # and the graph of the last one
    nodes = source_data(report, "provenance_nodes")
    assert {"prepare_data", "calculate_score"} <= set(nodes["name"])


def test_report_of_the_latest_trials_by_default(open_page, sweep_experiment, tmp_path):
    path = sweep_experiment.report(tmp_path / "r.html")
    report = open_page(path.as_uri(), offline=True)
    assert sorted(table_rows(report)) == list(range(1, 9))
    assert source_data(report, "metric_curves:loss")["trial_id"] == [6, 7, 8]
    assert "Trial 6 \u2192 trial 7" in div_text(report, "eg-compare")
    assert model_property(report, "scatter_plot:C", "m.x_scale.type") == "LogScale"
    assert "fixed: max_iter=100" in div_text(report, "eg-header")


def test_report_command(board_experiment, backend_root, tmp_path):
    from click.testing import CliRunner

    from experigraph.cli import main

    ex, _ = board_experiment
    out = tmp_path / "out.html"
    args = ["report", ex.id, "--backend", str(backend_root), "-o", str(out)]
    result = CliRunner().invoke(main, args + ["--trials", "1,2"])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == f"Wrote {out}"
    assert "metric_curves:loss" in out.read_text(encoding="utf-8")

    result = CliRunner().invoke(main, args + ["--trials", "1,x"])
    assert result.exit_code == 2 and "3,5,8" in result.output
    result = CliRunner().invoke(main, args + ["--trials", "1,99"])
    assert result.exit_code == 1
    assert "Trial 99 is not recorded" in result.output and "1-4" in result.output

    # once as a command a person types, with the default trials
    out.unlink()
    proc = subprocess.run([sys.executable, "-m", "experigraph.cli", *args],
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "EXPERIGRAPH_LOG_LEVEL": "WARNING"})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"Wrote {out}" and out.stat().st_size > 100_000
