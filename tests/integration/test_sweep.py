"""Sweeps: many trials as one dask graph, sharing the step calls they have in common."""
from __future__ import annotations

import threading

import pytest

from experigraph.errors import ParameterUndeclaredError


def _sweep_experiment(make_experiment):
    ex = make_experiment()
    a = ex.parameter("a")
    b = ex.parameter("b", default=1)
    calls = {"prepare": 0, "score": 0}
    lock = threading.Lock()

    @ex
    def prepare(a):
        with lock:
            calls["prepare"] += 1
        return a * 10

    @ex.result
    def score(p, b):
        with lock:
            calls["score"] += 1
        return p / b

    return ex, score(prepare(a), b), calls


def test_grid_sweep_shares_common_steps(make_experiment):
    ex, r, calls = _sweep_experiment(make_experiment)
    table = ex.sweep(a=[1, 2], b=[1, 2, 4], seed=3, progress=False)
    assert list(table.index) == [1, 2, 3, 4, 5, 6]
    assert table[["a", "b"]].values.tolist() == [[1, 1], [1, 2], [1, 4], [2, 1], [2, 2], [2, 4]]
    assert table["Result"].tolist() == [10.0, 5.0, 2.5, 20.0, 10.0, 5.0]
    assert calls == {"prepare": 2, "score": 6}
    shared = [st for st in ex.get_trial(1).steps if st.step == "prepare"]
    assert shared[0].trial_ids == (1, 2, 3)
    assert ex.get_history().loc[4:6, "Result"].tolist() == [20.0, 10.0, 5.0]
    assert set(ex.get_history(verbose=True)["Seed"]) == {3}


def test_list_of_dicts_and_a_failing_trial(make_experiment, caplog):
    ex, r, calls = _sweep_experiment(make_experiment)
    table = ex.sweep([{"a": 1}, {"a": 1, "b": 0}, {"a": 3, "b": 2}], progress=False)
    assert table["Success"].tolist() == [True, False, True]
    assert table.loc[2, "Description"] == "ZeroDivisionError(division by zero)"
    assert table.loc[3, "Result"] == 15.0
    assert "Sweep finished with 1 failed trial(s): 2" in caplog.text


def test_sweep_checks_parameters_before_running(make_experiment):
    ex, r, calls = _sweep_experiment(make_experiment)
    with pytest.raises(ParameterUndeclaredError, match="'c'"):
        ex.sweep(c=[1, 2], progress=False)
    with pytest.raises(TypeError, match="must be a list"):
        ex.sweep(a=3, progress=False)
    assert ex.trial_id == 0 and calls["prepare"] == 0


def test_sweep_with_one_seed_per_trial_shares_nothing(make_experiment):
    ex, r, calls = _sweep_experiment(make_experiment)
    ex.sweep(a=[1, 1], seed=[1, 2], progress=False)
    assert calls["prepare"] == 2
    assert ex.get_history(verbose=True)["Seed"].tolist() == [1, 2]


def test_sweep_on_a_distributed_cluster(make_experiment, client):
    ex = make_experiment()
    a = ex.parameter("a")
    b = ex.parameter("b")

    @ex
    def prepare(a):
        ex.save_metric("seen", 0, a)
        return a + 1

    @ex.result
    def combine(p, b):
        return (p * b, ex.current_trial_id)

    combine(prepare(a), b)
    table = ex.sweep(a=[1, 2], b=[10, 20], client=client, progress=False)
    assert [tuple(v) for v in table["Result"]] == [(20, 1), (40, 2), (30, 3), (60, 4)]
    for trial_id in (1, 2):  # prepare(a=1) ran once for trials 1 and 2
        assert ex.load_metric("seen", trial_id)[trial_id].tolist() == [1]
    steps = {st.step: st.trial_ids for st in ex.get_trial(2).steps}
    assert steps["prepare"] == (1, 2)


def test_progress_bar_counts_tasks(make_experiment, capsys):
    ex, r, calls = _sweep_experiment(make_experiment)
    ex.sweep(a=[1, 2], progress=True, scheduler="threads")
    err = capsys.readouterr().err
    assert "sweep of 2 trials" in err and "4/4" in err


def test_sweep_progress_on_a_cluster(make_experiment, client, capsys):
    ex = make_experiment()
    a = ex.parameter("a")
    b = ex.parameter("b")

    @ex.result
    def ratio(a, b):
        return a * 10 / b

    ratio(a, b)
    table = ex.sweep(a=[1, 2], b=[1, 2], client=client, progress=True)
    assert table["Result"].tolist() == [10.0, 5.0, 20.0, 10.0]
    out = capsys.readouterr()
    assert "100%" in out.out + out.err  # distributed's progress bar reached the end
