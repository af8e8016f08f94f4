"""Trust: each trial's id, record, times and errors are its own (issue: no trial is ever
lost, overwritten or given to the wrong process).

Backend-level guarantees (claiming ids, torn records, unwritable stores) are in the
contract suite; this module covers what the Experiment, script mode and sweeps add.
"""
from __future__ import annotations

import datetime as dt
import logging
import subprocess
import sys
import threading
import time

import pytest

import experigraph as xg
from experigraph.errors import (InvalidParameterValueError, PersistError,
                                SweepDefinitionError)

from xg_testing import python_env

pytestmark = pytest.mark.timeout(240)


# -- ex.trial_id is the trial this process computed ---------------------------------
OTHER_PROCESS = """
import pathlib, sys, experigraph as xg
ex = xg.Experiment(id=sys.argv[1], backend=pathlib.Path(sys.argv[2]))
a = ex.parameter("a")
@ex.result
def ident(a):
    return a
ident(a)
for n in range(int(sys.argv[3])):
    ex.set_parameters(a=-1).compute(scheduler="sync")
"""


def test_trial_id_after_compute_is_this_process_trial_not_the_newest(make_experiment,
                                                                      backend_root):
    ex = make_experiment()
    a = ex.parameter("a")

    @ex.result
    def ident(a):
        return a

    r = ident(a)
    ex.set_parameters(a=1)
    assert r.compute() == 1
    assert ex.trial_id == 1 == ex.latest_trial_id
    # another process records three trials meanwhile
    proc = subprocess.run([sys.executable, "-c", OTHER_PROCESS, ex.id, str(backend_root), "3"],
                          env=dict(python_env(), EXPERIGRAPH_LOG_LEVEL="WARNING"),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert ex.latest_trial_id == 4  # the store's newest, whoever wrote it
    assert ex.trial_id == 1  # still the trial this process computed
    assert ex.get_parameters(ex.trial_id) == {"a": 1}
    ex.set_parameters(a=2).compute()
    assert ex.trial_id == 5 and ex.get_trial(ex.trial_id).result == 2


def test_trial_id_before_any_compute_is_the_newest_recorded(make_experiment):
    ex = make_experiment()
    assert ex.trial_id == 0 == ex.latest_trial_id
    a = ex.parameter("a")

    @ex.result
    def ident(a):
        return a

    ident(a)
    ex.set_parameters(a=1).compute()
    ex.set_parameters(a=2).compute()
    fresh = make_experiment()
    assert fresh.trial_id == 2 == fresh.latest_trial_id


def test_run_returns_the_outcome_of_its_own_trial(make_experiment):
    ex = make_experiment()
    a = ex.parameter("a")

    @ex.result
    def inverse(a):
        return 1 / a

    r = inverse(a)
    ex.set_parameters(a=2)
    outcome = ex.run(r)
    assert (outcome.trial_id, outcome.value, outcome.exception) == (1, 0.5, None)
    assert outcome.record.status.value == "succeeded" and outcome.record.result == 0.5
    # parameters for this trial only, over set_parameters
    assert ex.run(parameters={"a": 4}).value == 0.25
    assert ex.get_parameters(2) == {"a": 4} and ex.get_parameters() == {"a": 2}
    # a failure is returned when asked, and recorded either way
    failed = ex.run(parameters={"a": 0}, raise_errors=False)
    assert isinstance(failed.exception, ZeroDivisionError) and failed.value is None
    assert failed.trial_id == 3 == ex.trial_id
    assert not ex.get_history().loc[3, "Success"]
    with pytest.raises(ZeroDivisionError):
        ex.run(parameters={"a": 0})
    assert ex.trial_id == 4
    with pytest.raises(xg.ParameterUndeclaredError, match="'z'"):
        ex.run(parameters={"z": 1})
    assert ex.latest_trial_id == 4  # nothing recorded


def test_trial_id_is_per_thread_when_threads_compute_at_once(make_experiment):
    ex = make_experiment()
    a = ex.parameter("a")

    @ex.result
    def slow_ident(a):
        time.sleep(0.05)
        return [ex.current_trial_id, a]

    r = slow_ident(a)
    mismatches, errors = [], []

    def work(value):
        try:
            for _ in range(5):
                outcome = ex.run(r, parameters={"a": value}, scheduler="sync")
                own, got = outcome.value
                if not (own == outcome.trial_id == ex.trial_id and got == value
                        and ex.get_parameters(ex.trial_id) == {"a": value}):
                    mismatches.append((value, own, outcome.trial_id, ex.trial_id))
        except Exception as exc:  # reported below with the thread's value
            errors.append((value, exc))

    threads = [threading.Thread(target=work, args=(v,)) for v in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors and not mismatches
    assert list(ex.get_history().index) == list(range(1, 16))


# -- script mode never overrides the script's own handling ---------------------------
CATCHES_UNDEFINED = """
import experigraph as xg
ex = xg.Experiment(id="own")
a = ex.parameter("a")
@ex.result
def ident(a):
    return a
r = ident(a)
try:
    r.compute()
except xg.ParameterUndefinedError as exc:
    print("caught:", type(exc).__name__)
print("went on")
"""

CATCHES_FAILURE = """
import experigraph as xg
ex = xg.Experiment(id="own")
a = ex.parameter("a")
@ex.result
def inverse(a):
    return 1 / a
r = inverse(a)
ex.set_parameters(a=0)
try:
    r.compute()
except ZeroDivisionError:
    print("caught the failure")
"""


@pytest.mark.parametrize("body, printed, trials", [
    (CATCHES_UNDEFINED, "caught: ParameterUndefinedError\nwent on", 0),
    (CATCHES_FAILURE, "caught the failure", 1),
])
def test_a_script_that_computes_and_handles_errors_keeps_its_exit_code(tmp_path, body,
                                                                       printed, trials):
    path = tmp_path / "own.py"
    path.write_text(body)
    env = python_env()
    env.pop("EXPERIGRAPH_BACKEND", None)
    proc = subprocess.run([sys.executable, str(path)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == printed
    assert "error:" not in proc.stderr and "Traceback" not in proc.stderr
    ex = xg.Experiment("own", backend=tmp_path / "experigraph_cache")
    assert len(ex.get_history()) == trials  # script mode added no trial of its own


def test_a_script_that_computes_with_command_line_parameters_says_they_were_not_applied(
        tmp_path):
    path = tmp_path / "own.py"
    path.write_text(CATCHES_FAILURE)
    env = python_env()
    env.pop("EXPERIGRAPH_BACKEND", None)
    proc = subprocess.run([sys.executable, str(path), "a=5"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "computed by itself (trials: 1)" in proc.stderr
    assert "parameters and seed were not applied" in proc.stderr


# -- an output that cannot be persisted -------------------------------------------------
def _unpicklable_experiment(make_experiment):
    ex = make_experiment()
    a = ex.parameter("a")

    @ex.persist
    def open_lock(a):
        return threading.Lock()

    @ex.result
    def use(lock):
        return 1

    return ex, use(open_lock(a))


def test_an_unpicklable_persisted_output_names_the_step_and_what_to_do(make_experiment):
    ex, r = _unpicklable_experiment(make_experiment)
    ex.set_parameters(a=1)
    with pytest.raises(PersistError) as info:
        r.compute()
    message = str(info.value)
    assert "'open_lock'" in message and "@ex.persist" in message
    assert "cannot be pickled" in message and "ex.output(path)" in message
    assert info.value.step == "open_lock"
    row = ex.get_history().loc[1]
    assert not row["Success"]
    assert "open_lock" in row["Description"] and "cannot be pickled" in row["Description"]
    (step,) = [s for s in ex.get_trial(1).steps if s.step == "open_lock"]
    assert not step.succeeded and "cannot be pickled" in step.error


def test_an_unpicklable_persisted_output_fails_only_its_sweep_trials(make_experiment):
    ex = make_experiment()
    a = ex.parameter("a")

    @ex.persist
    def maybe_lock(a):
        return threading.Lock() if a == 2 else a

    @ex.result
    def use(x):
        return 1

    use(maybe_lock(a))
    frame = ex.sweep(a=[1, 2, 3], progress=False)
    assert frame["Success"].tolist() == [True, False, True]
    assert "maybe_lock" in frame.loc[2, "Description"]
    assert ex.get_persisted("maybe_lock", 3) == 3


# -- a sweep's trials each have their own times -------------------------------------------
def test_each_sweep_trial_has_its_own_start_finish_and_process_time(make_experiment):
    import dask

    ex = make_experiment()
    a = ex.parameter("a")
    shared = ex.parameter("shared", default=0)

    @ex
    def common(shared):
        time.sleep(0.2)
        return shared

    @ex
    def work(a, c):
        time.sleep(a)
        return a + c

    @ex.result
    def done(x):
        return x

    done(work(a, common(shared)))
    t0 = time.perf_counter()
    with dask.config.set(num_workers=4):  # both trials' own steps run side by side
        ex.sweep(a=[0.05, 0.6], progress=False)
    wall = time.perf_counter() - t0
    short, long = ex.get_trial(1), ex.get_trial(2)
    for record in (short, long):
        steps = record.steps
        assert [s.step for s in steps] == ["common", "work", "done"]
        # from its first step's start to its last step's end
        assert record.started == min(s.started for s in steps)
        end = max(s.started + dt.timedelta(seconds=s.duration) for s in steps)
        assert record.finished == end
        span = (record.finished - record.started).total_seconds()
        assert span == pytest.approx(record.process_time, abs=1e-6)
    # the shared step (0.2 s) counts for both trials; each adds its own work
    assert 0.25 <= short.process_time < long.process_time
    assert 0.8 <= long.process_time <= wall
    assert short.finished < long.finished
    history = ex.get_history()
    assert history.loc[1, "Process Time"] < history.loc[2, "Process Time"]


# -- bad input: a clear error, nothing recorded ----------------------------------------------
def test_a_bool_is_refused_for_numeric_typed_parameters(make_experiment):
    ex = make_experiment()
    c = ex.parameter("C", type=float)
    n = ex.parameter("n", type=int)

    @ex.result
    def f(c, n):
        return c * n

    f(c, n)
    with pytest.raises(InvalidParameterValueError, match="bool is not a number"):
        ex.set_parameters(C=True)
    with pytest.raises(InvalidParameterValueError, match="bool is not a number"):
        ex.set_parameters(n=False)
    with pytest.raises(InvalidParameterValueError, match="bool is not a number"):
        ex.sweep(C=[1.0, True], n=[1], progress=False)
    assert ex.set_parameters(C=2, n=3.0).compute() == 6.0
    assert ex.get_parameters(1) == {"C": 2.0, "n": 3}
    assert ex.latest_trial_id == 1


def test_an_empty_sweep_is_refused_and_records_nothing(make_experiment):
    ex = make_experiment()
    c = ex.parameter("C")

    @ex.result
    def f(c):
        return c

    f(c)
    with pytest.raises(SweepDefinitionError, match="no values for 'C'"):
        ex.sweep(C=[], progress=False)
    with pytest.raises(SweepDefinitionError, match="list of parameter sets is empty"):
        ex.sweep([], progress=False)
    with pytest.raises(SweepDefinitionError, match="no trials"):
        ex.sweep(progress=False)
    assert ex.latest_trial_id == 0 and ex.get_history().empty


TYPED = """
import experigraph as xg
ex = xg.Experiment(id="typed")
C = ex.parameter("C", type=float)
@ex.result
def f(C):
    return C
f(C)
"""


@pytest.mark.parametrize("args, says", [
    (["C=True"], "bool is not a number"),
    (["C=1", "C=2"], "'C' is given twice"),
    (["C==1"], "Malformed assignment 'C==1'"),
    (["=1"], "Missing parameter name in '=1'"),
    (["C="], "Missing value in 'C='"),
])
def test_bad_command_line_input_exits_2_and_records_nothing(tmp_path, args, says):
    path = tmp_path / "typed.py"
    path.write_text(TYPED)
    env = python_env()
    env.pop("EXPERIGRAPH_BACKEND", None)
    for command in ([sys.executable, str(path), *args],
                    [sys.executable, "-m", "experigraph.cli", "run", str(path), *args]):
        proc = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True,
                              text=True, timeout=120)
        assert proc.returncode == 2, (command, proc.stdout, proc.stderr)
        assert says in proc.stderr, proc.stderr
        assert "Traceback" not in proc.stderr
    store = tmp_path / "experigraph_cache"
    assert not store.exists() or xg.Experiment("typed", backend=store).latest_trial_id == 0


@pytest.mark.parametrize("first,second", [
    (None, {"value": 1}), (1, [1]), (0.5, "0.5"), ("x", b"x"), (3, 3.0)])
def test_an_output_that_changes_kind_with_the_same_input_is_impure(make_experiment, caplog,
                                                                   first, second):
    """A flaky step returns a plain value once and another kind of value the next time:
    hashed differently (``s`` and ``t``), the two are still compared as values."""
    ex = make_experiment()
    a = ex.parameter("a")
    outputs = iter([first, second])

    @ex
    def fetch(a):
        return next(outputs)

    @ex.result
    def keep(x):
        return repr(x)

    keep(fetch(a))
    ex.set_parameters(a=1).compute(seed=1)
    with caplog.at_level(logging.WARNING, logger="experigraph"):
        ex.set_parameters(a=1).compute(seed=1)
    assert [(e.kind, e.subject) for e in ex.get_trial(2).drift] == [("impurity", "fetch")]
    assert "Step result changed with the same input: fetch" in caplog.text
    diff = ex.compare(1, 2)
    assert not diff.not_compared and [s.step for s in diff.steps] == ["fetch", "keep"]


def test_references_of_earlier_hashing_rules_are_neither_read_nor_written(make_experiment):
    """An earlier version's reference for the same step and input (its own kind of hash)
    is left alone: not compared (no false impurity here) and not replaced (none there)."""
    ex = make_experiment()
    a = ex.parameter("a")

    @ex.result
    def score(values):
        return float(sum(values))

    @ex
    def pair(a):
        return [a, a]

    score(pair(a))
    ex.set_parameters(a=2).compute(seed=1)
    rec = next(s for s in ex.get_trial(1).steps if s.step == "score")
    earlier_key = f"{rec.step}:{rec.code_hash}:{rec.input_hash}"  # no rules marker
    earlier = "0" * 32 + " 1 0"  # that version's token for 4.0, unmarked
    ex.backend.index_swap("outputs", {earlier_key: earlier})
    ex.set_parameters(a=2).compute(seed=1)
    assert ex.get_trial(2).drift == ()
    assert ex.backend.index_read("outputs", [earlier_key]) == {earlier_key: earlier}
