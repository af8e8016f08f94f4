"""The backend contract suite: what a user can observe through any backend, tested once.

Every backend, experigraph's own and a third party's, passes it. A package that
adds a backend (an ``experigraph.backends`` entry point, see "Extending
experigraph" in the README) runs it from its own tests by subclassing
:class:`BackendContract` and overriding one fixture, ``make_backend``::

    # test_my_backend.py (in the plugin's own tests)
    import pytest
    from experigraph.testing import backend_contract
    from my_package import MyBackend

    class TestMyBackend(backend_contract.BackendContract):
        @pytest.fixture
        def make_backend(self, tmp_path):
            made = []
            def make(experiment_id="test"):
                made.append(MyBackend(tmp_path / "store", experiment_id))
                return made[-1]
            yield make
            for backend in made:
                backend.delete_experiment()

pytest collects every ``test_*`` method of the subclass (about 60 tests). The
class itself is not collected: its name does not start with ``Test``.

``make_backend(experiment_id=...)`` returns a backend for that experiment in a
store of this test only; two calls with one id give two objects on the same
data (as two processes would have). Tests that need more than the public API
call four hooks, each of which skips its tests until it is overridden:
``corrupt_record`` (tear a stored record as a crash or a hand edit would),
``forget_record`` (lose one), ``lose_counter`` (lose or set back the trial id
counter) and ``count_blobs``. Set ``other_processes = False`` when a pickled
copy of the backend cannot see the data from another process (an in-memory
store), which skips the multi-process tests.

This module imports pytest; experigraph itself never imports it, so pytest is
needed only where the tests run.
"""
from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import logging
import os
import pickle
import subprocess
import sys
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import experigraph as xg
from experigraph.backends.base import INDEX_NAMESPACES, Backend
from experigraph.errors import (CorruptRecordError, InvalidArgumentError, SignatureError,
                                TrialIDNotFoundError)
from experigraph.records import (DriftEvent, Status, StepRecord, TrialRecord, TrialSummary,
                                 Unrepresentable, history_row, row_of)

UTC = dt.timezone.utc
#: ``make_backend(experiment_id=...)``: a backend for that experiment, in this test's store
MakeBackend = Callable[..., Backend]


# -- helpers, also for tests of other processes ---------------------------------------
class Marker:
    """Unpickling this creates a file: proof that a payload was loaded."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple[object, ...]:
        return (open, (self.path, "w"))


def python_env(**extra: str) -> dict[str, str]:
    """The environment for a Python subprocess that imports what this process imports
    (experigraph and the backend's package, from wherever they are found here)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    env.update(extra)
    return env


def backend_to_arg(backend: Backend) -> str:
    """A backend as one command-line argument (its pickled configuration, base64)."""
    return base64.b64encode(pickle.dumps(backend)).decode("ascii")


#: prepend to a subprocess script: ``backend = backend_from_arg(sys.argv[1])``
SUBPROCESS_PRELUDE = """
import base64, pickle, sys
def backend_from_arg(text):
    return pickle.loads(base64.b64decode(text))
"""


def record(backend: Backend, trial_id: int, **changes: Any) -> TrialRecord:
    """A running trial's record for ``backend``'s experiment, with ``changes``."""
    base = TrialRecord(experiment_id=backend.experiment_id, trial_id=trial_id,
                       status=Status.RUNNING, parameters={"a": trial_id}, seed=7,
                       started=dt.datetime(2024, 5, 1, 12, 0, tzinfo=UTC))
    return base.replace(**changes) if changes else base


def step(name: str, trial_id: int, n: int = 0) -> StepRecord:
    """A succeeded step record of ``trial_id``."""
    return StepRecord(step=name, key=f"{name}-{n}", trial_ids=(trial_id,), code_hash="c0de",
                      input_hash="1n", output_hash="0u7",
                      started=dt.datetime(2024, 5, 1, 12, 0, n, tzinfo=UTC), duration=0.5,
                      succeeded=True, metrics={"acc": 0.9}, labels={"tag": "x"})


def stored_json(backend: Backend) -> dict[int, dict[str, Any]]:
    return {r.trial_id: r.to_json() for r in backend.read_trials()}


def quickstart(backend: Backend) -> tuple[Any, Any]:
    """The quickstart experiment on ``backend``: (ex, result), with a metric curve."""
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

PARAMETERS = {
    "int": 3, "float": 0.25, "nan": float("nan"), "inf": float("-inf"), "str": "héllo ✓",
    "none": None, "bool": True, "list": [1, "a", None], "tuple": (1, (2, 3)),
    "dict": {"x": 1, "$odd": 2}, "intkeys": {1: "one", 2: "two"},
    "when": dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC), "dotted.name": "x",
    "object": Unrepresentable("<object at 0x1>", "builtins.object"),
}


class BackendContract:
    """The contract suite as a base class: subclass it as ``Test<YourBackend>`` and
    override the ``make_backend`` fixture (see the module docstring).

    Attributes
    ----------
    other_processes : bool
        Whether a pickled copy of the backend sees the same data in another process
        (False for an in-memory store: the multi-process tests are skipped).
    """

    other_processes: bool = True

    # -- what a subclass provides ----------------------------------------------------
    @pytest.fixture
    def make_backend(self) -> MakeBackend:
        """``make(experiment_id=...)`` -> a backend for that experiment in a store of this
        test only; override it (and clean up what it made after the test)."""
        raise TypeError(f"{type(self).__name__} must override the make_backend fixture "
                        "(see experigraph.testing.backend_contract).")

    def corrupt_record(self, backend: Backend, trial_id: int, how: str = "torn") -> str:
        """Tear the stored record of ``trial_id`` as a crash or a hand edit would (``how``:
        ``torn`` (cut short), ``empty`` or ``garbage``); return a piece of text that the
        unreadable record's error and WARNING name (its path, key or id)."""
        pytest.skip(f"{type(self).__name__} does not override corrupt_record")

    def forget_record(self, backend: Backend, trial_id: int) -> None:
        """Remove the stored record of ``trial_id``, as a store that lost data would."""
        pytest.skip(f"{type(self).__name__} does not override forget_record")

    def lose_counter(self, backend: Backend, value: int | None = None) -> None:
        """Lose the trial id counter (``value=None``) or set it back to ``value``, as a
        server restarted without it, a delete, or a restore from an older copy would
        (a backend without a stored counter sets back what stands for it)."""
        pytest.skip(f"{type(self).__name__} does not override lose_counter")

    def count_blobs(self, backend: Backend, kind: str) -> int:
        """How many blobs of ``kind`` the store holds (to see that one is stored once)."""
        pytest.skip(f"{type(self).__name__} does not override count_blobs")

    # -- fixtures of the suite ---------------------------------------------------------
    @pytest.fixture
    def backend(self, make_backend: MakeBackend) -> Iterator[Backend]:
        b = make_backend(experiment_id="contract")
        yield b
        b.close()

    def require_other_processes(self) -> None:
        if not self.other_processes:
            pytest.skip(f"{type(self).__name__}.other_processes is False: another process "
                        "cannot see this backend's data")

    # -- ids -----------------------------------------------------------------------------
    def test_ids_start_at_one_and_never_repeat(self, backend):
        assert backend.last_trial_id() == 0
        assert [backend.next_trial_id() for _ in range(3)] == [1, 2, 3]
        assert backend.last_trial_id() == 3

    def test_another_backend_object_continues_the_ids(self, backend, make_backend):
        backend.next_trial_id()
        backend.next_trial_id()
        other = make_backend(experiment_id="contract")
        assert other.experiment_id == backend.experiment_id
        assert other.last_trial_id() == 2
        assert other.next_trial_id() == 3
        assert backend.next_trial_id() == 4

    def test_start_trial_reserves_an_id_and_writes_the_running_record(self, backend):
        first = backend.start_trial(lambda i: record(backend, i))
        second = backend.start_trial(lambda i: record(backend, i))
        assert (first.trial_id, second.trial_id) == (1, 2)
        assert backend.read_trial(2) == second
        assert backend.read_trial(2).status is Status.RUNNING
        assert backend.trial_ids() == [1, 2]

    # -- records -------------------------------------------------------------------------
    def test_full_record_round_trips(self, backend):
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

    def test_failed_record_round_trips(self, backend):
        trial_id = backend.next_trial_id()
        failed = record(backend, trial_id, status=Status.FAILED, description="ZeroDivisionError()",
                        error={"type": "ZeroDivisionError", "message": "division by zero",
                               "traceback": "Traceback...\n"})
        backend.write_trial(failed)
        assert backend.read_trial(trial_id) == failed

    def test_write_trial_replaces_the_record(self, backend):
        running = backend.start_trial(lambda i: record(backend, i))
        backend.write_trial(running.replace(status=Status.SUCCEEDED, result=5))
        assert backend.read_trial(running.trial_id).result == 5
        assert backend.trial_ids() == [running.trial_id]

    def test_unknown_trial_names_the_id(self, backend):
        with pytest.raises(TrialIDNotFoundError, match=r"\b42\b"):
            backend.read_trial(42)
        assert not backend.has_trial(42)

    def test_reserved_but_unwritten_id_is_not_a_trial(self, backend):
        backend.next_trial_id()
        with pytest.raises(TrialIDNotFoundError, match=r"\b1\b"):
            backend.read_trial(1)
        assert backend.trial_ids() == []
        assert backend.last_trial() is None

    def test_torn_record_is_an_error_and_history_skips_it(self, backend, caplog):
        for _ in range(3):
            backend.start_trial(lambda i: record(backend, i))
        where = self.corrupt_record(backend, 2)
        with pytest.raises(CorruptRecordError, match="cannot be read") as info:
            backend.read_trial(2)
        assert where in str(info.value)
        with caplog.at_level(logging.WARNING, logger="experigraph"):
            records = backend.read_trials()
        assert [r.trial_id for r in records] == [1, 3]
        assert any(where in r.getMessage() and r.levelno == logging.WARNING
                   for r in caplog.records)
        assert not backend.has_trial(2)

    def test_summaries_are_those_of_the_readable_records(self, backend, caplog):
        for a in range(4):
            running = backend.start_trial(lambda i: record(backend, i, claim=f"claim-{i}"))
            backend.finish_trial(running.replace(
                status=Status.SUCCEEDED, result=(a, "x"), metrics={"m": a}, labels={"l": "y"},
                drift=(DriftEvent("code", "s", "m", ("-a", "+b")),), description=f"d{a}"))
        backend.start_trial(lambda i: record(backend, i))  # 5 is still running
        backend.write_trial(backend.read_trial(4).replace(description="written again"))
        where = self.corrupt_record(backend, 2)
        self.forget_record(backend, 3)
        with caplog.at_level(logging.WARNING, logger="experigraph"):
            summaries = backend.read_summaries()
        assert [s.trial_id for s in summaries] == [1, 4, 5]
        assert summaries == [TrialSummary.of(r) for r in backend.read_trials()]
        assert summaries[0].result == (0, "x") and summaries[0].drift_kinds == ("code",)
        assert summaries[1].description == "written again"
        assert summaries[2].status is Status.RUNNING
        assert sum(where in r.getMessage() for r in caplog.records) == 1
        assert backend.read_summaries() == summaries  # read again: the same

    def test_a_digest_of_the_summaries_changes_whenever_they_could(self, backend):
        """``read_summaries_keyed``: the summaries ``read_summaries`` gives, and a digest
        (or None) that differs after every change the summaries could show."""
        def finished(description: str) -> None:
            running = backend.start_trial(lambda i: record(backend, i, claim=f"claim-{i}"))
            backend.finish_trial(running.replace(status=Status.SUCCEEDED, result=1,
                                                 description=description))

        finished("one")
        finished("two")
        seen = []
        for change in (lambda: None,
                       lambda: finished("three"),
                       lambda: backend.write_trial(backend.read_trial(2).replace(
                           description="owt")),  # the same length: still another digest
                       lambda: backend.write_trial(backend.read_trial(1).replace(
                           result=(2, "a tuple now")))):
            change()
            key, summaries = backend.read_summaries_keyed(None)
            assert summaries == backend.read_summaries()
            if key is None:
                continue  # a backend that makes no digest is asked for the summaries each time
            assert key not in seen
            seen.append(key)
            assert backend.read_summaries_keyed(key) == (key, None)  # unchanged: not decoded
            other, again = backend.read_summaries_keyed("not " + key)
            assert other == key and again == summaries
        if seen:
            backend.start_trial(lambda i: record(backend, i))  # a running trial
            key, summaries = backend.read_summaries_keyed(seen[-1])
            assert key != seen[-1] and summaries == backend.read_summaries()
            assert summaries[-1].status is Status.RUNNING

    def test_summary_rows_are_the_summaries_as_decode_makes_them(self, backend):
        """``read_summary_rows``: what ``decode`` makes of each summary's JSON form, with
        the digest of ``read_summaries_keyed``; the history's rows are those of the
        summaries."""
        for a in range(3):
            running = backend.start_trial(lambda i: record(backend, i, claim=f"claim-{i}"))
            backend.finish_trial(running.replace(
                status=Status.SUCCEEDED if a != 1 else Status.FAILED, result=(a, "x"),
                metrics={"m": a}, labels={"l": "y"}, description=f"d{a}",
                finished=dt.datetime(2026, 1, 2, 3, 4, a, tzinfo=UTC)))
        for running in (False, True):
            if running:
                backend.start_trial(lambda i: record(backend, i))  # 4 is still running
            key, summaries = backend.read_summaries_keyed(None)
            assert summaries is not None
            assert [s.trial_id for s in summaries] == [1, 2, 3, 4][:3 + running]
            assert backend.read_summary_rows(TrialSummary.from_json) == (key, summaries)
            rows_key, rows = backend.read_summary_rows(history_row)
            assert rows_key == key
            assert rows == [row_of(s, s if s.status is Status.RUNNING else None)
                            for s in summaries]
            if key is not None:
                assert backend.read_summary_rows(history_row, key) == (key, None)
                assert backend.read_summary_rows(history_row, "not " + key) == (key, rows)

    def test_trial_ids_and_last_trial(self, backend):
        assert backend.trial_ids() == [] and backend.last_trial() is None
        for _ in range(12):
            backend.start_trial(lambda i: record(backend, i))
        backend.next_trial_id()  # reserved, not written
        assert backend.trial_ids() == list(range(1, 13))
        assert backend.last_trial_id() == 13
        assert backend.last_trial().trial_id == 12
        assert [r.trial_id for r in backend.read_trials([3, 11, 99])] == [3, 11]

    # -- step records -------------------------------------------------------------------
    def test_step_records_are_appended_and_read_in_order(self, backend):
        backend.append_step_records(1, [step("a", 1, 0)])
        backend.append_step_records(1, [step("b", 1, 1), step("c", 1, 2)])
        backend.append_step_records(2, [step("z", 2, 0)])
        assert [r.step for r in backend.read_step_records(1)] == ["a", "b", "c"]
        assert backend.read_step_records(1)[0] == step("a", 1, 0)
        assert [r.step for r in backend.read_step_records(2)] == ["z"]
        assert backend.read_step_records(3) == []

    # -- blobs --------------------------------------------------------------------------
    def test_blobs_are_content_addressed_and_stored_once(self, backend):
        h1 = backend.put_blob("source", b"def f():\n    return 1\n")
        h2 = backend.put_blob("source", b"def f():\n    return 1\n")
        h3 = backend.put_blob("source", b"def f():\n    return 2\n")
        assert h1 == h2 != h3
        assert backend.get_blob("source", h1) == b"def f():\n    return 1\n"
        assert self.count_blobs(backend, "source") == 2
        with pytest.raises(KeyError):
            backend.get_blob("source", "0" * 32)

    def test_blob_bytes_come_back_as_they_were(self, backend):
        data = bytes(range(256)) * 10 + b"\x80\x04\x95"  # pickle-like bytes: never unpickled
        for kind in ("pickle", "environment"):
            assert backend.get_blob(kind, backend.put_blob(kind, data)) == data

    def test_blob_over_sixteen_megabytes_round_trips(self, backend):
        data = (b"experigraph" * 2_000_000)[:20_000_000] + b"end"
        blob_hash = backend.put_blob("pickle", data)
        assert backend.put_blob("pickle", data) == blob_hash
        assert backend.get_blob("pickle", blob_hash) == data
        assert self.count_blobs(backend, "pickle") == 1

    # -- the key index ------------------------------------------------------------------
    def test_index_swap_returns_what_it_replaced(self, backend):
        assert backend.index_swap("outputs", {"step:c:i": "h1"}) == {"step:c:i": None}
        assert backend.index_swap("outputs", {"step:c:i": "h1"}) == {"step:c:i": "h1"}
        assert backend.index_swap("outputs", {"step:c:i": "h2"}) == {"step:c:i": "h1"}
        assert backend.index_swap("outputs", {"step:c:i": "h3"}) == {"step:c:i": "h2"}

    def test_index_swap_is_batched(self, backend):
        assert backend.index_swap("outputs", {}) == {}
        assert backend.index_swap("outputs", {"a": "1", "b": "2"}) == {"a": None, "b": None}
        assert backend.index_swap("outputs", {"a": "1", "b": "3", "c": "4"}) == {
            "a": "1", "b": "2", "c": None}
        assert backend.index_swap("outputs", {"b": "5"}) == {"b": "3"}

    def test_index_can_be_read_without_changing_it(self, backend):
        assert backend.index_read("outputs", ["k1", "k2"]) == {"k1": None, "k2": None}
        backend.index_swap("outputs", {"k1": "h1"})
        assert backend.index_read("outputs", ["k1", "k2"]) == {"k1": "h1", "k2": None}
        assert backend.index_read("outputs", ["k1"]) == {"k1": "h1"}
        assert backend.index_read("outputs", []) == {}

    def test_index_namespaces_are_separate(self, backend):
        for n, namespace in enumerate(INDEX_NAMESPACES):
            assert backend.index_swap(namespace, {"step:k": f"v{n}"}) == {"step:k": None}
        assert backend.index_read_many({ns: ["step:k"] for ns in INDEX_NAMESPACES}) == {
            ns: {"step:k": f"v{n}"} for n, ns in enumerate(INDEX_NAMESPACES)}
        assert backend.index_swap_many({"taint": {"step:k": "t"}, "cache": {"x": "c"}}) == {
            "taint": {"step:k": "v2"}, "cache": {"x": None}}
        assert backend.index_read("taint", ["step:k"]) == {"step:k": "t"}
        assert backend.index_read("outputs", ["step:k"]) == {"step:k": "v0"}

    @pytest.mark.parametrize("namespace", ["output", "", "OUTPUTS", None])
    def test_an_unknown_index_namespace_is_refused(self, backend, namespace):
        for call in (lambda: backend.index_swap(namespace, {"k": "v"}),
                     lambda: backend.index_swap(namespace, {}),
                     lambda: backend.index_read(namespace, ["k"])):
            with pytest.raises(InvalidArgumentError,
                               match=rf"Unknown index namespace {namespace!r}.*'outputs'"):
                call()
        assert backend.index_read("outputs", ["k"]) == {"k": None}

    def test_index_keys_are_stored_under_their_namespace_prefix(self, backend):
        # what stores written before namespaces hold ("taint:<step>:<code>", "out:...")
        backend.swap_index_values({"taint:s:c0de": "impurity in trial 1", "out:s:c:i": "h"})
        assert backend.index_read("taint", ["s:c0de"]) == {"s:c0de": "impurity in trial 1"}
        assert backend.index_read("outputs", ["s:c:i"]) == {"s:c:i": "h"}
        backend.index_swap("cache", {"s:c:i": "entry"})
        assert backend.read_index_values(["cache:s:c:i"]) == {"cache:s:c:i": "entry"}

    # -- streams ----------------------------------------------------------------------
    def test_streams_are_appended_and_listed_per_trial(self, backend):
        assert backend.stream_names(1) == [] and backend.read_stream(1, "steps") == []
        backend.append_stream(1, "steps", ['{"n":1}'])
        backend.append_stream(1, "steps", ['{"n":2}', '{"n":3}'])
        backend.append_stream(1, "metric:loss", ['{"epoch":0,"value":1.5}'])
        backend.append_stream(2, "metric:acc", ['{"epoch":0,"value":0.5}'])
        assert backend.read_stream(1, "steps") == ['{"n":1}', '{"n":2}', '{"n":3}']
        assert sorted(backend.stream_names(1)) == ["metric:loss", "steps"]
        assert backend.stream_names(2) == ["metric:acc"]
        assert backend.read_metric(1, "loss") == [(0, 1.5)]

    def test_a_large_append_keeps_every_item_whole_and_in_order(self, backend):
        # more than one write's worth (the file backend writes 64 KiB at most, cut at a
        # line's end), with lines of many lengths and one line longer than a write
        items = [f'{{"n":{i},"pad":"{"x" * (i % 700)}"}}' for i in range(600)]
        items.insert(300, '{"n":-1,"pad":"' + "é" * 70_000 + '"}')
        backend.append_stream(1, "steps", items[:5])
        backend.append_stream(1, "steps", items[5:])
        assert backend.read_stream(1, "steps") == items

    def test_an_unreadable_stream_item_is_skipped_with_a_warning(self, backend, caplog):
        backend.append_step_records(1, [step("a", 1, 0)])
        backend.append_stream(1, "steps", ['{"step": "cut sho'])
        backend.append_step_records(1, [step("b", 1, 1)])
        with caplog.at_level(logging.WARNING, logger="experigraph"):
            assert [r.step for r in backend.read_step_records(1)] == ["a", "b"]
        assert any("step record 1 of trial 1" in m for m in caplog.messages)

    # -- metrics -------------------------------------------------------------------------
    def test_metrics_keep_write_order_and_types(self, backend):
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
    def test_experiment_ids_lists_the_experiment(self, backend, make_backend):
        backend.start_trial(lambda i: record(backend, i))
        other = make_backend(experiment_id="other")
        other.start_trial(lambda i: record(other, i))
        ids = backend.experiment_ids()
        assert backend.experiment_id in ids and other.experiment_id in ids
        assert other.trial_ids() == [1] and backend.trial_ids() == [1]

    def test_delete_experiment_removes_it_and_only_it(self, backend, make_backend):
        other = make_backend(experiment_id="other")
        for b in (backend, other):
            b.start_trial(lambda i: record(b, i))
            b.append_step_records(1, [step("a", 1)])
            b.append_metric(1, "loss", 0, 1.0)
            b.put_blob("source", b"x = 1\n")
            b.index_swap("outputs", {"k": "h"})
        assert backend.delete_experiment() > 0
        fresh = make_backend(experiment_id="contract")
        for b in (backend, fresh):
            assert b.trial_ids() == [] and b.last_trial_id() == 0 and b.last_trial() is None
            assert b.read_step_records(1) == [] and b.metric_keys(1) == []
            assert b.index_read("outputs", ["k"]) == {"k": None}
            with pytest.raises(KeyError):
                b.get_blob("source", other.put_blob("source", b"x = 1\n"))
        assert backend.experiment_id not in other.experiment_ids()
        assert other.experiment_id in other.experiment_ids()
        assert other.read_trial(1) == record(other, 1)
        assert [r.step for r in other.read_step_records(1)] == ["a"]
        assert other.read_metric(1, "loss") == [(0, 1.0)]
        assert other.index_read("outputs", ["k"]) == {"k": "h"}
        assert backend.start_trial(lambda i: record(backend, i)).trial_id == 1  # usable again

    # -- pickling --------------------------------------------------------------------------
    def test_pickled_backend_is_its_configuration_and_works(self, backend):
        backend.start_trial(lambda i: record(backend, i))
        data = pickle.dumps(backend)
        assert len(data) < 1000
        copy = pickle.loads(data)
        assert type(copy) is type(backend) and copy.uri == backend.uri
        assert copy.experiment_id == backend.experiment_id
        assert copy.read_trial(1) == backend.read_trial(1)
        assert copy.next_trial_id() == 2
        assert backend.last_trial_id() == 2

    def test_pickled_backend_works_in_another_process(self, backend):
        self.require_other_processes()
        backend.start_trial(lambda i: record(backend, i))
        code = SUBPROCESS_PRELUDE + (
            "b = backend_from_arg(sys.argv[1])\n"
            "print(b.read_trial(1).parameters['a'], b.next_trial_id(), b.experiment_id)\n")
        proc = subprocess.run([sys.executable, "-c", code, backend_to_arg(backend)],
                              env=python_env(), capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.split() == ["1", "2", backend.experiment_id]
        assert backend.last_trial_id() == 2

    # -- through an Experiment --------------------------------------------------------------
    def test_history_of_a_few_trials(self, backend):
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

    def test_failed_trial_is_recorded_and_reraised(self, backend):
        ex, s = quickstart(backend)
        ex.set_parameters(a=-2, b=2)
        with pytest.raises(ZeroDivisionError):
            s.compute()
        ex.set_parameters(a=1).compute()
        history = ex.get_history(verbose=True)
        assert history["Success"].tolist() == [False, True]
        assert history["Status"].tolist() == ["failed", "succeeded"]
        assert "ZeroDivisionError" in history.loc[1, "Description"]

    def test_metrics_through_the_experiment(self, backend):
        ex, s = quickstart(backend)
        ex.set_parameters(a=1, b=1).compute()
        ex.set_parameters(a=3, b=2).compute()
        frame = ex.load_metric("score", [1, 2])
        assert list(frame.index) == [0, 1]
        assert frame[1].tolist() == [5.0, 10.0] and frame[2].tolist() == [2.0, 4.0]
        assert ex.load_metric("score", 1)[1].tolist() == [5.0, 10.0]

    def test_persisted_objects_round_trip(self, backend):
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

    def test_an_impure_step_is_recorded_in_its_trial_and_a_new_seed_is_not(self, backend,
                                                                           caplog):
        ex = xg.Experiment(id=backend.experiment_id, backend=backend)
        a = ex.parameter("a")
        calls = iter(range(100))

        @ex
        def noisy(a):
            return a + next(calls)  # the same input, another output: impure

        @ex
        def steady(a):
            return 2 * a

        @ex.result
        def total(x, y):
            return x + y

        r = total(noisy(a), steady(a))
        ex.set_parameters(a=1)
        r.compute(seed=3)
        with caplog.at_level(logging.WARNING, logger="experigraph"):
            r.compute(seed=3)
        second = backend.read_trial(2)
        assert second.status is Status.SUCCEEDED and second.result == 4
        assert [(d.kind, d.subject) for d in second.drift] == [("impurity", "noisy")]
        assert any("noisy" in m for m in caplog.messages)
        assert ex.get_trial(2).drift == second.drift
        steady_only = total(steady(a), steady(a))
        steady_only.compute(seed=4)
        steady_only.compute(seed=5)  # the same input under another seed: nothing changed
        assert backend.read_trial(3).drift == () and backend.read_trial(4).drift == ()
        assert backend.read_trial(4).status is Status.SUCCEEDED

    def test_a_new_experiment_object_loads_the_history(self, backend, make_backend):
        ex, s = quickstart(backend)
        ex.set_parameters(a=1, b=2).compute()
        again, s2 = quickstart(make_backend(experiment_id="contract"))
        assert again.trial_id == 1
        again.set_parameters(a=2).compute()
        assert list(again.get_history().index) == [1, 2]
        assert list(ex.get_history().index) == [1, 2]

    def test_reloading_in_a_new_process_continues_the_ids(self, backend):
        self.require_other_processes()
        ex, s = quickstart(backend)
        ex.set_parameters(a=1, b=2).compute()
        ex.set_parameters(a=2).compute()
        proc = subprocess.run([sys.executable, "-c", RELOAD, backend_to_arg(backend)],
                              env=dict(python_env(), EXPERIGRAPH_LOG_LEVEL="WARNING"),
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.strip() == "2 3 [1, 2, 3]"
        assert ex.get_history().loc[3, "Result"] == 42

    def test_four_processes_write_one_hundred_trials(self, backend):
        self.require_other_processes()
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

    def test_crafted_pickle_is_refused_and_never_unpickled(self, backend, tmp_path):
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

    # -- a lost or stale id counter never costs a record ----------------------------------
    @pytest.mark.parametrize("counter", [None, 0, 1, 2], ids=["missing", "zero", "behind1",
                                                              "behind2"])
    def test_a_lost_or_behind_counter_never_replaces_a_record(self, backend, counter):
        for _ in range(3):
            backend.start_trial(lambda i: record(backend, i))
        before = stored_json(backend)
        self.lose_counter(backend, counter)
        assert backend.last_trial_id() >= 3  # repaired from the highest recorded id on read too
        fourth = backend.start_trial(lambda i: record(backend, i, parameters={"a": "new"}))
        fifth = backend.start_trial(lambda i: record(backend, i, parameters={"a": "newer"}))
        assert (fourth.trial_id, fifth.trial_id) == (4, 5)
        after = stored_json(backend)
        assert {i: after[i] for i in (1, 2, 3)} == before
        assert backend.read_trial(4).parameters == {"a": "new"}
        assert backend.trial_ids() == [1, 2, 3, 4, 5]
        assert backend.last_trial_id() == 5

    def test_a_lost_counter_is_repaired_for_reserved_ids_too(self, backend):
        for _ in range(2):
            backend.start_trial(lambda i: record(backend, i))
        self.lose_counter(backend)
        assert backend.experiment_id in backend.experiment_ids()  # still listed (CLI list)
        assert backend.next_trial_id() == 3
        assert backend.trial_ids() == [1, 2]
        assert [r.parameters["a"] for r in backend.read_trials()] == [1, 2]

    def test_create_trial_never_replaces_a_record(self, backend):
        mine = record(backend, 1, parameters={"a": "mine"})
        theirs = record(backend, 1, parameters={"a": "theirs"}, pid=4242)
        assert backend.create_trial(mine) is True
        assert backend.create_trial(theirs) is False
        assert backend.read_trial(1) == mine
        assert backend.trial_ids() == [1]
        assert backend.last_trial_id() >= 1

    def test_finish_trial_replaces_only_its_own_record(self, backend, caplog):
        ours = backend.start_trial(lambda i: record(backend, i, pid=111))
        done = backend.finish_trial(ours.replace(status=Status.SUCCEEDED, result=10))
        assert done.trial_id == ours.trial_id == 1
        assert backend.read_trial(1).result == 10

        # the store lost trial 2's running record and another process claimed id 2
        running = backend.start_trial(lambda i: record(backend, i, pid=111))
        self.forget_record(backend, 2)
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
        self.forget_record(backend, lost.trial_id)
        kept = backend.finish_trial(lost.replace(status=Status.FAILED))
        assert kept.trial_id == lost.trial_id == 4
        assert backend.read_trial(4).status is Status.FAILED
        assert backend.trial_ids() == [1, 2, 3, 4]

    def test_finish_unless_changed_stores_only_when_no_index_value_changed(self, backend,
                                                                           caplog):
        first = backend.start_trial(lambda i: record(backend, i, claim="one"))
        done, olds = backend.finish_trial_unless_changed(
            first.replace(status=Status.SUCCEEDED, result=1),
            {"outputs": {"s:c:1": "h1"}, "data": {"s:1:/f": "f1"}})
        assert olds == {"outputs": {"s:c:1": None}, "data": {"s:1:/f": None}}
        assert done == backend.read_trial(1) and done.result == 1

        second = backend.start_trial(lambda i: record(backend, i, claim="two"))
        done, olds = backend.finish_trial_unless_changed(
            second.replace(status=Status.SUCCEEDED, result=2),
            {"outputs": {"s:c:1": "h1", "s:c:2": "h2"}})
        assert olds == {"outputs": {"s:c:1": "h1", "s:c:2": None}}  # the same value: stored
        assert done is not None and backend.read_trial(2).result == 2
        again = backend.start_trial(lambda i: record(backend, i, claim="again"))
        done, olds = backend.finish_trial_unless_changed(
            again.replace(status=Status.SUCCEEDED, result=2), {"outputs": {"s:c:2": "h2 7 1"}})
        assert olds == {"outputs": {"s:c:2": "h2"}}  # the same first word: stored
        assert done is not None and backend.read_trial(3).result == 2
        backend.index_swap("outputs", {"s:c:2": "h2"})

        third = backend.start_trial(lambda i: record(backend, i, claim="three"))
        done, olds = backend.finish_trial_unless_changed(
            third.replace(status=Status.SUCCEEDED, result=3), {"outputs": {"s:c:1": "h9 7 0"}})
        assert done is None and olds == {"outputs": {"s:c:1": "h1"}}
        assert backend.read_trial(4).status is Status.RUNNING  # the caller records it
        assert backend.index_read("outputs", ["s:c:1"]) == {"s:c:1": "h9 7 0"}  # swapped

        # the store lost trial 5's running record and another process claimed id 5
        fifth = backend.start_trial(lambda i: record(backend, i, claim="five"))
        self.forget_record(backend, 5)
        theirs = record(backend, 5, parameters={"a": "theirs"}, claim="other")
        assert backend.create_trial(theirs)
        with caplog.at_level(logging.WARNING, logger="experigraph"):
            done, _ = backend.finish_trial_unless_changed(
                fifth.replace(status=Status.SUCCEEDED, result=5), {"outputs": {"s:c:5": "h5"}})
        assert done is not None and done.trial_id == 6
        assert backend.read_trial(5) == theirs and backend.read_trial(6).result == 5

    def test_experiments_continue_after_a_lost_counter(self, backend, make_backend):
        ex, s = quickstart(backend)
        for a in (1, 2, 3):
            ex.set_parameters(a=a, b=2).compute()
        before = ex.get_history()
        self.lose_counter(backend)
        again, s2 = quickstart(make_backend(experiment_id="contract"))
        assert again.trial_id == 3
        again.set_parameters(a=4, b=2).compute()
        again.set_parameters(a=5, b=2).compute()
        history = again.get_history()
        assert list(history.index) == [1, 2, 3, 4, 5]
        assert history.loc[[1, 2, 3], "a"].tolist() == [1, 2, 3]
        assert history.loc[[1, 2, 3], "Result"].tolist() == before["Result"].tolist()
        assert history.loc[[4, 5], "a"].tolist() == [4, 5]

    # -- an unreadable record is skipped with one WARNING, wherever it is ------------------
    @pytest.mark.parametrize("how", ["torn", "empty", "garbage"])
    @pytest.mark.parametrize("position", [1, 2, 3], ids=["first", "middle", "latest"])
    def test_unreadable_record_is_skipped_with_one_warning(self, backend, make_backend,
                                                           position, how, caplog):
        ex, s = quickstart(backend)
        for a in (1, 2, 3):
            ex.set_parameters(a=a, b=2).compute()
        where = self.corrupt_record(backend, position, how)
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="experigraph"):
            again, s2 = quickstart(make_backend(experiment_id="contract"))  # opens: no error
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

    def test_unreadable_record_the_counter_points_at(self, backend, make_backend, caplog):
        ex, s = quickstart(backend)
        for a in (1, 2):
            ex.set_parameters(a=a, b=2).compute()
        where = self.corrupt_record(backend, 2, "garbage")
        self.lose_counter(backend)  # the counter is repaired from the highest record: the bad one
        with caplog.at_level(logging.WARNING, logger="experigraph"):
            again, s2 = quickstart(make_backend(experiment_id="contract"))
            assert again.trial_id == 2
            again.set_parameters(a=3, b=2).compute()
        assert list(again.get_history().index) == [1, 3]
        assert sum(where in m for m in caplog.messages) == 1

    def test_finish_trial_never_replaces_an_unreadable_record(self, backend, caplog):
        running = backend.start_trial(lambda i: record(backend, i))
        where = self.corrupt_record(backend, running.trial_id, "garbage")
        with caplog.at_level(logging.WARNING, logger="experigraph"):
            moved = backend.finish_trial(running.replace(status=Status.SUCCEEDED, result=1))
        assert moved.trial_id == 2 and backend.read_trial(2) == moved
        with pytest.raises(CorruptRecordError):
            backend.read_trial(1)  # left as it was
        assert sum(where in m for m in caplog.messages) == 1
        assert any("recorded as trial 2" in m for m in caplog.messages)

    # -- the annotation log (tags, notes, archive), on a stream of trial id 0 ----------
    def test_annotations_are_appended_never_rewritten_and_seen_by_every_copy(
            self, backend, make_backend):
        other = make_backend(experiment_id="contract")
        assert backend.read_annotations() == []
        backend.append_annotation({"action": "tag", "trial_id": 1, "name": "a",
                                   "value": [1, 2]})
        other.append_annotation({"action": "note", "trial_id": 1, "text": "é ok"})
        expected = [{"action": "tag", "trial_id": 1, "name": "a", "value": [1, 2]},
                    {"action": "note", "trial_id": 1, "text": "é ok"}]
        assert backend.read_annotations() == expected
        assert other.read_annotations() == expected
        assert backend.metric_keys(1) == []  # not a metric of any trial

    def test_blobs_are_listed_and_deleted_one_by_one(self, backend):
        kept = backend.put_blob("pickle", b"kept")
        gone = backend.put_blob("pickle", b"gone" * 100)
        backend.put_blob("source", b"x = 1\n")
        listed = backend.blob_hashes("pickle")
        if listed is None:  # a backend may not list its blobs: gc then leaves them alone
            return
        assert sorted(listed) == sorted([kept, gone])
        assert backend.delete_blob("pickle", gone) == 400
        assert backend.delete_blob("pickle", gone) == 0
        assert backend.blob_hashes("pickle") == [kept]
        assert backend.get_blob("pickle", kept) == b"kept"
        with pytest.raises(KeyError):
            backend.get_blob("pickle", gone)
