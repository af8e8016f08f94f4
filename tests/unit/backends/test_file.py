"""File backend specifics: layout, id claims, and the impurity index under concurrency."""
from __future__ import annotations

import json
import logging
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

from experigraph.backends.file import FileBackend
from xg_testing import python_env


def test_impurity_index_under_threads_and_processes(tmp_path, caplog):
    backend = FileBackend(tmp_path, "race")
    other = subprocess.Popen(
        [sys.executable, "-c",
         "import sys; from experigraph.backends.file import FileBackend\n"
         "b = FileBackend(sys.argv[1], 'race')\n"
         "for i in range(300): b.index_swap('outputs', {f'p{i}': 'h'})\n", str(tmp_path)],
        env=python_env())

    def work(t):
        for i in range(300):
            backend.index_swap("outputs", {f"t{t}-{i}": f"h{i}"})

    with caplog.at_level(logging.WARNING), ThreadPoolExecutor(8) as pool:
        list(pool.map(work, range(8)))
    assert other.wait(120) == 0
    keys = [f"t{t}-{i}" for t in range(8) for i in range(300)] + [f"p{i}" for i in range(300)]
    assert set(backend.index_read("outputs", keys).values()) != {None}
    assert None not in backend.index_read("outputs", keys).values()
    fresh = FileBackend(tmp_path, "race")
    assert None not in fresh.index_read("outputs", keys).values()
    assert "torn" not in caplog.text
    lines = (tmp_path / "race" / "outputs.jsonl").read_text().splitlines()
    assert len(lines) == len(keys) and all(json.loads(line) for line in lines)


def test_a_torn_index_line_does_not_swallow_the_next_writers_line(tmp_path, caplog):
    """A writer killed in the middle of its line leaves it without a newline; the next
    line appended must not be glued to it (it would be skipped as torn with it)."""
    backend = FileBackend(tmp_path, "torn")
    backend.index_swap("outputs", {"a": "1"})
    with open(tmp_path / "torn" / "outputs.jsonl", "ab") as f:
        f.write(b'{"k":"out:b","h":')  # the killed writer's half line
    with caplog.at_level(logging.WARNING):
        assert backend.index_swap("outputs", {"c": "3"}) == {"c": None}
        fresh = FileBackend(tmp_path, "torn")
        assert fresh.index_read("outputs", ["a", "b", "c"]) == {"a": "1", "b": None, "c": "3"}
        assert backend.index_read("outputs", ["a", "b", "c"]) == {"a": "1", "b": None, "c": "3"}
        backend.index_swap("outputs", {"d": "4"})  # appended after the repaired line
        assert FileBackend(tmp_path, "torn").index_read("outputs", ["c", "d"]) == {
            "c": "3", "d": "4"}
    assert "torn line" in caplog.text  # the half line is named, and skipped


def test_the_key_index_follows_an_experiment_deleted_and_made_again(tmp_path):
    """A backend object keeps outputs.jsonl open; when another one deletes the experiment
    and a third writes it anew, the first writes to the new file, not the deleted one,
    and no longer answers from the deleted history."""
    first = FileBackend(tmp_path, "again")
    first.index_swap("outputs", {"k1": "h1"})
    assert FileBackend(tmp_path, "again").delete_experiment() > 0
    third = FileBackend(tmp_path, "again")
    third.index_swap("outputs", {"j": "new"})
    assert first.index_swap("outputs", {"k2": "h2"}) == {"k2": None}
    fresh = FileBackend(tmp_path, "again")
    assert fresh.index_read("outputs", ["k1", "k2", "j"]) == {"k1": None, "k2": "h2", "j": "new"}
    assert first.index_read("outputs", ["k1", "j"]) == {"k1": None, "j": "new"}
    lines = (tmp_path / "again" / "outputs.jsonl").read_text().splitlines()
    assert [json.loads(line)["k"] for line in lines] == ["out:j", "out:k2"]


def test_claims_skip_taken_ids_with_their_own_content(tmp_path):
    first, second = FileBackend(tmp_path, "ids"), FileBackend(tmp_path, "ids")
    assert first.next_trial_id() == 1
    assert second.next_trial_id() == 2  # its hint was stale: it moved on, without a gap
    assert first.next_trial_id() == 3
    assert sorted(p.name for p in (tmp_path / "ids" / "trials").iterdir()) == [
        "1.json", "2.json", "3.json"]


def test_started_record_always_carries_its_own_id(tmp_path):
    import datetime as dt

    from experigraph.records import Status, TrialRecord

    first, second = FileBackend(tmp_path, "ids"), FileBackend(tmp_path, "ids")
    first.next_trial_id()
    second.next_trial_id()
    first.next_trial_id()  # second's hint (2) is now stale

    def make(trial_id):
        return TrialRecord(experiment_id="ids", trial_id=trial_id, status=Status.RUNNING,
                           parameters={}, seed=1, started=dt.datetime.now(dt.timezone.utc))

    record = second.start_trial(make)
    assert record.trial_id == 4
    on_disk = json.loads((tmp_path / "ids" / "trials" / "4.json").read_text())
    assert on_disk["trial_id"] == 4
    assert [p.name for p in (tmp_path / "ids" / "trials").glob(".*")] == []


def test_a_reserved_id_is_a_marker_and_an_empty_record_is_reported(tmp_path, caplog):
    import pytest

    from experigraph.errors import CorruptRecordError, TrialIDNotFoundError

    backend = FileBackend(tmp_path, "marks")
    assert backend.next_trial_id() == 1  # reserved only: a small marker, not an empty file
    reserved = tmp_path / "marks" / "trials" / "1.json"
    assert json.loads(reserved.read_text()) == {"reserved": True}
    with pytest.raises(TrialIDNotFoundError, match="reserved"):
        backend.read_trial(1)
    assert backend.trial_ids() == []

    empty = tmp_path / "marks" / "trials" / "2.json"
    empty.write_bytes(b"")  # e.g. left by a power cut after a rename that was never synced
    with caplog.at_level(logging.WARNING, logger="experigraph"):
        with pytest.raises(CorruptRecordError, match="empty"):
            backend.read_trial(2)
        assert backend.read_trials() == []
    assert backend.trial_ids() == [2]  # listed (it is a record), then skipped when read
    messages = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(messages) == 1 and str(empty) in messages[0], messages
    assert backend.next_trial_id() == 3  # neither id is claimed again


def test_the_key_index_keeps_the_layout_of_earlier_versions(tmp_path):
    """outputs.jsonl holds "<namespace prefix>:<key>" lines, as the one output-hash index
    of earlier versions did: a store written by them is read as it is (no migration)."""
    store = tmp_path / "old" / "outputs.jsonl"
    store.parent.mkdir()
    store.write_text('{"k":"out:prep:c0de:1n","h":"0u7 3 0"}\n'
                     '{"k":"taint:prep:c0de","h":"impurity in trial 2"}\n'
                     '{"k":"cache:prep:c0de:1n","h":"e1"}\n'
                     '{"k":"cache-code:prep:1n","h":"c0de"}\n'
                     '{"k":"cache-step:prep","h":"c0de"}\n'
                     '{"k":"data:prep:1n:/d.csv","h":"f1"}\n')
    backend = FileBackend(tmp_path, "old")
    assert backend.index_read_many({
        "outputs": ["prep:c0de:1n"], "taint": ["prep:c0de"], "cache": ["prep:c0de:1n"],
        "cache-code": ["prep:1n"], "cache-step": ["prep"], "data": ["prep:1n:/d.csv"]}) == {
        "outputs": {"prep:c0de:1n": "0u7 3 0"}, "taint": {"prep:c0de": "impurity in trial 2"},
        "cache": {"prep:c0de:1n": "e1"}, "cache-code": {"prep:1n": "c0de"},
        "cache-step": {"prep": "c0de"}, "data": {"prep:1n:/d.csv": "f1"}}
    assert backend.index_swap("taint", {"next:c0de": "impurity in trial 3"}) == {
        "next:c0de": None}
    assert json.loads(store.read_text().splitlines()[-1]) == {
        "k": "taint:next:c0de", "h": "impurity in trial 3"}


def test_index_keys_of_any_text_are_read_back_by_another_process(tmp_path):
    """Keys with non-ASCII text, a line separator inside, or a surrogate-escaped byte
    (a path that is not UTF-8) each stay on one line of outputs.jsonl and read back as
    written, by a new backend object (which reads the file from the start)."""
    keys = {"data:prep:1n:/d\u00e9j\u00e0/\u00fc.csv": "f1", "out:\u6b65:c:i": "h1",
            "out:sep\u2028\u0085:c:i": "h2", "data:prep:1n:/x\udcff.csv": "f2"}
    writer = FileBackend(tmp_path, "text")
    assert writer.index_swap("outputs", keys) == dict.fromkeys(keys)
    lines = (tmp_path / "text" / "outputs.jsonl").read_bytes().split(b"\n")
    assert len(lines) == len(keys) + 1 and lines[-1] == b""
    reader = FileBackend(tmp_path, "text")
    assert reader.index_read("outputs", list(keys)) == keys
    assert reader.index_swap("outputs", {k: "new" for k in keys}) == keys


def test_streams_keep_the_layout_of_step_records_and_metrics(tmp_path):
    backend = FileBackend(tmp_path, "layout")
    backend.append_metric(3, "val/loss", 0, 0.5)
    backend.append_stream(3, "steps", ['{"n":1}'])
    assert (tmp_path / "layout" / "metrics" / "3" / "val%2Floss.jsonl").read_text() == (
        '{"epoch":0,"value":0.5}\n')
    assert (tmp_path / "layout" / "steps" / "3.jsonl").read_text() == '{"n":1}\n'
    assert backend.metric_keys(3) == ["val/loss"]


def test_a_stream_file_is_parsed_at_once_and_line_by_line_when_a_line_is_odd(tmp_path, caplog):
    """A stream's file is parsed as one JSON array of its lines; a line that is not one
    whole item (two items on a line, a blank line, a torn last line) sends it line by
    line, where only that line is skipped, with a warning."""
    backend = FileBackend(tmp_path, "odd")
    backend.append_metric_points(1, "loss", [(0, 0.5), (1, 0.25)])
    assert backend.read_stream_parsed(1, "metric:loss") == [
        {"epoch": 0, "value": 0.5}, {"epoch": 1, "value": 0.25}]
    path = tmp_path / "odd" / "metrics" / "1" / "loss.jsonl"
    for odd in ('{"epoch":2,"value":2},{"epoch":3,"value":3}\n',  # parses, as 2 items
                "\n   \n",
                '{"epoch":4,"val'):
        with path.open("a") as f:
            f.write(odd)
        assert backend.read_stream_parsed(1, "metric:loss") is None
        with caplog.at_level(logging.WARNING, logger="experigraph"):
            assert backend.read_metric(1, "loss") == [(0, 0.5), (1, 0.25)]
    assert sum("metric point 2 of trial 1" in m for m in caplog.messages) == 3
    assert backend.read_stream_parsed(1, "metric:none") == []
    # line by line, lines end at "\n" only: a string may hold U+2028 or U+0085 as it is
    backend.append_metric_points(1, "text", [(0, "a\u2028b\x85c")])
    (tmp_path / "odd" / "metrics" / "1" / "text.jsonl").open("a").write('{"epoch":1,"va')
    assert backend.read_stream_parsed(1, "metric:text") is None
    assert backend.read_metric(1, "text") == [(0, "a\u2028b\x85c")]


def test_delete_experiment_removes_its_directory_only(tmp_path):
    gone, kept = FileBackend(tmp_path, "gone"), FileBackend(tmp_path, "kept")
    for backend in (gone, kept):
        backend.next_trial_id()
        backend.put_blob("source", b"x")
    assert gone.delete_experiment() == 3  # experiment.json, the reserved id, the blob
    assert not (tmp_path / "gone").exists() and (tmp_path / "kept" / "trials" / "1.json").exists()
    assert gone.delete_experiment() == 0


def test_the_index_lock_excludes_other_processes_and_forked_children(tmp_path):
    """The key index's lock is an flock on a descriptor opened once per process; a forked
    child opens its own (a shared descriptor would share the lock)."""
    import multiprocessing
    import time as _time

    from experigraph.backends.file import ProcessLock

    lock = ProcessLock(tmp_path / "outputs.lock")
    marks = tmp_path / "marks"

    def hold(name):
        with lock:
            with open(marks, "a") as f:
                f.write(f"{name}+\n")
            _time.sleep(0.3)
            with open(marks, "a") as f:
                f.write(f"{name}-\n")

    with lock:  # the parent's descriptor is open (and locked) before the children fork
        pass
    context = multiprocessing.get_context("fork")
    children = [context.Process(target=hold, args=(f"c{i}",)) for i in range(3)]
    for child in children:
        child.start()
    hold("parent")
    for child in children:
        child.join(30)
    lines = marks.read_text().split()
    assert len(lines) == 8
    for start in range(0, 8, 2):  # never two holders at once: + and - alternate per holder
        assert lines[start].endswith("+") and lines[start + 1] == lines[start][:-1] + "-"
    lock.close()
