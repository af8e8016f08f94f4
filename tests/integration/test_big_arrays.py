"""Large NumPy arrays between steps: hashed once per compute (the step that makes an
array hashes it, the steps that take it reuse that hash), the same hashes on every
scheduler, impurity still seen, and no false report against a store whose references
were hashed the older way."""
from __future__ import annotations

import logging

import numpy as np
import pytest

from experigraph import hashing
from experigraph.hooks import RecordSink

pytestmark = pytest.mark.timeout(300)
N = 2**18  # 2 MiB of float64: above hashing.BIG_ARRAY_BYTES


def pipeline(ex, noise=None):
    a = ex.parameter("a")

    @ex
    def make(a):
        values = np.full(N, float(a))
        if noise is not None:
            values[0] += noise.pop(0)
        return values

    @ex
    def plus_one(arr):
        return arr + 1

    @ex.result
    def total(arr):
        return float(arr[:10].sum())

    return total(plus_one(make(a)))


def step_hashes(ex, trial_id):
    return {s.step: (s.input_hash, s.output_hash) for s in ex.get_trial(trial_id).steps}


def test_the_input_hash_of_an_array_is_the_output_hash_of_its_maker(make_experiment):
    ex = make_experiment()
    pipeline(ex)
    ex.set_parameters(a=1).compute(scheduler="sync")
    hashes = step_hashes(ex, 1)
    made = np.full(N, 1.0)
    assert hashes["make"][1] == hashing.array_hash(made) == hashing.output_hash(made)
    assert hashes["plus_one"][0] == hashing.input_hash((made,), {})
    assert hashes["total"][0] == hashing.input_hash((made + 1,), {})


@pytest.mark.parametrize("scheduler", ["threads", "processes"])
def test_hashes_are_the_same_on_every_scheduler(make_experiment, scheduler):
    """Threads reuse the maker's hash; processes get copies and hash them again: the
    same hashes either way, so trials compare across schedulers."""
    ex = make_experiment()
    pipeline(ex)
    ex.set_parameters(a=3).compute(scheduler="sync")
    ex.set_parameters(a=3).compute(scheduler=scheduler)
    assert step_hashes(ex, 1) == step_hashes(ex, 2)
    assert ex.get_trial(2).drift == ()


def test_a_sink_knows_only_the_very_object_it_hashed():
    sink = RecordSink(backend=None)
    arr = np.arange(N, dtype=float)
    sink.remember(arr, "a" + "0" * 32)
    assert sink.known(arr) == "a" + "0" * 32
    assert sink.known(arr.copy()) is None
    sink.remember((arr,), "x")  # a tuple cannot be weakly referenced: not kept
    assert sink.known((arr,)) is None


def test_an_impure_array_step_is_still_reported(make_experiment, caplog):
    ex = make_experiment()
    pipeline(ex, noise=[0.0, 0.5])
    with caplog.at_level(logging.WARNING, logger="experigraph"):
        ex.set_parameters(a=2).compute(seed=1)
        ex.set_parameters(a=2).compute(seed=1)
    assert [e.kind for e in ex.get_trial(2).drift] == ["impurity"]
    assert "Step result changed with the same input: make" in caplog.text


def test_a_reference_hashed_the_older_way_is_not_an_impurity(make_experiment, caplog):
    """Stores written before large arrays had their own hash hold dask tokens for them:
    the first trial after the change replaces the reference and reports nothing."""
    ex = make_experiment()
    pipeline(ex)
    ex.set_parameters(a=4).compute(seed=1)
    (make,) = [s for s in ex.get_trial(1).steps if s.step == "make"]
    from experigraph.drift import reference_key

    old_token = hashing.value_hash(np.full(N, 4.0))
    assert not hashing.comparable(old_token, make.output_hash)
    ex.backend.index_swap("outputs", {reference_key(make): f"{old_token} 1 0"})
    with caplog.at_level(logging.WARNING, logger="experigraph"):
        ex.set_parameters(a=4).compute(seed=1)
    assert ex.get_trial(2).drift == ()
    assert "changed with the same input" not in caplog.text
    ex.set_parameters(a=4).compute(seed=1)  # the reference is the new kind from now on
    assert ex.get_trial(3).drift == ()


def test_each_array_is_hashed_once_per_compute(make_experiment, monkeypatch):
    calls = []
    real = hashing.array_hash
    monkeypatch.setattr(hashing, "array_hash", lambda value: calls.append(1) or real(value))
    ex = make_experiment()
    pipeline(ex)
    ex.set_parameters(a=5).compute(scheduler="threads")
    assert len(calls) == 2  # make's output and plus_one's output; not again as inputs
