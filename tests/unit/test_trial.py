"""trial.py: a trial's life (claim, compute, finish), its times, and its status when read."""
from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys

import pytest

from experigraph.hooks import HOST
from experigraph.records import Status, StepRecord, TrialRecord
from experigraph.trial import derive_status, new_seed, trial_times

UTC = dt.timezone.utc
T0 = dt.datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)


def step(name, start, duration):
    return StepRecord(step=name, key=f"{name}-k", trial_ids=(1,), code_hash="c",
                      input_hash="i", output_hash="o",
                      started=T0 + dt.timedelta(seconds=start), duration=duration,
                      succeeded=True)


def running(**changes):
    base = TrialRecord(experiment_id="t", trial_id=1, status=Status.RUNNING,
                       parameters={}, seed=1, started=T0, host=HOST, pid=os.getpid())
    return base.replace(**changes)


def test_a_sweep_trial_spans_its_first_step_to_its_last():
    steps = [step("b", 2.0, 0.5), step("a", 1.0, 0.25), step("c", 2.25, 1.0)]
    times = trial_times(running(), steps, elapsed=99.0, own_span=True)
    assert times == {"started": T0 + dt.timedelta(seconds=1),
                     "finished": T0 + dt.timedelta(seconds=3.25), "process_time": 2.25}


def test_a_trial_alone_takes_its_computes_wall_time():
    times = trial_times(running(), [step("a", 1.0, 0.25)], elapsed=0.75, own_span=False)
    assert set(times) == {"finished", "process_time"} and times["process_time"] == 0.75


def test_a_sweep_trial_without_steps_keeps_the_computes_times():
    times = trial_times(running(), [], elapsed=0.5, own_span=True)
    assert set(times) == {"finished", "process_time"} and times["process_time"] == 0.5


def test_seeds_are_in_range_and_differ():
    seeds = {new_seed() for _ in range(50)}
    assert all(0 <= s < 2**32 for s in seeds) and len(seeds) > 45


def test_a_running_record_of_a_dead_process_reads_as_interrupted():
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    dead = running(pid=int(proc.stdout))
    assert derive_status(dead).status is Status.INTERRUPTED
    assert "process running this trial stopped" in derive_status(dead).description
    assert derive_status(running()).status is Status.RUNNING  # this process is alive
    other_host = running(host="elsewhere", pid=int(proc.stdout))
    assert derive_status(other_host).status is Status.RUNNING  # cannot tell: left as is


def test_run_returns_the_failed_outcome_when_asked_and_records_it(make_experiment):
    ex = make_experiment()
    a = ex.parameter("a")

    @ex.result
    def inverse(a):
        return 1 / a

    inverse(a)
    outcome = ex.run(parameters={"a": 0}, raise_errors=False)
    assert not outcome.succeeded and isinstance(outcome.exception, ZeroDivisionError)
    assert outcome.record.status is Status.FAILED
    assert repr(outcome) == "Outcome(trial_id=1, exception=ZeroDivisionError(division by zero))"
    stored = ex.get_trial(1)
    assert stored.status is Status.FAILED and stored.error["type"] == "ZeroDivisionError"
    assert "ZeroDivisionError" in stored.error["traceback"]


def test_an_interrupt_is_recorded_as_interrupted_and_propagates(make_experiment):
    ex = make_experiment()
    a = ex.parameter("a")

    @ex.result
    def stop(a):
        raise KeyboardInterrupt

    stop(a)
    with pytest.raises(KeyboardInterrupt):
        ex.run(parameters={"a": 1}, raise_errors=False)  # never swallowed
    assert ex.get_history(verbose=True).loc[1, "Status"] == "interrupted"


def test_each_trial_record_carries_its_own_claim_token(make_experiment):
    ex = make_experiment()
    a = ex.parameter("a")

    @ex.result
    def ident(a):
        return a

    ident(a)
    ex.sweep(a=[1, 2], progress=False)
    first, second = ex.get_trial(1), ex.get_trial(2)
    assert first.claim and second.claim and first.claim != second.claim
