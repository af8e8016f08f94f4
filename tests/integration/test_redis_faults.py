"""A Redis server killed in the middle of a series of trials loses nothing and reuses no id."""
from __future__ import annotations

import logging

import pytest
import redis

import experigraph as xg
from experigraph.errors import BackendError

pytestmark = pytest.mark.redis


def test_server_killed_after_the_result_is_computed(redis_server_factory, experiment_id,
                                                    tmp_path):
    server = redis_server_factory(appendonly=True)
    uri = server.url()
    ex = xg.Experiment(id=experiment_id, backend=uri)
    a = ex.parameter("a")
    ran = []

    @ex
    def prepare(a):
        return a * 10

    @ex.result
    def score(x):
        ran.append(x)
        if x == 30:
            server.kill()  # the server dies after hours of compute, before the trial is saved
        return x + 1

    r = score(prepare(a))
    for value in (1, 2):
        ex.set_parameters(a=value).compute()
    ex.set_parameters(a=3)
    with pytest.raises(BackendError) as info:
        r.compute()
    err = info.value
    assert err.has_result and err.result == 31
    assert err.results == {3: 31}
    message = str(err)
    assert "Trial(s) 3 computed their result" in message and "ex.save_pending()" in message
    assert uri in message
    cause = err.__cause__
    assert isinstance(cause, BackendError)
    assert "Redis backend at" in str(cause) and "redis-server is running" in str(cause)
    assert isinstance(cause.__cause__, redis.exceptions.ConnectionError)
    assert ex.pending_trial_ids == [3]

    # while the server is down a new trial fails before its steps run, and saving still fails
    ex.set_parameters(a=9)
    with pytest.raises(BackendError, match="redis-server is running"):
        r.compute()
    assert 90 not in ran
    with pytest.raises(BackendError):
        ex.save_pending()
    assert ex.pending_trial_ids == [3]

    server.start()  # same port, same directory: the append-only file brings the data back
    assert ex.save_pending() == [3]
    assert ex.pending_trial_ids == []
    for value in (4, 5):
        ex.set_parameters(a=value).compute()

    fresh = xg.Experiment(id=experiment_id, backend=uri)
    history = fresh.get_history(verbose=True)
    ids = list(history.index)
    assert ids == sorted(set(ids)) and ids[:3] == [1, 2, 3]
    assert len(ids) == 5 and ids[3] > 3  # the id reserved while down may be skipped, never reused
    assert history["Result"].tolist() == [11, 21, 31, 41, 51]
    assert history["Status"].tolist() == ["succeeded"] * 5
    assert fresh.trial_id == ids[-1]


def test_server_killed_between_trial_start_and_finish_keeps_the_id(redis_server_factory,
                                                                   experiment_id):
    server = redis_server_factory(appendonly=True)
    ex = xg.Experiment(id=experiment_id, backend=server.url())
    a = ex.parameter("a")

    @ex.result
    def work(a):
        if a == 2:
            server.kill()
        return a

    r = work(a)
    ex.set_parameters(a=1).compute()
    ex.set_parameters(a=2)
    with pytest.raises(BackendError) as info:
        r.compute()
    assert info.value.result == 2
    server.start()
    # the running record written before the kill survived the restart (append-only file)
    assert ex.backend.read_trial(2).status.value == "running"
    assert ex.save_pending() == [2]
    ex.set_parameters(a=3).compute()
    history = ex.get_history(verbose=True)
    assert list(history.index) == [1, 2, 3]
    assert history["Status"].tolist() == ["succeeded"] * 3


def test_trial_id_counter_survives_a_sigkill_and_restart(redis_server_factory, experiment_id):
    server = redis_server_factory(appendonly=True)
    backend = xg.Experiment(id=experiment_id, backend=server.url()).backend
    assert [backend.next_trial_id() for _ in range(3)] == [1, 2, 3]
    server.restart()
    assert backend.next_trial_id() == 4


# -- issue 9, finding 1: a lost id counter never replaces a recorded trial -----------------
NEW_PROCESS = """
import sys
import experigraph as xg
ex = xg.Experiment(id=sys.argv[1], backend=sys.argv[2])
x = ex.parameter("x")
@ex.result
def times_ten(x):
    return x * 10
r = times_ten(x)
for value in sys.argv[3:]:
    ex.set_parameters(x=int(value))
    r.compute(scheduler="sync")
print(list(ex.get_history().index))
"""


def run_new_process(experiment_id: str, uri: str, *values: int) -> list[int]:
    """Run trials of x -> 10 * x in a fresh interpreter; the history ids it then sees."""
    import subprocess
    import sys

    from xg_testing import python_env

    proc = subprocess.run([sys.executable, "-c", NEW_PROCESS, experiment_id, uri,
                           *map(str, values)],
                          env=dict(python_env(), EXPERIGRAPH_LOG_LEVEL="WARNING"),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return eval(proc.stdout.strip().splitlines()[-1])


def times_ten_experiment(experiment_id: str, uri: str, on_value=None):
    ex = xg.Experiment(id=experiment_id, backend=uri)
    x = ex.parameter("x")

    @ex.result
    def times_ten(x):
        if on_value is not None:
            on_value(x)
        return x * 10

    return ex, times_ten(x)


def records(uri: str, experiment_id: str) -> dict[int, tuple]:
    history = xg.Experiment(id=experiment_id, backend=uri).get_history(verbose=True)
    return {int(i): (row["x"], row["Result"], row["Status"]) for i, row in history.iterrows()}


def test_deleted_counter_mid_trial_then_save_pending_and_a_new_process(
        redis_server_factory, experiment_id):
    """The issue's reproducer (the DEL variant): nothing recorded is replaced."""
    server = redis_server_factory(appendonly=True)
    uri = server.url()

    def lose_counter_and_die(x):
        if x == 4:
            redis.Redis(port=server.port).delete(f"experigraph:{experiment_id}:next_id")
            server.kill()

    ex, r = times_ten_experiment(experiment_id, uri, lose_counter_and_die)
    for x in (1, 2, 3):
        ex.set_parameters(x=x).compute()
    ex.set_parameters(x=4)
    with pytest.raises(BackendError):
        r.compute()
    assert ex.pending_trial_ids == [4]
    server.start()
    assert ex.save_pending() == [4]  # its own running record is still there: it keeps id 4
    assert run_new_process(experiment_id, uri, 5, 6) == [1, 2, 3, 4, 5, 6]
    assert records(uri, experiment_id) == {
        1: (1, 10, "succeeded"), 2: (2, 20, "succeeded"), 3: (3, 30, "succeeded"),
        4: (4, 40, "succeeded"), 5: (5, 50, "succeeded"), 6: (6, 60, "succeeded")}


def test_server_restarted_without_data_mid_trial(redis_server_factory, experiment_id):
    """The issue's reproducer with ``--save ''``: the restart loses everything the server
    held; the pending trial keeps its id and the next ones never go back to 1."""
    server = redis_server_factory()  # no persistence at all
    uri = server.url()

    def die(x):
        if x == 4:
            server.kill()

    ex, r = times_ten_experiment(experiment_id, uri, die)
    for x in (1, 2, 3):
        ex.set_parameters(x=x).compute()
    ex.set_parameters(x=4)
    with pytest.raises(BackendError):
        r.compute()
    server.start()  # empty: trials 1-3 and the counter are gone with the old process
    assert ex.save_pending() == [4]
    assert experiment_id in ex.backend.experiment_ids()  # listed again (experigraph list)
    assert run_new_process(experiment_id, uri, 5, 6) == [4, 5, 6]
    assert records(uri, experiment_id) == {
        4: (4, 40, "succeeded"), 5: (5, 50, "succeeded"), 6: (6, 60, "succeeded")}


def test_pending_trial_whose_id_was_taken_moves_to_a_new_id(redis_server_factory,
                                                             experiment_id, caplog):
    server = redis_server_factory()  # no persistence: the restart loses everything
    uri = server.url()

    def die(x):
        if x == 4:
            server.kill()

    ex, r = times_ten_experiment(experiment_id, uri, die)
    for x in (1, 2, 3):
        ex.set_parameters(x=x).compute()
    ex.set_parameters(x=4)
    with pytest.raises(BackendError):
        r.compute()
    server.start()
    # meanwhile a colleague's process records five trials in the emptied store: 1 to 5
    assert run_new_process(experiment_id, uri, 11, 12, 13, 14, 15) == [1, 2, 3, 4, 5]
    with caplog.at_level(logging.WARNING, logger="experigraph"):
        assert ex.save_pending() == [6]
    assert ex.pending_trial_ids == []
    moved = [r.getMessage() for r in caplog.records
             if r.levelno == logging.WARNING and "is recorded as trial" in r.getMessage()]
    assert len(moved) == 1
    assert "Trial 4 of experiment" in moved[0] and "recorded as trial 6" in moved[0]
    assert records(uri, experiment_id) == {
        1: (11, 110, "succeeded"), 2: (12, 120, "succeeded"), 3: (13, 130, "succeeded"),
        4: (14, 140, "succeeded"), 5: (15, 150, "succeeded"), 6: (4, 40, "succeeded")}
    assert run_new_process(experiment_id, uri, 7) == [1, 2, 3, 4, 5, 6, 7]


def test_trial_finishing_after_a_restart_never_replaces_another_trial(
        redis_server_factory, experiment_id, caplog):
    """A restart without data while a trial runs; another process takes its id: the
    finishing trial moves to a new id instead of overwriting."""
    server = redis_server_factory()
    uri = server.url()

    def restart_and_let_another_process_run(x):
        if x == 2:
            server.restart()
            assert run_new_process(experiment_id, uri, 21, 22) == [1, 2]

    ex, r = times_ten_experiment(experiment_id, uri, restart_and_let_another_process_run)
    ex.set_parameters(x=1).compute()
    with caplog.at_level(logging.WARNING, logger="experigraph"):
        assert ex.set_parameters(x=2).compute() == 20
    assert any("Trial 2 of experiment" in m and "recorded as trial 3" in m
               for m in caplog.messages)
    assert records(uri, experiment_id) == {
        1: (21, 210, "succeeded"), 2: (22, 220, "succeeded"), 3: (2, 20, "succeeded")}


WRITER = """
import sys
import experigraph as xg
ex = xg.Experiment(id=sys.argv[1], backend=sys.argv[2])
w = ex.parameter("worker"); i = ex.parameter("i")
@ex.result
def tag(worker, i):
    return worker * 1000 + i
r = tag(w, i)
for n in range(int(sys.argv[4])):
    ex.set_parameters(worker=int(sys.argv[3]), i=n)
    r.compute(scheduler="sync")
"""


def test_counter_deleted_again_and_again_under_four_writers(redis_server, experiment_id):
    import subprocess
    import sys
    import threading

    from xg_testing import python_env

    uri = redis_server.url()
    client = redis.Redis(port=redis_server.port)
    key = f"experigraph:{experiment_id}:next_id"
    env = dict(python_env(), EXPERIGRAPH_LOG_LEVEL="WARNING")
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, experiment_id, uri, str(w), "25"],
                              env=env, stderr=subprocess.PIPE, text=True) for w in range(4)]
    stop = threading.Event()
    deleted = []

    def lose_the_counter():
        while not stop.wait(0.02):
            deleted.append(client.delete(key))

    thread = threading.Thread(target=lose_the_counter)
    thread.start()
    try:
        for p in procs:
            _, err = p.communicate(timeout=240)
            assert p.returncode == 0, err
    finally:
        stop.set()
        thread.join()
    assert sum(deleted) > 0  # the counter really was lost while trials were claimed
    try:
        history = xg.Experiment(id=experiment_id, backend=uri).get_history()
        assert len(history) == 100 and history.index.is_unique
        assert sorted(history["Result"]) == sorted(w * 1000 + i for w in range(4)
                                                   for i in range(25))
        assert history["Success"].all()
    finally:
        xg.Experiment(id=experiment_id, backend=uri).backend.delete_experiment()


def test_a_store_lost_while_persisting_does_not_fail_the_step(redis_server_factory,
                                                              experiment_id, caplog):
    """The persisting hook runs after a step that succeeded: its failure is logged, the
    step keeps its outcome, and the trial waits in the pending queue (not failed)."""
    server = redis_server_factory(appendonly=True)
    ex = xg.Experiment(id=experiment_id, backend=server.url())

    @ex.persist
    def train():
        server.kill()  # the store goes away while the step runs
        return {"weights": [1, 2, 3]}

    @ex.result
    def score(model):
        return sum(model["weights"])

    with caplog.at_level(logging.ERROR, logger="experigraph"):
        with pytest.raises(BackendError) as info:
            ex.run(score(train()))
    assert info.value.result == 6  # computed, not failed
    assert any("Hook Persisting.after_step failed" in r.getMessage() for r in caplog.records)
    server.start()
    assert ex.save_pending() == [1]
    record = ex.get_trial(1)
    assert record.status.value == "succeeded" and record.result == 6
    (train_step,) = [s for s in record.steps if s.step == "train"]
    assert train_step.succeeded and train_step.persisted is None
