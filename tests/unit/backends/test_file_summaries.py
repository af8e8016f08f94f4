"""The file backend's summary index (``summaries.jsonl``): a cache the history reads in one
go, never the truth. Missing, torn, stale or forged lines cost a record read, never a
lost or misattributed trial; two writer processes leave it complete."""
from __future__ import annotations

import datetime as dt
import json
import logging
import os
import subprocess
import sys

import pytest

from experigraph.backends.file import SUMMARIES, FileBackend, write_atomic
from experigraph.records import Status, TrialRecord, TrialSummary, history_row, row_of
from xg_testing import python_env

UTC = dt.timezone.utc


def finished(backend, a, **fields):
    """Claim a trial and finish it (result ``a * 10``), as a trial's lifecycle does."""
    running = backend.start_trial(lambda i: TrialRecord(
        experiment_id=backend.experiment_id, trial_id=i, status=Status.RUNNING,
        parameters={"a": a}, seed=1, started=dt.datetime(2026, 1, 1, tzinfo=UTC),
        claim=f"claim-{a}"))
    return backend.finish_trial(running.replace(
        status=Status.SUCCEEDED, result=a * 10, result_type="int", process_time=0.5,
        finished=dt.datetime(2026, 1, 1, 0, 1, tzinfo=UTC), **fields))


def expected(backend):
    return [TrialSummary.of(r) for r in backend.read_trials()]


def lines(backend):
    path = backend.path / SUMMARIES
    return path.read_text().splitlines() if path.exists() else []


def records_read(backend, monkeypatch):
    """Count the record files the backend reads (the index spares the others)."""
    read: list[int] = []
    original = FileBackend.read_signed

    def load(self, trial_id):
        read.append(trial_id)
        return original(self, trial_id)

    monkeypatch.setattr(FileBackend, "read_signed", load)
    return read


def test_finished_trials_are_summarised_and_read_from_the_index(tmp_path, monkeypatch):
    backend = FileBackend(tmp_path, "s")
    for a in range(5):
        finished(backend, a, metrics={"acc": a / 10}, labels={"m": "x"})
    running = backend.start_trial(lambda i: TrialRecord(
        experiment_id="s", trial_id=i, status=Status.RUNNING, parameters={"a": 9}, seed=1,
        started=dt.datetime(2026, 1, 1, tzinfo=UTC)))
    assert [json.loads(line)["id"] for line in lines(backend)] == [1, 2, 3, 4, 5]
    read = records_read(backend, monkeypatch)
    summaries = FileBackend(tmp_path, "s").read_summaries()
    assert read == [running.trial_id]  # a running trial has no line: its record is read
    assert summaries == expected(backend)
    assert [s.result for s in summaries] == [0, 10, 20, 30, 40, None]


def test_a_missing_index_is_rebuilt_from_the_records(tmp_path, monkeypatch):
    backend = FileBackend(tmp_path, "s")
    for a in range(4):
        finished(backend, a)
    (backend.path / SUMMARIES).unlink()
    assert FileBackend(tmp_path, "s").read_summaries() == expected(backend)
    assert sorted(json.loads(line)["id"] for line in lines(backend)) == [1, 2, 3, 4]
    read = records_read(backend, monkeypatch)
    again = FileBackend(tmp_path, "s").read_summaries()
    assert read == []
    assert again == expected(backend)


def test_torn_lines_are_skipped_and_their_trials_read(tmp_path, caplog):
    backend = FileBackend(tmp_path, "s")
    for a in range(3):
        finished(backend, a)
    path = backend.path / SUMMARIES
    text = path.read_text().splitlines()
    path.write_text(text[0] + "\n" + text[1][:30] + "\n" + "garbage\n" + text[2] + "\n")
    with caplog.at_level(logging.WARNING):
        assert FileBackend(tmp_path, "s").read_summaries() == expected(backend)
    assert not caplog.records  # a torn index line is no user's concern


def test_a_record_replaced_behind_the_index_is_read_as_it_now_is(tmp_path):
    backend = FileBackend(tmp_path, "s")
    for a in range(3):
        finished(backend, a)
    path = backend.path / "trials" / "2.json"
    edited = json.loads(path.read_text())
    edited["parameters"] = {"a": 77}
    edited["description"] = "edited by hand"
    write_atomic(path, json.dumps(edited).encode())  # a new file in place: a stale line
    summaries = FileBackend(tmp_path, "s").read_summaries()
    assert [s.parameters["a"] for s in summaries] == [0, 77, 2]
    assert summaries[1].description == "edited by hand"


@pytest.mark.parametrize("how", ["truncated", "same size"])
def test_a_record_changed_in_place_is_never_shown_from_the_index(tmp_path, caplog, how):
    backend = FileBackend(tmp_path, "s")
    for a in range(3):
        finished(backend, a)
    path = backend.path / "trials" / "2.json"
    data = path.read_bytes()
    with open(path, "r+b") as f:  # same inode
        if how == "truncated":
            f.truncate(40)
        else:
            f.write(data.replace(b'"a": 1', b'"a": 5', 1))
    with caplog.at_level(logging.WARNING):
        summaries = FileBackend(tmp_path, "s").read_summaries()
    if how == "truncated":
        assert [s.trial_id for s in summaries] == [1, 3]
        assert sum(str(path) in r.getMessage() for r in caplog.records) == 1
    else:
        assert [s.parameters["a"] for s in summaries] == [0, 5, 2]


@pytest.mark.parametrize("damage", [{"status": "done"}, {"seed": None},
                                    {"parameters": ["a"]}, {"finished": "noon"}],
                         ids=lambda d: next(iter(d)))
def test_a_line_that_is_no_summary_is_read_from_the_record(tmp_path, monkeypatch, damage):
    """A whole line with its file's signature whose summary cannot be one: the history
    (its rows read straight from the lines, or the summaries) shows the record."""
    backend = FileBackend(tmp_path, "s")
    for a in range(3):
        finished(backend, a)
    items = [json.loads(line) for line in lines(backend)]
    items[1]["summary"].update(damage)
    (backend.path / SUMMARIES).write_text("".join(json.dumps(i) + "\n" for i in items))
    summaries = expected(backend)
    read = records_read(backend, monkeypatch)
    _, rows = FileBackend(tmp_path, "s").read_summary_rows(history_row)
    assert read == [2]
    assert rows == [row_of(s) for s in summaries]
    (backend.path / SUMMARIES).write_text("".join(json.dumps(i) + "\n" for i in items))
    assert FileBackend(tmp_path, "s").read_summaries() == summaries
    assert read == [2, 2]


def test_a_line_naming_another_trials_file_is_not_used(tmp_path):
    backend = FileBackend(tmp_path, "s")
    for a in range(3):
        finished(backend, a)
    first, second, third = (json.loads(line) for line in lines(backend))
    forged = dict(second, id=3)  # trial 2's summary and signature, filed under id 3
    with open(backend.path / SUMMARIES, "a") as f:
        f.write(json.dumps(forged) + "\n")
    summaries = FileBackend(tmp_path, "s").read_summaries()
    assert [(s.trial_id, s.parameters["a"]) for s in summaries] == [(1, 0), (2, 1), (3, 2)]


def test_a_mostly_stale_index_is_rewritten(tmp_path):
    backend = FileBackend(tmp_path, "s")
    for a in range(3):
        finished(backend, a)
    path = backend.path / SUMMARIES
    stale = [dict(json.loads(line), sig=[0, 0, 0]) for line in lines(backend)]
    path.write_text("".join(json.dumps(s) + "\n" for s in stale * 60))  # 180 dead lines
    assert FileBackend(tmp_path, "s").read_summaries() == expected(backend)
    assert sorted(json.loads(line)["id"] for line in lines(backend)) == [1, 2, 3]


WRITER = """
import datetime as dt, sys
from experigraph.backends.file import FileBackend
from experigraph.records import Status, TrialRecord
b = FileBackend(sys.argv[1], "two")
for n in range(25):
    r = b.start_trial(lambda i: TrialRecord(
        experiment_id="two", trial_id=i, status=Status.RUNNING,
        parameters={"writer": sys.argv[2], "n": n}, seed=1,
        started=dt.datetime.now(dt.timezone.utc), claim=f"{sys.argv[2]}-{n}"))
    b.finish_trial(r.replace(status=Status.SUCCEEDED, result=n,
                             finished=dt.datetime.now(dt.timezone.utc)))
"""


def test_two_writer_processes_leave_the_index_complete(tmp_path, monkeypatch):
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path), w],
                              env=python_env()) for w in ("x", "y")]
    assert [p.wait(120) for p in procs] == [0, 0]
    backend = FileBackend(tmp_path, "two")
    by_id = {}
    for line in lines(backend):
        entry = json.loads(line)
        by_id[entry["id"]] = entry
    assert sorted(by_id) == list(range(1, 51))
    for trial_id, entry in by_id.items():  # each line matches its record file as it is
        st = os.stat(backend.path / "trials" / f"{trial_id}.json")
        assert entry["sig"] == [st.st_ino, st.st_size, st.st_ctime_ns]
    read = records_read(backend, monkeypatch)
    summaries = backend.read_summaries()
    assert read == []
    assert summaries == expected(backend)
    assert sorted((s.parameters["writer"], s.parameters["n"]) for s in summaries) == sorted(
        (w, n) for w in ("x", "y") for n in range(25))
