"""The storage interface: a few primitives that every backend implements.

History, drift checks, comparisons and the dashboard are built on these once,
in the layers above. A backend stores *records* (``TrialRecord``,
``StepRecord``), content-addressed *blobs* and metric points for one
experiment; it never sees an ``Experiment``. It pickles as its configuration
and connects lazily, so a copy sent to a dask worker works there too. Every
subclass passes the contract suite in ``tests/contract/``.
"""
from __future__ import annotations

import abc
import logging
from urllib.parse import parse_qsl, urlencode, urlsplit
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from ..errors import BackendError, CorruptRecordError, TrialIDNotFoundError
from ..records import StepRecord, TrialRecord

logger = logging.getLogger(__name__)

#: blob kinds and what they hold
BLOB_KINDS = ("source", "environment", "pickle", "cache")
#: how many taken ids ``start_trial`` skips before it gives up (only a store that keeps
#: losing its counter while many processes claim ids gets near this)
MAX_CLAIM_ATTEMPTS = 1000


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

    Subclasses implement the primitives; everything else is derived from them here.
    """

    #: URI scheme(s) this backend answers to in the registry
    scheme: str = ""

    def __init__(self, experiment_id: str) -> None:
        self.experiment_id = experiment_id
        self._reported: set[str] = set()  # unreadable records already warned about

    # -- identity ---------------------------------------------------------------
    @property
    @abc.abstractmethod
    def uri(self) -> str:
        """Where the data lives, with any password masked (safe to print)."""

    @abc.abstractmethod
    def __reduce__(self) -> tuple[Any, ...]:
        """Pickle as configuration: ``(type(self), (location, experiment_id))``."""

    # -- trials -----------------------------------------------------------------
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
        """The stored record, or raise TrialIDNotFoundError (CorruptRecordError if torn)."""

    @abc.abstractmethod
    def trial_ids(self) -> list[int]:
        """Ids that have a record, ascending."""

    # -- step records written by other processes (workers) ----------------------
    @abc.abstractmethod
    def append_step_records(self, trial_id: int, records: Sequence[StepRecord]) -> None:
        """Add step records of a running trial (written by workers in other processes)."""

    @abc.abstractmethod
    def read_step_records(self, trial_id: int) -> list[StepRecord]:
        """The step records appended for a trial, in the order they were written."""

    # -- blobs ------------------------------------------------------------------
    @abc.abstractmethod
    def put_blob(self, kind: str, data: bytes) -> str:
        """Store bytes content-addressed under ``kind``; return their hash (idempotent)."""

    @abc.abstractmethod
    def get_blob(self, kind: str, blob_hash: str) -> bytes:
        """The bytes stored under ``kind`` and ``blob_hash``; KeyError if missing."""

    # -- impurity ---------------------------------------------------------------
    @abc.abstractmethod
    def swap_output_hash(self, step_key: str, output_hash: str) -> str | None:
        """Remember ``output_hash`` for ``step_key``; return the hash it replaced."""

    @abc.abstractmethod
    def read_output_hashes(self, step_keys: Sequence[str]) -> dict[str, str | None]:
        """The hashes last remembered for ``step_keys`` (None where none), without changing them."""

    def swap_output_hashes(self, hashes: Mapping[str, str]) -> dict[str, str | None]:
        """``swap_output_hash`` for many keys at once (backends may batch it)."""
        return {k: self.swap_output_hash(k, h) for k, h in hashes.items()}

    # -- metrics ----------------------------------------------------------------
    @abc.abstractmethod
    def append_metric(self, trial_id: int, key: str, epoch: Any, value: Any) -> None:
        """Add one point of a metric curve (safe from many threads and processes)."""

    @abc.abstractmethod
    def read_metric(self, trial_id: int, key: str) -> list[tuple[Any, Any]]:
        """The points of one metric of one trial as ``(epoch, value)``, in write order."""

    @abc.abstractmethod
    def metric_keys(self, trial_id: int) -> list[str]:
        """Names of the metric curves saved for a trial."""

    # -- experiments in the same store -------------------------------------------
    @abc.abstractmethod
    def experiment_ids(self) -> list[str]:
        """Ids of every experiment stored where this backend stores (for ``list``)."""

    @classmethod
    def from_uri(cls, uri: str, experiment_id: str) -> Backend:
        """The backend that ``uri`` names (its scheme selected this class).

        Every backend registered by URI scheme implements it; the default refuses.
        """
        raise ValueError(f"{cls.__name__} cannot be created from a URI ({uri!r}); pass a "
                         f"{cls.__name__} instance as backend= instead.")

    def close(self) -> None:
        """Release connections; the backend reconnects on next use."""

    # -- derived, written once here ----------------------------------------------
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
        """Records for ``trial_ids`` (default: all), skipping torn ones (one WARNING each)."""
        out = []
        for trial_id in self.trial_ids() if trial_ids is None else trial_ids:
            try:
                out.append(self.read_trial(trial_id))
            except TrialIDNotFoundError:
                continue
            except CorruptRecordError:
                continue  # logged by unreadable_record
        return out

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

    def for_experiment(self, experiment_id: str) -> Backend:
        """This backend's store, for another experiment (same location and settings)."""
        if experiment_id == self.experiment_id:
            return self
        cls, args = self.__reduce__()[:2]  # (class, (location..., experiment id))
        return cls(*args[:-1], experiment_id)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.uri!r}, experiment_id={self.experiment_id!r})"
