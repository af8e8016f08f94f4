"""The embedded default backend: one directory per experiment.

On disk, under ``<root>/<experiment_id>/``::

    experiment.json              {"schema", "experiment_id", "created"}
    trials/<trial_id>.json       one TrialRecord (indented JSON); an empty file is an
                                 id reserved by ``next_trial_id`` and not written yet
    steps/<trial_id>.jsonl       StepRecords appended by workers in other processes
    metrics/<trial_id>/<key>.jsonl   metric points, one JSON object a line
    blobs/<kind>/<ab>/<hash><ext>    content-addressed: step source as .py text,
                                 environment snapshots as .json, signed pickles as .pkl
    outputs/<ab>/<hash>          the last output hash seen for a (step, code, input)

Invariants:

* Trial ids are claimed by creating ``trials/<id>.json`` with ``O_EXCL``: two
  processes can never get the same id, and a killed process leaves a gap, never
  a duplicate.
* Every record is written to a temporary file in the same directory and moved
  into place with ``os.replace``: readers see the old record or the new one.
  A record that fails to parse anyway (edited by hand, a disk fault) raises
  ``CorruptRecordError`` naming its path; history skips it with a WARNING.
* Appends (step records from workers, metric points) are single ``write`` calls
  of one line to a file opened with ``O_APPEND``; a torn last line is skipped.
* Writing a trial touches only that trial's files: O(1) in the history size.

Nothing here fsyncs: a killed process loses nothing the kernel has accepted;
a power cut may lose the last trial.
"""
from __future__ import annotations

import json
import logging
import os
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from ..errors import BackendError, CorruptRecordError, TrialIDNotFoundError
from ..hashing import bytes_hash, text_hash
from ..records import StepRecord, TrialRecord, decode_value, encode_value, now
from .base import Backend

logger = logging.getLogger(__name__)

_EXT = {"source": ".py", "environment": ".json", "pickle": ".pkl"}


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the new one."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        try:
            tmp.unlink()
        except FileNotFoundError:
            pass
        raise


def _dump(obj: Any) -> bytes:
    return (json.dumps(obj, sort_keys=True, indent=1, ensure_ascii=False) + "\n").encode("utf-8")


def _append_line(path: Path, obj: Any) -> None:
    line = (json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
            + "\n").encode("utf-8")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


def _read_lines(path: Path) -> list[Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    out = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            logger.warning("Skipping torn line %d of %s", n, path)
    return out


class FileBackend(Backend):
    """Trials as files under ``<root>/<experiment_id>/`` (see the module docstring)."""

    scheme = "file"

    def __init__(self, root: str | os.PathLike[str], experiment_id: str) -> None:
        super().__init__(experiment_id)
        self.root = Path(root)
        self.path = self.root / experiment_id
        self._id_hint: int | None = None  # highest id known to be taken (per instance)
        self._ready = False

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
            for sub in ("trials", "steps", "metrics", "blobs", "outputs"):
                (self.path / sub).mkdir(parents=True, exist_ok=True)
            meta = self.path / "experiment.json"
            if not meta.exists():
                write_atomic(meta, _dump({"schema": 1, "experiment_id": self.experiment_id,
                                          "created": encode_value(now())}))
        except OSError as exc:
            raise BackendError(
                f"Cannot use {self.path} as the file backend of experiment "
                f"{self.experiment_id!r}: {exc}. Check that the directory is writable, or "
                "pass another backend= location.") from exc
        self._ready = True

    def _trial_path(self, trial_id: int) -> Path:
        return self.path / "trials" / f"{int(trial_id)}.json"

    def _scan_ids(self) -> list[int]:
        try:
            names = os.listdir(self.path / "trials")
        except FileNotFoundError:
            return []
        ids = []
        for name in names:
            stem, dot, ext = name.partition(".")
            if ext == "json" and stem.isdigit():
                ids.append(int(stem))
        return sorted(ids)

    # -- trials -----------------------------------------------------------------
    def next_trial_id(self) -> int:
        self._ensure()
        if self._id_hint is None:
            ids = self._scan_ids()
            self._id_hint = ids[-1] if ids else 0
        candidate = self._id_hint + 1
        while True:
            try:
                fd = os.open(self._trial_path(candidate), os.O_WRONLY | os.O_CREAT | os.O_EXCL,
                             0o644)
            except FileExistsError:
                candidate += 1
                continue
            os.close(fd)
            self._id_hint = candidate
            return candidate

    def last_trial_id(self) -> int:
        hint = self._id_hint
        if hint is None:
            ids = self._scan_ids()
            hint = ids[-1] if ids else 0
        while self._trial_path(hint + 1).exists():  # others may have claimed more
            hint += 1
        self._id_hint = hint
        return hint

    def write_trial(self, record: TrialRecord) -> None:
        self._ensure()
        write_atomic(self._trial_path(record.trial_id), _dump(record.to_json()))

    def read_trial(self, trial_id: int) -> TrialRecord:
        path = self._trial_path(trial_id)
        try:
            raw = path.read_bytes()
        except (FileNotFoundError, ValueError):
            raise TrialIDNotFoundError(trial_id) from None
        if not raw:
            raise TrialIDNotFoundError(
                trial_id, f"Trial {trial_id} is reserved but its record was never written "
                "(the process that reserved it stopped first).")
        try:
            return TrialRecord.from_json(json.loads(raw))
        except (ValueError, KeyError, TypeError) as exc:
            raise CorruptRecordError(str(path), f"{type(exc).__name__}: {exc}") from exc

    def trial_ids(self) -> list[int]:
        out = []
        for trial_id in self._scan_ids():
            try:
                if self._trial_path(trial_id).stat().st_size:
                    out.append(trial_id)
            except FileNotFoundError:
                continue
        return out

    # -- step records from workers -------------------------------------------------
    def append_step_records(self, trial_id: int, records: Sequence[StepRecord]) -> None:
        self._ensure()
        for rec in records:
            _append_line(self.path / "steps" / f"{int(trial_id)}.jsonl", rec.to_json())

    def read_step_records(self, trial_id: int) -> list[StepRecord]:
        return [StepRecord.from_json(obj)
                for obj in _read_lines(self.path / "steps" / f"{int(trial_id)}.jsonl")]

    # -- blobs ------------------------------------------------------------------
    def _blob_path(self, kind: str, blob_hash: str) -> Path:
        if not blob_hash.isalnum():
            raise KeyError(blob_hash)
        return self.path / "blobs" / kind / blob_hash[:2] / f"{blob_hash}{_EXT.get(kind, '')}"

    def put_blob(self, kind: str, data: bytes) -> str:
        self._ensure()
        blob_hash = bytes_hash(data)
        path = self._blob_path(kind, blob_hash)
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(path, data)
        return blob_hash

    def get_blob(self, kind: str, blob_hash: str) -> bytes:
        try:
            return self._blob_path(kind, blob_hash).read_bytes()
        except FileNotFoundError:
            raise KeyError(f"no {kind} blob {blob_hash} in {self.path}") from None

    # -- impurity ---------------------------------------------------------------
    def swap_output_hash(self, step_key: str, output_hash: str) -> str | None:
        self._ensure()
        h = text_hash(step_key)
        path = self.path / "outputs" / h[:2] / h
        try:
            old = path.read_text(encoding="utf-8").strip() or None
        except FileNotFoundError:
            old = None
            path.parent.mkdir(parents=True, exist_ok=True)
        if old != output_hash:
            write_atomic(path, output_hash.encode("utf-8"))
        return old

    # -- metrics ----------------------------------------------------------------
    def _metric_dir(self, trial_id: int) -> Path:
        return self.path / "metrics" / str(int(trial_id))

    def append_metric(self, trial_id: int, key: str, epoch: Any, value: Any) -> None:
        self._ensure()
        d = self._metric_dir(trial_id)
        d.mkdir(exist_ok=True)
        _append_line(d / f"{quote(key, safe='')}.jsonl",
                     {"epoch": encode_value(epoch), "value": encode_value(value)})

    def read_metric(self, trial_id: int, key: str) -> list[tuple[Any, Any]]:
        path = self._metric_dir(trial_id) / f"{quote(key, safe='')}.jsonl"
        return [(decode_value(o["epoch"]), decode_value(o["value"])) for o in _read_lines(path)]

    def metric_keys(self, trial_id: int) -> list[str]:
        try:
            names = os.listdir(self._metric_dir(trial_id))
        except FileNotFoundError:
            return []
        return sorted(unquote(n[:-len(".jsonl")]) for n in names if n.endswith(".jsonl"))

    # -- experiments ------------------------------------------------------------
    def experiment_ids(self) -> list[str]:
        try:
            entries = sorted(os.listdir(self.root))
        except FileNotFoundError:
            return []
        return [e for e in entries if (self.root / e / "experiment.json").is_file()]


