"""Many writers, killed processes and torn files never lose or corrupt history."""
from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import experigraph as xg
from xg_testing import python_env

WRITER = """
import pathlib, sys
import experigraph as xg
ex = xg.Experiment(id=sys.argv[1], backend=pathlib.Path(sys.argv[2]))
w = ex.parameter("worker"); i = ex.parameter("i")
@ex.result
def tag(worker, i):
    return worker * 1000 + i
r = tag(w, i)
for n in range(int(sys.argv[4])):
    ex.set_parameters(worker=int(sys.argv[3]), i=n)
    r.compute(scheduler="sync")
"""


def test_four_processes_write_one_hundred_trials(backend_root, experiment_id, tmp_path):
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    env = dict(python_env(), EXPERIGRAPH_LOG_LEVEL="WARNING")
    procs = [subprocess.Popen([sys.executable, str(script), experiment_id, str(backend_root),
                               str(w), "25"], env=env, stderr=subprocess.PIPE, text=True)
             for w in range(4)]
    for p in procs:
        _, err = p.communicate(timeout=240)
        assert p.returncode == 0, err
    ex = xg.Experiment(id=experiment_id, backend=backend_root)
    history = ex.get_history()
    assert list(history.index) == list(range(1, 101))
    assert history["Success"].all()
    assert sorted(history["Result"]) == sorted(w * 1000 + i for w in range(4) for i in range(25))
    assert ex.trial_id == 100


KILLED = """
import pathlib, sys, time
import experigraph as xg
ex = xg.Experiment(id=sys.argv[1], backend=pathlib.Path(sys.argv[2]))
a = ex.parameter("a")
@ex.result
def slow(a):
    if a == 2:
        print("inside", flush=True)
        time.sleep(120)
    return a
r = slow(a)
for v in (1, 2):
    ex.set_parameters(a=v)
    r.compute(scheduler="sync")
"""


def test_sigkill_mid_trial_leaves_a_loadable_history(backend_root, experiment_id, tmp_path):
    script = tmp_path / "killed.py"
    script.write_text(KILLED)
    proc = subprocess.Popen([sys.executable, str(script), experiment_id, str(backend_root)],
                            env=python_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    deadline = time.monotonic() + 60
    line = ""
    while time.monotonic() < deadline and "inside" not in line:
        line = proc.stdout.readline()
    assert "inside" in line
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(30)
    ex = xg.Experiment(id=experiment_id, backend=backend_root)
    history = ex.get_history(verbose=True)
    assert list(history.index) == [1, 2]
    assert history["Status"].tolist() == ["succeeded", "interrupted"]
    assert history.loc[2, "a"] == 2
    # the history goes on after the crash, without reusing the id
    a = ex.parameter("a")

    @ex.result
    def slow(a):
        return a

    ex.set_parameters(a=3)
    slow(a).compute()
    assert list(ex.get_history().index) == [1, 2, 3]
    leftovers = [p for p in (backend_root / experiment_id).rglob("*.tmp")]
    assert leftovers == []


def test_torn_record_is_reported_and_skipped(quickstart, backend_root, caplog):
    ex, a, b, s = quickstart
    for v in (1, 2, 3):
        ex.set_parameters(a=v, b=1).compute()
    torn = backend_root / ex.id / "trials" / "2.json"
    torn.write_bytes(torn.read_bytes()[:40])
    fresh = xg.Experiment(id=ex.id, backend=backend_root)
    with caplog.at_level(logging.WARNING, logger="experigraph"):
        history = fresh.get_history()
    assert list(history.index) == [1, 3]
    assert any(str(torn) in r.getMessage() and "cannot be read" in r.getMessage()
               for r in caplog.records)
    with pytest.raises(xg.errors.CorruptRecordError, match="2.json"):
        fresh.get_trial(2)
    # new trials still get fresh ids
    fresh_a = fresh.parameter("a"); fresh_b = fresh.parameter("b")

    @fresh.result
    def add(a, b):
        return a + b

    add(fresh_a, fresh_b)
    fresh.set_parameters(a=1, b=1).compute()
    assert fresh.trial_id == 4


def test_reserved_but_unwritten_id_is_not_a_trial(make_experiment, backend_root):
    ex = make_experiment()
    ex.backend.next_trial_id()  # a process that died right after reserving
    a = ex.parameter("a")

    @ex.result
    def ident(a):
        return a

    ident(a)
    ex.set_parameters(a=1).compute()
    assert list(ex.get_history().index) == [2]
    with pytest.raises(xg.errors.TrialIDNotFoundError, match="reserved"):
        ex.get_trial(1)


def test_keyboard_interrupt_records_an_interrupted_trial(make_experiment):
    ex = make_experiment()
    a = ex.parameter("a")

    @ex.result
    def stop(a):
        raise KeyboardInterrupt

    stop(a)
    with pytest.raises(KeyboardInterrupt):
        ex.set_parameters(a=1).compute(scheduler="sync")
    assert ex.get_history(verbose=True)["Status"].tolist() == ["interrupted"]
