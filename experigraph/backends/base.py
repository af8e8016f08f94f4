"""The storage interface: a few primitives that every backend implements.

A backend stores, for one experiment, trial *records* (``TrialRecord``),
content-addressed *blobs*, append-only *streams* of JSON lines per trial (the
step records workers send, metric curves) and one small *index* of string
keys in named namespaces (impurity references, taints, cache entries). It never
sees an ``Experiment``. It pickles as its configuration and connects lazily,
so a copy sent to a dask worker works there too.

The primitives (abstract here, each with a one-line contract):

=====================  ===========================================================
construction           ``from_uri``, ``uri``, ``__reduce__``, ``close``,
                       ``delete_experiment``, ``experiment_ids``
trial ids and records  ``next_trial_id``, ``last_trial_id``, ``create_trial``
                       (atomic create-if-absent), ``write_trial``, ``read_trial``,
                       ``trial_ids``
streams                ``append_stream``, ``read_stream``, ``stream_names``
blobs                  ``put_blob``, ``get_blob``
index                  ``swap_index_values``, ``read_index_values``
=====================  ===========================================================

Everything else is written once, here, on top of them: claiming an id with its
running record (``start_trial``), finishing a trial without replacing another's
record (``finish_trial``; with the key index swapped first, ``swap_and_finish``),
batched reads (``read_trials``), the history's summaries
(``read_summaries``; for the history table, ``read_summary_rows``), ``last_trial``,
``has_trial``, step records and metrics (streams), the namespaced index
(``index_swap``, ``index_read``) and the one WARNING per unreadable record.
A backend overrides a derived method only to do the same faster (Redis reads
records with ``HMGET``, MongoDB with one ``$in`` query). Every backend passes
the contract suite, :mod:`experigraph.testing.backend_contract`.
"""
from __future__ import annotations

import abc
import json
import logging
import math
from urllib.parse import parse_qsl, urlencode, urlsplit
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from ..errors import (BackendError, CorruptRecordError, InvalidArgumentError,
                      TrialIDNotFoundError)
from ..records import (JSON_INT_END, JSON_INT_MIN, StepRecord, TrialRecord, TrialSummary,
                       decode_value, encode_value, gc_paused, loads_fast)

logger = logging.getLogger(__name__)

#: blob kinds and what they hold
BLOB_KINDS = ("source", "environment", "pickle", "cache")
#: how many taken ids ``start_trial`` skips before it gives up (only a store that keeps
#: losing its counter while many processes claim ids gets near this)
MAX_CLAIM_ATTEMPTS = 1000
#: the annotation log (tags, notes, archive) is the stream METRIC_STREAM + ANNOTATIONS_KEY
#: of this trial id, which no trial has (ids start at 1)
ANNOTATIONS_TRIAL = 0
ANNOTATIONS_KEY = "experigraph.annotations"

#: the namespaces of the key index, each with the prefix its keys are stored under
#: (the prefixes are those of the one "output hash" index of earlier versions, so a
#: store written before namespaces existed is read as it is, and the other way round)
OUTPUTS = "outputs"        # impurity reference per (step, code, inputs, files[, seed])
DATA = "data"              # hash of a file read with ex.input per (step, inputs, path)
TAINT = "taint"            # why a step (step, code) was seen impure
CACHE = "cache"            # the cache entry blob per (step, code, inputs)
CACHE_CODE = "cache-code"  # the code hash of the output cached per (step, inputs)
CACHE_STEP = "cache-step"  # the code hash of a step's last cached output
INDEX_NAMESPACES: dict[str, str] = {OUTPUTS: "out", DATA: "data", TAINT: "taint",
                                    CACHE: "cache", CACHE_CODE: "cache-code",
                                    CACHE_STEP: "cache-step"}
#: the stream of step records of a trial, and the prefix of its metric streams
STEPS_STREAM = "steps"
METRIC_STREAM = "metric:"


def _line(obj: Any) -> str:
    """One stream item: compact JSON, keys sorted, UTF-8 kept."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


_PLAIN = (int, float)
_PLAIN_TYPES = frozenset(_PLAIN)


class MetricColumns:
    """The usual metric curve, every epoch and value a plain int or float, as its two
    columns in write order, with each column's set of types: what ``load_metric``
    takes from a backend whose ``read_metric`` is this class's (see
    :meth:`Backend.metric_curve`)."""

    __slots__ = ("epochs", "values", "epoch_types", "value_types")

    def __init__(self, epochs: list[Any], values: list[Any], epoch_types: frozenset[type],
                 value_types: frozenset[type]) -> None:
        self.epochs, self.values = epochs, values
        self.epoch_types, self.value_types = epoch_types, value_types

#: one parse of JSON text: orjson when it is installed and reads the text exactly
_loads = loads_fast


def _point_line(epoch: Any, value: Any) -> str:
    """One metric point as a stream item (what :func:`_line` gives, faster for the usual
    int or float epochs and values)."""
    if type(epoch) in _PLAIN and type(value) in _PLAIN and (
            JSON_INT_MIN <= epoch < JSON_INT_END if type(epoch) is int
            else math.isfinite(epoch)) and (
            JSON_INT_MIN <= value < JSON_INT_END if type(value) is int
            else math.isfinite(value)):
        return f'{{"epoch":{epoch!r},"value":{value!r}}}'
    return _line({"epoch": encode_value(epoch), "value": encode_value(value)})


def is_same_trial(first: TrialRecord, second: TrialRecord) -> bool:
    """Whether two records are states of one trial (its running and its final record).

    A trial is identified by what its running record fixed when it was claimed: its
    claim token (records written before tokens existed: the experiment, id, start
    time, host, process and seed).
    """
    if first.claim or second.claim:
        return (first.experiment_id, first.trial_id, first.claim) == (
            second.experiment_id, second.trial_id, second.claim)
    return (first.experiment_id, first.trial_id, first.started, first.host, first.pid,
            first.seed) == (second.experiment_id, second.trial_id, second.started,
                            second.host, second.pid, second.seed)


def mask_uri(uri: str) -> str:
    """``uri`` with any password replaced by ``***`` (safe to print and log).

    Examples
    --------
    >>> mask_uri("mongodb://ana:secret@db.example:27017/lab")
    'mongodb://ana:***@db.example:27017/lab'
    >>> mask_uri("redis://:secret@db.example:6379/0")
    'redis://:***@db.example:6379/0'
    >>> mask_uri("unix:///run/redis.sock?db=2&password=secret")
    'unix:///run/redis.sock?db=2&password=%2A%2A%2A'
    """
    parts = urlsplit(uri)
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, hostport = netloc.rpartition("@")
        user, colon, _ = userinfo.partition(":")
        netloc = f"{user}:***@{hostport}" if colon else f"{userinfo}@{hostport}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(k.lower() == "password" for k, _ in pairs):
            query = urlencode([(k, "***" if k.lower() == "password" else v) for k, v in pairs])
    text = f"{parts.scheme}://{netloc}{parts.path}"  # urlunsplit drops an empty '//'
    if query:
        text += f"?{query}"
    return text + (f"#{parts.fragment}" if parts.fragment else "")



class Backend(abc.ABC):
    """Storage for one experiment's trials.

    Subclasses implement the primitives (the abstract members); everything else is
    derived from them here, once. See the module docstring for the list, and
    :mod:`experigraph.testing.backend_contract` for the suite every backend passes.

    Parameters
    ----------
    experiment_id : str
        The experiment whose trials this backend stores.
    """

    #: URI scheme(s) this backend answers to in the registry
    scheme: str = ""

    def __init__(self, experiment_id: str) -> None:
        self.experiment_id = experiment_id
        self._reported: set[str] = set()  # unreadable records already warned about

    # -- construction -------------------------------------------------------------
    @classmethod
    @abc.abstractmethod
    def from_uri(cls, uri: str, experiment_id: str) -> Backend:
        """The backend that ``uri`` names (its scheme selected this class in the registry);
        ValueError naming the URI if it is not one this class accepts."""

    @property
    @abc.abstractmethod
    def uri(self) -> str:
        """Where the data lives, with any password masked (safe to print)."""

    @abc.abstractmethod
    def __reduce__(self) -> tuple[Any, ...]:
        """Pickle as configuration: ``(type(self), (location, experiment_id))``; no sockets."""

    def close(self) -> None:
        """Release connections; the backend reconnects on next use (default: nothing held)."""

    @abc.abstractmethod
    def delete_experiment(self) -> int:
        """Remove everything stored for this experiment, and only that; return how many
        stored items (keys, documents, files) were removed."""

    @abc.abstractmethod
    def experiment_ids(self) -> list[str]:
        """Ids of every experiment stored where this backend stores (for ``list``), sorted."""

    # -- trial ids and records --------------------------------------------------------
    @abc.abstractmethod
    def next_trial_id(self) -> int:
        """Reserve 1, 2, 3, ...; never repeated, even across processes.

        Never an id that has a record: a counter that is missing or behind the
        highest recorded id (a store restored or restarted without its counter) is
        repaired from that id first.
        """

    @abc.abstractmethod
    def last_trial_id(self) -> int:
        """The highest trial id reserved or recorded so far (0 before any)."""

    @abc.abstractmethod
    def create_trial(self, record: TrialRecord) -> bool:
        """Store ``record`` only if its id has no record yet; return whether it did.

        Atomic create-if-absent on the record itself (an exclusive link, ``HSETNX``,
        a unique ``_id``): it never replaces a record, whoever wrote it.
        """

    @abc.abstractmethod
    def write_trial(self, record: TrialRecord) -> None:
        """Store (or replace) a trial's record; atomic, O(1) in the history size.

        Replaces whatever is stored: experigraph calls it only for a trial whose
        record it has just read back as its own (see ``finish_trial``).
        """

    @abc.abstractmethod
    def read_trial(self, trial_id: int) -> TrialRecord:
        """The stored record, or raise TrialIDNotFoundError (``unreadable_record(...)`` if
        it cannot be parsed)."""

    @abc.abstractmethod
    def trial_ids(self) -> list[int]:
        """Ids that have a record (readable or not), ascending."""

    # -- streams: append-only lists of JSON text per trial ------------------------------
    @abc.abstractmethod
    def append_stream(self, trial_id: int, stream: str, items: Sequence[str]) -> None:
        """Append ``items`` (one JSON text each) to a trial's ``stream``, in order; safe
        from many threads and processes at once."""

    @abc.abstractmethod
    def read_stream(self, trial_id: int, stream: str) -> list[str]:
        """The items appended to a trial's ``stream``, in write order ([] if none)."""

    @abc.abstractmethod
    def stream_names(self, trial_id: int) -> list[str]:
        """The names of a trial's streams that have items."""

    # -- blobs ----------------------------------------------------------------------
    @abc.abstractmethod
    def put_blob(self, kind: str, data: bytes) -> str:
        """Store bytes content-addressed under ``kind``; return their hash (idempotent)."""

    @abc.abstractmethod
    def get_blob(self, kind: str, blob_hash: str) -> bytes:
        """The bytes stored under ``kind`` and ``blob_hash``; KeyError if missing."""

    # -- the key index -------------------------------------------------------------------
    @abc.abstractmethod
    def swap_index_values(self, values: Mapping[str, str]) -> dict[str, str | None]:
        """Set each stored key to its value and return the values they replaced (None where
        none); atomic per key, and other processes see every swap. Keys come from
        ``index_swap`` as ``<namespace prefix>:<key>``: call that instead."""

    @abc.abstractmethod
    def read_index_values(self, keys: Sequence[str]) -> dict[str, str | None]:
        """The values of stored keys (None where none), without changing them."""

    # -- derived, written once here -------------------------------------------------------
    def start_trial(self, make_record: Callable[[int], TrialRecord]) -> TrialRecord:
        """Claim an id together with its record ``make_record(id)`` (a running trial).

        The record is created only where none exists (``create_trial``); an id that
        another process took in between is skipped, so a claim never replaces a record.
        """
        for _ in range(MAX_CLAIM_ATTEMPTS):
            record = make_record(self.next_trial_id())
            if self.create_trial(record):
                return record
        raise BackendError(
            f"Could not claim a trial id in {self.uri} for experiment {self.experiment_id!r}: "
            f"{MAX_CLAIM_ATTEMPTS} ids in a row were taken by other records. Check that no "
            "process keeps resetting the store's trial id counter.")

    def finish_trial(self, record: TrialRecord) -> TrialRecord:
        """Store the final ``record`` of a trial this process started; return it as stored.

        It replaces the trial's own record (its running record, or nothing if the
        store lost it), never another trial's: if the id now holds a record of
        another trial, or an unreadable one (the store lost the running record, e.g.
        a Redis restart without persistence, and another process claimed the id),
        the trial is recorded under a new id, with a WARNING naming both ids.
        """
        stored: TrialRecord | None = None
        unreadable = False
        try:
            stored = self.read_trial(record.trial_id)
        except TrialIDNotFoundError:
            pass
        except CorruptRecordError:  # unreadable: not ours to replace
            unreadable = True
        if stored is not None and is_same_trial(stored, record):
            self.write_trial(record)
            return record
        if stored is None and not unreadable and self.create_trial(record):
            return record
        moved = self.start_trial(lambda trial_id: record.replace(trial_id=trial_id))
        logger.warning(
            "Trial %d of experiment %s is recorded as trial %d: meanwhile its id was taken "
            "by another record in %s (the store lost the trial's running record, e.g. a "
            "server restart without persistence, and another process claimed the id). "
            "Trial %d's record is left as it is; use trial id %d for this trial (metric "
            "curves it saved with ex.save_metric stay under id %d).",
            record.trial_id, self.experiment_id, moved.trial_id, self.uri, record.trial_id,
            moved.trial_id, record.trial_id)
        return moved

    def finish_trial_unless_changed(self, record: TrialRecord,
                                    index: Mapping[str, Mapping[str, str]]
                                    ) -> tuple[TrialRecord | None,
                                               dict[str, dict[str, str | None]]]:
        """Swap ``index`` (namespace -> {key: value}, as ``index_swap_many``) and, when no
        value replaced a different one (each key was new, or held a value with the same
        first word: index values are ``"<hash> <details>"``), store the final ``record``
        as ``finish_trial`` does.

        Returns the record as stored (None: not stored, because some value changed:
        the caller records what the change means, e.g. an impure step) and the values
        replaced. One ``swap_and_finish`` call: one round trip on a server that does
        both in one script.
        """
        finished: list[TrialRecord | None] = []

        def swap(flat: dict[str, str]) -> dict[str, str | None]:
            final, olds = self.swap_and_finish(flat, record)
            finished.append(final)
            return olds

        olds = self._swap_namespaced(index, swap)
        return finished[0], olds

    def swap_and_finish(self, values: Mapping[str, str], record: TrialRecord
                        ) -> tuple[TrialRecord | None, dict[str, str | None]]:
        """``swap_index_values(values)``, then ``finish_trial(record)`` unless a value
        replaced one with another first word (see ``finish_trial_unless_changed``): (the
        record as stored or None, the values replaced). A server backend may override
        it to do both in one round trip."""
        olds = self.swap_index_values(values) if values else {}
        if any(old is not None and old.split(" ", 1)[0] != values[k].split(" ", 1)[0]
               for k, old in olds.items()):
            return None, olds
        return self.finish_trial(record), olds

    def unreadable_record(self, where: str, reason: str,
                          hint: str | None = None) -> CorruptRecordError:
        """The error for a record that cannot be read, logged as ONE WARNING per record.

        Backends raise what this returns; callers that skip the record (history,
        the last trial, the dashboard) need not log it again.
        """
        exc = CorruptRecordError(where, reason, hint)
        reported = self.__dict__.setdefault("_reported", set())
        if where not in reported:
            reported.add(where)
            logger.warning("Skipping trial record: %s", exc)
        return exc

    def read_trials(self, trial_ids: Iterable[int] | None = None) -> list[TrialRecord]:
        """Records for ``trial_ids`` (default: all), skipping missing and torn ones (one
        WARNING each). Backends that can read many at once override it."""
        out = []
        for trial_id in self.trial_ids() if trial_ids is None else trial_ids:
            try:
                out.append(self.read_trial(trial_id))
            except TrialIDNotFoundError:
                continue
            except CorruptRecordError:
                continue  # logged by unreadable_record
        return out

    def read_summaries(self) -> list[TrialSummary]:
        """What the history shows of every readable trial (``TrialSummary``), by id,
        skipping torn records (one WARNING each).

        Derived from ``read_trials``. A backend that keeps summaries next to its records
        overrides it to read them without decoding whole records; the records stay the
        source of truth, so a summary that no longer matches its record is never used.
        """
        return [TrialSummary.of(record) for record in self.read_trials()]

    def read_summaries_keyed(self, known: str | None = None
                             ) -> tuple[str | None, list[TrialSummary] | None]:
        """:meth:`read_summaries`, with a digest of everything it read, which differs
        whenever the answer could; when that digest is ``known``, the summaries are not
        decoded and None stands for them (the caller's answer for ``known`` holds).

        What a reader built from an answer is thus reused while the digest holds (the
        history table kept between processes: :mod:`experigraph.history_cache`). Default:
        no digest (None), and the summaries; a backend that can make the digest without
        decoding the summaries overrides it.
        """
        return None, self.read_summaries()

    def read_summary_rows(self, decode: Callable[[dict[str, Any]], Any],
                          known: str | None = None) -> tuple[str | None, list[Any] | None]:
        """:meth:`read_summaries_keyed`, each summary given to ``decode`` in its JSON
        form (``TrialSummary.to_json()``'s, freshly made: ``decode`` may keep its
        dicts) and what ``decode`` returns listed in its place, by id: the history reads
        its rows this way (``records.history_row``), without making every summary.

        Default: the summaries of :meth:`read_summaries_keyed`, each turned into JSON
        form. A backend that keeps summaries in JSON form overrides it to hand them to
        ``decode`` as read; where ``decode`` rejects one (ValueError, KeyError,
        TypeError, AttributeError), it decodes the JSON form of the trial's record
        instead, as :meth:`read_summaries` does for a summary it cannot read.
        """
        key, summaries = self.read_summaries_keyed(known)
        if summaries is None:
            return key, None
        return key, [decode(s.to_json()) for s in summaries]

    def last_trial(self) -> TrialRecord | None:
        """The most recent readable record, looked up from the last reserved id downwards."""
        trial_id = self.last_trial_id()
        while trial_id > 0:
            try:
                return self.read_trial(trial_id)
            except (TrialIDNotFoundError, CorruptRecordError):  # the latter logged once
                trial_id -= 1
        return None

    def has_trial(self, trial_id: int) -> bool:
        """Whether a readable record exists for ``trial_id`` (never raises)."""
        try:
            self.read_trial(trial_id)
        except (TrialIDNotFoundError, CorruptRecordError):
            return False
        return True

    # -- step records and metrics, on streams ------------------------------------------
    def read_stream_parsed(self, trial_id: int, stream: str) -> list[Any] | None:
        """Every item of a trial's ``stream`` parsed as JSON at once, or None, and each item
        of :meth:`read_stream` is then parsed on its own (an unreadable one is skipped with a
        warning). A backend that keeps a stream as one text may override this to parse it
        in one go; it must return None whenever an item is unreadable. Default: None."""
        return None

    def _parsed(self, trial_id: int, stream: str, what: str) -> list[Any]:
        with gc_paused():  # thousands of acyclic dicts: no collection of the whole heap
            return self._parse_stream(trial_id, stream, what)

    def _parse_stream(self, trial_id: int, stream: str, what: str) -> list[Any]:
        whole = self.read_stream_parsed(trial_id, stream)
        if whole is not None:
            return whole
        items = self.read_stream(trial_id, stream)
        try:  # every item at once (one parse); item by item only when one is unreadable
            parsed = _loads("[" + ",".join(items) + "]")
            if len(parsed) == len(items):
                return parsed  # type: ignore[no-any-return]
        except (ValueError, TypeError):
            pass
        out = []
        for n, item in enumerate(items):
            try:
                out.append(json.loads(item))
            except (ValueError, TypeError) as exc:  # a torn last line, a hand edit
                logger.warning("Skipping unreadable %s %d of trial %d in %s: %s", what, n,
                               trial_id, self.uri, exc)
        return out

    def append_step_records(self, trial_id: int, records: Sequence[StepRecord]) -> None:
        """Add step records of a running trial (written by workers in other processes)."""
        if records:
            self.append_stream(trial_id, STEPS_STREAM, [_line(r.to_json()) for r in records])

    def read_step_records(self, trial_id: int) -> list[StepRecord]:
        """The step records appended for a trial, in the order they were written."""
        out = []
        for n, obj in enumerate(self._parsed(trial_id, STEPS_STREAM, "step record")):
            try:
                out.append(StepRecord.from_json(obj))
            except (ValueError, KeyError, TypeError, AttributeError) as exc:
                logger.warning("Skipping unreadable step record %d of trial %d in %s: %s", n,
                               trial_id, self.uri, exc)
        return out

    def append_metric(self, trial_id: int, key: str, epoch: Any, value: Any) -> None:
        """Add one point of a metric curve (safe from many threads and processes)."""
        self.append_metric_points(trial_id, key, [(epoch, value)])

    def append_metric_points(self, trial_id: int, key: str,
                             points: Sequence[tuple[Any, Any]]) -> None:
        """Add points ``(epoch, value)`` of a metric curve, in order, in one append."""
        if points:
            self.append_stream(trial_id, METRIC_STREAM + key,
                               [_point_line(e, v) for e, v in points])

    def read_metric(self, trial_id: int, key: str) -> list[tuple[Any, Any]]:
        """The points of one metric of one trial as ``(epoch, value)``, in write order."""
        curve = self.metric_curve(trial_id, key)
        if isinstance(curve, MetricColumns):
            return list(zip(curve.epochs, curve.values))
        return curve

    def metric_curve(self, trial_id: int, key: str) -> MetricColumns | list[tuple[Any, Any]]:
        """What ``read_metric`` reads, as ``load_metric`` takes it: the usual curve as
        its columns (not made into tuples to be taken apart again), any other as
        ``read_metric``'s points. ``load_metric`` calls it only on a backend that does
        not override ``read_metric``."""
        parsed = self._parsed(trial_id, METRIC_STREAM + key, "metric point")
        try:  # the usual curve: every point a dict of plain numbers, taken in two passes
            epochs = [p["epoch"] for p in parsed]
            values = [p["value"] for p in parsed]
        except (KeyError, TypeError, IndexError):
            pass
        else:
            epoch_types, value_types = frozenset(map(type, epochs)), frozenset(map(type, values))
            if epoch_types | value_types <= _PLAIN_TYPES:
                return MetricColumns(epochs, values, epoch_types, value_types)
        out = []
        for p in parsed:
            if isinstance(p, dict) and "epoch" in p and "value" in p:
                epoch, value = p["epoch"], p["value"]
                out.append((epoch if type(epoch) in _PLAIN else decode_value(epoch),
                            value if type(value) in _PLAIN else decode_value(value)))
        return out

    def metric_keys(self, trial_id: int) -> list[str]:
        """Names of the metric curves saved for a trial, sorted."""
        return sorted(name[len(METRIC_STREAM):] for name in self.stream_names(trial_id)
                      if name.startswith(METRIC_STREAM))

    # -- collecting blobs: optional, a backend that cannot list them is never collected --
    def blob_hashes(self, kind: str) -> list[str] | None:
        """The hashes of the stored blobs of ``kind``, or None if this backend cannot list
        them (``experigraph gc`` then leaves its blobs alone). Default: None."""
        return None

    def delete_blob(self, kind: str, blob_hash: str) -> int:
        """Remove one blob; return the bytes freed (0 if it was not there). Only ``gc``
        calls it, for blobs no recorded trial refers to."""
        raise BackendError(f"{type(self).__name__} at {self.uri} cannot delete blobs.")

    # -- annotations (tags, notes, archive): append-only, on a stream of trial id 0 -----
    def append_annotation(self, entry: Mapping[str, Any]) -> None:
        """Add one annotation entry (a JSON-able dict) to the experiment's append-only log.

        Built on ``append_stream`` of trial id 0, which no trial ever has (a metric
        stream name, which every backend accepts): appends are safe from many
        processes, and nothing is ever rewritten.
        """
        self.append_stream(ANNOTATIONS_TRIAL, METRIC_STREAM + ANNOTATIONS_KEY,
                           [_line(encode_value(dict(entry)))])

    def read_annotations(self) -> list[dict[str, Any]]:
        """Every annotation entry, in the order they were appended."""
        return [dict(decode_value(obj)) for obj in self._parsed(
            ANNOTATIONS_TRIAL, METRIC_STREAM + ANNOTATIONS_KEY, "annotation")
            if isinstance(obj, dict)]

    # -- the key index, by namespace ----------------------------------------------------
    @staticmethod
    def _index_prefix(namespace: str) -> str:
        try:
            return INDEX_NAMESPACES[namespace] + ":"
        except (KeyError, TypeError):
            raise InvalidArgumentError(
                f"Unknown index namespace {namespace!r}: accepted are "
                f"{', '.join(repr(n) for n in INDEX_NAMESPACES)} "
                "(experigraph.backends.base.INDEX_NAMESPACES).") from None

    def index_swap(self, namespace: str, values: Mapping[str, str]) -> dict[str, str | None]:
        """Set ``values`` (key -> value) in ``namespace``; return the values they replaced
        (None where none).

        Raises
        ------
        InvalidArgumentError
            ``namespace`` is not one of ``INDEX_NAMESPACES`` (the message lists them).

        Examples
        --------
        >>> backend.index_swap("taint", {"prepare:1a2b": "impurity in trial 3"})  # doctest: +SKIP
        {'prepare:1a2b': None}
        """
        return self.index_swap_many({namespace: values})[namespace]

    def index_read(self, namespace: str, keys: Iterable[str]) -> dict[str, str | None]:
        """The values of ``keys`` in ``namespace`` (None where none), unchanged.

        Raises
        ------
        InvalidArgumentError
            ``namespace`` is not one of ``INDEX_NAMESPACES`` (the message lists them).
        """
        return self.index_read_many({namespace: keys})[namespace]

    def index_swap_many(self, values: Mapping[str, Mapping[str, str]]
                        ) -> dict[str, dict[str, str | None]]:
        """``index_swap`` for several namespaces (namespace -> {key: value}) in one
        ``swap_index_values`` call (one round trip on a server)."""
        return self._swap_namespaced(
            values, lambda flat: self.swap_index_values(flat) if flat else {})

    def _swap_namespaced(self, values: Mapping[str, Mapping[str, str]],
                         swap: Callable[[dict[str, str]], dict[str, str | None]]
                         ) -> dict[str, dict[str, str | None]]:
        """``swap`` of ``values`` (namespace -> {key: value}) as the stored keys (each
        under its namespace's prefix), its answer by namespace again."""
        stored = {ns: self._index_prefix(ns) for ns in values}
        olds = swap({stored[ns] + k: v for ns, entries in values.items()
                     for k, v in entries.items()})
        return {ns: {k: olds[stored[ns] + k] for k in entries} for ns, entries in values.items()}

    def index_read_many(self, keys: Mapping[str, Iterable[str]]
                        ) -> dict[str, dict[str, str | None]]:
        """``index_read`` for several namespaces (namespace -> keys) in one
        ``read_index_values`` call (one round trip on a server)."""
        stored = {ns: self._index_prefix(ns) for ns in keys}
        wanted = {ns: list(k) for ns, k in keys.items()}
        flat = [stored[ns] + k for ns, entries in wanted.items() for k in entries]
        found = self.read_index_values(flat) if flat else {}
        return {ns: {k: found[stored[ns] + k] for k in entries} for ns, entries in wanted.items()}

    def for_experiment(self, experiment_id: str) -> Backend:
        """This backend's store, for another experiment (same location and settings)."""
        if experiment_id == self.experiment_id:
            return self
        cls, args = self.__reduce__()[:2]  # (class, (location..., experiment id))
        return cls(*args[:-1], experiment_id)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.uri!r}, experiment_id={self.experiment_id!r})"
