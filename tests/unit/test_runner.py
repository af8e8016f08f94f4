"""The trial runner under ``Experiment``: one way through a trial, and what it keeps
between trials (records read once, which trial this process and thread ran)."""
from __future__ import annotations

import threading

import pytest

import experigraph as xg
from experigraph.graph import node_of, walk
from experigraph.trial import RunOptions, TrialRunner


def chain(ex):
    a = ex.parameter("a")

    @ex
    def double(a):
        return 2 * a

    @ex.result
    def plus_one(x):
        if x == 0:
            raise ZeroDivisionError("a=0")
        return x + 1

    return plus_one(double(a))


def test_a_runner_runs_trials_and_keeps_what_it_ran(make_experiment):
    ex = make_experiment()
    result = chain(ex)
    runner = TrialRunner(ex.id, ex.backend)
    assert runner.previous_trial() is None and runner.trial_id() is None
    order = walk(node_of(result))
    outcomes = runner.run(order, [{"a": 1}, {"a": 0}, {"a": 3}], [5, 5, 5],
                          RunOptions(isolate=True))
    assert [o.value for o in outcomes] == [3, None, 7]
    assert isinstance(outcomes[1].exception, ZeroDivisionError)
    assert [o.record.status.value for o in outcomes] == ["succeeded", "failed", "succeeded"]
    assert runner.trial_id() == outcomes[-1].trial_id
    assert [r.trial_id for r in runner.records()] == [o.trial_id for o in outcomes]
    assert runner.previous_trial().trial_id == outcomes[-1].trial_id
    # the experiment's view of the same store agrees
    assert ex.get_history()["Result"].tolist()[::2] == [3, 7]


def test_a_compute_that_raises_is_recorded_and_returned(make_experiment):
    ex = make_experiment()
    result = chain(ex)
    runner = TrialRunner(ex.id, ex.backend)
    (outcome,) = runner.run(walk(node_of(result)), [{"a": 0}], [1])
    assert isinstance(outcome.exception, ZeroDivisionError)
    assert runner.read(outcome.trial_id).status.value == "failed"


def test_each_thread_sees_the_trial_it_ran(make_experiment):
    ex = make_experiment()
    chain(ex)
    seen = {}

    def work(value):
        outcome = ex.run(parameters={"a": value})
        seen[value] = (outcome.trial_id, ex.trial_id)

    threads = [threading.Thread(target=work, args=(v,)) for v in (1, 2, 3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(mine == theirs for mine, theirs in seen.values())
    assert sorted(i for i, _ in seen.values()) == [1, 2, 3]


def test_sweeps_go_through_run(make_experiment):
    """``ex.run`` with a list of parameter sets is one graph of many trials: the shared
    step call runs once, each trial gets its outcome, and sweep() is built on it."""
    ex = make_experiment()
    calls = []
    a, b = ex.parameter("a"), ex.parameter("b")

    @ex
    def load(a):
        calls.append(a)
        return a

    @ex.result
    def score(x, b):
        return x * b

    score(load(a), b)
    outcomes = ex.run(parameters=[{"a": 1, "b": 2}, {"a": 1, "b": 3}], seed=4)
    assert [o.value for o in outcomes] == [2, 3] and calls == [1]
    assert len({o.record.sweep_id for o in outcomes}) == 1 and outcomes[0].record.sweep_id
    seeded = ex.run(parameters=[{"a": 1, "b": 2}, {"a": 1, "b": 3}], seed=[4, 5])
    assert [o.record.seed for o in seeded] == [4, 5]
    assert calls == [1, 1, 1]  # a new graph; two seeds: two calls of load
    with pytest.raises(xg.errors.InvalidArgumentError, match="one seed, or one per"):
        ex.run(parameters=[{"a": 1, "b": 2}], seed=[1, 2])
    with pytest.raises(xg.errors.InvalidArgumentError, match="takes a mapping"):
        ex.run(parameters=[("a", 1)])
    frame = ex.sweep(a=[1], b=[4, 5])
    assert frame["Result"].tolist() == [4, 5]


def test_a_result_is_built_with_its_runner_and_cannot_be_rewired(make_experiment):
    ex, other = make_experiment(), make_experiment(id="other")
    result = chain(ex)
    with pytest.raises(AttributeError, match="A Result is immutable"):
        setattr(result, "_runner", other)
    ex.set_parameters(a=2)
    assert result.compute() == 5 and ex.trial_id == 1 and other.latest_trial_id == 0


def test_records_are_read_in_batches_and_missing_ids_left_out(make_experiment):
    ex = make_experiment()
    chain(ex)
    for value in (1, 2, 3):
        ex.run(parameters={"a": value})
    fresh = xg.Experiment(ex.id, backend=ex.backend)  # nothing kept in memory yet
    assert [r.trial_id for r in fresh.get_trials([3, 1, 99, 1])] == [1, 3]
    assert [r.result for r in fresh.get_trials()] == [3, 5, 7]
    assert fresh.get_trials([]) == []


def test_a_trial_computed_from_python_has_no_script(make_experiment):
    ex = make_experiment()
    chain(ex)
    ex.run(parameters={"a": 1})
    assert ex.get_script(1) is None
    ex.run(parameters={"a": 2}, script={"path": "x.py", "argv": [], "source": "print(1)\n"})
    assert ex.get_script(2) == "print(1)\n"
    assert ex.get_trial(2).script == {"path": "x.py", "argv": [],
                                      "source_hash": ex.get_trial(2).script["source_hash"]}
