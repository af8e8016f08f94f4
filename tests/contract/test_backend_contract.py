"""The contract every backend keeps: what a user can observe, tested once for all.

Parametrised over file, redis (a real redis-server), mongomock and, when
``EXPERIGRAPH_TEST_MONGO_URI`` is set, a real MongoDB. Backend specifics (file
layout, key names, password masking) live in ``tests/unit/backends/``.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import pickle
import subprocess
import sys

import pytest

import experigraph as xg
from xg_testing import Marker, python_env
from experigraph.backends import REGISTRY
from experigraph.backends.file import FileBackend
from experigraph.errors import CorruptRecordError, TrialIDNotFoundError
from experigraph.records import DriftEvent, Status, StepRecord, TrialRecord, Unrepresentable
from fixtures_backends import SUBPROCESS_PRELUDE, backend_to_arg

BACKENDS = ["file", "redis", "mongomock", pytest.param("mongodb", marks=pytest.mark.mongodb),
            "examplefs"]  # the example third-party backend of tests/plugins/, by entry point
#: what each registered scheme is tested as
SCHEME_TESTED_AS = {"file": "file", "redis": "redis", "rediss": "redis", "unix": "redis",
                    "mongodb": "mongodb"}
IN_PROCESS_ONLY = {"mongomock": "mongomock keeps its data in this process's memory: another "
                                "process cannot see it"}
UTC = dt.timezone.utc


def _param_names() -> set[str]:
    return {p.values[0] if hasattr(p, "values") else p for p in BACKENDS}


@pytest.fixture(params=BACKENDS)
def kind(request):
    return request.param


@pytest.fixture
def make(kind, request):
    return request.getfixturevalue(f"make_{kind}_backend")


@pytest.fixture
def backend(make):
    b = make(experiment_id="contract")
    yield b
    b.close()


def other_process_only(kind: str) -> None:
    if kind in IN_PROCESS_ONLY:
        pytest.skip(IN_PROCESS_ONLY[kind])


def record(backend, trial_id: int, **changes) -> TrialRecord:
    base = TrialRecord(experiment_id=backend.experiment_id, trial_id=trial_id,
                       status=Status.RUNNING, parameters={"a": trial_id}, seed=7,
                       started=dt.datetime(2024, 5, 1, 12, 0, tzinfo=UTC))
    return base.replace(**changes) if changes else base


def step(name: str, trial_id: int, n: int = 0) -> StepRecord:
    return StepRecord(step=name, key=f"{name}-{n}", trial_ids=(trial_id,), code_hash="c0de",
                      input_hash="1n", output_hash="0u7",
                      started=dt.datetime(2024, 5, 1, 12, 0, n, tzinfo=UTC), duration=0.5,
                      succeeded=True, metrics={"acc": 0.9}, labels={"tag": "x"})


def corrupt(backend, trial_id: int, how: str = "torn") -> str:
    """Tear the stored record of ``trial_id`` as a crash or a hand edit would (``how``:
    torn, empty or garbage); return how its location is named."""
    name = "FileBackend" if isinstance(backend, FileBackend) else type(backend).__name__
    if name == "FileBackend":
        path = backend.path / "trials" / f"{trial_id}.json"
        path.write_bytes({"torn": path.read_bytes()[:40], "empty": b"",
                          "garbage": b"garbage\n"}[how])
        return str(path)
    data = {"torn": '{"schema": 1, "tri', "empty": "", "garbage": "garbage\n"}[how]
    if name == "RedisBackend":
        backend._redis().hset(backend._key("trials"), str(trial_id), data)
        return f"field {trial_id})"
    if name == "MongoBackend":
        backend._db().trials.update_one({"_id": backend._id(trial_id)},
                                        {"$set": {"record": data}})
        return repr(backend._id(trial_id))
    raise AssertionError(f"no way to corrupt a {name}")


def count_blobs(backend, kind: str) -> int:
    """How many blobs of ``kind`` the backend holds (to see that one is stored once)."""
    name = "FileBackend" if isinstance(backend, FileBackend) else type(backend).__name__
    if name == "FileBackend":
        return sum(1 for p in (backend.path / "blobs" / kind).rglob("*") if p.is_file())
    if name == "RedisBackend":
        return sum(1 for _ in backend._redis().scan_iter(match=backend._key("blob", kind, "*")))
    if name == "MongoBackend":
        return backend._db().blobs.count_documents({"experiment_id": backend.experiment_id,
                                                    "kind": kind})
    raise AssertionError(f"no way to count blobs of a {name}")


# -- the suite covers every registered backend ---------------------------------------
def test_every_registered_scheme_is_in_the_suite():
    tested = _param_names()
    missing = [scheme for scheme in REGISTRY if SCHEME_TESTED_AS.get(scheme) not in tested]
    assert not missing, (f"backend scheme(s) {missing} are registered in "
                         "experigraph.backends.REGISTRY but not run by the contract suite: add "
                         "them to BACKENDS and SCHEME_TESTED_AS")


# -- ids -----------------------------------------------------------------------------
def test_ids_start_at_one_and_never_repeat(backend):
    assert backend.last_trial_id() == 0
    assert [backend.next_trial_id() for _ in range(3)] == [1, 2, 3]
    assert backend.last_trial_id() == 3


def test_another_backend_object_continues_the_ids(backend, make):
    backend.next_trial_id()
    backend.next_trial_id()
    other = make(experiment_id="contract")
    assert other.experiment_id == backend.experiment_id
    assert other.last_trial_id() == 2
    assert other.next_trial_id() == 3
    assert backend.next_trial_id() == 4


def test_start_trial_reserves_an_id_and_writes_the_running_record(backend):
    first = backend.start_trial(lambda i: record(backend, i))
    second = backend.start_trial(lambda i: record(backend, i))
    assert (first.trial_id, second.trial_id) == (1, 2)
    assert backend.read_trial(2) == second
    assert backend.read_trial(2).status is Status.RUNNING
    assert backend.trial_ids() == [1, 2]


# -- records -------------------------------------------------------------------------
PARAMETERS = {
    "int": 3, "float": 0.25, "nan": float("nan"), "inf": float("-inf"), "str": "héllo ✓",
    "none": None, "bool": True, "list": [1, "a", None], "tuple": (1, (2, 3)),
    "dict": {"x": 1, "$odd": 2}, "intkeys": {1: "one", 2: "two"},
    "when": dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC), "dotted.name": "x",
    "object": Unrepresentable("<object at 0x1>", "builtins.object"),
}


def test_full_record_round_trips(backend):
    trial_id = backend.next_trial_id()
    full = record(
        backend, trial_id, status=Status.SUCCEEDED, parameters=PARAMETERS,
        finished=dt.datetime(2024, 5, 1, 12, 0, 3, tzinfo=UTC), process_time=3.5,
        description="fine", result={"score": (1.0, 2)}, result_type="dict", result_hash="abc",
        host="h", pid=12, code={"prepare": {"code_hash": "1", "source_hash": "2"}},
        environment_hash="e", steps=(step("prepare", trial_id, 0), step("score", trial_id, 1)),
        drift=(DriftEvent("code", "prepare", "Code context has been changed: prepare",
                          ("-a", "+b"), {"previous_trial": 0}),),
        metrics={"acc": 0.9}, labels={"team": "a"}, rerun_of=None, sweep_id="s1",
        script={"path": "x.py", "argv": ["a=1"]})
    backend.write_trial(full)
    back = backend.read_trial(trial_id)
    assert back.to_json() == full.to_json()
    assert back.parameters["tuple"] == (1, (2, 3))
    assert back.parameters["intkeys"] == {1: "one", 2: "two"}
    assert back.parameters["when"] == PARAMETERS["when"]
    assert back.steps == full.steps and back.drift == full.drift


def test_failed_record_round_trips(backend):
    trial_id = backend.next_trial_id()
    failed = record(backend, trial_id, status=Status.FAILED, description="ZeroDivisionError()",
                    error={"type": "ZeroDivisionError", "message": "division by zero",
                           "traceback": "Traceback...\n"})
    backend.write_trial(failed)
    assert backend.read_trial(trial_id) == failed


def test_write_trial_replaces_the_record(backend):
    running = backend.start_trial(lambda i: record(backend, i))
    backend.write_trial(running.replace(status=Status.SUCCEEDED, result=5))
    assert backend.read_trial(running.trial_id).result == 5
    assert backend.trial_ids() == [running.trial_id]


def test_unknown_trial_names_the_id(backend):
    with pytest.raises(TrialIDNotFoundError, match=r"\b42\b"):
        backend.read_trial(42)
    assert not backend.has_trial(42)


def test_reserved_but_unwritten_id_is_not_a_trial(backend):
    backend.next_trial_id()
    with pytest.raises(TrialIDNotFoundError, match=r"\b1\b"):
        backend.read_trial(1)
    assert backend.trial_ids() == []
    assert backend.last_trial() is None


def test_torn_record_is_an_error_and_history_skips_it(backend, caplog):
    for _ in range(3):
        backend.start_trial(lambda i: record(backend, i))
    where = corrupt(backend, 2)
    with pytest.raises(CorruptRecordError, match="cannot be read") as info:
        backend.read_trial(2)
    assert where in str(info.value)
    with caplog.at_level(logging.WARNING, logger="experigraph"):
        records = backend.read_trials()
    assert [r.trial_id for r in records] == [1, 3]
    assert any(where in r.getMessage() and r.levelno == logging.WARNING
               for r in caplog.records)
    assert not backend.has_trial(2)


def test_trial_ids_and_last_trial(backend):
    assert backend.trial_ids() == [] and backend.last_trial() is None
    for _ in range(12):
        backend.start_trial(lambda i: record(backend, i))
    backend.next_trial_id()  # reserved, not written
    assert backend.trial_ids() == list(range(1, 13))
    assert backend.last_trial_id() == 13
    assert backend.last_trial().trial_id == 12
    assert [r.trial_id for r in backend.read_trials([3, 11, 99])] == [3, 11]


# -- step records -------------------------------------------------------------------
def test_step_records_are_appended_and_read_in_order(backend):
    backend.append_step_records(1, [step("a", 1, 0)])
    backend.append_step_records(1, [step("b", 1, 1), step("c", 1, 2)])
    backend.append_step_records(2, [step("z", 2, 0)])
    assert [r.step for r in backend.read_step_records(1)] == ["a", "b", "c"]
    assert backend.read_step_records(1)[0] == step("a", 1, 0)
    assert [r.step for r in backend.read_step_records(2)] == ["z"]
    assert backend.read_step_records(3) == []


# -- blobs --------------------------------------------------------------------------
def test_blobs_are_content_addressed_and_stored_once(backend):
    h1 = backend.put_blob("source", b"def f():\n    return 1\n")
    h2 = backend.put_blob("source", b"def f():\n    return 1\n")
    h3 = backend.put_blob("source", b"def f():\n    return 2\n")
    assert h1 == h2 != h3
    assert backend.get_blob("source", h1) == b"def f():\n    return 1\n"
    assert count_blobs(backend, "source") == 2
    with pytest.raises(KeyError):
        backend.get_blob("source", "0" * 32)


def test_blob_bytes_come_back_as_they_were(backend):
    data = bytes(range(256)) * 10 + b"\x80\x04\x95"  # pickle-like bytes: never unpickled
    for kind in ("pickle", "environment"):
        assert backend.get_blob(kind, backend.put_blob(kind, data)) == data


def test_blob_over_sixteen_megabytes_round_trips(backend):
    data = (b"experigraph" * 2_000_000)[:20_000_000] + b"end"
    blob_hash = backend.put_blob("pickle", data)
    assert backend.put_blob("pickle", data) == blob_hash
    assert backend.get_blob("pickle", blob_hash) == data
    assert count_blobs(backend, "pickle") == 1


# -- impurity ------------------------------------------------------------------------
def test_swap_output_hash_returns_what_it_replaced(backend):
    assert backend.swap_output_hash("step:c:i:1", "h1") is None
    assert backend.swap_output_hash("step:c:i:1", "h1") == "h1"
    assert backend.swap_output_hash("step:c:i:1", "h2") == "h1"
    assert backend.swap_output_hash("step:c:i:1", "h3") == "h2"


def test_swap_output_hashes_batched(backend):
    assert backend.swap_output_hashes({}) == {}
    assert backend.swap_output_hashes({"a": "1", "b": "2"}) == {"a": None, "b": None}
    assert backend.swap_output_hashes({"a": "1", "b": "3", "c": "4"}) == {
        "a": "1", "b": "2", "c": None}
    assert backend.swap_output_hash("b", "5") == "3"


# -- metrics -------------------------------------------------------------------------
def test_metrics_keep_write_order_and_types(backend):
    for epoch in range(30):
        backend.append_metric(1, "loss", epoch, 1.0 / (epoch + 1))
    backend.append_metric(1, "acc", 0, 0.5)
    backend.append_metric(1, "when", dt.datetime(2024, 1, 1, tzinfo=UTC), (1, 2))
    backend.append_metric(2, "loss", 0, float("nan"))
    points = backend.read_metric(1, "loss")
    assert [e for e, _ in points] == list(range(30))
    assert points[3] == (3, 0.25)
    assert backend.read_metric(1, "when") == [(dt.datetime(2024, 1, 1, tzinfo=UTC), (1, 2))]
    assert backend.metric_keys(1) == ["acc", "loss", "when"]
    assert backend.metric_keys(3) == [] and backend.read_metric(3, "loss") == []
    (epoch, value), = backend.read_metric(2, "loss")
    assert epoch == 0 and value != value


# -- experiments ---------------------------------------------------------------------
def test_experiment_ids_lists_the_experiment(backend, make):
    backend.start_trial(lambda i: record(backend, i))
    other = make(experiment_id="other")
    other.start_trial(lambda i: record(other, i))
    ids = backend.experiment_ids()
    assert backend.experiment_id in ids and other.experiment_id in ids
    assert other.trial_ids() == [1] and backend.trial_ids() == [1]


# -- pickling --------------------------------------------------------------------------
def test_pickled_backend_is_its_configuration_and_works(backend):
    backend.start_trial(lambda i: record(backend, i))
    data = pickle.dumps(backend)
    assert len(data) < 1000
    copy = pickle.loads(data)
    assert type(copy) is type(backend) and copy.uri == backend.uri
    assert copy.experiment_id == backend.experiment_id
    assert copy.read_trial(1) == backend.read_trial(1)
    assert copy.next_trial_id() == 2
    assert backend.last_trial_id() == 2


def test_pickled_backend_works_in_another_process(backend, kind):
    other_process_only(kind)
    backend.start_trial(lambda i: record(backend, i))
    code = SUBPROCESS_PRELUDE + """
b = backend_from_arg(sys.argv[1])
print(b.read_trial(1).parameters["a"], b.next_trial_id(), b.experiment_id)
"""
    proc = subprocess.run([sys.executable, "-c", code, backend_to_arg(backend)],
                          env=python_env(), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["1", "2", backend.experiment_id]
    assert backend.last_trial_id() == 2


# -- through an Experiment --------------------------------------------------------------
def quickstart(backend):
    ex = xg.Experiment(id=backend.experiment_id, backend=backend)
    a = ex.parameter("a")
    b = ex.parameter("b", default=2)

    @ex
    def prepare_data(a, b):
        return a + b

    @ex.result
    def calculate_score(s):
        ex.save_metric("score", 0, 10 / s)
        ex.save_metric("score", 1, 20 / s)
        return 10 / s

    return ex, calculate_score(prepare_data(a, b))


def test_history_of_a_few_trials(backend):
    ex, s = quickstart(backend)
    ex.set_parameters(a=1, b=2)
    assert s.compute() == pytest.approx(10 / 3)
    ex.set_parameters(b=3).compute()
    ex.set_parameters(a=3, b=2).compute()
    history = ex.get_history()
    assert list(history.index) == [1, 2, 3]
    assert history["a"].tolist() == [1, 1, 3] and history["b"].tolist() == [2, 3, 2]
    assert history["Result"].tolist() == pytest.approx([10 / 3, 2.5, 2.0])
    assert history["Success"].all()
    assert ex.trial_id == 3
    assert ex.get_parameters(2) == {"a": 1, "b": 3}
    assert "def prepare_data" in ex.get_code(1)


def test_failed_trial_is_recorded_and_reraised(backend):
    ex, s = quickstart(backend)
    ex.set_parameters(a=-2, b=2)
    with pytest.raises(ZeroDivisionError):
        s.compute()
    ex.set_parameters(a=1).compute()
    history = ex.get_history(verbose=True)
    assert history["Success"].tolist() == [False, True]
    assert history["Status"].tolist() == ["failed", "succeeded"]
    assert "ZeroDivisionError" in history.loc[1, "Description"]


def test_metrics_through_the_experiment(backend):
    ex, s = quickstart(backend)
    ex.set_parameters(a=1, b=1).compute()
    ex.set_parameters(a=3, b=2).compute()
    frame = ex.load_metric("score", [1, 2])
    assert list(frame.index) == [0, 1]
    assert frame[1].tolist() == [5.0, 10.0] and frame[2].tolist() == [2.0, 4.0]
    assert ex.load_metric("score", 1)[1].tolist() == [5.0, 10.0]


def test_persisted_objects_round_trip(backend):
    ex = xg.Experiment(id=backend.experiment_id, backend=backend)
    n = ex.parameter("n")

    @ex.persist
    def make_table(n):
        return {"rows": list(range(n)), "name": ("t", n)}

    @ex.result
    def size(table):
        return len(table["rows"])

    r = size(make_table(n))
    ex.set_parameters(n=3)
    assert r.compute() == 3
    ex.set_parameters(n=5)
    assert r.compute() == 5
    assert ex.get_persisted("make_table", 1) == {"rows": [0, 1, 2], "name": ("t", 3)}
    assert ex.get_persisted("make_table", 2)["name"] == ("t", 5)


def test_a_new_experiment_object_loads_the_history(backend, make):
    ex, s = quickstart(backend)
    ex.set_parameters(a=1, b=2).compute()
    again, s2 = quickstart(make(experiment_id="contract"))
    assert again.trial_id == 1
    again.set_parameters(a=2).compute()
    assert list(again.get_history().index) == [1, 2]
    assert list(ex.get_history().index) == [1, 2]


RELOAD = SUBPROCESS_PRELUDE + """
import experigraph as xg
backend = backend_from_arg(sys.argv[1])
ex = xg.Experiment(id=backend.experiment_id, backend=backend)
a = ex.parameter("a")
@ex.result
def double(a):
    return a * 2
double(a)
before = ex.trial_id
ex.set_parameters(a=21).compute()
print(before, ex.trial_id, list(ex.get_history().index))
"""


def test_reloading_in_a_new_process_continues_the_ids(backend, kind):
    other_process_only(kind)
    ex, s = quickstart(backend)
    ex.set_parameters(a=1, b=2).compute()
    ex.set_parameters(a=2).compute()
    proc = subprocess.run([sys.executable, "-c", RELOAD, backend_to_arg(backend)],
                          env=dict(python_env(), EXPERIGRAPH_LOG_LEVEL="WARNING"),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "2 3 [1, 2, 3]"
    assert ex.get_history().loc[3, "Result"] == 42


WRITER = SUBPROCESS_PRELUDE + """
import experigraph as xg
backend = backend_from_arg(sys.argv[1])
me = int(sys.argv[2])
ex = xg.Experiment(id=backend.experiment_id, backend=backend)
w = ex.parameter("worker"); i = ex.parameter("i")
@ex.persist
def make(worker, i):
    return {"worker": worker, "i": i}
@ex.result
def tag(m):
    return [ex.current_trial_id, m["worker"] * 1000 + m["i"]]
r = tag(make(w, i))
for n in range(int(sys.argv[3])):
    ex.set_parameters(worker=me, i=n)
    own, value = r.compute(scheduler="sync")
    mine = {"worker": me, "i": n}
    # after every compute, everything read back is this process's own trial
    assert ex.trial_id == own, ("trial_id", ex.trial_id, own)
    assert ex.get_parameters() == mine, ex.get_parameters()
    assert ex.get_parameters(ex.trial_id) == mine, ex.get_parameters(ex.trial_id)
    assert ex.get_persisted("make", ex.trial_id) == mine
    assert ex.get_trial(ex.trial_id).result == [own, me * 1000 + n]
"""


@pytest.mark.slow
def test_four_processes_write_one_hundred_trials(backend, kind):
    other_process_only(kind)
    arg = backend_to_arg(backend)
    env = dict(python_env(), EXPERIGRAPH_LOG_LEVEL="WARNING")
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, arg, str(w), "25"], env=env,
                              stderr=subprocess.PIPE, text=True) for w in range(4)]
    for p in procs:
        _, err = p.communicate(timeout=240)
        assert p.returncode == 0, err
    ex = xg.Experiment(id=backend.experiment_id, backend=backend)
    history = ex.get_history()
    assert list(history.index) == list(range(1, 101))
    assert history["Success"].all()
    # each trial's result names its own id, and every (worker, i) ran exactly once
    assert [own for own, _ in history["Result"]] == list(range(1, 101))
    assert sorted(v for _, v in history["Result"]) == sorted(
        w * 1000 + i for w in range(4) for i in range(25))
    for trial_id, row in history.iterrows():
        assert row["Result"][1] == row["worker"] * 1000 + row["i"]
    assert ex.trial_id == 100 == ex.latest_trial_id
    assert backend.next_trial_id() == 101


def test_output_hashes_can_be_read_without_changing_them(backend):
    assert backend.read_output_hashes(["k1", "k2"]) == {"k1": None, "k2": None}
    backend.swap_output_hashes({"k1": "h1"})
    assert backend.read_output_hashes(["k1", "k2"]) == {"k1": "h1", "k2": None}
    assert backend.read_output_hashes(["k1"]) == {"k1": "h1"}
    assert backend.read_output_hashes([]) == {}




def test_crafted_pickle_is_refused_and_never_unpickled(backend, tmp_path):
    import pickle

    from experigraph.errors import SignatureError

    ex = xg.Experiment(id=backend.experiment_id, backend=backend)
    a = ex.parameter("a")

    @ex.persist
    def keep(a):
        return a

    @ex.result
    def out(k):
        return k

    out(keep(a))
    ex.set_parameters(a=1).compute()
    marker = tmp_path / "pwned"
    forged = backend.put_blob("pickle", pickle.dumps(Marker(str(marker))))
    record = backend.read_trial(1)
    steps = tuple(s if s.step != "keep" else dataclasses.replace(s, persisted=forged)
                  for s in record.steps)
    backend.write_trial(record.replace(steps=steps))
    fresh = xg.Experiment(id=backend.experiment_id, backend=backend)
    with pytest.raises(SignatureError, match="EXPERIGRAPH_SECRET_KEY"):
        fresh.get_persisted("keep", 1)
    assert not marker.exists()


# -- a lost or stale id counter never costs a record (issue 9, finding 1) -------------------
def lose_counter(backend, value: int | None = None) -> None:
    """Lose the trial id counter (``value=None``) or set it back to ``value``, as a server
    restarted without its counter, a ``DEL``, or a restore from an older copy would.

    The file backend has no stored counter: its per-object hint of the highest id is the
    nearest thing, and is set back the same way.
    """
    name = "FileBackend" if isinstance(backend, FileBackend) else type(backend).__name__
    if name == "FileBackend":
        backend._id_hint = value or 0
    elif name == "RedisBackend":
        if value is None:
            backend._redis().delete(backend._key("next_id"))
        else:
            backend._redis().set(backend._key("next_id"), value)
    elif name == "MongoBackend":
        if value is None:
            backend._db().counters.delete_one({"_id": backend.experiment_id})
        else:
            backend._db().counters.update_one({"_id": backend.experiment_id},
                                              {"$set": {"trial_id": value}})
    else:
        raise AssertionError(f"no way to lose the counter of a {name}")


def forget_record(backend, trial_id: int) -> None:
    """Remove a stored record, as a store that lost its data would."""
    name = "FileBackend" if isinstance(backend, FileBackend) else type(backend).__name__
    if name == "FileBackend":
        (backend.path / "trials" / f"{trial_id}.json").unlink()
    elif name == "RedisBackend":
        backend._redis().hdel(backend._key("trials"), str(trial_id))
    elif name == "MongoBackend":
        backend._db().trials.delete_one({"_id": backend._id(trial_id)})
    else:
        raise AssertionError(f"no way to forget a record of a {name}")


def stored_json(backend) -> dict[int, dict]:
    return {r.trial_id: r.to_json() for r in backend.read_trials()}


@pytest.mark.parametrize("counter", [None, 0, 1, 2], ids=["missing", "zero", "behind1",
                                                          "behind2"])
def test_a_lost_or_behind_counter_never_replaces_a_record(backend, counter):
    for _ in range(3):
        backend.start_trial(lambda i: record(backend, i))
    before = stored_json(backend)
    lose_counter(backend, counter)
    assert backend.last_trial_id() >= 3  # repaired from the highest recorded id on read too
    fourth = backend.start_trial(lambda i: record(backend, i, parameters={"a": "new"}))
    fifth = backend.start_trial(lambda i: record(backend, i, parameters={"a": "newer"}))
    assert (fourth.trial_id, fifth.trial_id) == (4, 5)
    after = stored_json(backend)
    assert {i: after[i] for i in (1, 2, 3)} == before
    assert backend.read_trial(4).parameters == {"a": "new"}
    assert backend.trial_ids() == [1, 2, 3, 4, 5]
    assert backend.last_trial_id() == 5


def test_a_lost_counter_is_repaired_for_reserved_ids_too(backend):
    for _ in range(2):
        backend.start_trial(lambda i: record(backend, i))
    lose_counter(backend)
    assert backend.experiment_id in backend.experiment_ids()  # still listed (CLI list)
    assert backend.next_trial_id() == 3
    assert backend.trial_ids() == [1, 2]
    assert [r.parameters["a"] for r in backend.read_trials()] == [1, 2]


def test_create_trial_never_replaces_a_record(backend):
    mine = record(backend, 1, parameters={"a": "mine"})
    theirs = record(backend, 1, parameters={"a": "theirs"}, pid=4242)
    assert backend.create_trial(mine) is True
    assert backend.create_trial(theirs) is False
    assert backend.read_trial(1) == mine
    assert backend.trial_ids() == [1]
    assert backend.last_trial_id() >= 1


def test_finish_trial_replaces_only_its_own_record(backend, caplog):
    ours = backend.start_trial(lambda i: record(backend, i, pid=111))
    done = backend.finish_trial(ours.replace(status=Status.SUCCEEDED, result=10))
    assert done.trial_id == ours.trial_id == 1
    assert backend.read_trial(1).result == 10

    # the store lost trial 2's running record and another process claimed id 2
    running = backend.start_trial(lambda i: record(backend, i, pid=111))
    forget_record(backend, 2)
    theirs = record(backend, 2, parameters={"a": "theirs"}, pid=222)
    assert backend.create_trial(theirs)
    with caplog.at_level(logging.WARNING, logger="experigraph"):
        moved = backend.finish_trial(running.replace(status=Status.SUCCEEDED, result=20))
    assert moved.trial_id == 3 and moved.result == 20 and moved.pid == 111
    assert backend.read_trial(2) == theirs
    assert backend.read_trial(3) == moved
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "Trial 2" in warnings[0] and "trial 3" in warnings[0]

    # the store lost trial 4's running record and nobody took the id: it keeps it
    lost = backend.start_trial(lambda i: record(backend, i, pid=111))
    forget_record(backend, lost.trial_id)
    kept = backend.finish_trial(lost.replace(status=Status.FAILED))
    assert kept.trial_id == lost.trial_id == 4
    assert backend.read_trial(4).status is Status.FAILED
    assert backend.trial_ids() == [1, 2, 3, 4]


def test_experiments_continue_after_a_lost_counter(backend, make):
    ex, s = quickstart(backend)
    for a in (1, 2, 3):
        ex.set_parameters(a=a, b=2).compute()
    before = ex.get_history()
    lose_counter(backend)
    again, s2 = quickstart(make(experiment_id="contract"))
    assert again.trial_id == 3
    again.set_parameters(a=4, b=2).compute()
    again.set_parameters(a=5, b=2).compute()
    history = again.get_history()
    assert list(history.index) == [1, 2, 3, 4, 5]
    assert history.loc[[1, 2, 3], "a"].tolist() == [1, 2, 3]
    assert history.loc[[1, 2, 3], "Result"].tolist() == before["Result"].tolist()
    assert history.loc[[4, 5], "a"].tolist() == [4, 5]


# -- an unreadable record is skipped with one WARNING, wherever it is (issue 9, finding 2) ---
@pytest.mark.parametrize("how", ["torn", "empty", "garbage"])
@pytest.mark.parametrize("position", [1, 2, 3], ids=["first", "middle", "latest"])
def test_unreadable_record_is_skipped_with_one_warning(backend, make, position, how, caplog):
    ex, s = quickstart(backend)
    for a in (1, 2, 3):
        ex.set_parameters(a=a, b=2).compute()
    where = corrupt(backend, position, how)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="experigraph"):
        again, s2 = quickstart(make(experiment_id="contract"))  # opens: no error
        assert again.trial_id == 3
        history = again.get_history()
        assert list(again.get_history().index) == list(history.index)
        again.set_parameters(a=4, b=2).compute()  # the latest trial is the previous one
        assert again.backend.last_trial().trial_id == 4
        with pytest.raises(CorruptRecordError, match="cannot be read"):
            again.get_trial(position)
        after = again.get_history()
    kept = [i for i in (1, 2, 3) if i != position]
    assert list(history.index) == kept
    assert history["a"].tolist() == kept
    assert list(after.index) == [*kept, 4]  # the new trial never reuses the unreadable id
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len([w for w in warnings if where in w]) == 1, warnings
    assert not [w for w in warnings if where not in w], warnings


def test_unreadable_record_the_counter_points_at(backend, make, caplog):
    ex, s = quickstart(backend)
    for a in (1, 2):
        ex.set_parameters(a=a, b=2).compute()
    where = corrupt(backend, 2, "garbage")
    lose_counter(backend)  # the counter is repaired from the highest record: the bad one
    with caplog.at_level(logging.WARNING, logger="experigraph"):
        again, s2 = quickstart(make(experiment_id="contract"))
        assert again.trial_id == 2
        again.set_parameters(a=3, b=2).compute()
    assert list(again.get_history().index) == [1, 3]
    assert sum(where in m for m in caplog.messages) == 1


def test_finish_trial_never_replaces_an_unreadable_record(backend, caplog):
    running = backend.start_trial(lambda i: record(backend, i))
    where = corrupt(backend, running.trial_id, "garbage")
    with caplog.at_level(logging.WARNING, logger="experigraph"):
        moved = backend.finish_trial(running.replace(status=Status.SUCCEEDED, result=1))
    assert moved.trial_id == 2 and backend.read_trial(2) == moved
    with pytest.raises(CorruptRecordError):
        backend.read_trial(1)  # left as it was
    assert sum(where in m for m in caplog.messages) == 1
    assert any("recorded as trial 2" in m for m in caplog.messages)
