"""The board's plot choices, without a browser: axes, diffs, the trial graph's layout."""
from __future__ import annotations

import math

import pytest

pytest.importorskip("bokeh")

from experigraph.board import plots  # noqa: E402
from experigraph.board.table import Column  # noqa: E402


@pytest.mark.parametrize("values, numeric, kind", [
    ([0.01, 0.1, 1.0, 10.0], True, "log"),
    ([1.0, 100.0], True, "log"),  # two decades exactly
    ([1.0, 99.0], True, "linear"),
    ([0.0, 1.0, 100.0], True, "linear"),  # not all positive
    ([-2.0, 1.0, 2.0], True, "linear"),
    ([100.0, 100.0, 100.0], True, "constant"),
    ([math.nan, math.nan], True, "constant"),
    (["rbf", "linear"], False, "categorical"),
    (["True", "False"], False, "categorical"),
    (["rbf", "rbf"], False, "constant"),
    (["rbf", ""], False, "categorical"),  # a trial without the parameter: it varies
])
def test_axis_kind(values, numeric, kind):
    assert plots.axis_kind(values, numeric) == kind


def test_fixed_parameters_are_listed_once_with_their_recorded_values():
    columns = [Column("p:max_iter", "max_iter", "parameter", True),
               Column("p:C", "C", "parameter", True),
               Column("p:solver", "solver", "parameter", False)]
    kinds = {"p:max_iter": "constant", "p:C": "log", "p:solver": "constant"}
    row = {"p:max_iter": 100, "p:C": 0.1, "p:solver": "lbfgs"}
    assert plots.fixed_text(columns, kinds, row) == "fixed: max_iter=100, solver=lbfgs"
    assert plots.fixed_text(columns, {"p:C": "log"}, row) == ""


def test_diff_lines_are_marked_added_removed_and_context():
    html = plots.diff_html(["--- f (before)", "+++ f (after)", "@@ -1,2 +1,2 @@",
                            " def f():", "-    return 1", "+    return <2>"])
    assert html.count("eg-diff-file") == 2 and html.count("eg-diff-hunk") == 1
    assert "class='eg-diff-del'" in html and "class='eg-diff-add'" in html
    assert "+    return &lt;2&gt;" in html  # escaped
    assert "class='eg-diff-ctx' style='display:block;color:#24292f'> def f():" in html


def _segments(paths):
    return [(k, a, b) for k, path in enumerate(paths) for a, b in zip(path, path[1:])]


def _crosses(p1, p2, q1, q2) -> bool:
    def orient(a, b, c):
        return (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0])
    return (orient(q1, q2, p1) * orient(q1, q2, p2) < -1e-9 and
            orient(p1, p2, q1) * orient(p1, p2, q2) < -1e-9)


@pytest.mark.parametrize("nodes, edges", [
    # a five-step chain; p feeds the first and the last step
    (["p", "q", "s1", "s2", "s3", "s4", "s5"],
     [("p", "s1"), ("s1", "s2"), ("s2", "s3"), ("q", "s3"), ("s3", "s4"), ("s4", "s5"),
      ("p", "s5")]),
    # a diamond: a file read by two steps, a parameter by one (listed last)
    (["f", "left", "right", "join", "a"],
     [("a", "right"), ("f", "left"), ("f", "right"), ("left", "join"), ("right", "join")]),
])
def test_layered_layout_has_no_crossing_edges_and_no_edge_through_a_node(nodes, edges):
    layout, paths = plots.graph_layout(nodes, edges)
    for a, b in edges:
        assert layout[a][0] < layout[b][0]  # left to right
    assert len(paths) == len(edges)
    for (a, b), path in zip(edges, paths):
        assert path[0] == layout[a] and path[-1] == layout[b]
    segments = _segments(paths)
    for k, a, b in segments:
        for j, c, d in segments:
            if j != k:
                assert not _crosses(a, b, c, d), (edges[k], edges[j])
        for node, point in layout.items():
            if point not in (a, b) and min(point[0], b[0]) >= a[0] and point[0] <= b[0]:
                # a node strictly between the segment's ends is not on it
                t = (point[0] - a[0]) / ((b[0] - a[0]) or 1)
                assert abs(a[1] + t * (b[1] - a[1]) - point[1]) > 0.2, (edges[k], node)


def test_graph_nodes_are_coloured_by_status_and_sized_by_time():
    nodes = {"parameter:a": {"kind": "parameter", "label": "a", "value": 1},
             "s1": {"kind": "step", "label": "fast", "duration": 0.001, "succeeded": True},
             "s2": {"kind": "step", "label": "slow", "duration": 0.5, "succeeded": True,
                    "input_hash": "i2", "output_hash": "o2"},
             "s3": {"kind": "step", "label": "broken", "duration": 0.01, "succeeded": False,
                    "error": "ValueError()"},
             "s4": {"kind": "step", "label": "kept", "duration": 0.0, "succeeded": True,
                    "cached": True}}
    data, lines, heads = plots.graph_data(
        nodes, [("parameter:a", "s1"), ("s1", "s2"), ("s2", "s3"), ("s2", "s4")])
    by_name = {n: i for i, n in enumerate(data["name"])}
    assert [data["status"][by_name[n]] for n in ("fast", "slow", "broken", "kept")] == \
        ["succeeded", "succeeded", "failed", "cached"]
    assert data["color"][by_name["broken"]] == plots.STEP_COLORS["failed"]
    assert data["size"][by_name["slow"]] > data["size"][by_name["fast"]]
    assert data["label"][by_name["slow"]] == "slow \u00b7 500.0 ms"
    assert data["input_hash"][by_name["slow"]] == "i2"
    assert len(lines["xs"]) == len(heads["x1"]) == 4


def test_layers_start_from_dasks_order():
    from dask.order import order

    preds = {"p": [], "q": [], "s1": ["p"], "s2": ["s1"], "s3": ["s2", "q"], "s4": ["s3"]}
    ranks = plots.dask_order(list(preds), preds)
    assert ranks == order({n: (print, *ps) if ps else 0 for n, ps in preds.items()})
    assert all(ranks[a] < ranks[b] for b, ps in preds.items() for a in ps)
    # a graph dask cannot order keeps the order given
    cyclic = {"a": ["b"], "b": ["a"]}
    assert plots.dask_order(["b", "a"], cyclic) == {"b": 0, "a": 1}
