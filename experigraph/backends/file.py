"""The embedded default backend: one directory per experiment.

On disk, under ``<root>/<experiment_id>/``::

    experiment.json              {"schema", "experiment_id", "created"}
    trials/<trial_id>.json       one TrialRecord (indented JSON), or ``{"reserved": true}``
                                 for an id reserved by ``next_trial_id`` and not written yet
    steps/<trial_id>.jsonl       StepRecords appended by workers in other processes
    metrics/<trial_id>/<key>.jsonl   metric points, one JSON object a line
    blobs/<kind>/<ab>/<hash><ext>    content-addressed: step source as .py text,
                                 environment snapshots as .json, signed pickles as .pkl,
                                 cache entries (output pickle + files read) as .json
    summaries.jsonl              what the history shows of each finished trial, one JSON
                                 line per final record written: {"id", "sig", "summary"}
                                 (``sig``: the record file's inode, size and ctime in ns)
    outputs.jsonl                the key index: {"k": "<namespace prefix>:<key>", "h": value}
                                 lines (impurity references, taints, cache entries),
                                 appended when new or changed; the last line wins
    outputs.lock                 the file lock taken to read-compare-append outputs.jsonl

Invariants:

* Trial ids are claimed by creating ``trials/<id>.json`` exclusively: the record
  is written to a temporary file and hard-linked into place (``os.link`` fails if
  the name exists), so two processes can never get the same id, a claim never
  replaces a record, and a killed process leaves a gap, never a duplicate.
* Every record is written to a temporary file in the same directory and moved
  into place with ``os.replace``: readers see the old record or the new one.
  A record that cannot be read anyway (empty or cut short by a power cut or a
  disk fault, edited by hand, not readable by this user) raises
  ``CorruptRecordError`` naming its path, logged once as a WARNING; history, the
  last trial and the CLI skip it, and its id is never claimed again (the file
  stays in place).
* Every ``OSError`` (a read-only store, a full disk) is raised as ``BackendError``
  naming the path and what to do; a failed write leaves no temporary file behind.
* Appends (step records from workers, metric points) are single ``write`` calls
  of one line to a file opened with ``O_APPEND``; a torn last line is skipped.
* Trial ids are claimed together with the ``running`` record (a temporary file
  hard-linked to ``trials/<id>.json``, which fails if the id is taken).
* Writing a trial touches only that trial's files and one appended line of
  ``outputs.jsonl``: O(1) in the history size. Each backend object keeps an
  index of ``outputs.jsonl`` and reads only the bytes appended since it last looked.

* ``summaries.jsonl`` is an index, never the truth: a line is appended (one
  ``O_APPEND`` write) after its record file is in place, and is used only while
  the record file still has the signature the line names; any other trial (no
  line, a torn or stale line, a record changed or torn since) is read from its
  record file. So a killed writer, a torn line or a hand-edited record costs a
  read, never a lost or misattributed trial. Readers append the lines that are
  missing, and rewrite the file when most of its lines are stale.

Nothing here fsyncs: a killed process loses nothing the kernel has accepted;
a power cut may lose the last trial.
"""
from __future__ import annotations

import json
import logging
import os
import threading
import uuid
import contextlib
import errno
import itertools
import shutil
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import orjson

from ..errors import BackendError, CorruptRecordError, TrialIDNotFoundError
from ..hashing import bytes_hash, new_hasher
from ..records import (Status, TrialRecord, TrialSummary, encode_value, gc_paused, now,
                       wide_ints)
from .base import METRIC_STREAM, STEPS_STREAM, Backend

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: filelock's portable lock instead
    fcntl = None  # type: ignore[assignment]


logger = logging.getLogger(__name__)

#: stat a name relative to an open directory (POSIX)
_STAT_AT = os.stat in os.supports_dir_fd and os.listdir in os.supports_fd


class ProcessLock:
    """An exclusive lock on a file, between processes (threads use their own lock too).

    On POSIX, ``flock`` on a descriptor opened once per process (about 1 us; a forked
    child opens its own, since a shared descriptor would share the lock); elsewhere
    ``filelock.FileLock`` (about 100 us). Both are ``flock`` locks on POSIX, so
    processes using either exclude each other.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fd: int | None = None
        self.pid = 0
        self.fallback: Any = None

    def __enter__(self) -> None:
        if fcntl is None:  # pragma: no cover
            if self.fallback is None:
                from filelock import FileLock

                self.fallback = FileLock(self.path)
            self.fallback.acquire()
            return
        while True:
            if self.fd is None or self.pid != _Process.pid:
                self.fd, self.pid = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644), _Process.pid
            fcntl.flock(self.fd, fcntl.LOCK_EX)
            try:
                if os.stat(self.path).st_ino == os.fstat(self.fd).st_ino:
                    return
            except FileNotFoundError:
                pass
            # the lock file was removed (the experiment deleted and made again): a lock
            # on the old file excludes nobody; take one on the file now at the path
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None

    def __exit__(self, *exc: Any) -> None:
        if fcntl is None:  # pragma: no cover
            self.fallback.release()
            return
        assert self.fd is not None
        fcntl.flock(self.fd, fcntl.LOCK_UN)

    def close(self) -> None:
        if self.fd is not None and self.pid == _Process.pid:
            os.close(self.fd)
        self.fd = None


_EXT = {"source": ".py", "environment": ".json", "pickle": ".pkl", "cache": ".json"}
#: the content of ``trials/<id>.json`` for an id reserved by ``next_trial_id`` only
_RESERVED = b'{"reserved": true}\n'
#: the summary index (see the module docstring)
SUMMARIES = "summaries.jsonl"
#: a file's signature: (inode, size, ctime in ns); any write, truncation, replacement,
#: chmod or chown of the file changes it
Signature = tuple[int, int, int]


def _signature(st: os.stat_result) -> Signature:
    return (st.st_ino, st.st_size, st.st_ctime_ns)


class _Process:
    """This process's id (kept: ``os.getpid`` is a system call; updated in a forked
    child) and a source of temporary names unique across processes."""

    pid = os.getpid()
    token = uuid.uuid4().hex[:12]
    count = itertools.count()

    @classmethod
    def after_fork(cls) -> None:
        cls.pid, cls.token, cls.count = os.getpid(), uuid.uuid4().hex[:12], itertools.count()

    @classmethod
    def temporary_name(cls, stem: str) -> str:
        """``.<stem>.<pid>-<token>-<n>.tmp``: no other process or call makes it."""
        return f".{stem}.{cls.pid}-{cls.token}-{next(cls.count)}.tmp"


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_Process.after_fork)


def _write_new(path: Path, data: bytes) -> None:
    """Create ``path`` (it must not exist) holding ``data``: plain system calls, not a
    buffered file object (which costs three more)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _BINARY, 0o644)
    try:
        view = memoryview(data)
        while view:  # a short write: the rest follows at once
            view = view[os.write(fd, view):]
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the new one."""
    tmp = path.with_name(_Process.temporary_name(path.name))
    try:
        _write_new(tmp, data)
        os.replace(tmp, path)
    except BaseException:
        try:
            tmp.unlink()
        except FileNotFoundError:
            pass
        raise


_ENCODER = json.JSONEncoder(sort_keys=True, ensure_ascii=False, separators=(", ", ": "))
_JSON_LINE = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def _line(obj: Any) -> str:
    """``obj`` as one line of compact JSON (orjson; json for what orjson refuses)."""
    try:
        return orjson.dumps(obj).decode("utf-8")
    except TypeError:
        return _JSON_LINE(obj)


_compact = _ENCODER.encode  # one encoder: json.dumps with options builds one per call


#: records as indented JSON, keys sorted, UTF-8 kept, a final newline
_ORJSON_RECORD = orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS | orjson.OPT_APPEND_NEWLINE


def _dump(obj: Mapping[str, Any]) -> bytes:
    """A record as indented JSON, keys sorted: readable and diffable.

    Encoded by orjson (about 4 us a record; json's encoders took 60 us); what orjson
    refuses (an integer beyond 64 bits, a key that is not text) goes through json's C
    encoder with one top-level field (and one list item) per line.
    """
    try:
        return orjson.dumps(obj, option=_ORJSON_RECORD)
    except TypeError:
        pass
    lines = []
    for key in sorted(obj):
        value = obj[key]
        if isinstance(value, list) and value and isinstance(value[0], dict):
            inner = ",\n  ".join(_compact(v) for v in value)
            lines.append(f" {json.dumps(key)}: [\n  {inner}\n ]")
        else:
            lines.append(f" {json.dumps(key)}: {_compact(value)}")
    return ("{\n" + ",\n".join(lines) + "\n}\n").encode("utf-8")


def _index_line(key: str, value: str) -> bytes:
    """One line of ``outputs.jsonl`` (orjson: json.dumps with options took 4 us a line; a
    key that is not valid UTF-8 text, such as a surrogate-escaped path, goes through json,
    escaped)."""
    try:
        return orjson.dumps({"k": key, "h": value}) + b"\n"
    except TypeError:
        return (json.dumps({"k": key, "h": value}, separators=(",", ":")) + "\n").encode("ascii")


def _summary_line(trial_id: int, record_json: Mapping[str, Any], sig: Signature) -> str:
    """One line of ``summaries.jsonl``."""
    return _line({"id": int(trial_id), "sig": list(sig),
                  "summary": TrialSummary.json_of_dict(record_json)})


#: appends are written in pieces of whole lines of at most this many bytes
APPEND_CHUNK = 1 << 16
#: appended bytes are read in pieces of this many bytes
APPEND_READ = 1 << 20
#: os.open's flag for bytes as they are (Windows; 0 elsewhere)
_BINARY = getattr(os, "O_BINARY", 0)


def _seek_read(fd: int, size: int, offset: int) -> bytes:
    os.lseek(fd, offset, os.SEEK_SET)
    return os.read(fd, size)


#: read at an offset: os.pread where there is one (not on Windows)
_pread: Callable[[int, int, int], bytes] = getattr(os, "pread", None) or _seek_read


def _append_lines(path: Path, items: Sequence[str]) -> None:
    """Append items, one a line, to a file opened with ``O_APPEND``: whole lines per
    ``write`` (at most :data:`APPEND_CHUNK` bytes each, unless one line is longer), so
    a line is never split between writers, and many lines cost few system calls."""
    data = ("\n".join(items) + "\n").encode("utf-8") if items else b""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | _BINARY, 0o644)
    try:
        start, end = 0, len(data)
        while start < end:
            stop = end
            if end - start > APPEND_CHUNK:  # the last line end within the chunk, else the
                cut = data.rfind(b"\n", start, start + APPEND_CHUNK)  # next one: whole lines
                stop = cut + 1 if cut >= start else data.index(b"\n", start) + 1
            view = memoryview(data)[start:stop]
            while view:  # a short write: the rest follows at once
                view = view[os.write(fd, view):]
            start = stop
    finally:
        os.close(fd)


def _read_lines(path: Path) -> list[str]:
    """The complete lines of ``path`` ([] if it does not exist)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    # on "\n" only: str.splitlines also cuts at U+2028, U+0085 and the like, which JSON
    # text may hold unescaped inside a string
    return [line for line in text.split("\n") if line.strip()]


class FileBackend(Backend):
    """Trials as files under ``<root>/<experiment_id>/`` (see the module docstring)."""

    scheme = "file"

    def __init__(self, root: str | os.PathLike[str], experiment_id: str) -> None:
        super().__init__(experiment_id)
        self.root = Path(root)
        self.path = self.root / experiment_id
        self._id_hint: int | None = None  # highest id known to be taken (per instance)
        self._ready = False
        self._outputs: dict[str, str] = {}  # index of outputs.jsonl, read incrementally
        self._outputs_offset = 0
        self._outputs_lock = threading.Lock()
        self._outputs_file_lock: ProcessLock | None = None
        # outputs.jsonl kept open per process: (pid, read fd, append fd or None)
        self._outputs_fds: tuple[int, int, int | None] | None = None
        self._metric_dirs: set[int] = set()

    @classmethod
    def from_uri(cls, uri: str, experiment_id: str) -> FileBackend:
        parts = urlsplit(uri)
        if parts.netloc not in ("", "localhost"):
            raise ValueError(f"A file:// backend URI names a local directory; got host "
                             f"{parts.netloc!r} in {uri!r}. Use file:///absolute/path.")
        return cls(Path(unquote(parts.path)), experiment_id)

    @property
    def uri(self) -> str:
        return self.root.absolute().as_uri()

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (str(self.root.absolute()), self.experiment_id))

    # -- layout -----------------------------------------------------------------
    def _ensure(self) -> None:
        if self._ready:
            return
        try:
            for sub in ("trials", "steps", "metrics", "blobs"):
                (self.path / sub).mkdir(parents=True, exist_ok=True)
            meta = self.path / "experiment.json"
            if not meta.exists():
                write_atomic(meta, _dump({"schema": 1, "experiment_id": self.experiment_id,
                                          "created": encode_value(now())}))
        except OSError as exc:
            raise self._translate(exc, "creating its directories") from exc
        self._ready = True

    @contextlib.contextmanager
    def _errors(self, action: str) -> Iterator[None]:
        """Raise every ``OSError`` as a BackendError naming the path and what to do."""
        try:
            yield
        except OSError as exc:
            raise self._translate(exc, action) from exc

    def _translate(self, exc: OSError, action: str) -> BackendError:
        where = Path(exc.filename).absolute() if exc.filename else self.path.absolute()
        if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            advice = (f"Check that {where} and the directories above it are readable "
                      "and writable by this user (ls -l; chmod or chown them), or pass "
                      "another backend= location (or set EXPERIGRAPH_BACKEND).")
        elif exc.errno in (errno.ENOSPC, errno.EDQUOT):
            advice = ("The file system is full: free some space, or pass another backend= "
                      "location.")
        else:
            advice = ("Check the directory and its file system, or pass another backend= "
                      "location.")
        return BackendError(
            f"File backend at {self.path.absolute()} failed while {action} for experiment "
            f"{self.experiment_id!r}, at {where} ({type(exc).__name__}: "
            f"{exc.strerror or exc}). {advice}")

    def _trial_path(self, trial_id: int) -> Path:
        return self.path / "trials" / f"{int(trial_id)}.json"

    def _scan_ids(self) -> list[int]:
        try:
            names = os.listdir(self.path / "trials")
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise self._translate(exc, "listing trial ids") from exc
        ids = []
        for name in names:
            stem, dot, ext = name.partition(".")
            if ext == "json" and stem.isdigit():
                ids.append(int(stem))
        return sorted(ids)

    # -- trials -----------------------------------------------------------------
    def _claim(self, content_for: Callable[[int], bytes]) -> int:
        """Claim the next free id: hard-link a file holding ``content_for(id)`` to
        ``trials/<id>.json``, which fails if another process has it (then try the next
        id with its own content, so a crash never leaves a record under the wrong id)."""
        self._ensure()
        if self._id_hint is None:
            ids = self._scan_ids()
            self._id_hint = ids[-1] if ids else 0
        candidate = self._id_hint + 1
        tmp = self.path / "trials" / _Process.temporary_name("start")
        with self._errors("claiming a trial id"):
            try:
                while True:
                    _write_new(tmp, content_for(candidate))
                    try:
                        os.link(tmp, self._trial_path(candidate))
                    except FileExistsError:
                        os.unlink(tmp)
                        candidate += 1
                        continue
                    break
            finally:
                tmp.unlink(missing_ok=True)
        self._id_hint = candidate
        return candidate

    def next_trial_id(self) -> int:
        return self._claim(lambda trial_id: _RESERVED)

    def create_trial(self, record: TrialRecord) -> bool:
        """Hard-link a temporary file holding ``record`` to ``trials/<id>.json``: fails,
        and leaves the file there untouched, if the id has a file already."""
        self._ensure()
        path = self._trial_path(record.trial_id)
        tmp = path.with_name(_Process.temporary_name("create"))
        obj = record.to_json()
        with self._errors(f"writing trial {record.trial_id}"):
            try:
                _write_new(tmp, _dump(obj))
                try:
                    os.link(tmp, path)
                except FileExistsError:
                    return False
            finally:
                tmp.unlink(missing_ok=True)
        self._id_hint = max(self._id_hint or 0, record.trial_id)
        self._add_summary(record, obj)
        return True

    def start_trial(self, make_record: Callable[[int], TrialRecord]) -> TrialRecord:
        """Claim the next id and write its running record in one step (see module docstring)."""
        made: dict[int, tuple[TrialRecord, dict[str, Any]]] = {}

        def content(trial_id: int) -> bytes:
            record = make_record(trial_id)
            made[trial_id] = (record, record.to_json())
            return _dump(made[trial_id][1])

        record, obj = made[self._claim(content)]
        self._add_summary(record, obj)
        return record

    def finish_trial(self, record: TrialRecord) -> TrialRecord:
        """``Backend.finish_trial``; when the first bytes of the trial's file hold this
        trial's claim token (a record is written with its keys sorted: ``claim`` comes
        first), the final record replaces it without reading the rest or decoding it."""
        if record.claim:
            try:
                fd = os.open(self._trial_path(record.trial_id), os.O_RDONLY | _BINARY)
                try:
                    head = os.read(fd, 128)
                finally:
                    os.close(fd)
            except OSError:
                head = b""
            if f'"claim": "{record.claim}"'.encode("utf-8") in head:
                self.write_trial(record)
                return record
        return super().finish_trial(record)

    def last_trial_id(self) -> int:
        hint = self._id_hint
        if hint is None:
            ids = self._scan_ids()
            hint = ids[-1] if ids else 0
        with self._errors("reading the last trial id"):
            while self._trial_path(hint + 1).exists():  # others may have claimed more
                hint += 1
        self._id_hint = hint
        return hint

    def write_trial(self, record: TrialRecord) -> None:
        self._ensure()
        path = self._trial_path(record.trial_id)
        obj = record.to_json()
        with self._errors(f"writing trial {record.trial_id}"):
            write_atomic(path, _dump(obj))
        self._add_summary(record, obj)

    def read_trial(self, trial_id: int) -> TrialRecord:
        return self.read_signed(trial_id)[0]

    def read_signed(self, trial_id: int) -> tuple[TrialRecord, Signature]:
        """A record and the signature of the file it was read from."""
        try:
            path = self._trial_path(trial_id)
            fd = os.open(path, os.O_RDONLY | _BINARY)
        except (FileNotFoundError, ValueError, TypeError):
            raise TrialIDNotFoundError(trial_id) from None
        except OSError as exc:  # e.g. not readable by this user
            raise self.unreadable_record(
                str(path.absolute()), f"{type(exc).__name__}: {exc.strerror or exc}",
                "Check that this user may read it (ls -l; chmod or chown)") from exc
        try:
            with open(fd, "rb") as f:
                st = os.fstat(fd)
                raw = f.read()
        except OSError as exc:
            raise self.unreadable_record(
                str(path.absolute()), f"{type(exc).__name__}: {exc.strerror or exc}") from exc
        sig = _signature(st)
        if raw == _RESERVED:
            raise TrialIDNotFoundError(
                trial_id, f"Trial {trial_id} is reserved but its record was never written "
                "(the process that reserved it stopped first).")
        if not raw.strip():
            raise self.unreadable_record(str(path.absolute()), "the file is empty")
        try:
            return TrialRecord.from_json(json.loads(raw)), sig
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise self.unreadable_record(str(path.absolute()),
                                         f"{type(exc).__name__}: {exc}") from exc

    def trial_ids(self) -> list[int]:
        """Ids with a record file, readable or not (reserved-only ids are left out)."""
        out = []
        for trial_id in self._scan_ids():
            path = self._trial_path(trial_id)
            try:
                if path.stat().st_size == len(_RESERVED) and path.read_bytes() == _RESERVED:
                    continue
            except FileNotFoundError:
                continue
            except OSError:  # unreadable: listed, and reported when it is read
                pass
            out.append(trial_id)
        return out

    # -- the summary index ----------------------------------------------------------
    def _add_summary(self, record: TrialRecord, obj: Mapping[str, Any]) -> None:
        """Append the summary line of a final record just put in place, with its file's
        signature (a running record has none: it is read from its file). A failure costs
        readers a record read, never a wrong history, so it is not raised."""
        if record.status is Status.RUNNING:
            return
        try:
            sig = _signature(os.stat(self._trial_path(record.trial_id)))
            _append_lines(self.path / SUMMARIES, [_summary_line(record.trial_id, obj, sig)])
        except OSError as exc:
            logger.debug("Could not append to %s: %s", self.path / SUMMARIES, exc)

    def _signatures(self) -> dict[int, Signature | None]:
        """Each id with a record file, and the file's signature (None: not stat-able)."""
        out: dict[int, Signature | None] = {}
        trials = self.path / "trials"
        if not _STAT_AT:  # pragma: no cover - no dir_fd (Windows): a full path each
            try:
                names = os.listdir(trials)
            except FileNotFoundError:
                return out
            return self._stat_each(names, lambda name: os.stat(trials / name), out)
        try:
            fd = os.open(trials, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        except FileNotFoundError:
            return out
        try:  # each stat resolves one name in the directory, not the whole path
            return self._stat_each(os.listdir(fd), lambda name: os.stat(name, dir_fd=fd), out)
        finally:
            os.close(fd)

    @staticmethod
    def _stat_each(names: list[str], stat: Callable[[str], os.stat_result],
                   out: dict[int, Signature | None]) -> dict[int, Signature | None]:
        for name in names:
            if not name.endswith(".json") or not name[:-5].isdigit():
                continue
            try:
                st = stat(name)
            except FileNotFoundError:
                continue
            except OSError:
                out[int(name[:-5])] = None
                continue
            out[int(name[:-5])] = (st.st_ino, st.st_size, st.st_ctime_ns)
        return out

    def _summaries_bytes(self) -> bytes:
        try:
            with open(self.path / SUMMARIES, "rb") as f:
                return f.read()
        except FileNotFoundError:
            return b""

    def read_summaries_keyed(self, known: str | None = None
                             ) -> tuple[str | None, list[TrialSummary] | None]:
        """The digest is XXH3-128 of ``summaries.jsonl``'s bytes and of every record
        file's signature: all that :meth:`read_summaries` reads (a record file is read
        only where its signature differs from its line's, and a changed record has
        another signature). The summaries are read from that same state. No digest when
        a record file cannot be stat'ed (its content could change unseen)."""
        if type(self).read_summaries is not FileBackend.read_summaries:
            return None, self.read_summaries()  # a subclass's own answer: no digest of it
        return self._keyed(known, None)

    def read_summary_rows(self, decode: Callable[[dict[str, Any]], Any],
                          known: str | None = None) -> tuple[str | None, list[Any] | None]:
        """Each line's summary goes to ``decode`` as parsed (see
        :meth:`read_summaries_keyed` for the digest)."""
        if (type(self).read_summaries is not FileBackend.read_summaries
                or type(self).read_summaries_keyed is not FileBackend.read_summaries_keyed):
            return super().read_summary_rows(decode, known)  # a subclass's own answer
        return self._keyed(known, decode)

    def _keyed(self, known: str | None, decode: Callable[[dict[str, Any]], Any] | None
               ) -> tuple[str | None, list[Any] | None]:
        with self._errors("listing trials"):
            sigs = self._signatures()
        if None in sigs.values():  # a record file that could not be stat'ed
            return None, self._read_summaries(sigs, decode=decode)
        data = self._summaries_bytes()
        h = new_hasher()
        h.update(b"%d:" % len(data))
        h.update(data)
        # keys sorted as text by orjson: half the time of sorting the items in Python
        h.update(orjson.dumps(sigs, option=orjson.OPT_NON_STR_KEYS | orjson.OPT_SORT_KEYS))
        key = h.hexdigest()
        if key == known:
            return key, None
        summaries = self._read_summaries(sigs, data, decode)
        if len(summaries) != len(sigs):  # a record that could not be read (a torn file, an
            return None, summaries       # I/O error, a reserved id): no answer to keep
        return key, summaries

    def _summary_index(self, data: bytes | None = None) -> tuple[dict[int, tuple[Any, Any]], int]:
        """The lines of ``summaries.jsonl`` (or ``data``, its bytes) as ``{id: (sig,
        summary JSON)}`` (the last line of an id wins) and how many lines it has; torn
        lines are left out."""
        if data is None:
            data = self._summaries_bytes()
        lines = data.splitlines()
        index: dict[int, tuple[Any, Any]] = {}
        loads = json.loads if wide_ints(data) else orjson.loads  # exact beyond 64 bits
        for line in lines:  # line by line: no copy of the whole file to parse it at once
            try:
                try:
                    item = loads(line)
                except ValueError:  # torn, or an integer beyond 64 bits: json tells
                    item = json.loads(line)
                index[item["id"]] = (tuple(item["sig"]), item["summary"])
            except (ValueError, KeyError, TypeError):
                continue
        return index, len(lines)

    def read_summaries(self) -> list[TrialSummary]:
        """Summaries of every readable trial, by id: from ``summaries.jsonl`` where its line
        matches the record file's signature, else from the record file (the missing
        lines are then appended; see the module docstring)."""
        with self._errors("listing trials"):
            sigs = self._signatures()
        return self._read_summaries(sigs)

    def _read_summaries(self, sigs: Mapping[int, Signature | None], data: bytes | None = None,
                        decode: Callable[[dict[str, Any]], Any] | None = None) -> list[Any]:
        """Summaries (``decode``: what it makes of each summary's JSON form) by id."""
        with gc_paused():
            out, repaired, n_lines = self._summaries(sigs, data, decode)
        if repaired:
            self._repair_summaries(repaired, n_lines, len(sigs))
        return out

    def _summaries(self, sigs: Mapping[int, Signature | None], data: bytes | None = None,
                   decode: Callable[[dict[str, Any]], Any] | None = None
                   ) -> tuple[list[Any], list[str], int]:
        index, n_lines = self._summary_index(data)
        out: list[Any] = []
        repaired: list[str] = []
        from_line = TrialSummary.from_json if decode is None else decode
        for trial_id in sorted(sigs):
            sig = sigs[trial_id]
            entry = index.get(trial_id)
            if entry is not None and sig is not None and entry[0] == sig:
                try:
                    out.append(from_line(entry[1]))
                    continue
                except (ValueError, KeyError, TypeError, AttributeError):
                    pass  # a damaged line: the record says what it is
            try:
                record, read_sig = self.read_signed(trial_id)
            except (TrialIDNotFoundError, CorruptRecordError):  # the latter logged once
                continue
            obj = record.to_json()
            out.append(TrialSummary.of(record) if decode is None
                       else decode(TrialSummary.json_of_dict(obj)))
            if record.status is not Status.RUNNING and read_sig == sig:
                repaired.append(_summary_line(trial_id, obj, read_sig))
        return out, repaired, n_lines

    def _repair_summaries(self, lines: list[str], n_lines: int, n_trials: int) -> None:
        """Append missing summary lines; rewrite the file (only its lines that still
        match) when most of it is stale. Never raises: the index is only a cache."""
        path = self.path / SUMMARIES
        try:
            if n_lines + len(lines) > 2 * n_trials + 100:
                sigs = self._signatures()
                index, _ = self._summary_index()
                keep = [_line({"id": i, "sig": list(sig), "summary": summary})
                        for i, (sig, summary) in sorted(index.items()) if sigs.get(i) == sig]
                write_atomic(path, "".join(line + "\n" for line in keep + lines)
                             .encode("utf-8"))
            else:
                _append_lines(path, lines)
        except OSError as exc:  # a read-only store: readers just read the records
            logger.debug("Could not update %s: %s", path, exc)

    # -- streams ------------------------------------------------------------------
    def _stream_path(self, trial_id: int, stream: str) -> Path:
        """``steps/<id>.jsonl``, or ``metrics/<id>/<quoted key>.jsonl`` for a metric."""
        if stream == STEPS_STREAM:
            return self.path / "steps" / f"{int(trial_id)}.jsonl"
        if stream.startswith(METRIC_STREAM):
            key = stream[len(METRIC_STREAM):]
            return self._metric_dir(trial_id) / f"{quote(key, safe='')}.jsonl"
        raise ValueError(f"Unknown stream {stream!r}: accepted are {STEPS_STREAM!r} and "
                         f"{METRIC_STREAM!r} followed by a metric name.")

    def append_stream(self, trial_id: int, stream: str, items: Sequence[str]) -> None:
        self._ensure()
        path = self._stream_path(trial_id, stream)
        with self._errors(f"appending to stream {stream!r} of trial {trial_id}"):
            if stream != STEPS_STREAM and trial_id not in self._metric_dirs:
                path.parent.mkdir(exist_ok=True)
                self._metric_dirs.add(trial_id)
            _append_lines(path, items)

    def read_stream(self, trial_id: int, stream: str) -> list[str]:
        with self._errors(f"reading stream {stream!r} of trial {trial_id}"):
            return _read_lines(self._stream_path(trial_id, stream))

    def read_stream_parsed(self, trial_id: int, stream: str) -> list[Any] | None:
        """The stream's file parsed in one go, as one JSON array of its lines; None when a
        line is torn or unreadable, or when the lines do not give one item each."""
        with self._errors(f"reading stream {stream!r} of trial {trial_id}"):
            try:
                data = self._stream_path(trial_id, stream).read_bytes()
            except FileNotFoundError:
                return []
        body = data.rstrip(b"\n")
        if not body:
            return []
        if wide_ints(body):  # orjson would read an integer beyond 64 bits as a float
            return None
        try:
            items = orjson.loads(b"[" + body.replace(b"\n", b",") + b"]")
        except orjson.JSONDecodeError:
            return None
        return items if len(items) == body.count(b"\n") + 1 else None  # type: ignore[no-any-return]

    def stream_names(self, trial_id: int) -> list[str]:
        names = []
        with self._errors(f"listing the streams of trial {trial_id}"):
            if (self.path / "steps" / f"{int(trial_id)}.jsonl").exists():
                names.append(STEPS_STREAM)
            try:
                files = os.listdir(self._metric_dir(trial_id))
            except FileNotFoundError:
                files = []
        names += sorted(METRIC_STREAM + unquote(n[:-len(".jsonl")]) for n in files
                        if n.endswith(".jsonl"))
        return names

    # -- blobs ------------------------------------------------------------------
    def _blob_path(self, kind: str, blob_hash: str) -> Path:
        if not blob_hash.isalnum():
            raise KeyError(blob_hash)
        return self.path / "blobs" / kind / blob_hash[:2] / f"{blob_hash}{_EXT.get(kind, '')}"

    def put_blob(self, kind: str, data: bytes) -> str:
        self._ensure()
        blob_hash = bytes_hash(data)
        path = self._blob_path(kind, blob_hash)
        with self._errors(f"storing {kind} blob {blob_hash}"):
            if not path.exists():
                path.parent.mkdir(parents=True, exist_ok=True)
                write_atomic(path, data)
        return blob_hash

    def get_blob(self, kind: str, blob_hash: str) -> bytes:
        path = self._blob_path(kind, blob_hash)
        try:
            return path.read_bytes()
        except FileNotFoundError:
            raise KeyError(f"no {kind} blob {blob_hash} in {self.path}") from None
        except OSError as exc:
            raise self._translate(exc, f"reading {kind} blob {blob_hash}") from exc

    def blob_hashes(self, kind: str) -> list[str] | None:
        ext = _EXT.get(kind, "")
        base = self.path / "blobs" / kind
        with self._errors(f"listing {kind} blobs"):
            return sorted(p.name[:len(p.name) - len(ext)] if ext else p.name
                          for p in base.glob("*/*") if p.is_file()
                          and not p.name.startswith(".") and p.name.endswith(ext))

    def delete_blob(self, kind: str, blob_hash: str) -> int:
        path = self._blob_path(kind, blob_hash)
        with self._errors(f"removing {kind} blob {blob_hash}"):
            try:
                size = path.stat().st_size
                path.unlink()
            except FileNotFoundError:
                return 0
        return size

    # -- the key index --------------------------------------------------------------
    def _outputs_fd(self) -> int | None:
        """The descriptor of outputs.jsonl kept open by this process for reading; None
        while the file does not exist."""
        fds = self._outputs_fds
        if fds is None or fds[0] != _Process.pid:  # a forked child opens its own
            try:
                fds = (_Process.pid,
                       os.open(self.path / "outputs.jsonl", os.O_RDONLY | _BINARY), None)
            except FileNotFoundError:
                return None
            self._outputs_fds = fds
        return fds[1]

    def _outputs_appender(self) -> int:
        """The descriptor this process appends to outputs.jsonl with (the file created)."""
        if self._outputs_fd() is None:
            os.close(os.open(self.path / "outputs.jsonl",
                             os.O_WRONLY | os.O_CREAT | os.O_APPEND | _BINARY, 0o644))
            self._outputs_fd()
        fds = self._outputs_fds
        assert fds is not None
        if fds[2] is None:
            fds = self._outputs_fds = (fds[0], fds[1], os.open(
                self.path / "outputs.jsonl", os.O_WRONLY | os.O_APPEND | _BINARY, 0o644))
        assert fds[2] is not None
        return fds[2]

    def _outputs_reopened(self) -> None:
        """With the file lock: when outputs.jsonl is no longer the file this process
        opened (the experiment was deleted and made again), forget what was read from
        the old one; the next read opens the new one and reads it from the start."""
        fds = self._outputs_fds
        if fds is None or fds[0] != _Process.pid:
            return
        try:
            current = os.stat(self.path / "outputs.jsonl").st_ino
        except FileNotFoundError:
            current = None
        if current != os.fstat(fds[1]).st_ino:
            self._close_outputs()
            self._outputs, self._outputs_offset = {}, 0

    def _close_outputs(self) -> None:
        """Close the descriptors of outputs.jsonl this process opened (a forked child
        leaves its parent's alone); the next use opens them again."""
        fds, self._outputs_fds = getattr(self, "_outputs_fds", None), None
        if fds is not None and fds[0] == _Process.pid:
            for fd in fds[1:]:
                if fd is not None:
                    with contextlib.suppress(OSError):
                        os.close(fd)

    def _sync_outputs(self) -> bool:
        """Read what was appended to outputs.jsonl since last time (call with the lock);
        whether the file ends with a whole line (False: a line is being written, or was
        torn by a killed writer)."""
        fd = self._outputs_fd()
        if fd is None:
            return True
        chunks = []
        offset = self._outputs_offset
        while True:  # one system call when nothing was appended
            chunk = _pread(fd, APPEND_READ, offset)
            chunks.append(chunk)
            offset += len(chunk)
            if len(chunk) < APPEND_READ:
                break
        data = b"".join(chunks)
        end = data.rfind(b"\n") + 1  # a line still being written is read next time
        for line in data[:end].splitlines():
            try:
                entry = json.loads(line)
                self._outputs[entry["k"]] = entry["h"]
            except (ValueError, KeyError, TypeError):
                logger.warning("Skipping a torn line of %s", self.path / "outputs.jsonl")
        self._outputs_offset += end
        return end == len(data)

    def read_index_values(self, keys: Sequence[str]) -> dict[str, str | None]:
        with self._outputs_lock, self._errors("reading step outputs"):
            self._sync_outputs()
            return {k: self._outputs.get(k) for k in keys}

    def swap_index_values(self, hashes: Mapping[str, str]) -> dict[str, str | None]:
        """Read-compare-append under a thread lock and a file lock (``outputs.lock``), so
        concurrent trials in threads and processes each see the others' outputs."""
        self._ensure()
        with self._outputs_lock, self._errors("checking step outputs"):
            self._sync_outputs()
            old = {k: self._outputs.get(k) for k in hashes}
            if all(old[k] == h for k, h in hashes.items()):
                return old  # nothing to write: no file lock needed
            if self._outputs_file_lock is None:
                self._outputs_file_lock = ProcessLock(self.path / "outputs.lock")
            with self._outputs_file_lock:
                self._outputs_reopened()
                whole = self._sync_outputs()  # what other processes appended meanwhile
                old = {k: self._outputs.get(k) for k in hashes}
                changed = {k: h for k, h in hashes.items() if old[k] != h}
                data = b"".join(_index_line(k, h) for k, h in changed.items())
                if not whole:  # a killed writer's torn line: ours start on a line of their own
                    data = b"\n" + data
                fd, view = self._outputs_appender(), memoryview(data)
                while view:  # a short write: the rest follows at once
                    view = view[os.write(fd, view):]
                if whole:  # every appender holds the lock: the file ends with our lines
                    self._outputs.update(changed)
                    self._outputs_offset += len(data)
                else:
                    self._sync_outputs()
        return old

    def _metric_dir(self, trial_id: int) -> Path:
        return self.path / "metrics" / str(int(trial_id))

    # -- experiments ------------------------------------------------------------
    def experiment_ids(self) -> list[str]:
        try:
            entries = sorted(os.listdir(self.root))
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise self._translate(exc, "listing experiments") from exc
        return [e for e in entries if (self.root / e / "experiment.json").is_file()]

    def close(self) -> None:
        """Let go of the index's lock file (opened by a process that wrote the index)."""
        if self._outputs_file_lock is not None:
            self._outputs_file_lock.close()
        self._close_outputs()

    def __del__(self) -> None:
        self._close_outputs()

    def delete_experiment(self) -> int:
        """Remove ``<root>/<experiment_id>/`` and everything in it; return how many files."""
        if not self.path.is_dir():
            return 0
        with self._errors("deleting the experiment"):
            removed = sum(1 for p in self.path.rglob("*") if not p.is_dir())
            shutil.rmtree(self.path)
        self._ready, self._id_hint = False, None
        self.close()
        self._outputs, self._outputs_offset, self._metric_dirs = {}, 0, set()
        return removed
