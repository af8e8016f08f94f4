"""Comparing trials, reproducing a trial, and the provenance graph."""
from __future__ import annotations

import dataclasses
import logging

import pytest

from test_drift import CELL, run_cell


def test_compare_lists_only_what_differs(make_experiment):
    ns = {"ex": make_experiment()}
    ex = ns["ex"]
    run_cell(CELL.format(op="+"), ns)
    ex.set_parameters(a=1, b=2).compute(seed=1)
    ex.set_parameters(a=1, b=2).compute(seed=1)
    run_cell(CELL.format(op="*"), ns)
    ex.set_parameters(a=1, b=4).compute(seed=2)
    same = ex.compare(1, 2)
    assert not same and str(same) == "Trial 1 -> trial 2: no differences"
    diff = ex.compare(1, 3)
    assert diff.parameters == {"b": (2, 4)}
    assert diff.seed == (1, 2)
    assert list(diff.code) == ["prepare_data"]
    assert "+    return a * b" in diff.code["prepare_data"]
    assert diff.result == (10 / 3, 2.5)
    assert diff.first_differing_step == "prepare_data"
    assert [d.step for d in diff.steps] == ["prepare_data", "calculate_score"]
    text = str(diff)
    for part in ("Parameters:", "  b: 2 -> 4", "Seed:", "Code: prepare_data", "Step outputs:",
                 "Result:"):
        assert part in text
    assert "<h4>Code: prepare_data</h4>" in diff._repr_html_()


def test_reproduce_a_deterministic_trial(quickstart, caplog):
    ex, a, b, s = quickstart
    ex.set_parameters(a=1, b=2).compute()
    ex.set_parameters(a=5, b=5).compute()
    with caplog.at_level(logging.INFO, logger="experigraph"):
        report = ex.reproduce(1)
    assert report.matches and bool(report)
    assert report.rerun == 3
    rerun = ex.get_trial(3)
    assert rerun.parameters == {"a": 1, "b": 2}
    assert rerun.seed == ex.get_trial(1).seed
    assert rerun.rerun_of == 1
    assert "Trial 3 reproduced trial 1" in caplog.text


def test_reproduce_names_the_first_differing_step(make_experiment):
    ex = make_experiment()
    a = ex.parameter("a")
    state = {"calls": 0}

    @ex
    def clean(a):
        return a * 2

    @ex
    def leaky(x):
        state["calls"] += 1
        return x + state["calls"]

    @ex.result
    def final(y):
        return y * 10

    final(leaky(clean(a)))
    ex.set_parameters(a=1).compute()
    report = ex.reproduce(1)
    assert not report.matches
    assert report.first_differing_step == "leaky"
    assert [d.kind for d in report.drift] == ["impurity"]
    assert "did NOT reproduce" in str(report) and "leaky" in str(report)


def test_provenance_graph_and_lineage(make_experiment):
    ex = make_experiment()
    a = ex.parameter("a")
    b = ex.parameter("b")

    @ex
    def pair(a):
        return (a, a + 1)

    @ex
    def other(b):
        return b

    @ex.result
    def combine(x, y):
        return x + y

    p = pair(a)
    combine(p[1] * 2, other(b))
    ex.set_parameters(a=1, b=3).compute()
    g = ex.get_provenance(1)
    kinds = {d["label"]: d["kind"] for _, d in g.nodes(data=True)}
    assert kinds == {"a": "parameter", "b": "parameter", "pair": "step", "other": "step",
                     "combine": "step"}
    labels = {(g.nodes[u]["label"], g.nodes[v]["label"]) for u, v in g.edges}
    assert labels == {("a", "pair"), ("b", "other"), ("pair", "combine"), ("other", "combine")}
    step = next(d for _, d in g.nodes(data=True) if d["label"] == "combine")
    assert step["output_hash"] and step["duration"] >= 0
    lineage = ex.get_lineage("combine", 1)
    assert sorted(lineage["steps"]) == ["other", "pair"]
    assert sorted(lineage["parameters"]) == ["a", "b"]
    assert lineage["files"] == [] and lineage["trials"] == []
    assert ex.get_lineage("pair", 1) == {"steps": [], "parameters": ["a"], "files": [],
                                         "trials": []}
    with pytest.raises(KeyError, match="steps: combine, other, pair"):
        ex.get_lineage("missing", 1)


def test_output_of_one_trial_read_by_another_links_them(make_experiment, tmp_path):
    ex = make_experiment()
    n = ex.parameter("n")
    path = str(tmp_path / "numbers.txt")

    @ex.result
    def write(n):
        with open(ex.output(path), "w") as f:
            f.write("\n".join(map(str, range(n))))
        return n

    write(n)
    ex.set_parameters(n=4).compute()
    reader = make_experiment(id=ex.id)  # a second notebook on the same experiment
    m = reader.parameter("m", default=0)

    @reader.result
    def read(m):
        with open(reader.input(path)) as f:
            return len(f.read().split()) + m

    read(m)
    assert reader.compute() == 4
    g = reader.get_provenance(2)
    assert g.has_edge("trial:1", f"file:{path}")
    assert reader.get_lineage("read", 2)["trials"] == [1]
    assert reader.get_lineage("read", 2)["files"] == [path]
    out = ex.get_trial(1).steps[0].outputs[0]
    assert out["path"] == path and out["hash"]


def test_compare_and_reproduce_values_json_cannot_hold(make_experiment):
    import math

    import numpy as np

    from experigraph.errors import ReproductionError

    ex = make_experiment()
    w = ex.parameter("w")

    @ex.result
    def norm(w):
        return float("nan") if w is None else np.asarray(w) * 2

    norm(w)
    ex.set_parameters(w=None).compute(seed=1)
    report = ex.reproduce(1)  # a NaN result is the same NaN
    assert report.matches and math.isnan(ex.get_trial(2).result)
    ex.set_parameters(w=np.arange(3.0)).compute(seed=1)
    ex.set_parameters(w=np.arange(4.0)).compute(seed=1)
    diff = ex.compare(3, 4)
    assert set(diff.parameters) == {"w"} and diff.result is not None
    assert not ex.compare(3, 3)
    with pytest.raises(ReproductionError, match=r"'w' were recorded by their repr only"):
        ex.reproduce(3)
    assert ex.trial_id == 4  # nothing ran


def test_records_are_read_back_not_live(make_experiment):
    ex = make_experiment()
    a = ex.parameter("a", default=1)

    @ex.result
    def items(a):
        return [a]

    items(a)
    out = ex.compute()
    out.append(99)  # the user changes the returned object
    assert ex.get_history()["Result"].tolist() == [[1]]
    assert ex.get_trial(1).result == [1]


def test_reproduce_reports_the_trial_it_ran(make_experiment):
    ex = make_experiment()
    a = ex.parameter("a")

    @ex.result
    def fragile(a):
        if a > 1:
            raise RuntimeError("too big")
        return a

    fragile(a)
    ex.set_parameters(a=2)
    with pytest.raises(RuntimeError):
        ex.compute()
    report = ex.reproduce(1)  # the original failed; so does the re-run
    assert report.rerun == 2 and report.matches
    assert ex.get_trial(2).rerun_of == 1


def test_numpy_integer_trial_ids_are_accepted(make_experiment, backend_root):
    import experigraph as xg

    ex = make_experiment()
    a = ex.parameter("a", default=1)

    @ex.result
    def ident(a):
        ex.save_metric("m", 0, a)
        return a

    ident(a)
    ex.compute()
    fresh = xg.Experiment(id=ex.id, backend=backend_root)
    first = fresh.get_history().index[0]
    assert fresh.get_trial(first).trial_id == 1
    assert list(fresh.load_metric("m", first).columns) == [1]
    with pytest.raises(xg.TrialIDNotFoundError, match="Trial ids are ints"):
        fresh.get_trial(True)


def test_a_later_trial_is_never_the_producer_of_an_input(make_experiment, tmp_path):
    path = tmp_path / "d.txt"
    path.write_text("same")
    ex = make_experiment()
    mode = ex.parameter("mode")

    @ex.result
    def io(mode):
        if mode == "read":
            return open(ex.input(str(path))).read()
        with open(ex.output(str(path)), "w") as f:
            f.write("same")
        return "wrote"

    io(mode)
    ex.set_parameters(mode="read").compute()
    ex.set_parameters(mode="write").compute()
    assert ex.get_lineage("io", 1)["trials"] == []
    ex.set_parameters(mode="read").compute()
    assert ex.get_lineage("io", 3)["trials"] == [2]


class Model:
    """Like a fitted sklearn estimator: dask has no deterministic hash for it."""

    def __init__(self, coef):
        self.coef = coef


def test_reproduce_names_the_steps_it_could_not_compare(make_experiment):
    ex = make_experiment()
    a = ex.parameter("a")

    @ex
    def fit(a):
        return Model(a * 2)

    @ex.result
    def score(model):
        return model.coef + 1

    score(fit(a))
    ex.set_parameters(a=1).compute(seed=1)
    assert ex.get_trial(1).steps[0].output_hash is None
    report = ex.reproduce(1)
    assert report.matches
    why = "output of type test_compare.Model has no deterministic hash"
    assert report.not_compared == {"fit": why}
    text = str(report)
    assert "same output of every step." not in text
    assert text.splitlines() == [
        "Trial 2 reproduced trial 1 in what could be compared: same result and same output "
        "of every other step. Not compared:", f"  fit: {why}"]
    diff = ex.compare(1, 2)
    assert not diff and diff.not_compared == {"fit": why}
    assert str(diff).splitlines() == ["Trial 1 -> trial 2: no differences in what could be "
                                      "compared", "Not compared:", f"  fit: {why}"]
    assert "<h4>Not compared</h4>" in diff._repr_html_()


def test_a_result_without_a_hash_is_never_claimed_reproduced(make_experiment, caplog):
    ex = make_experiment()
    a = ex.parameter("a")

    @ex.result
    def fit(a):
        return Model(a)

    fit(a)
    ex.set_parameters(a=1).compute(seed=1)
    with caplog.at_level(logging.INFO, logger="experigraph"):
        report = ex.reproduce(1)
    assert not report.matches
    assert report.not_compared == {
        "fit": "output of type test_compare.Model has no deterministic hash",
        "result": "result of type test_compare.Model has no deterministic hash"}
    assert str(report).startswith("Trial 2 could not be checked against trial 1: no "
                                  "difference was found, but not everything could be "
                                  "compared. Not compared:")
    assert "reproduced" not in caplog.text


def test_compare_marks_seed_dependent_steps(make_experiment):
    ex = make_experiment()
    a = ex.parameter("a")

    @ex.result
    def draw(a):
        return float(ex.rng().random()) + a

    draw(a)
    ex.set_parameters(a=1)
    ex.compute(seed=1)
    ex.compute(seed=2)
    diff = ex.compare(1, 2)
    assert diff.seed == (1, 2) and [d.seed_dependent for d in diff.steps] == [True]
    assert "draw: " in str(diff) and "(seed-dependent: it used the trial's randomness)" in \
        str(diff)
    assert [(d.kind, d.subject) for d in ex.get_trial(2).drift] == [("seed", "draw")]
    report = ex.reproduce(1)
    assert report.matches and report.seed_dependent == ("draw",)
    assert str(report).splitlines() == [
        "Trial 3 reproduced trial 1: same result and same output of every step.",
        "Seed-dependent steps (they used the trial's randomness, under the original seed): "
        "draw"]


def test_outputs_hashed_by_another_version_are_not_compared(make_experiment):
    from experigraph.compare import compare_records

    ex = make_experiment()
    a = ex.parameter("a")

    @ex
    def double(a):
        return 2 * a

    @ex.result
    def total(x):
        return x + 1

    total(double(a))
    ex.set_parameters(a=1).compute(seed=1)
    now = ex.get_trial(1)
    assert now.steps[0].output_hash.startswith("s")  # a plain scalar's hash
    # the same trial as an earlier version recorded it: dask's token for the int 2
    first = dataclasses.replace(now.steps[0], output_hash="0" * 32)
    earlier = now.replace(steps=(first, *now.steps[1:]))
    diff = compare_records(earlier, now, read_source=lambda h: None,
                           read_environment=lambda h: None)
    assert not diff.steps
    assert diff.not_compared == {
        "double": "output hashes were made by different versions of experigraph"}
