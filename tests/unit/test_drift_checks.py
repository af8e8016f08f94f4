"""drift.check_outputs and drift.code_drift on a real file backend, with hand-made records."""
from __future__ import annotations

import datetime as dt
import logging

import pytest

from experigraph import drift
from experigraph.records import Status, StepRecord, TrialRecord


def step(output_hash, *, used_seed=False, input_hash="in", inputs=(), cached=False,
         name="s"):
    return StepRecord(step=name, key=f"{name}-1", trial_ids=(1,), code_hash="code",
                      input_hash=input_hash, output_hash=output_hash,
                      started=dt.datetime.now(dt.timezone.utc), duration=0.0, succeeded=True,
                      used_seed=used_seed, inputs=tuple(inputs), cached=cached)


@pytest.fixture
def check(make_file_backend):
    backend = make_file_backend()

    def run(rec, seed, trial_id=1):
        return [(e.kind, e.subject) for e in drift.check_outputs(
            backend, [rec], seed=seed, trial_id=trial_id)]

    run.backend = backend
    return run


def test_other_output_without_randomness_is_impure_under_any_seed(check, caplog):
    with caplog.at_level(logging.INFO, logger="experigraph"):
        assert check(step("A"), seed=1) == []
        assert check(step("A"), seed=2) == []          # another seed: the same output
        assert check(step("B"), seed=3) == [("impurity", "s")]
        assert check(step("B"), seed=4) == []          # reported once: B is the reference
    (line,) = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert line.getMessage() == ("Step result changed with the same input: s (inputs: no "
                                 "arguments; input hash in): output hash B, previously A")
    assert check.backend.index_read("taint", ["s:code"]) == {"s:code": "impurity in trial 1"}


def test_randomness_under_another_seed_is_seed_dependence(check, caplog):
    with caplog.at_level(logging.INFO, logger="experigraph"):
        assert check(step("A", used_seed=True), seed=1) == []
        assert check(step("B", used_seed=True), seed=2) == [("seed", "s")]
        assert check(step("A", used_seed=True), seed=1) == [("seed", "s")]  # back to seed 1
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []
    assert any(r.getMessage().startswith("Step result depends on the seed: s (") and
               "under seed 1, previously B under seed 2" in r.getMessage()
               for r in caplog.records)
    assert check.backend.index_read("taint", ["s:code"]) == {"s:code": None}


def test_randomness_under_the_same_seed_is_impure(check):
    assert check(step("A", used_seed=True), seed=1) == []
    assert check(step("B", used_seed=True), seed=2) == [("seed", "s")]
    assert check(step("C", used_seed=True), seed=1) == [("impurity", "s")]  # seed 1 gave A


def test_a_step_that_drew_only_once_is_not_called_impure(check):
    assert check(step("A"), seed=1) == []
    assert check(step("B", used_seed=True), seed=2) == [("seed", "s")]
    assert check(step("A"), seed=3) == [("seed", "s")]  # the reference drew: maybe the cause


def test_unhashed_values_and_cached_steps_are_never_compared(check):
    assert check(step(None), seed=1) == []
    assert check(step("A"), seed=1) == []
    assert check(step(None), seed=1) == []                       # not hashed: not impure
    assert check(step("B", input_hash=None), seed=1) == []       # inputs not hashed
    assert check(step("C", cached=True), seed=1) == []           # served, not run
    assert check(step("A"), seed=1) == []


def test_a_changed_file_is_data_drift_not_impurity(check):
    first = [{"path": "/data.csv", "hash": "h1"}]
    second = [{"path": "/data.csv", "hash": "h2"}]
    assert check(step("A", inputs=first), seed=1) == []
    assert check(step("B", inputs=second), seed=1) == [("data", "/data.csv")]


def record(code, trial_id=1):
    return TrialRecord(experiment_id="e", trial_id=trial_id, status=Status.SUCCEEDED,
                       parameters={}, seed=1, started=dt.datetime.now(dt.timezone.utc),
                       code=code)


SOURCES = {"s1": "@ex\ndef f(a):\n    return a\n",
           "s2": "@ex.persist\ndef f(a):\n    return a\n",
           "s3": "@ex\ndef f(a):\n    return a  # same\n",
           "s4": "@ex\ndef f(a):\n    return a + 1\n"}


@pytest.mark.parametrize("new, kind, level", [
    ({"code_hash": "h", "source_hash": "s2", "declaration": "@ex.persist"}, "declaration",
     logging.WARNING),
    ({"code_hash": "h", "source_hash": "s3", "declaration": "@ex"}, "code-cosmetic",
     logging.INFO),
    ({"code_hash": "h2", "source_hash": "s4", "declaration": "@ex"}, "code", logging.WARNING),
])
def test_code_drift_kinds(new, kind, level, caplog):
    old = record({"f": {"code_hash": "h", "source_hash": "s1", "declaration": "@ex"}})
    with caplog.at_level(logging.INFO, logger="experigraph"):
        (event,) = drift.code_drift(old, {"f": new}, SOURCES.get)
    assert event.kind == kind and event.subject == "f"
    assert caplog.records[0].levelno == level
    assert event.diff and event.diff[0] == "--- f (before)"
    if kind == "declaration":
        assert event.message == ("Code context has been changed: f (declaration @ex -> "
                                 "@ex.persist)")
        assert "-@ex" in event.diff and "+@ex.persist" in event.diff
    assert drift.code_drift(old, {"f": old.code["f"]}, SOURCES.get) == []


def test_declaration_names():
    assert drift.declaration("step", False) == "@ex"
    assert drift.declaration("persist", False) == "@ex.persist"
    assert drift.declaration("step", True) == "@ex.step(cache=True)"
    assert drift.declaration("result", False) == "@ex.result"
