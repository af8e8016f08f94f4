"""MongoDB specifics: URIs, Database objects, indexes, chunked blobs (on mongomock)."""
from __future__ import annotations

import pickle

import pytest

import experigraph as xg
from experigraph.backends import mongo, resolve_backend
from experigraph.backends.mongo import MongoBackend, mask_uri
from experigraph.errors import BackendError
from fixtures_backends import free_port

mongomock = pytest.importorskip("mongomock")
pymongo = pytest.importorskip("pymongo")


@pytest.fixture
def database():
    return mongomock.MongoClient().experigraph_unit


def test_uri_without_database_is_refused():
    with pytest.raises(ValueError, match=r"add /dbname"):
        resolve_backend("mongodb://db.example:27017", "e")
    with pytest.raises(ValueError, match=r"add /dbname"):
        resolve_backend("mongodb://ana:s3cret@db.example:27017/", "e")


def test_uri_masks_the_password():
    b = resolve_backend("mongodb://ana:s3cret@db.example:27017/lab", "e")
    assert isinstance(b, MongoBackend)
    assert b.uri == "mongodb://ana:***@db.example:27017/lab"
    assert "s3cret" not in repr(b)
    assert mask_uri("mongodb://db.example/lab") == "mongodb://db.example/lab"


def test_unreachable_server_is_a_backend_error_with_the_masked_uri(experiment_id):
    port = free_port()
    uri = f"mongodb://ana:s3cret@127.0.0.1:{port}/lab?serverSelectionTimeoutMS=200"
    with pytest.raises(BackendError) as info:
        xg.Experiment(id=experiment_id, backend=uri)
    message = str(info.value)
    assert f"mongodb://ana:***@127.0.0.1:{port}/lab" in message and "s3cret" not in message
    assert "MongoDB server is running" in message
    assert isinstance(info.value.__cause__, pymongo.errors.PyMongoError)


def test_backend_pickles_as_its_uri_and_connects_lazily():
    b = MongoBackend(f"mongodb://127.0.0.1:{free_port()}/lab", "lazy")  # nothing listens
    copy = pickle.loads(pickle.dumps(b))
    assert copy.uri == b.uri and copy.experiment_id == "lazy"


def test_database_object_is_accepted(database, experiment_id):
    ex = xg.Experiment(id=experiment_id, backend=database)
    assert isinstance(ex.backend, MongoBackend)
    a = ex.parameter("a")

    @ex.result
    def ident(a):
        return a

    ident(a)
    ex.set_parameters(a=3).compute()
    assert ex.get_history()["Result"].tolist() == [3]
    doc = database.trials.find_one({"experiment_id": experiment_id})
    assert doc["trial_id"] == 1 and isinstance(doc["record"], str)
    assert database.counters.find_one({"_id": experiment_id})["trial_id"] == 1


def test_database_object_pickles_as_host_port_and_name(database):
    b = MongoBackend.from_object(database, "e")
    cls, (location, experiment_id) = b.__reduce__()
    assert cls is MongoBackend and experiment_id == "e"
    assert location["uri"] == "mongodb://localhost:27017/experigraph_unit"
    real = pymongo.MongoClient(f"mongodb://127.0.0.1:{free_port()}", connect=False,
                               serverSelectionTimeoutMS=200)
    b = resolve_backend(real.lab, "e")
    assert b.__reduce__()[1][0] == {"uri": f"mongodb://127.0.0.1:{b.uri.split(':')[2]}"}
    with pytest.raises(BackendError, match="running"):
        b.next_trial_id()
    real.close()


def test_indexes_are_created_on_first_use(database):
    b = MongoBackend.from_object(database, "e")
    assert "trials" not in database.list_collection_names()
    b.last_trial_id()
    indexed = {name: [tuple(k for k, _ in spec["key"])
                      for spec in database[name].index_information().values()]
               for name in ("trials", "steps", "metrics", "blob_chunks")}
    assert ("experiment_id", "trial_id") in indexed["trials"]
    assert ("experiment_id", "trial_id") in indexed["steps"]
    assert ("experiment_id", "trial_id", "key") in indexed["metrics"]
    assert ("blob", "n") in indexed["blob_chunks"]


def test_documents_carry_the_experiment_id(database):
    b = MongoBackend.from_object(database, "one")
    other = MongoBackend.from_object(database, "two")
    for backend in (b, other):
        backend.start_trial(lambda i, backend=backend: _record(backend, i))
        backend.append_metric(1, "loss", 0, 1.0)
        backend.put_blob("source", b"same bytes")
    assert database.trials.count_documents({}) == 2
    assert database.blobs.count_documents({"experiment_id": "one"}) == 1
    assert sorted(database.metrics.distinct("experiment_id")) == ["one", "two"]
    assert b.experiment_ids() == ["one", "two"]
    assert b.delete_experiment() == 4  # counter, trial, metric point, blob
    assert other.trial_ids() == [1] and b.trial_ids() == []


def test_the_key_index_and_metrics_keep_their_documents(database):
    """``outputs`` documents have ``_id`` "<experiment>:<namespace prefix>:<key>" (as the
    one output-hash index of earlier versions), metric points their epoch and value as
    JSON text each: what earlier versions wrote is read as it is."""
    b = MongoBackend.from_object(database, "docs")
    database.outputs.insert_one({"_id": "docs:taint:prep:c0de", "experiment_id": "docs",
                                 "output_hash": "impurity in trial 2"})
    database.metrics.insert_one({"experiment_id": "docs", "trial_id": 1, "key": "loss",
                                 "epoch": "0", "value": "0.5"})
    assert b.index_read("taint", ["prep:c0de"]) == {"prep:c0de": "impurity in trial 2"}
    b.index_swap("cache", {"prep:c:i": "e"})
    assert database.outputs.find_one({"_id": "docs:cache:prep:c:i"})["output_hash"] == "e"
    b.append_metric(1, "loss", 1, 0.25)
    assert b.read_metric(1, "loss") == [(0, 0.5), (1, 0.25)]
    assert database.metrics.find_one({"epoch": "1"})["value"] == "0.25"


def test_big_blob_is_chunked_below_the_document_limit(database, monkeypatch):
    monkeypatch.setattr(mongo, "CHUNK_SIZE", 1000)
    b = MongoBackend.from_object(database, "big")
    data = bytes(range(256)) * 20  # 5120 bytes -> 6 chunks
    blob_hash = b.put_blob("pickle", data)
    assert b.get_blob("pickle", blob_hash) == data
    chunks = list(database.blob_chunks.find({}))
    assert len(chunks) == 6 and max(len(c["data"]) for c in chunks) == 1000
    assert b.put_blob("pickle", data) == blob_hash
    assert database.blob_chunks.count_documents({}) == 6


def test_incomplete_chunked_blob_is_never_returned_partly(database, monkeypatch):
    monkeypatch.setattr(mongo, "CHUNK_SIZE", 1000)
    b = MongoBackend.from_object(database, "torn")
    blob_hash = b.put_blob("pickle", b"x" * 3500)
    database.blob_chunks.delete_one({"n": 2})
    with pytest.raises(KeyError, match="incomplete"):
        b.get_blob("pickle", blob_hash)


def test_real_twenty_megabyte_blob(database):
    b = MongoBackend.from_object(database, "real")
    data = b"\x00\x01" * 10_000_000
    assert b.get_blob("pickle", b.put_blob("pickle", data)) == data
    assert database.blob_chunks.count_documents({}) == 3  # 8 + 8 + 4 MB


def test_huge_trial_record_is_kept(database, monkeypatch):
    monkeypatch.setattr(mongo, "CHUNK_SIZE", 1000)
    b = MongoBackend.from_object(database, "huge")
    record = _record(b, b.next_trial_id()).replace(description="d" * 5000)
    b.write_trial(record)
    assert b.read_trial(1) == record
    assert "record_blob" in database.trials.find_one({})


def test_ids_come_from_one_atomic_counter_update(database, monkeypatch):
    """(mongomock's find_one_and_update is not atomic across threads; MongoDB's is.)"""
    calls = []
    original = type(database.counters).find_one_and_update

    def spy(self, *args, **kwargs):
        calls.append((args, kwargs))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(type(database.counters), "find_one_and_update", spy)
    b = MongoBackend.from_object(database, "counter")
    assert [b.next_trial_id(), b.next_trial_id()] == [1, 2]
    (args, kwargs), _ = calls
    assert args == ({"_id": "counter"}, {"$inc": {"trial_id": 1}})
    assert kwargs["upsert"] is True
    assert kwargs["return_document"] is pymongo.ReturnDocument.AFTER


def _record(backend, trial_id):
    import datetime as dt

    from experigraph.records import Status, TrialRecord

    return TrialRecord(experiment_id=backend.experiment_id, trial_id=trial_id,
                       status=Status.RUNNING, parameters={"a": 1}, seed=1,
                       started=dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc))
