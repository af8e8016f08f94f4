"""The contract suite (``experigraph.testing.backend_contract``) run against every
backend experigraph ships, and the example plugin by its entry point.

File, redis (a real redis-server), mongomock, the ``examplefs://`` plugin of
``tests/plugins/`` and, when ``EXPERIGRAPH_TEST_MONGO_URI`` is set, a real
MongoDB. The hooks that reach into a store (tear a record, lose the counter)
are written here per backend; backend specifics (file layout, key names,
password masking) live in ``tests/unit/backends/``.
"""
from __future__ import annotations

import pytest

from experigraph.backends import REGISTRY
from experigraph.testing import BackendContract


class FileHooks:
    """The hooks for a backend that stores as FileBackend does (file, examplefs)."""

    def corrupt_record(self, backend, trial_id, how="torn"):
        path = backend.path / "trials" / f"{trial_id}.json"
        path.write_bytes({"torn": path.read_bytes()[:40], "empty": b"",
                          "garbage": b"garbage\n"}[how])
        return str(path)

    def forget_record(self, backend, trial_id):
        (backend.path / "trials" / f"{trial_id}.json").unlink()

    def lose_counter(self, backend, value=None):
        backend._id_hint = value or 0  # no stored counter: its per-object hint is set back

    def count_blobs(self, backend, kind):
        return sum(1 for p in (backend.path / "blobs" / kind).rglob("*") if p.is_file())


_TORN = {"torn": '{"schema": 1, "tri', "empty": "", "garbage": "garbage\n"}


class TestFile(FileHooks, BackendContract):
    @pytest.fixture
    def make_backend(self, make_file_backend):
        return make_file_backend


class TestExamplefs(FileHooks, BackendContract):
    """The example third-party backend, resolved from its ``examplefs://`` URI by entry
    point (its own test, ``tests/plugins/xg_example_backend/``, runs it as a plugin's
    authors would)."""

    @pytest.fixture
    def make_backend(self, make_examplefs_backend):
        return make_examplefs_backend


@pytest.mark.redis
class TestRedis(BackendContract):
    @pytest.fixture
    def make_backend(self, make_redis_backend):
        return make_redis_backend

    def corrupt_record(self, backend, trial_id, how="torn"):
        backend.client().hset(backend.key("trials"), str(trial_id), _TORN[how])
        return f"field {trial_id})"

    def forget_record(self, backend, trial_id):
        backend.client().hdel(backend.key("trials"), str(trial_id))

    def lose_counter(self, backend, value=None):
        if value is None:
            backend.client().delete(backend.key("next_id"))
        else:
            backend.client().set(backend.key("next_id"), value)

    def count_blobs(self, backend, kind):
        return sum(1 for _ in backend.client().scan_iter(match=backend.key("blob", kind, "*")))


class MongoHooks:
    def corrupt_record(self, backend, trial_id, how="torn"):
        backend.database().trials.update_one({"_id": backend.document_id(trial_id)},
                                        {"$set": {"record": _TORN[how]}})
        return repr(backend.document_id(trial_id))

    def forget_record(self, backend, trial_id):
        backend.database().trials.delete_one({"_id": backend.document_id(trial_id)})

    def lose_counter(self, backend, value=None):
        if value is None:
            backend.database().counters.delete_one({"_id": backend.experiment_id})
        else:
            backend.database().counters.update_one({"_id": backend.experiment_id},
                                              {"$set": {"trial_id": value}})

    def count_blobs(self, backend, kind):
        return backend.database().blobs.count_documents({"experiment_id": backend.experiment_id,
                                                    "kind": kind})


class TestMongomock(MongoHooks, BackendContract):
    other_processes = False  # mongomock keeps its data in this process's memory

    @pytest.fixture
    def make_backend(self, make_mongomock_backend):
        return make_mongomock_backend


@pytest.mark.mongodb
class TestMongodb(MongoHooks, BackendContract):
    @pytest.fixture
    def make_backend(self, make_mongodb_backend):
        return make_mongodb_backend


#: the test class that runs the suite for each registered scheme
SCHEME_TESTED_BY = {"file": TestFile, "redis": TestRedis, "rediss": TestRedis,
                    "unix": TestRedis, "mongodb": TestMongodb}


def test_every_registered_scheme_is_in_the_suite():
    missing = [scheme for scheme in REGISTRY
               if not issubclass(SCHEME_TESTED_BY.get(scheme, object), BackendContract)]
    assert not missing, (f"backend scheme(s) {missing} are registered in "
                         "experigraph.backends.REGISTRY but not run by the contract suite: add "
                         "a Test<Name>(BackendContract) class and SCHEME_TESTED_BY entries")


def test_every_hook_is_written_for_every_backend():
    """A hook left at its default skips tests: none of ours may."""
    hooks = ("corrupt_record", "forget_record", "lose_counter", "count_blobs")
    for cls in (TestFile, TestExamplefs, TestRedis, TestMongomock, TestMongodb):
        assert [h for h in hooks if getattr(cls, h) is getattr(BackendContract, h)] == [], cls
