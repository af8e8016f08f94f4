"""The board's axes, diffs, columns and trial graph, as a person sees them in Chromium."""
from __future__ import annotations

import logging
import math

import pytest

from pagetools import (
    click_row, diff_lines, div_text, glyph_positions, header_titles, model_property, open_tab,
    poll, screenshot, source_data, table_rows)

pytestmark = pytest.mark.browser

SCALE_TYPE = "m.x_scale.type"


@pytest.fixture
def sweep_page(sweep_experiment, open_page):
    board = sweep_experiment.start_dashboard(port=0, blocking=False, refresh_ms=300)
    try:
        yield open_page(board.url)
        open_page.close()
    finally:
        board.stop()


def test_axes_fit_the_parameters(sweep_page):
    page = sweep_page
    select = page.locator(".eg-x-select select")
    # max_iter never changes: no axis for it, said once
    poll(lambda: sorted(select.locator("option").all_inner_texts()) ==
         ["C", "kernel", "shrinking"], "the varying parameters to choose from")
    assert div_text(page, "eg-fixed") == "fixed: max_iter=100"
    select.select_option(label="C")
    # C = 0.01 ... 10 spans three decades: a log axis, chosen by itself
    poll(lambda: model_property(page, "scatter_plot", SCALE_TYPE) == "LogScale", "a log axis")
    assert model_property(page, "scatter_points", "m.glyph.x.field") == "p:C"
    assert "log scale" in model_property(page, "scatter_plot", "m.below[0].axis_label")
    # ... which a person can switch off
    page.locator(".eg-x-scale button", has_text="linear").click()
    poll(lambda: model_property(page, "scatter_plot", SCALE_TYPE) == "LinearScale",
         "a linear axis after clicking 'linear'")
    page.locator(".eg-x-scale button", has_text="log").click()
    poll(lambda: model_property(page, "scatter_plot", SCALE_TYPE) == "LogScale",
         "a log axis again")
    screenshot(page, "board-results-log-axis")
    # text and bool parameters: one labelled tick per value
    for name, labels in (("kernel", {"rbf", "linear"}), ("shrinking", {"True", "False"})):
        select.select_option(label=name)
        poll(lambda: model_property(page, "scatter_points", "m.glyph.x.field") == f"x:p:{name}",
             f"the scatter against {name}")
        shown = model_property(page, "scatter_plot", """[...m.below[0].ticker.ticks].map(
            t => m.below[0].formatter.compute(t))""")
        assert set(shown) == labels
        assert model_property(page, "scatter_plot", SCALE_TYPE) == "LinearScale"
        assert model_property(page, "x_scale", "m.disabled") is True  # no log for categories

    select.select_option(label="C")  # back to C: a log axis with its own labels
    poll(lambda: model_property(page, "scatter_plot", "m.below[0].formatter.type") ==
         "LogTickFormatter", "the log axis's labels")
    assert model_property(page, "scatter_plot", "m.below[0].formatter.compute(1)") == "10^0"

    open_tab(page, "Parameters")
    data = poll(lambda: source_data(page, "parallel_lines").get("ys"), "the parallel lines")
    axes = model_property(page, "parallel_plot", """Object.values(Object.fromEntries(
        m.below[0].major_label_overrides))""")
    assert sorted(axes) == ["C (log)", "Result", "kernel", "shrinking"]
    assert axes[-1] == "Result"
    column = axes.index("C (log)")
    assert div_text(page, "eg-parallel-fixed") == "fixed: max_iter=100"
    lines = source_data(page, "parallel_source")
    by_trial = dict(zip(lines["trial_id"], lines["ys"]))
    # log10(C) from -2 to 1: C = 0.1 (trials 3 and 4) is a third of the way up
    assert by_trial[3][column] == pytest.approx(1 / 3)
    assert by_trial[1][column] == 0 and by_trial[8][column] == 1
    labels = source_data(page, "parallel_label_source")["text"]
    assert {"rbf", "linear", "True", "False", "0.01", "10"} <= set(labels)
    assert data


def test_table_columns_fit_their_content_with_full_names_on_hover(page):
    headers = page.locator(".eg-trials .slick-header-column").all()
    assert [h.locator("span[title]").get_attribute("title") for h in headers] == \
        header_titles(page)
    assert "Process Time (s)" in header_titles(page)
    cut = page.evaluate("""() => [...document.querySelectorAll('*')]
        .flatMap(e => e.shadowRoot ? [...e.shadowRoot.querySelectorAll(
            '.eg-trials .slick-header-column, .slick-header-column, .slick-cell')] : [])
        .filter(e => e.offsetParent !== null && e.scrollWidth > e.clientWidth + 1)
        .map(e => e.innerText)""")
    assert cut == []


def test_compare_and_drift_diffs_are_coloured(page, board_experiment):
    ex, _ = board_experiment
    code = ex.compare(1, 4).code["calculate_score"]
    click_row(page, 1)
    click_row(page, 4, modifiers=["Control"])
    open_tab(page, "Compare")
    lines = poll(lambda: (d := diff_lines(page, "eg-compare")).get("eg-diff-add") and d,
                 "a coloured code diff of trials 1 and 4")
    added = [text for text, _ in lines["eg-diff-add"]]
    removed = [text for text, _ in lines["eg-diff-del"]]
    assert added == [line for line in code if line.startswith("+")
                     and not line.startswith("+++")]
    assert removed == [line for line in code if line.startswith("-")
                       and not line.startswith("---")]
    assert "+    return 20 / s" in added and "-    return 10 / s" in removed
    assert {bg for _, bg in lines["eg-diff-add"]} == {"rgb(230, 255, 237)"}  # green
    assert {bg for _, bg in lines["eg-diff-del"]} == {"rgb(255, 235, 233)"}  # red
    assert lines["eg-diff-ctx"]  # the unchanged lines around, uncoloured
    screenshot(page, "board-compare")

    open_tab(page, "Drift")
    poll(lambda: source_data(page, "drift_source").get("kind"), "the drift events")
    kinds = source_data(page, "drift_source")["kind"]
    page.locator(".eg-drift .slick-row").nth(kinds.index("code")).locator(
        ".slick-cell").nth(1).click()
    lines = poll(lambda: (d := diff_lines(page, "eg-drift-detail")).get("eg-diff-add") and d,
                 "the coloured diff of the code drift")
    assert "+    return 20 / s" in [t for t, _ in lines["eg-diff-add"]]
    assert {bg for _, bg in lines["eg-diff-del"]} == {"rgb(255, 235, 233)"}


def _crosses(p1, p2, q1, q2) -> bool:
    """Whether segments p1-p2 and q1-q2 cross at a point inside both."""
    def orient(a, b, c):
        return (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0])
    d1, d2 = orient(q1, q2, p1), orient(q1, q2, p2)
    d3, d4 = orient(p1, p2, q1), orient(p1, p2, q2)
    return d1 * d2 < -1e-9 and d3 * d4 < -1e-9


def _distance(p, a, b) -> float:
    (px, py), (ax, ay), (bx, by) = p, a, b
    length2 = (bx - ax) ** 2 + (by - ay) ** 2 or 1e-12
    t = max(0.0, min(1.0, ((px - ax) * (bx - ax) + (py - ay) * (by - ay)) / length2))
    return math.hypot(px - ax - t * (bx - ax), py - ay - t * (by - ay))


def test_trial_graph_is_layered_left_to_right_without_overlaps(sweep_page, sweep_experiment):
    page, ex = sweep_page, sweep_experiment
    open_tab(page, "Trial graph")
    record = ex.get_trial(8)
    nodes = poll(lambda: (d := source_data(page, "provenance_nodes")).get("kind") and
                 "score" in d["name"] and d, "the graph of trial 8")
    x = dict(zip(nodes["name"], nodes["x"]))
    # the chain, left to right in execution order; each parameter just left of its first user
    assert x["load"] < x["clean"] < x["features"] < x["fit"] < x["score"]
    assert x["max_iter"] == x["load"] - 1 and x["shrinking"] == x["fit"] - 1
    assert x["C"] == x["kernel"] == x["features"] - 1
    # steps coloured by status, sized by time and labelled with it
    steps = {n: i for i, (n, k) in enumerate(zip(nodes["name"], nodes["kind"])) if k == "step"}
    assert {nodes["status"][i] for i in steps.values()} == {"succeeded"}
    assert {nodes["color"][i] for i in steps.values()} == {"#66bb6a"}
    durations = {s.step: s.duration for s in record.steps}
    slowest = max(durations, key=durations.get)
    assert nodes["size"][steps[slowest]] == max(nodes["size"][i] for i in steps.values())
    assert all(" \u00b7 " in nodes["label"][i] for i in steps.values())
    # edges: no two cross, and none runs through a node it does not join
    edges = source_data(page, "provenance_edges")
    segments = [(k, a, b) for k, (xs, ys) in enumerate(zip(edges["xs"], edges["ys"]))
                for a, b in zip(zip(xs, ys), list(zip(xs, ys))[1:])]
    assert len(edges["xs"]) == 9  # 4 parameter edges, 4 step edges, C -> score
    points = list(zip(nodes["x"], nodes["y"]))
    for k, a, b in segments:
        near = [p for p in points if _distance(p, a, b) < 0.2 and
                math.dist(p, a) > 0.2 and math.dist(p, b) > 0.2]
        assert near == [], f"edge {k} passes through a node"
        for j, c, d in segments:
            if j != k:
                assert not _crosses(a, b, c, d), f"edges {k} and {j} cross"
    # clicking a step shows its input and output hashes and timing
    where = glyph_positions(page, "provenance_plot", "provenance_nodes")
    page.mouse.click(*where[nodes["name"].index("features")])
    step = next(s for s in record.steps if s.step == "features")
    text = poll(lambda: (t := div_text(page, "eg-step-detail")) and "features" in t and t,
                "the detail of the clicked step")
    assert step.input_hash in text and step.output_hash in text
    assert f"{step.duration:.6f} s" in text
    screenshot(page, "board-trial-graph")


def test_a_long_history_reaches_the_page_in_chunks(open_page, board_experiment, monkeypatch):
    from experigraph.board import app

    ex, compute = board_experiment
    for value in range(5, 12):
        compute(value)
    monkeypatch.setattr(app, "FIRST_ROWS", 3)  # the first page message: 3 rows
    monkeypatch.setattr(app, "FIRST_READ", 2)  # read for the first page: 2 trials
    monkeypatch.setattr(app, "READ_CHUNK", 4)  # then 4 at a time, serving in between
    # reading on starts when the page shows its table, not by the timer of a board no page
    # has opened
    monkeypatch.setattr("experigraph.board.READ_ON_AFTER_S", 600)
    board = ex.start_dashboard(port=0, blocking=False, refresh_ms=300)
    try:
        page = open_page(board.url)
        poll(lambda: len(source_data(page, "trials").get("trial_id", [])) == 11,
             "all 11 trials in the page")
        assert source_data(page, "trials")["trial_id"] == list(range(1, 12))
        poll(lambda: "11 trials" in div_text(page, "eg-header"), "the header count")
        page.locator(".eg-filter input").fill("a=9")
        poll(lambda: sorted(table_rows(page)) == [9], "only trial 9 (a=9) after filtering")
        open_page.close()
    finally:
        board.stop()


def test_an_experiment_without_trials_has_a_clean_board_and_report(open_page,
                                                                   make_experiment, tmp_path):
    ex = make_experiment()
    x = ex.parameter("x")

    @ex.result
    def square(x):
        return x * x

    square(x)
    report = ex.report(tmp_path / "empty.html")
    board = ex.start_dashboard(port=0, blocking=False, refresh_ms=300)
    try:
        page = open_page(board.url, wait_for=".eg-trials")
        poll(lambda: "0 trials" in div_text(page, "eg-header"), "the empty board's header")
        for title in ("Parameters", "Metrics", "Compare", "Trial graph"):
            open_tab(page, title)
        poll(lambda: "No trial yet" in div_text(page, "eg-trial-summary"), "the graph's note")
        open_tab(page, "Drift")
        poll(lambda: source_data(page, "drift_source") == {
            "trial_id": [], "kind": [], "subject": [], "message": []}, "every tab built")
        open_tab(page, "Results")
        assert table_rows(page) == {}
        shown = open_page(report.as_uri(), wait_for=".eg-trials", offline=True)
        assert "0 trials" in div_text(shown, "eg-header")
        assert table_rows(shown) == {}
        open_page.close()  # fails the test on any console problem, before the server stops
    finally:
        board.stop()


def test_a_board_page_that_cannot_be_built_says_why(open_page, board_experiment,
                                                    monkeypatch, caplog):
    from experigraph.board import app

    ex, _ = board_experiment

    def broken(self, state, doc):
        raise RuntimeError("the models could not be made")

    monkeypatch.setattr(app.BoardSession, "__init__", broken)
    board = ex.start_dashboard(port=0, blocking=False, refresh_ms=300)
    try:
        with caplog.at_level(logging.WARNING, logger="experigraph.board"):
            page = open_page(board.url, wait_for=".eg-failed")
            text = div_text(page, "eg-failed")
        assert f"The board of {ex.id} failed: the models could not be made" in text
        assert any("the models could not be made" in r.getMessage() for r in caplog.records)
        open_page.close()
    finally:
        board.stop()
