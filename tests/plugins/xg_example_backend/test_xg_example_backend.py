"""The example plugin's own tests, written as the authors of a backend package write
theirs: experigraph's contract suite, run by subclassing it.

(A real plugin imports its backend at the top of the module. Here the import is in
the fixture: other tests of experigraph install this module from temporary
directories and unload it again, and a pickled backend must find the class it was
made from.)
"""
from __future__ import annotations

import pytest

from experigraph.testing import backend_contract


class TestExampleBackend(backend_contract.BackendContract):
    @pytest.fixture
    def make_backend(self, tmp_path):
        from xg_example_backend import ExampleBackend

        made = []

        def make(experiment_id="test"):
            made.append(ExampleBackend.from_uri(f"examplefs://{tmp_path / 'store'}",
                                                experiment_id))
            return made[-1]

        yield make
        for backend in made:
            backend.close()

    # the hooks that reach into the store: this backend keeps the file backend's layout
    def corrupt_record(self, backend, trial_id, how="torn"):
        path = backend.path / "trials" / f"{trial_id}.json"
        path.write_bytes({"torn": path.read_bytes()[:40], "empty": b"",
                          "garbage": b"garbage\n"}[how])
        return str(path)

    def forget_record(self, backend, trial_id):
        (backend.path / "trials" / f"{trial_id}.json").unlink()

    def lose_counter(self, backend, value=None):
        backend._id_hint = value or 0  # no stored counter: the object's hint stands for it

    def count_blobs(self, backend, kind):
        return sum(1 for p in (backend.path / "blobs" / kind).rglob("*") if p.is_file())

    # what the store hooks above rely on, checked as a plugin's authors would
    def test_records_are_files_where_the_hooks_look(self, make_backend):
        import pickle

        from experigraph.records import Status, TrialRecord, now

        backend = make_backend()
        record = backend.start_trial(lambda trial_id: TrialRecord(
            experiment_id="test", trial_id=trial_id, status=Status.RUNNING,
            parameters={}, seed=1, started=now(), claim="c"))
        assert (backend.path / "trials" / f"{record.trial_id}.json").is_file()
        assert self.count_blobs(backend, "source") == 0
        backend.put_blob("source", b"print(1)\n")
        assert self.count_blobs(backend, "source") == 1
        again = pickle.loads(pickle.dumps(backend))
        assert type(again).__name__ == "ExampleBackend" and again.uri == backend.uri
        assert again.read_trial(record.trial_id).claim == "c"
