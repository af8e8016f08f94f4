"""Redis specifics: key names, password masking, errors that say what to check."""
from __future__ import annotations

import json
import logging
import pickle
import time

import pytest
import redis

import experigraph as xg
from experigraph.backends import resolve_backend
from experigraph.backends.redis import RedisBackend, mask_uri
from experigraph.errors import BackendError
from experigraph.records import Status
from experigraph.testing.backend_contract import record
from experigraph.environment.cpu import cpu_info
from fixtures_backends import free_port


def _quickstart(ex, marker):
    a = ex.parameter("a")

    @ex.result
    def touch(a):
        marker.write_text("ran")
        return a

    return touch(a)


# -- keys ----------------------------------------------------------------------------
def test_keys_live_under_the_experiment_prefix(make_redis_backend, redis_server):
    b = make_redis_backend(experiment_id="keys")
    ex = xg.Experiment(id=b.experiment_id, backend=b)
    a = ex.parameter("a")

    @ex.persist
    def table(a):
        return [a] * 3

    @ex.result
    def total(t):
        ex.save_metric("loss", 0, 1.0)
        return sum(t)

    total(table(a))
    ex.set_parameters(a=2).compute()
    client = redis.Redis.from_url(redis_server.url())
    prefix = f"experigraph:{b.experiment_id}:"
    keys = {k.decode() for k in client.scan_iter(match="experigraph:*")}
    mine = {k for k in keys if k.startswith(prefix)}
    assert {k for k in keys - mine if b.experiment_id in k} == set()
    assert {f"{prefix}next_id", f"{prefix}trials", f"{prefix}metric:1:loss",
            f"{prefix}metric_keys:1", f"{prefix}outputs"} <= mine
    assert any(k.startswith(f"{prefix}blob:source:") for k in mine)
    assert any(k.startswith(f"{prefix}blob:pickle:") for k in mine)
    assert any(k.startswith(f"{prefix}blob:environment:") for k in mine)
    assert client.get(f"{prefix}next_id") == b"1"
    assert client.hkeys(f"{prefix}trials") == [b"1"]
    assert b.experiment_id.encode() in client.smembers("experigraph:experiments")
    client.close()


def test_step_records_of_workers_go_to_a_list_per_trial(make_redis_backend, redis_server,
                                                         client):
    b = make_redis_backend(experiment_id="workers")
    ex = xg.Experiment(id=b.experiment_id, backend=b)
    a = ex.parameter("a")

    @ex
    def inc(a):
        return a + 1

    @ex.result
    def double(x):
        return 2 * x

    double(inc(a))
    assert ex.set_parameters(a=1).compute(client=client) == 4
    trial = ex.get_trial(1)
    assert sorted(s.step for s in trial.steps) == ["double", "inc"]
    raw = redis.Redis.from_url(redis_server.url()).llen(f"experigraph:{b.experiment_id}:steps:1")
    assert raw == 2


def test_delete_experiment_removes_only_its_keys(make_redis_backend):
    b = make_redis_backend(experiment_id="gone")
    keep = make_redis_backend(experiment_id="kept")
    for backend in (b, keep):
        backend.next_trial_id()
        backend.put_blob("source", b"x")
    assert b.delete_experiment() >= 2
    assert b.last_trial_id() == 0
    assert keep.last_trial_id() == 1 and keep.get_blob("source", keep.put_blob("source", b"x"))
    assert b.experiment_id not in keep.experiment_ids()


def test_the_key_index_is_one_hash_of_prefixed_fields(make_redis_backend, redis_server):
    """``P:outputs`` holds "<namespace prefix>:<key>" fields, as the one output-hash index
    of earlier versions did: what they wrote is read as it is."""
    b = make_redis_backend(experiment_id="index")
    client = redis.Redis.from_url(redis_server.url())
    key = f"experigraph:{b.experiment_id}:outputs"
    client.hset(key, mapping={"taint:prep:c0de": "impurity in trial 2", "out:prep:c:i": "h"})
    assert b.index_read("taint", ["prep:c0de"]) == {"prep:c0de": "impurity in trial 2"}
    assert b.index_swap("outputs", {"prep:c:i": "h2"}) == {"prep:c:i": "h"}
    b.index_swap_many({"cache": {"prep:c:i": "e"}, "cache-step": {"prep": "c"}})
    assert client.hgetall(key) == {b"taint:prep:c0de": b"impurity in trial 2",
                                   b"out:prep:c:i": b"h2", b"cache:prep:c:i": b"e",
                                   b"cache-step:prep": b"c"}
    client.close()


def _stored(backend, client, trial_id):
    return client.hget(backend.key("trials"), str(trial_id))


@pytest.mark.parametrize("form", ["as stored", "indented", "keys unsorted"])
def test_a_trial_finishes_over_its_own_record_in_any_json_form(make_redis_backend,
                                                                 redis_server, form):
    """The script that finishes a trial knows the trial's own running record from its
    text when it is as this backend writes it (claim first, trial id last), and by
    decoding it when it is in another form (another client's, or edited by hand)."""
    b = make_redis_backend(experiment_id="own")
    client = redis.Redis.from_url(redis_server.url())
    ours = b.start_trial(lambda i: record(b, i, claim="c1"))
    obj = json.loads(_stored(b, client, ours.trial_id))
    if form == "indented":
        client.hset(b.key("trials"), "1", json.dumps(obj, indent=2, sort_keys=True))
    elif form == "keys unsorted":
        client.hset(b.key("trials"), "1", json.dumps(dict(reversed(list(obj.items())))))
    for finish in (b.finish_trial, lambda r: b.finish_trial_unless_changed(
            r, {"outputs": {f"s:{form}": "h1"}})[0]):
        done = finish(ours.replace(status=Status.SUCCEEDED, result=5))
        assert done.trial_id == 1 and b.read_trial(1) == done
        assert b.trial_ids() == [1]
        ours = done
    client.close()


@pytest.mark.parametrize("whose", ["another id", "another experiment", "another claim",
                                   "nested experiment", "unreadable"])
def test_a_record_that_only_looks_like_the_trials_own_is_not_replaced(
        make_redis_backend, redis_server, caplog, whose):
    """A record at the trial's id that is not its own running record is not replaced,
    however much of its text it shares: another id's or another experiment's copy with
    the trial's claim token, another claim, the trial's experiment id only inside a
    nested object, or text that is no JSON between the trial's own first and last
    bytes. The trial is recorded under a new id, with a WARNING naming both."""
    b = make_redis_backend(experiment_id="lookalike")
    client = redis.Redis.from_url(redis_server.url())
    ours = b.start_trial(lambda i: record(b, i, claim="c1"))
    text = _stored(b, client, 1).decode()
    obj = json.loads(text)
    if whose == "unreadable":  # the head and tail of its own record, garbage between
        inside = f'"experiment_id":{json.dumps(b.experiment_id)},{{{{'
        copy = text[:text.index(",") + 1] + inside + text[-16:]
        assert copy.endswith(',"trial_id":1}')
    else:
        obj.update({"another id": {"trial_id": 9}, "another claim": {"claim": "c2"},
                    "another experiment": {"experiment_id": "x"},
                    "nested experiment": {"experiment_id": "x", "labels": {
                        "experiment_id": b.experiment_id, "z": 1}},
                    }[whose])
        copy = json.dumps(obj, sort_keys=True, separators=(",", ":"))
    client.hset(b.key("trials"), "1", copy)
    for n, finish in enumerate((b.finish_trial, lambda r: b.finish_trial_unless_changed(
            r, {"outputs": {"s:k": "h1"}})[0])):
        caplog.clear()
        running = ours if n == 0 else b.start_trial(lambda i: record(b, i, claim="c3"))
        if n:
            client.hset(b.key("trials"), str(running.trial_id),
                        copy.replace('"claim":"c1"', '"claim":"c3"').replace(
                            '"trial_id":1}', f'"trial_id":{running.trial_id}}}'))
        with caplog.at_level(logging.WARNING, logger="experigraph"):
            done = finish(running.replace(status=Status.SUCCEEDED, result=5))
        assert done.trial_id != running.trial_id and b.read_trial(done.trial_id).result == 5
        warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING
                    and "is recorded as trial" in r.getMessage()]
        assert len(warnings) == 1 and f"Trial {running.trial_id} " in warnings[0]
    assert _stored(b, client, 1).decode() == copy
    client.close()


def test_index_swaps_of_many_keys_go_in_chunks(make_redis_backend, redis_server):
    """More pairs than one HMGET/HSET of the scripts takes: every value is swapped and
    every old one returned; a changed first word in a later chunk still keeps the final
    record from being stored."""
    b = make_redis_backend(experiment_id="chunks")
    n = 1001  # two whole chunks of the scripts (500 pairs) and one pair
    first = {f"s:{i}": f"h{i} d" for i in range(n)}
    assert b.index_swap("outputs", first) == dict.fromkeys(first)
    again = {**first, **{f"s:{i}": f"h{i} other details" for i in range(0, n, 7)},
             "s:new": "hn"}
    assert b.index_swap("outputs", again) == {**first, "s:new": None}
    assert b.index_read("outputs", list(again)) == again

    ours = b.start_trial(lambda i: record(b, i, claim="c1"))
    changed = {**again, f"s:{n - 3}": "other d"}  # in the last chunk
    done, olds = b.finish_trial_unless_changed(ours.replace(status=Status.SUCCEEDED),
                                               {"outputs": changed})
    assert done is None and olds == {"outputs": again}
    assert b.read_trial(1).status is Status.RUNNING
    assert b.index_read("outputs", list(changed)) == changed
    client = redis.Redis.from_url(redis_server.url())
    assert client.hlen(b.key("outputs")) == n + 1
    client.close()


# -- URIs and masking --------------------------------------------------------------
@pytest.mark.parametrize("uri, masked", [
    ("redis://:s3cret@db.example:6379/0", "redis://:***@db.example:6379/0"),
    ("redis://ana:s3cret@db.example:6379/2", "redis://ana:***@db.example:6379/2"),
    ("rediss://:s3cret@db.example:6380/0", "rediss://:***@db.example:6380/0"),
    ("redis://db.example:6379/0", "redis://db.example:6379/0"),
    ("unix:///run/redis.sock?db=2&password=s3cret", "unix:///run/redis.sock?db=2&password=%2A%2A%2A"),
])
def test_uri_masks_the_password(uri, masked):
    b = resolve_backend(uri, "e")
    assert isinstance(b, RedisBackend)
    assert b.uri == masked == mask_uri(uri)
    assert "s3cret" not in repr(b)


def test_other_schemes_are_refused():
    with pytest.raises(ValueError, match="redis://"):
        RedisBackend("http://db.example/0", "e")


def test_backend_pickles_as_its_uri_and_connects_lazily():
    b = RedisBackend(f"redis://127.0.0.1:{free_port()}/0", "lazy")  # nothing listens
    copy = pickle.loads(pickle.dumps(b))
    assert copy.uri == b.uri and copy.experiment_id == "lazy"
    assert b.__reduce__() == (RedisBackend, (f"redis://127.0.0.1:{b.uri.rsplit(':', 1)[1]}",
                                             "lazy"))


def test_unix_socket_uri(redis_server_factory, tmp_path):
    sock = tmp_path / "redis.sock"
    redis_server_factory(extra=("--unixsocket", str(sock), "--unixsocketperm", "700"))
    b = resolve_backend(f"unix://{sock}?db=1", "sock")
    assert b.next_trial_id() == 1
    assert pickle.loads(pickle.dumps(b)).next_trial_id() == 2
    assert redis.Redis(unix_socket_path=str(sock), db=1).get("experigraph:sock:next_id") == b"2"


# -- ConnectionPool objects -----------------------------------------------------------
def test_connection_pool_is_accepted_and_pickles_without_sockets(redis_server, experiment_id):
    pool = redis.ConnectionPool(host="127.0.0.1", port=redis_server.port, db=2)
    ex = xg.Experiment(id=experiment_id, backend=pool)
    b = ex.backend
    try:
        assert isinstance(b, RedisBackend)
        assert b.uri == f"redis://127.0.0.1:{redis_server.port}/2"
        a = ex.parameter("a")

        @ex.result
        def ident(a):
            return a

        ident(a)
        ex.set_parameters(a=5).compute()
        data = pickle.dumps(b)
        assert b"redis.connection" not in data and b"ConnectionPool" not in data
        assert len(data) < 600
        copy = pickle.loads(data)
        assert copy.read_trial(1).result == 5
        assert copy.next_trial_id() == 2
        copy.close()
    finally:
        b.delete_experiment()
        pool.disconnect()


def test_connection_pool_password_is_masked(redis_server):
    pool = redis.ConnectionPool(host="127.0.0.1", port=redis_server.port, password="s3cret")
    b = resolve_backend(pool, "masked")
    assert b.uri == f"redis://:***@127.0.0.1:{redis_server.port}/0"
    assert "s3cret" not in repr(b)


# -- errors: named backend, masked URI, what to check, before anything runs ------------
def test_wrong_password_says_to_check_it(redis_server_factory, experiment_id):
    server = redis_server_factory(password="right-one")
    uri = server.url(password="wrong-one")
    with pytest.raises(BackendError) as info:
        xg.Experiment(id=experiment_id, backend=uri)
    message = str(info.value)
    assert "Redis" in message and f"redis://:***@127.0.0.1:{server.port}/0" in message
    assert "password" in message and "wrong-one" not in message
    assert isinstance(info.value.__cause__, redis.exceptions.RedisError)


def test_missing_password_says_to_check_it(redis_server_factory, experiment_id):
    server = redis_server_factory(password="right-one")
    with pytest.raises(BackendError, match="password"):
        xg.Experiment(id=experiment_id, backend=f"redis://127.0.0.1:{server.port}/0")


def test_connection_refused_says_to_check_the_server(experiment_id):
    port = free_port()
    uri = f"redis://:hidden@127.0.0.1:{port}/0"
    with pytest.raises(BackendError) as info:
        xg.Experiment(id=experiment_id, backend=uri)
    message = str(info.value)
    assert f"redis://:***@127.0.0.1:{port}/0" in message and "hidden" not in message
    assert "redis-server is running" in message and f"127.0.0.1:{port}" in message
    assert isinstance(info.value.__cause__, redis.exceptions.ConnectionError)


def test_bad_database_number_says_to_check_it(redis_server, experiment_id):
    with pytest.raises(BackendError, match=r"database number") as info:
        xg.Experiment(id=experiment_id, backend=redis_server.url(99))
    assert f"127.0.0.1:{redis_server.port}/99" in str(info.value)


def test_password_change_fails_the_trial_before_any_step_runs(redis_server_factory, tmp_path,
                                                              experiment_id):
    server = redis_server_factory(password="first")
    ex = xg.Experiment(id=experiment_id, backend=server.url())
    marker = tmp_path / "marker"
    r = _quickstart(ex, marker)
    admin = redis.Redis(host="127.0.0.1", port=server.port, password="first")
    admin.config_set("requirepass", "second")
    ex.backend.close()  # new connections authenticate with the old password
    ex.set_parameters(a=1)
    with pytest.raises(BackendError, match="password"):
        r.compute()
    assert not marker.exists()
    admin.close()


def test_server_down_fails_the_trial_before_any_step_runs(redis_server_factory, tmp_path,
                                                          experiment_id):
    server = redis_server_factory()
    ex = xg.Experiment(id=experiment_id, backend=server.url())
    marker = tmp_path / "marker"
    r = _quickstart(ex, marker)
    server.kill()
    ex.set_parameters(a=1)
    with pytest.raises(BackendError, match="redis-server is running") as info:
        r.compute()
    assert not marker.exists()
    assert not info.value.has_result


def test_connection_pool_on_a_unix_socket(redis_server_factory, tmp_path):
    sock = tmp_path / "pool.sock"
    redis_server_factory(extra=("--unixsocket", str(sock), "--unixsocketperm", "700"))
    pool = redis.ConnectionPool(connection_class=redis.UnixDomainSocketConnection,
                                path=str(sock), db=3)
    b = resolve_backend(pool, "upool")
    assert b.uri == f"unix://{sock}?db=3"
    assert b.next_trial_id() == 1
    copy = pickle.loads(pickle.dumps(b))
    assert copy.next_trial_id() == 2
    copy.close()
    pool.disconnect()


# -- per-trial cost ---------------------------------------------------------------------
def test_a_trial_costs_the_same_commands_whatever_the_history(make_redis_backend,
                                                              monkeypatch):
    b = make_redis_backend(experiment_id="cost")
    ex = xg.Experiment(id=b.experiment_id, backend=b)
    a = ex.parameter("a")

    @ex
    def inc(a):
        return a + 1

    @ex.result
    def double(x):
        return 2 * x

    r = double(inc(a))
    commands: list[str] = []
    original = redis.client.Redis.execute_command
    original_pipe = redis.client.Pipeline.execute

    def count(self, *args, **kwargs):
        commands.append(str(args[0]).upper())
        return original(self, *args, **kwargs)

    def count_pipe(self, *args, **kwargs):
        commands.extend(str(c[0][0]).upper() for c in self.command_stack)
        return original_pipe(self, *args, **kwargs)

    def one_trial(value):
        commands.clear()
        ex.set_parameters(a=value).compute(scheduler="sync")
        return sorted(commands)

    ex.set_parameters(a=0).compute(scheduler="sync")
    monkeypatch.setattr(redis.client.Redis, "execute_command", count)
    monkeypatch.setattr(redis.client.Pipeline, "execute", count_pipe)
    early = one_trial(1)
    for value in range(30):
        ex.set_parameters(a=value).compute(scheduler="sync")
    late = one_trial(2)
    assert early == late
    assert not {"KEYS", "SCAN", "HKEYS", "HGETALL", "SMEMBERS"} & set(late)
    assert len(late) <= 8


def test_missing_redis_server_fails_under_ci_and_skips_otherwise(monkeypatch):
    from fixtures_backends import unavailable

    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI is set"):
        unavailable("redis-server is not installed")
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception):
        unavailable("redis-server is not installed")


def _round_trips(monkeypatch) -> list[str]:
    """Count what reaches the server: each command, and each pipeline, is one round trip."""
    trips: list[str] = []
    original = redis.client.Redis.execute_command
    original_pipe = redis.client.Pipeline.execute

    def command(self, *args, **kwargs):
        trips.append(str(args[0]).upper())
        return original(self, *args, **kwargs)

    def pipeline(self, *args, **kwargs):
        trips.append("PIPELINE " + " ".join(str(c[0][0]).upper() for c in self.command_stack))
        return original_pipe(self, *args, **kwargs)

    monkeypatch.setattr(redis.client.Redis, "execute_command", command)
    monkeypatch.setattr(redis.client.Pipeline, "execute", pipeline)
    return trips


@pytest.mark.parametrize("scheduler", ["threads", "sync"])
def test_a_trial_is_two_round_trips(make_redis_backend, monkeypatch, scheduler):
    """The claim with its running record, then one script that swaps the key index and,
    as no value changed (no impurity to record), stores the final record with its
    summary. No query of the last id: a trial is compared with the one this process
    wrote last, which the id it claims confirms (the test of another writer in between
    is in test_drift). Workers' step records need no read back when every step ran in
    this process."""
    b = make_redis_backend(experiment_id="trips")
    ex = xg.Experiment(id=b.experiment_id, backend=b)
    a = ex.parameter("a")

    @ex
    def inc(a):
        return a + 1

    @ex.result
    def double(x):
        return 2 * x

    r = double(inc(a))
    deadline = time.monotonic() + 60  # the environment complete: no new snapshot below
    while cpu_info() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    ex.set_parameters(a=0).compute(scheduler=scheduler)
    trips = _round_trips(monkeypatch)
    for value in (1, 2, 3):
        ex.set_parameters(a=value).compute(scheduler=scheduler)
    assert len(trips) == 6, trips
    assert list(ex.get_history()["Result"]) == [2, 4, 6, 8]


def test_the_history_reads_summaries_and_falls_back_to_records(make_redis_backend,
                                                               redis_server):
    b = make_redis_backend(experiment_id="summaries")
    ex = xg.Experiment(id=b.experiment_id, backend=b)
    a = ex.parameter("a")

    @ex.result
    def ten(a):
        return 10 * a

    ten(a)
    for value in (1, 2, 3):
        ex.set_parameters(a=value).compute()
    client = redis.Redis.from_url(redis_server.url())
    summaries = f"experigraph:{b.experiment_id}:summaries"
    trials = f"experigraph:{b.experiment_id}:trials"
    assert sorted(int(f) for f in client.hkeys(summaries)) == [1, 2, 3]
    client.hdel(summaries, "1")  # lost: read from the record, and put back
    edited = client.hget(trials, "2").replace(b'"a":2', b'"a":222')  # a hand edit
    client.hset(trials, "2", edited)
    history = xg.Experiment(id=b.experiment_id, backend=b).get_history()
    assert list(history["a"]) == [1, 222, 3] and list(history["Result"]) == [10, 20, 30]
    assert sorted(int(f) for f in client.hkeys(summaries)) == [1, 2, 3]
    length, _ = client.hget(summaries, "2").split(b" ", 1)
    assert int(length) == len(edited)  # the summary put back is the edited record's
    client.close()
