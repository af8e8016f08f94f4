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
         "for i in range(300): b.swap_output_hashes({f'p{i}': 'h'})\n", str(tmp_path)],
        env=python_env())

    def work(t):
        for i in range(300):
            backend.swap_output_hashes({f"t{t}-{i}": f"h{i}"})

    with caplog.at_level(logging.WARNING), ThreadPoolExecutor(8) as pool:
        list(pool.map(work, range(8)))
    assert other.wait(120) == 0
    keys = [f"t{t}-{i}" for t in range(8) for i in range(300)] + [f"p{i}" for i in range(300)]
    assert set(backend.read_output_hashes(keys).values()) != {None}
    assert None not in backend.read_output_hashes(keys).values()
    fresh = FileBackend(tmp_path, "race")
    assert None not in fresh.read_output_hashes(keys).values()
    assert "torn" not in caplog.text
    lines = (tmp_path / "race" / "outputs.jsonl").read_text().splitlines()
    assert len(lines) == len(keys) and all(json.loads(line) for line in lines)


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
