"""A Redis server killed in the middle of a series of trials loses nothing and reuses no id."""
from __future__ import annotations

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
