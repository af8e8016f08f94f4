"""The history table kept between processes (``experigraph.history_cache``): reused only
while everything it was made of is unchanged, never showing a running trial, never
unpickled without its signature, and equal to the table built anew."""
from __future__ import annotations

import json
import logging
import os
import pickle
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest

import experigraph as xg
from experigraph import history_cache
from xg_testing import python_env

HIT = "read from the table kept"


@pytest.fixture(autouse=True)
def _keep_small_histories(monkeypatch, tmp_path):
    monkeypatch.setattr(history_cache, "MIN_TRIALS", 1)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "user-cache"))  # this test's tables


def _kept_files():
    return sorted((Path(os.environ["XDG_CACHE_HOME"]) / "experigraph").glob("history-*.pkl"))


def _history(ex, caplog, **kwargs):
    """(the history, whether it came from the kept table)"""
    caplog.clear()
    with caplog.at_level(logging.DEBUG, logger="experigraph.history_cache"):
        frame = ex.get_history(**kwargs)
    return frame, any(HIT in m for m in caplog.messages)


def _built(ex, monkeypatch, **kwargs):
    """The history built anew, nothing kept or read."""
    with monkeypatch.context() as m:
        m.setenv(history_cache.ENV_SWITCH, "0")
        return ex.get_history(**kwargs)


@pytest.fixture
def recorded(make_experiment):
    """An experiment with trials of many kinds: parameters, a failure, metrics, labels,
    a description."""
    return _record(make_experiment())


@pytest.fixture
def redis_recorded(make_redis_backend):
    """``recorded``, on the session's Redis server."""
    backend = make_redis_backend()
    return _record(xg.Experiment(backend.experiment_id, backend=backend))


def _record(ex):
    a, b = ex.parameter("a"), ex.parameter("b")

    @ex.result
    def score(a, b):
        if a == 3:
            raise ValueError("three")
        ex.metric("loss", 1.0 / a)
        ex.label("kind", "odd" if a % 2 else "even")
        if a == 2:
            ex.set_description("the second")
        return {"a": a, "b": b} if a == 4 else a * 10

    r = score(a, b)
    for i in (1, 2, 3, 4):
        ex.set_parameters(a=i, b=f"x{i}")
        try:
            r.compute()
        except ValueError:
            pass
    return ex


@pytest.fixture(params=["file", pytest.param("redis", marks=pytest.mark.redis)])
def any_recorded(request):
    """``recorded`` on each backend that makes a digest of its summaries."""
    return request.getfixturevalue("recorded" if request.param == "file" else "redis_recorded")


def test_the_kept_table_is_reused_in_another_process_and_equals_the_built_one(
        any_recorded, caplog, monkeypatch):
    recorded = any_recorded
    first, hit = _history(recorded, caplog)
    assert not hit and len(_kept_files()) == 1
    other = xg.Experiment(recorded.id, backend=recorded.backend)
    other.parameter("a"), other.parameter("b")  # the same declarations: the same table
    again, hit = _history(other, caplog)
    assert hit
    pd.testing.assert_frame_equal(again, first)
    pd.testing.assert_frame_equal(again, _built(recorded, monkeypatch))
    assert again is not first
    # another process, the same key: the table is read there too
    code = ("import logging, sys, experigraph as xg\n"
            "from experigraph import history_cache\n"
            "history_cache.MIN_TRIALS = 1\n"
            "logging.basicConfig(level=logging.DEBUG, stream=sys.stdout)\n"
            "logging.getLogger('experigraph.history_cache').setLevel(logging.DEBUG)\n"
            "ex = xg.Experiment(sys.argv[1], backend=sys.argv[2])\n"
            "ex.parameter('a'), ex.parameter('b')\n"
            "print(ex.get_history().to_json(orient='split', date_format='iso'))\n")
    out = subprocess.run([sys.executable, "-c", code, recorded.id, recorded.backend.uri],
                         capture_output=True, text=True, env=python_env(), timeout=120)
    assert out.returncode == 0, out.stderr
    assert HIT in out.stdout
    assert json.loads(out.stdout.strip().splitlines()[-1]) == json.loads(
        first.to_json(orient="split", date_format="iso"))


@pytest.mark.parametrize("kwargs", [{"verbose": True}, {"archived": True},
                                    {"verbose": True, "archived": True}])
def test_each_way_of_asking_has_its_own_table(any_recorded, caplog, monkeypatch, kwargs):
    recorded = any_recorded
    _history(recorded, caplog)
    frame, hit = _history(recorded, caplog, **kwargs)
    assert not hit
    pd.testing.assert_frame_equal(frame, _built(recorded, monkeypatch, **kwargs))
    again, hit = _history(recorded, caplog, **kwargs)
    assert hit
    pd.testing.assert_frame_equal(again, frame)


def _new_trial(ex):
    a = ex.parameter("a")
    ex.set_parameters(a=7, b="y")
    ex.compute()


def _rewrite_record(ex, in_place):
    path = ex.backend.path / "trials" / "2.json"
    record = json.loads(path.read_text())
    record["description"] = "edited by hand"
    text = json.dumps(record, indent=2)
    if in_place:  # same file, same inode: only its size and ctime tell
        with open(path, "r+") as f:
            f.truncate(0)
            f.write(text)
    else:
        tmp = path.with_name("2.json.tmp")
        tmp.write_text(text)
        os.replace(tmp, path)


CHANGES = {
    "a new trial": _new_trial,
    "a tag": lambda ex: ex.tag(1, "best", True),
    "an archived trial": lambda ex: ex.archive(2),
    "a record replaced by hand": lambda ex: _rewrite_record(ex, in_place=False),
    "a record edited in place": lambda ex: _rewrite_record(ex, in_place=True),
    "a record deleted": lambda ex: (ex.backend.path / "trials" / "4.json").unlink(),
    "a summary line appended": lambda ex: (ex.backend.path / "summaries.jsonl").open("a")
    .write('{"id": 1, "sig": [0, 0, 0], "summary": {}}\n'),
    "a parameter declared": lambda ex: ex.parameter("c"),
}


@pytest.mark.parametrize("change", list(CHANGES))
def test_the_kept_table_is_not_used_once_anything_it_was_made_of_changed(
        recorded, caplog, monkeypatch, change):
    _history(recorded, caplog)
    assert _history(recorded, caplog)[1]
    time.sleep(0.01)  # a later ctime for a record edited in place
    CHANGES[change](recorded)
    frame, hit = _history(recorded, caplog)
    assert not hit
    pd.testing.assert_frame_equal(frame, _built(recorded, monkeypatch))
    if change.startswith("a record"):
        assert ("edited by hand" in frame["Description"].tolist()) == ("edited" in change
                                                                      or "replaced" in change)


def _redis_hash(ex, name):
    backend = ex.backend
    return backend.client(), backend.key(name)


def _redis_edit_summary(ex):
    """The stored summary of trial 2 says another description (its length prefix kept)."""
    client, key = _redis_hash(ex, "summaries")
    length, text = client.hget(key, "2").split(b" ", 1)
    summary = json.loads(text)
    summary["description"] = "edited by hand"
    client.hset(key, "2", length + b" " + json.dumps(summary).encode())


def _redis_replace_record(ex):
    """Trial 2's record rewritten by hand (another length: its summary no longer holds)."""
    client, key = _redis_hash(ex, "trials")
    record = json.loads(client.hget(key, "2"))
    record["description"] = "edited by hand"
    client.hset(key, "2", json.dumps(record, indent=1))


REDIS_CHANGES = {
    "a new trial": _new_trial,
    "a tag": lambda ex: ex.tag(1, "best", True),
    "an archived trial": lambda ex: ex.archive(2),
    "a record replaced by hand": _redis_replace_record,
    "a record deleted": lambda ex: ex.backend.client().hdel(ex.backend.key("trials"), "4"),
    "a summary edited by hand": _redis_edit_summary,
    "a summary deleted": lambda ex: ex.backend.client().hdel(ex.backend.key("summaries"), "3"),
    "a summary torn": lambda ex: ex.backend.client().hset(
        ex.backend.key("summaries"), "3",
        ex.backend.client().hget(ex.backend.key("summaries"), "3")[:-40]),
    "a parameter declared": lambda ex: ex.parameter("c"),
}
#: the changes after which a trial is read from its record (its summary no longer holds),
#: and whether the summary then put back is the one the table kept before was made of
REPAIRED = {"a record replaced by hand": False, "a summary deleted": True,
            "a summary torn": True}


@pytest.mark.redis
@pytest.mark.parametrize("change", list(REDIS_CHANGES))
def test_on_redis_the_kept_table_is_not_used_once_anything_it_was_made_of_changed(
        redis_recorded, caplog, monkeypatch, change):
    recorded = redis_recorded
    _history(recorded, caplog)
    assert _history(recorded, caplog)[1]
    REDIS_CHANGES[change](recorded)
    frame, hit = _history(recorded, caplog)
    assert not hit
    pd.testing.assert_frame_equal(frame, _built(recorded, monkeypatch))
    if change == "a record deleted":
        assert frame.index.tolist() == [1, 2, 3]
    if "by hand" in change:
        assert frame["Description"].tolist()[1] == "edited by hand"
    if change in REPAIRED:  # that read took a trial from its record and put its summary
        again, hit = _history(recorded, caplog)  # back: no digest then, nothing kept
        assert hit == REPAIRED[change]
        pd.testing.assert_frame_equal(again, frame)
    again, hit = _history(recorded, caplog)
    assert hit
    pd.testing.assert_frame_equal(again, frame)


@pytest.mark.redis
@pytest.mark.parametrize("field", [b"+2", b"02", b" 2", b"2_0", b"abc", b"\xff"])
def test_on_redis_a_field_that_is_no_trial_id_is_skipped_and_keeps_nothing(
        redis_recorded, caplog, monkeypatch, field):
    """A record written by hand under another field than its id's: never taken for a
    trial's (``+2`` would be trial 2, in an order that HKEYS' order decides), said once,
    and no table is kept while it is there."""
    recorded = redis_recorded
    before, _ = _history(recorded, caplog)
    backend = recorded.backend
    client, key = _redis_hash(recorded, "trials")
    record = json.loads(client.hget(key, "2"))
    record["description"] = "under another field"
    client.hset(key, field, json.dumps(record))
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="experigraph"):
        summaries = backend.read_summaries()
        backend.read_summaries()
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warned) == 1 and "not a trial id" in warned[0] and "HDEL" in warned[0]
    assert [s.trial_id for s in summaries] == [1, 2, 3, 4]
    assert "under another field" not in [s.description for s in summaries]
    assert backend.trial_ids() == [1, 2, 3, 4]
    for _ in range(2):
        frame, hit = _history(recorded, caplog)
        assert not hit
        pd.testing.assert_frame_equal(frame, before)
    assert backend.read_summaries_keyed(None)[0] is None
    client.hdel(key, field)
    _history(recorded, caplog)
    assert _history(recorded, caplog)[1]


@pytest.mark.redis
def test_on_redis_a_connection_that_decodes_replies_keeps_the_table(redis_server, caplog,
                                                                    monkeypatch):
    from experigraph.backends.redis import RedisBackend

    backend = RedisBackend(redis_server.url() + "?decode_responses=True",
                           f"decoding-{os.getpid()}-{time.monotonic_ns()}")
    try:
        ex = _record(xg.Experiment(backend.experiment_id, backend=backend))
        first, hit = _history(ex, caplog)
        assert not hit and first.index.tolist() == [1, 2, 3, 4]
        again, hit = _history(ex, caplog)
        assert hit
        pd.testing.assert_frame_equal(again, first)
        pd.testing.assert_frame_equal(again, _built(ex, monkeypatch))
    finally:
        backend.delete_experiment()


def test_the_time_zone_is_part_of_the_key(recorded, caplog, monkeypatch):
    from experigraph import present

    if not hasattr(time, "tzset"):
        pytest.skip("time.tzset: POSIX only")
    try:
        for zone in ("UTC0", "JST-9"):  # POSIX rules: no time zone database needed
            monkeypatch.setenv("TZ", zone)
            time.tzset()
            present.local_zone.cache_clear()  # read once per process
            frame, hit = _history(recorded, caplog)
            assert not hit
            if zone == "UTC0":
                utc = frame
        assert (frame["Finished"] - utc["Finished"]).dt.total_seconds().tolist() == [
            9 * 3600.0] * len(utc)
    finally:
        monkeypatch.undo()
        time.tzset()
        present.local_zone.cache_clear()


@pytest.mark.parametrize("kind", ["file", pytest.param("redis", marks=pytest.mark.redis)])
def test_a_table_showing_a_running_trial_is_never_kept(request, make_experiment, caplog, kind):
    if kind == "file":
        ex = make_experiment()
    else:
        backend = request.getfixturevalue("make_redis_backend")()
        ex = xg.Experiment(backend.experiment_id, backend=backend)
    a = ex.parameter("a")
    go = threading.Event()
    inside = threading.Event()

    @ex.result
    def slow(a):
        if a == 2:
            inside.set()
            go.wait(30)
        return a

    r = slow(a)
    ex.set_parameters(a=1)
    r.compute()
    ex.set_parameters(a=2)
    runner = threading.Thread(target=r.compute)
    runner.start()
    try:
        assert inside.wait(30)
        reader = xg.Experiment(ex.id, backend=ex.backend)
        for _ in range(2):
            frame, hit = _history(reader, caplog)
            assert not hit and pd.isna(frame["Result"].tolist()[1])
        assert _kept_files() == []
    finally:
        go.set()
        runner.join()
    frame, hit = _history(reader, caplog)
    assert not hit and frame["Result"].tolist() == [1, 2]
    assert _history(reader, caplog)[1]


def test_a_kept_table_is_unpickled_only_with_its_signature(recorded, caplog, monkeypatch,
                                                           tmp_path):
    built, _ = _history(recorded, caplog)
    path, = _kept_files()
    data = path.read_bytes()
    marker = tmp_path / "unpickled"
    evil = pickle.dumps(_Evil(str(marker)))
    start = len(b"XGHIST1\x00") + 32
    size = int.from_bytes(data[start:start + 4], "big")
    path.write_bytes(data[:start + 4 + size] + evil)  # the header holds, the pickle is not ours
    frame, hit = _history(recorded, caplog)
    assert not hit and not marker.exists()
    pd.testing.assert_frame_equal(frame, built)
    assert _history(recorded, caplog)[1]  # kept again, signed
    for junk in (b"", b"XGHIST1\x00", b"not a table", data[:100]):
        path.write_bytes(junk)
        frame, hit = _history(recorded, caplog)
        assert not hit
        pd.testing.assert_frame_equal(frame, built)


class _Evil:
    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_another_key_neither_reads_nor_breaks_the_kept_table(recorded, caplog, monkeypatch):
    built, _ = _history(recorded, caplog)
    monkeypatch.setenv("EXPERIGRAPH_SECRET_KEY", "another key")
    frame, hit = _history(recorded, caplog)
    assert not hit
    pd.testing.assert_frame_equal(frame, built)


def test_small_histories_and_the_switch_keep_nothing(make_experiment, recorded, caplog,
                                                     monkeypatch):
    monkeypatch.setattr(history_cache, "MIN_TRIALS", 5)
    _history(recorded, caplog)  # 4 trials
    assert _kept_files() == []
    monkeypatch.setattr(history_cache, "MIN_TRIALS", 1)
    monkeypatch.setenv(history_cache.ENV_SWITCH, "0")
    _history(recorded, caplog)
    assert _kept_files() == []


def test_a_cache_directory_that_cannot_be_written_costs_nothing(recorded, caplog, monkeypatch,
                                                               tmp_path):
    blocked = tmp_path / "not-a-directory"
    blocked.write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocked))
    frame, hit = _history(recorded, caplog)
    assert not hit
    pd.testing.assert_frame_equal(frame, _built(recorded, monkeypatch))


def test_a_backend_without_a_digest_keeps_nothing(make_mongomock_backend, caplog):
    backend = make_mongomock_backend()
    ex = xg.Experiment(backend.experiment_id, backend=backend)
    a = ex.parameter("a")
    ex.result(lambda a: a)(a)
    ex.set_parameters(a=1)
    ex.compute()
    _history(ex, caplog)
    frame, hit = _history(ex, caplog)
    assert not hit and frame["Result"].tolist() == [1] and _kept_files() == []


def test_a_record_that_could_not_be_read_leaves_nothing_kept(recorded, caplog, monkeypatch):
    from experigraph.backends.file import FileBackend
    from experigraph.errors import CorruptRecordError

    (recorded.backend.path / "summaries.jsonl").unlink()  # every trial read from its record
    real = FileBackend.read_signed

    def flaky(self, trial_id):
        if trial_id == 2:
            raise CorruptRecordError(f"trial {trial_id}", "an I/O error, this once")
        return real(self, trial_id)

    monkeypatch.setattr(FileBackend, "read_signed", flaky)
    with caplog.at_level(logging.ERROR):
        frame, hit = _history(recorded, caplog)
    assert frame.index.tolist() == [1, 3, 4] and _kept_files() == []
    monkeypatch.setattr(FileBackend, "read_signed", real)
    frame, hit = _history(recorded, caplog)
    assert not hit and frame.index.tolist() == [1, 2, 3, 4]
    # that read put the summary lines back: the next builds from them and keeps the table
    assert not _history(recorded, caplog)[1]
    again, hit = _history(recorded, caplog)
    assert hit
    pd.testing.assert_frame_equal(again, frame)


@pytest.mark.parametrize("method", ["read_summaries", "read_summaries_keyed"])
@pytest.mark.parametrize("kind", ["file", pytest.param("redis", marks=pytest.mark.redis)])
def test_a_backend_that_answers_its_own_way_keeps_nothing(request, backend_root, experiment_id,
                                                          caplog, kind, method):
    if kind == "file":
        from experigraph.backends.file import FileBackend as Base

        location = backend_root
    else:
        from experigraph.backends.redis import RedisBackend as Base

        made = request.getfixturevalue("make_redis_backend")()  # cleaned up after the test
        location, experiment_id = made.uri, made.experiment_id

    class Hiding(Base):
        if method == "read_summaries":
            def read_summaries(self):
                return [s for s in super().read_summaries() if s.trial_id != 2]
        else:
            def read_summaries_keyed(self, known=None):
                return None, [s for s in super().read_summaries() if s.trial_id != 2]

    ex = xg.Experiment(experiment_id, backend=Hiding(location, experiment_id))
    a = ex.parameter("a")
    ex.result(lambda a: a)(a)
    for i in (1, 2, 3):
        ex.set_parameters(a=i)
        ex.compute()
    for _ in range(2):
        frame, hit = _history(ex, caplog)
        assert not hit and frame.index.tolist() == [1, 3]
    assert _kept_files() == []


def test_pandas_options_that_change_dtypes_are_part_of_the_key(recorded, caplog, monkeypatch):
    import warnings

    try:
        with warnings.catch_warnings():  # deprecated in pandas 3, and still honoured
            warnings.simplefilter("ignore")
            pd.get_option("future.infer_string")
    except Exception:
        pytest.skip("this pandas has no future.infer_string")
    plain, _ = _history(recorded, caplog)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        flipped = not pd.get_option("future.infer_string")
        context = pd.option_context("future.infer_string", flipped)
        context.__enter__()
    try:
        other, hit = _history(recorded, caplog)
        assert not hit
        pd.testing.assert_frame_equal(other, _built(recorded, monkeypatch))
    finally:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            context.__exit__(None, None, None)
    again, hit = _history(recorded, caplog)
    assert pd.testing.assert_frame_equal(again, plain) is None
