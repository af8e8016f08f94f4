"""The trial context reaches steps on every scheduler, and concurrent trials stay apart."""
from __future__ import annotations

import threading

import pytest


def _metric_experiment(make_experiment):
    ex = make_experiment()
    n = ex.parameter("n")

    @ex
    def produce(n):
        for epoch in range(n):
            ex.save_metric("progress", epoch, epoch * 10)
        return {"trial": ex.current_trial_id, "n": n}

    @ex.persist
    def keep(d):
        return dict(d, kept=True)

    @ex.result
    def finish(d):
        return (d["trial"], ex.current_trial_id, d["n"], d["kept"])

    return ex, finish(keep(produce(n)))


@pytest.mark.parametrize("scheduler", ["threads", "sync", "processes"])
def test_context_and_metrics_on_local_schedulers(make_experiment, scheduler):
    ex, r = _metric_experiment(make_experiment)
    ex.set_parameters(n=3)
    assert r.compute(scheduler=scheduler) == (1, 1, 3, True)
    ex.set_parameters(n=2)
    assert r.compute(scheduler=scheduler) == (2, 2, 2, True)
    assert ex.load_metric("progress", [1, 2])[1].tolist() == [0, 10, 20]
    assert ex.get_persisted("keep", 2) == {"trial": 2, "n": 2, "kept": True}
    steps = sorted(st.step for st in ex.get_trial(1).steps)
    assert steps == ["finish", "keep", "produce"]


def test_context_and_metrics_on_a_distributed_cluster(make_experiment, client):
    ex, r = _metric_experiment(make_experiment)
    ex.set_parameters(n=3)
    assert r.compute(client=client) == (1, 1, 3, True)
    ex.set_parameters(n=4)
    assert r.compute(scheduler=client) == (2, 2, 4, True)
    assert ex.load_metric("progress", 2)[2].tolist() == [0, 10, 20, 30]
    record = ex.get_trial(2)
    assert sorted(st.step for st in record.steps) == ["finish", "keep", "produce"]
    assert all(st.pid != 0 for st in record.steps)
    assert ex.get_persisted("keep", 1)["kept"] is True


def test_two_trials_at_once_in_threads_keep_their_ids(make_experiment):
    ex = make_experiment()
    x = ex.parameter("x")
    barrier = threading.Barrier(2, timeout=30)

    @ex.result
    def slow(x):
        barrier.wait()  # both trials are inside a step at the same time
        ex.save_metric("x", 0, x)
        return (x, ex.current_trial_id)

    r = slow(x)
    results = {}

    def run(value):
        results[value] = ex.run(r, seed=1, scheduler="threads", parameters={"x": value}).value

    threads = [threading.Thread(target=run, args=(v,)) for v in (10, 20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    by_value = {v: tid for v, tid in results.values()}
    assert sorted(by_value.values()) == [1, 2]
    for value, trial_id in by_value.items():
        assert ex.get_parameters(trial_id) == {"x": value}
        assert ex.load_metric("x", trial_id)[trial_id].tolist() == [value]
