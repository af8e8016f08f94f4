"""The MongoDB backend: one database, one collection per kind of record.

Collections (every document carries ``experiment_id``)::

    counters      {_id: <experiment_id>, trial_id: <last reserved id>}
    trials        {_id: "<experiment_id>:<trial_id>", experiment_id, trial_id,
                   record: <TrialRecord JSON text>}    (or record_blob: a hash, if huge)
    steps         {experiment_id, trial_id, record: <StepRecord JSON text>}
    metrics       {experiment_id, trial_id, key, epoch: <JSON>, value: <JSON>}
    blobs         {_id: "<experiment_id>:<kind>:<hash>", experiment_id, kind, hash,
                   length, data: <bytes>}            (or chunks: n, data in blob_chunks)
    blob_chunks   {_id: "<blob _id>:<n>", blob, n, data: <bytes>}
    outputs       {_id: "<experiment_id>:<namespace prefix>:<key>", experiment_id,
                   output_hash: <value>}     (the key index: impurity, taints, cache)

Invariants:

* Trial ids come from one atomic ``find_one_and_update`` (``$inc``, upsert,
  ``ReturnDocument.AFTER``) on ``counters``: never repeated across processes.
* A claim never replaces a record: the running record is created with
  ``insert_one`` on its unique ``_id``, which fails if the id has a record. A
  counter that is missing (deleted, a restore without it) or behind (it reaches an
  id that has a record) is repaired with ``$max`` from the highest recorded id
  (an indexed query), so a lost counter costs at worst a skipped id.
* A record is one ``replace_one`` of one document: readers see the old record
  or the new one; it is written over only by the trial that claimed it. Records
  are JSON *text*, so keys such as ``$tuple`` or dotted parameter names need no
  escaping, and nothing read back is unpickled.
* MongoDB refuses documents over 16 MB. Blobs (persisted pickles, sources,
  environment snapshots) over ``CHUNK_SIZE`` are split into ``blob_chunks``
  documents, written before the ``blobs`` document that announces them, so a
  reader never sees half a blob. A huge trial record goes the same way.
* Indexes are created on first use, once per backend object.
* Step records and metric points are read back in ``_id`` order: write order
  for one writer (ObjectIds grow within a process).

The backend pickles as its configuration (the URI; for a ``Database`` object,
the client's host and port and the database name, without credentials) and
connects on first use. Every PyMongo error is raised as ``BackendError`` naming
the (password-masked) URI and what to check.
"""
from __future__ import annotations

import contextlib
import importlib
import json
import logging
import os
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any
from urllib.parse import quote, urlsplit

import pymongo
import pymongo.errors
from pymongo import ReturnDocument, uri_parser

from ..errors import BackendError, CorruptRecordError, TrialIDNotFoundError
from ..hashing import bytes_hash
from ..records import TrialRecord
from .base import METRIC_STREAM, STEPS_STREAM, Backend, mask_uri

logger = logging.getLogger(__name__)

#: blobs larger than this are split into chunks of this size (MongoDB's limit is 16 MB)
CHUNK_SIZE = 8 * 1024 * 1024
#: how long to look for a server before failing (unless the URI sets it)
SERVER_SELECTION_TIMEOUT_MS = 5000
_INDEXES: dict[str, list[list[tuple[str, int]]]] = {
    "trials": [[("experiment_id", 1), ("trial_id", 1)]],
    "steps": [[("experiment_id", 1), ("trial_id", 1)]],
    "metrics": [[("experiment_id", 1), ("trial_id", 1), ("key", 1)]],
    "blob_chunks": [[("blob", 1), ("n", 1)]],
    "blobs": [[("experiment_id", 1)]],
    "outputs": [[("experiment_id", 1)]],
}


def _hint(exc: BaseException) -> str:
    text = str(exc)
    if isinstance(exc, pymongo.errors.OperationFailure) and (
            exc.code in (13, 18) or "auth" in text.lower()):
        return ("Check the user name and password in the URI (mongodb://user:password@host/db), "
                "the authSource option, and that the user may read and write this database.")
    if isinstance(exc, (pymongo.errors.ServerSelectionTimeoutError,
                        pymongo.errors.ConnectionFailure)):
        return ("Check that the MongoDB server is running and reachable at the host and port "
                "of the URI (for example with 'mongosh <uri> --eval \"db.runCommand({ping: 1})\"'), "
                "and the TLS options.")
    if isinstance(exc, pymongo.errors.ConfigurationError):
        return "Check the URI's options against the PyMongo documentation."
    if isinstance(exc, pymongo.errors.InvalidName):
        return "Check the database name at the end of the URI (mongodb://host:port/<dbname>)."
    return "Check the MongoDB server's log, and that it is MongoDB 4.4 or later."


def _database_name(uri: str) -> str:
    try:
        parsed = uri_parser.parse_uri(uri, warn=True)
    except (pymongo.errors.PyMongoError, ValueError) as exc:
        raise ValueError(f"Invalid MongoDB URI {mask_uri(uri)!r}: {exc}. Use "
                         "mongodb://[user:password@]host:port/dbname.") from exc
    name = parsed.get("database")
    if not name:
        raise ValueError(f"The MongoDB URI {mask_uri(uri)!r} names no database: add /dbname "
                         "after the host, as in mongodb://host:27017/experiments.")
    return name


def _json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _point_fields(item: str) -> dict[str, Any]:
    """A metric point's document fields: its epoch and value as JSON text each (the
    layout of ``metrics``), or the item as it is if it is not a point."""
    try:
        point = json.loads(item)
        return {"epoch": _json(point["epoch"]), "value": _json(point["value"])}
    except (ValueError, KeyError, TypeError):
        return {"record": item}


def _item_text(doc: Mapping[str, Any]) -> str:
    """A stream item back as JSON text (a metric point is rebuilt from its two fields)."""
    if "record" in doc:
        return str(doc["record"])
    return '{"epoch":%s,"value":%s}' % (doc.get("epoch"), doc.get("value"))


class MongoBackend(Backend):
    """Trials of one experiment in a MongoDB database (see the module docstring).

    Parameters
    ----------
    location : str or Mapping
        A ``mongodb://[user:password@]host:port/dbname`` URI, or the configuration
        a backend made from a ``Database`` object pickles as (``{"uri": ...,
        "client": "module:Class"}``).
    experiment_id : str
        The experiment whose trials this backend stores.
    database : pymongo.database.Database, optional
        A database object to use in this process (pymongo's or mongomock's).

    Raises
    ------
    ValueError
        The URI names no database.
    """

    scheme = "mongodb"

    def __init__(self, location: str | Mapping[str, Any], experiment_id: str, *,
                 database: Any = None) -> None:
        super().__init__(experiment_id)
        if isinstance(location, str):
            self._location: str | dict[str, Any] = location
            uri = location
        else:
            self._location = dict(location)
            uri = self._location["uri"]
        if urlsplit(uri).scheme.lower() not in ("mongodb", "mongodb+srv"):
            raise ValueError(f"A MongoDB backend URI starts with mongodb://; got "
                             f"{mask_uri(uri)!r}.")
        self._raw_uri = uri
        self._uri = mask_uri(uri)
        self._db_name = database.name if database is not None else _database_name(uri)
        self._database = database
        self._client: Any = None
        self._pid = os.getpid()
        self._ready = False
        self._lock = threading.Lock()

    # -- construction -------------------------------------------------------------
    @classmethod
    def from_uri(cls, uri: str, experiment_id: str) -> MongoBackend:
        """A backend for ``mongodb://host:port/dbname``."""
        return cls(uri, experiment_id)

    @classmethod
    def from_object(cls, database: Any, experiment_id: str) -> MongoBackend:
        """A backend on an existing ``pymongo`` (or ``mongomock``) ``Database``.

        Copies (pickles) of it connect to the client's host and port, without
        credentials: give a URI instead when the server needs a password.
        """
        client = database.client
        is_pymongo = type(client).__module__.split(".")[0] == "pymongo"
        if is_pymongo:  # the seeds, known without waiting for a connection
            hosts = [f"{h}:{p}" for h, p in client.topology_description.server_descriptions()]
        else:  # mongomock
            host, port = client.address
            hosts = [f"{host}:{port}"]
        uri = f"mongodb://{','.join(hosts)}/{quote(database.name, safe='')}"
        location: dict[str, Any] = {"uri": uri}
        if not is_pymongo:
            location["client"] = f"{type(client).__module__}:{type(client).__qualname__}"
        return cls(location, experiment_id, database=database)

    @property
    def uri(self) -> str:
        return self._uri

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self._location, self.experiment_id))

    # -- connection ---------------------------------------------------------------
    def database(self) -> Any:
        """The pymongo Database (opened on first use, and again in a forked child)."""
        if self._pid != os.getpid():  # a forked child: MongoClient is not fork-safe
            if self._client is not None:  # ours: open another (a given Database is kept)
                self._client = self._database = None
            self._pid, self._ready = os.getpid(), False
        database = self._database
        if database is None:
            with self._lock:
                if self._database is None:
                    self._client = self._make_client()
                    self._database = self._client[self._db_name]
                database = self._database
        if not self._ready:
            self._create_indexes(database)
        return database

    def _make_client(self) -> Any:
        options: dict[str, Any] = {}
        lowered = self._raw_uri.lower()
        if "serverselectiontimeoutms" not in lowered:
            options["serverSelectionTimeoutMS"] = SERVER_SELECTION_TIMEOUT_MS
        if isinstance(self._location, Mapping) and self._location.get("client"):
            module, _, name = self._location["client"].partition(":")
            factory = getattr(importlib.import_module(module), name)
        else:
            factory = pymongo.MongoClient
        return factory(self._raw_uri, **options)

    def _create_indexes(self, database: Any) -> None:
        with self._lock:
            if self._ready:
                return
            for collection, indexes in _INDEXES.items():
                for keys in indexes:
                    database[collection].create_index(keys)
            self._ready = True

    def close(self) -> None:
        """Close this backend's own client; it reconnects on next use."""
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None
                self._database = None
            self._ready = False

    @contextlib.contextmanager
    def _errors(self, action: str) -> Iterator[None]:
        try:
            yield
        except pymongo.errors.PyMongoError as exc:
            detail = f"{type(exc).__name__}: {exc}"
            password = urlsplit(self._raw_uri).password
            if password:
                detail = detail.replace(password, "***")
            raise BackendError(
                f"MongoDB backend at {self._uri} failed while {action} for experiment "
                f"{self.experiment_id!r} ({detail}). {_hint(exc)}") from exc

    def document_id(self, *parts: Any) -> str:
        """The ``_id`` of this experiment's document named by ``parts``."""
        return ":".join([self.experiment_id, *(str(p) for p in parts)])

    # -- trials -----------------------------------------------------------------
    def _top_recorded(self, db: Any) -> int:
        """The highest trial id that has a record (0 if none): one indexed query."""
        docs = list(db.trials.find({"experiment_id": self.experiment_id}, {"trial_id": 1})
                    .sort("trial_id", -1).limit(1))
        return int(docs[0]["trial_id"]) if docs else 0

    def next_trial_id(self) -> int:
        """``$inc`` the counter, repaired first if it is missing or behind."""
        with self._errors("reserving a trial id"):
            db = self.database()
            while True:
                doc = db.counters.find_one_and_update(
                    {"_id": self.experiment_id}, {"$inc": {"trial_id": 1}}, upsert=True,
                    return_document=ReturnDocument.AFTER)
                trial_id = int(doc["trial_id"])
                if trial_id > 1 and db.trials.find_one({"_id": self.document_id(trial_id)},
                                                       {"_id": 1}) is None:
                    return trial_id
                top = self._top_recorded(db)  # first id, or a taken one: check the counter
                if top < trial_id:
                    return trial_id
                db.counters.update_one({"_id": self.experiment_id},
                                       {"$max": {"trial_id": top}}, upsert=True)

    def last_trial_id(self) -> int:
        with self._errors("reading the last trial id"):
            db = self.database()
            doc = db.counters.find_one({"_id": self.experiment_id})
            return max(int(doc["trial_id"]) if doc else 0, self._top_recorded(db))

    def _document(self, record: TrialRecord) -> dict[str, Any]:
        text = _json(record.to_json())
        trial_id = int(record.trial_id)
        doc: dict[str, Any] = {"_id": self.document_id(trial_id), "experiment_id": self.experiment_id,
                               "trial_id": trial_id}
        data = text.encode("utf-8")
        if len(data) > CHUNK_SIZE:
            doc["record_blob"] = self.put_blob("record", data)
        else:
            doc["record"] = text
        return doc

    def create_trial(self, record: TrialRecord) -> bool:
        """``insert_one`` on the record's unique ``_id``: never replaces a record."""
        doc = self._document(record)
        with self._errors(f"writing trial {record.trial_id}"):
            try:
                self.database().trials.insert_one(doc)
            except pymongo.errors.DuplicateKeyError:
                return False
        return True

    def write_trial(self, record: TrialRecord) -> None:
        doc = self._document(record)
        with self._errors(f"writing trial {record.trial_id}"):
            self.database().trials.replace_one({"_id": doc["_id"]}, doc, upsert=True)

    def _parse(self, doc: Mapping[str, Any]) -> TrialRecord:
        where = f"{self._uri} (collection trials, _id {doc.get('_id')!r})"
        try:
            if "record_blob" in doc:
                raw: Any = self.get_blob("record", doc["record_blob"])
            else:
                raw = doc["record"]
            if not raw.strip():
                raise ValueError("the record is empty")
            return TrialRecord.from_json(json.loads(raw))
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise self.unreadable_record(where, f"{type(exc).__name__}: {exc}") from exc

    def read_trial(self, trial_id: int) -> TrialRecord:
        try:
            key = self.document_id(int(trial_id))
        except (TypeError, ValueError):
            raise TrialIDNotFoundError(trial_id) from None
        with self._errors(f"reading trial {trial_id}"):
            doc = self.database().trials.find_one({"_id": key})
        if doc is None:
            if 0 < int(trial_id) <= self.last_trial_id():
                raise TrialIDNotFoundError(
                    trial_id, f"Trial {trial_id} is reserved but its record was never written "
                    "(the process that reserved it stopped first).")
            raise TrialIDNotFoundError(trial_id)
        return self._parse(doc)

    def trial_ids(self) -> list[int]:
        with self._errors("listing trial ids"):
            docs = self.database().trials.find({"experiment_id": self.experiment_id},
                                           {"trial_id": 1, "_id": 0})
            return sorted(int(d["trial_id"]) for d in docs)

    def read_trials(self, trial_ids: Iterable[int] | None = None) -> list[TrialRecord]:
        """Records for ``trial_ids`` (default: all) in one query; torn ones skipped."""
        query: dict[str, Any] = {"experiment_id": self.experiment_id}
        if trial_ids is not None:
            query["trial_id"] = {"$in": [int(i) for i in trial_ids]}
        with self._errors("reading trials"):
            docs = list(self.database().trials.find(query).sort("trial_id", 1))
        out = []
        for doc in docs:
            try:
                out.append(self._parse(doc))
            except CorruptRecordError:
                continue  # logged once by unreadable_record
        return out

    # -- streams: step records in ``steps``, metric points in ``metrics`` --------------
    def append_stream(self, trial_id: int, stream: str, items: Sequence[str]) -> None:
        if not items:
            return
        base = {"experiment_id": self.experiment_id, "trial_id": int(trial_id)}
        if stream == STEPS_STREAM:
            collection, docs = "steps", [{**base, "record": item} for item in items]
        elif stream.startswith(METRIC_STREAM):
            collection, key = "metrics", stream[len(METRIC_STREAM):]
            docs = [{**base, "key": key, **_point_fields(item)} for item in items]
        else:
            raise ValueError(f"Unknown stream {stream!r}: accepted are {STEPS_STREAM!r} and "
                             f"{METRIC_STREAM!r} followed by a metric name.")
        with self._errors(f"appending to stream {stream!r} of trial {trial_id}"):
            self.database()[collection].insert_many(docs, ordered=True)

    def read_stream(self, trial_id: int, stream: str) -> list[str]:
        query: dict[str, Any] = {"experiment_id": self.experiment_id, "trial_id": int(trial_id)}
        if stream == STEPS_STREAM:
            collection = "steps"
        elif stream.startswith(METRIC_STREAM):
            collection, query["key"] = "metrics", stream[len(METRIC_STREAM):]
        else:
            raise ValueError(f"Unknown stream {stream!r}: accepted are {STEPS_STREAM!r} and "
                             f"{METRIC_STREAM!r} followed by a metric name.")
        with self._errors(f"reading stream {stream!r} of trial {trial_id}"):
            docs = list(self.database()[collection].find(query).sort("_id", 1))
        return [_item_text(d) for d in docs]

    def stream_names(self, trial_id: int) -> list[str]:
        query = {"experiment_id": self.experiment_id, "trial_id": int(trial_id)}
        with self._errors(f"listing the streams of trial {trial_id}"):
            db = self.database()
            has_steps = db.steps.find_one(query, {"_id": 1}) is not None
            keys = db.metrics.distinct("key", query)
        return ([STEPS_STREAM] if has_steps else []) + sorted(METRIC_STREAM + k for k in keys)

    # -- blobs ------------------------------------------------------------------
    def put_blob(self, kind: str, data: bytes) -> str:
        blob_hash = bytes_hash(data)
        blob_id = self.document_id(kind, blob_hash)
        head: dict[str, Any] = {"_id": blob_id, "experiment_id": self.experiment_id,
                                "kind": kind, "hash": blob_hash, "length": len(data)}
        with self._errors(f"storing a {kind} blob of {len(data)} bytes"):
            db = self.database()
            if len(data) <= CHUNK_SIZE:
                head["data"] = bytes(data)
            else:
                if db.blobs.find_one({"_id": blob_id}, {"_id": 1}) is not None:
                    return blob_hash
                n_chunks = 0
                for n, start in enumerate(range(0, len(data), CHUNK_SIZE)):
                    chunk_id = f"{blob_id}:{n}"
                    db.blob_chunks.replace_one(
                        {"_id": chunk_id},
                        {"_id": chunk_id, "blob": blob_id, "n": n,
                         "data": bytes(data[start:start + CHUNK_SIZE])}, upsert=True)
                    n_chunks += 1
                head["chunks"] = n_chunks
            try:
                db.blobs.insert_one(head)
            except pymongo.errors.DuplicateKeyError:
                pass  # stored already: content-addressed
        return blob_hash

    def get_blob(self, kind: str, blob_hash: str) -> bytes:
        blob_id = self.document_id(kind, blob_hash)
        with self._errors(f"reading {kind} blob {blob_hash}"):
            db = self.database()
            head = db.blobs.find_one({"_id": blob_id})
            if head is None:
                raise KeyError(f"no {kind} blob {blob_hash} in {self._uri}")
            if "data" in head:
                return bytes(head["data"])
            parts = [bytes(d["data"]) for d in
                     db.blob_chunks.find({"blob": blob_id}).sort("n", 1)]
        data = b"".join(parts)
        if len(data) != head.get("length") or len(parts) != head.get("chunks"):
            raise KeyError(f"{kind} blob {blob_hash} in {self._uri} is incomplete "
                           f"({len(data)} of {head.get('length')} bytes)")
        return data

    def blob_hashes(self, kind: str) -> list[str] | None:
        with self._errors(f"listing {kind} blobs"):
            heads = self.database().blobs.find({"experiment_id": self.experiment_id, "kind": kind},
                                          {"hash": 1})
            return sorted(str(h["hash"]) for h in heads)

    def delete_blob(self, kind: str, blob_hash: str) -> int:
        blob_id = self.document_id(kind, blob_hash)
        with self._errors(f"removing {kind} blob {blob_hash}"):
            db = self.database()
            head = db.blobs.find_one_and_delete({"_id": blob_id})
            if head is None:
                return 0
            db.blob_chunks.delete_many({"blob": blob_id})
        return int(head.get("length") or 0)

    # -- the key index --------------------------------------------------------------
    def swap_index_values(self, values: Mapping[str, str]) -> dict[str, str | None]:
        """One atomic ``find_one_and_update`` per key (the value it replaced)."""
        out: dict[str, str | None] = {}
        with self._errors("checking step outputs"):
            outputs = self.database().outputs
            for key, value in values.items():
                old = outputs.find_one_and_update(
                    {"_id": self.document_id(key)},
                    {"$set": {"output_hash": value, "experiment_id": self.experiment_id}},
                    upsert=True, return_document=ReturnDocument.BEFORE)
                out[key] = None if old is None else old.get("output_hash")
        return out

    def read_index_values(self, keys: Sequence[str]) -> dict[str, str | None]:
        keys = list(keys)
        if not keys:
            return {}
        with self._errors("reading step outputs"):
            docs = self.database().outputs.find({"_id": {"$in": [self.document_id(k) for k in keys]}})
            found = {d["_id"]: d.get("output_hash") for d in docs}
        return {k: found.get(self.document_id(k)) for k in keys}

    # -- experiments ------------------------------------------------------------
    def experiment_ids(self) -> list[str]:
        with self._errors("listing experiments"):
            db = self.database()  # an experiment whose counter was lost still has its trials
            return sorted({d["_id"] for d in db.counters.find({}, {"_id": 1})}
                          | set(db.trials.distinct("experiment_id")))

    def delete_experiment(self) -> int:
        """Remove every document of this experiment; return how many."""
        removed = 0
        with self._errors("deleting the experiment"):
            db = self.database()
            blob_ids = [d["_id"] for d in db.blobs.find(
                {"experiment_id": self.experiment_id, "chunks": {"$exists": True}}, {"_id": 1})]
            if blob_ids:
                removed += db.blob_chunks.delete_many({"blob": {"$in": blob_ids}}).deleted_count
            for name in ("trials", "steps", "metrics", "blobs", "outputs"):
                removed += db[name].delete_many(
                    {"experiment_id": self.experiment_id}).deleted_count
            removed += db.counters.delete_one({"_id": self.experiment_id}).deleted_count
        return removed


__all__ = ["MongoBackend", "mask_uri", "CHUNK_SIZE"]
