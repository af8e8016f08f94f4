"""Artifacts: the content of files a trial wrote (or read), kept with the trial.

An :class:`ArtifactStore` is a content-addressed directory on any file system
``fsspec`` resolves (a local directory, ``memory://``, ``s3://``, ``gcs://``...):

    <location>/objects/<ab>/<hash>        the bytes of one file, named by their hash
    <location>/manifests/<ab>/<hash>.json a directory: {"files": {relpath: hash}, "sizes": ...}
    <location>/tmp/<uuid>                 a file being written (removed when done)

The hash is the one :func:`experigraph.hashing.path_hash` records (xxh3-128 of the
content; for a directory, of its ``{relpath: hash}`` listing), so a step record's
``hash`` is also the artifact's address, and the same content written by many
trials is stored once.

Invariants:

* A file is read once, in chunks of ``CHUNK`` bytes, hashed while it is copied
  into ``tmp/``, then moved to its address (``os.replace`` on a local file system,
  ``fs.mv`` elsewhere): memory stays bounded whatever the file's size, and a
  reader never sees a partly written object. A process killed mid-copy leaves a
  file in ``tmp/`` only (``experigraph gc`` removes it once it is old).
* An object is never rewritten: if its address exists, the copy is dropped.
* Restoring streams the object to a temporary file next to the destination,
  checks its hash, and only then moves it into place: a damaged object is
  reported and changes nothing.

Where the store is: ``Experiment(..., artifacts=URL)`` gives ``URL/<experiment
id>``; without it, the file backend keeps artifacts in ``<its directory>/
artifacts``; Redis and MongoDB hold no large files, so without ``artifacts=``
outputs are hashed but not kept (one WARNING says so).
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import time
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from .errors import ArtifactError, NotRecordedError
from .hashing import CHUNK, json_hash, new_hasher, path_hash, remember_file_hash, \
    known_file_hash

if TYPE_CHECKING:
    from .backends.base import Backend
    from .records import TrialRecord

logger = logging.getLogger(__name__)

#: bytes read and written at a time
CHUNK_SIZE = CHUNK
#: objects and temporary files younger than this are never collected (a running
#: trial may have written them and not yet recorded its trial)
GC_GRACE_SECONDS = 3600.0


def _is_local(fs: Any) -> bool:
    from fsspec.implementations.local import LocalFileSystem

    return isinstance(fs, LocalFileSystem)


class ArtifactStore:
    """A content-addressed store of files on an fsspec file system (see the module docstring).

    It pickles as its URL and opens the file system lazily, so it works on workers.
    """

    def __init__(self, url: str | os.PathLike[str], location: str | None = None) -> None:
        self.url = os.fspath(url)
        if "://" not in self.url:
            self.url = os.path.abspath(self.url)
        #: the artifact location shared by experiments (``artifacts=``), whose
        #: ``.producers/`` index links trials of experiments recorded in other stores
        self.location = location
        self._fs: Any = None
        self._root = ""

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.url, self.location))

    def __repr__(self) -> str:
        return f"ArtifactStore({self.url!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ArtifactStore) and other.url == self.url

    def __hash__(self) -> int:
        return hash(self.url)

    @property
    def fs(self) -> Any:
        if self._fs is None:
            from fsspec.core import url_to_fs

            try:
                self._fs, self._root = url_to_fs(self.url)
            except (ImportError, ValueError) as exc:
                raise ArtifactError(
                    f"Cannot open the artifact location {self.url!r}: {exc}. Give a local "
                    "directory or a URL fsspec knows (install its driver, e.g. "
                    "pip install s3fs for s3://).") from exc
            self._root = self._root.rstrip("/")
        return self._fs

    def _path(self, *parts: str) -> str:
        self.fs  # noqa: B018 - sets _root
        return "/".join((self._root, *parts))

    def object_path(self, content_hash: str) -> str:
        return self._path("objects", content_hash[:2], content_hash)

    def manifest_path(self, content_hash: str) -> str:
        return self._path("manifests", content_hash[:2], f"{content_hash}.json")

    # -- writing ----------------------------------------------------------------
    def has(self, content_hash: str) -> bool:
        return bool(self.fs.exists(self.object_path(content_hash)))

    def _publish(self, tmp: str, final: str) -> None:
        """Move a finished temporary file to its address; drop it if the address exists."""
        fs = self.fs
        if fs.exists(final):
            fs.rm(tmp)
            self.touch(final)
            return
        fs.makedirs(final.rsplit("/", 1)[0], exist_ok=True)
        if _is_local(fs):
            os.replace(tmp, final)  # atomic; same content if another process won
        else:
            fs.mv(tmp, final)

    def temp_path(self) -> str:
        """A new temporary path in the store's ``tmp/`` (where copies are written before
        they are moved into place; ``gc`` removes stale ones)."""
        fs = self.fs
        directory = self._path("tmp")
        fs.makedirs(directory, exist_ok=True)
        return f"{directory}/{uuid.uuid4().hex}"

    def put_file(self, path: str | os.PathLike[str]) -> dict[str, Any]:
        """Keep one local file: ``{"hash", "size"}``. Streamed, deduplicated, atomic."""
        path = os.fspath(path)
        st = os.stat(path)
        known = known_file_hash(path, st)
        if known is not None and self.has(known):
            self.touch(self.object_path(known))
            return {"hash": known, "size": st.st_size}
        fs = self.fs
        tmp = self.temp_path()
        h = new_hasher()
        size = 0
        try:
            with open(path, "rb") as src, fs.open(tmp, "wb") as dst:
                while chunk := src.read(CHUNK_SIZE):
                    h.update(chunk)
                    dst.write(chunk)
                    size += len(chunk)
            digest = h.hexdigest()
            self._publish(tmp, self.object_path(digest))
        except BaseException:
            try:
                fs.rm(tmp)
            except (OSError, FileNotFoundError):
                pass
            raise
        after = os.stat(path)
        if (after.st_size, after.st_mtime_ns) == (st.st_size, st.st_mtime_ns):
            remember_file_hash(path, after, digest)
        return {"hash": digest, "size": size}

    def put_bytes(self, data: bytes) -> str:
        """Keep bytes (e.g. a model's pickle); returns their hash."""
        h = new_hasher()
        h.update(data)
        digest = h.hexdigest()
        final = self.object_path(digest)
        if self.fs.exists(final):
            self.touch(final)
            return digest
        tmp = self.temp_path()
        with self.fs.open(tmp, "wb") as dst:
            dst.write(data)
        self._publish(tmp, final)
        return digest

    def put_path(self, path: str | os.PathLike[str]) -> dict[str, Any]:
        """Keep a file or a directory: the entry a step record holds for it."""
        p = os.fspath(path)
        if os.path.isdir(p):
            files: dict[str, str] = {}
            sizes: dict[str, int] = {}
            for root, dirs, names in os.walk(p):
                dirs.sort()
                for name in sorted(names):
                    full = os.path.join(root, name)
                    rel = os.path.relpath(full, p).replace(os.sep, "/")
                    kept = self.put_file(full)
                    files[rel], sizes[rel] = kept["hash"], kept["size"]
            digest = json_hash(files)
            final = self.manifest_path(digest)
            if self.fs.exists(final):
                self.touch(final)
            else:
                tmp = self.temp_path()
                with self.fs.open(tmp, "wb") as dst:
                    dst.write(json.dumps({"files": files, "sizes": sizes}, sort_keys=True)
                              .encode("utf-8"))
                self._publish(tmp, final)
            return {"hash": digest, "kind": "directory", "size": sum(sizes.values()),
                    "files": len(files)}
        kept = self.put_file(p)
        return {"hash": kept["hash"], "kind": "file", "size": kept["size"]}

    # -- reading ----------------------------------------------------------------
    def manifest(self, content_hash: str) -> dict[str, Any]:
        try:
            with self.fs.open(self.manifest_path(content_hash), "rb") as f:
                return dict(json.loads(f.read().decode("utf-8")))
        except FileNotFoundError as exc:
            raise ArtifactError(
                f"The directory listing {content_hash} is missing from the artifact store "
                f"{self.url} (was it removed by hand?).") from exc

    def open(self, content_hash: str) -> IO[bytes]:
        """The stored bytes of a file, as a binary file object (read it in chunks)."""
        try:
            return self.fs.open(self.object_path(content_hash), "rb")  # type: ignore[no-any-return]
        except FileNotFoundError as exc:
            raise ArtifactError(
                f"The artifact {content_hash} is missing from the artifact store {self.url} "
                "(was it removed by hand, or is this experiment opened with another "
                "artifacts= location than the one that kept it?).") from exc

    def read_bytes(self, content_hash: str) -> bytes:
        with self.open(content_hash) as f:
            data = f.read()
        h = new_hasher()
        h.update(data)
        if h.hexdigest() != content_hash:
            raise ArtifactError(f"The artifact {content_hash} in {self.url} is damaged: its "
                                "content no longer matches its hash.")
        return data

    def restore_file(self, content_hash: str, dest: str | os.PathLike[str]) -> None:
        """Write the object to ``dest`` atomically, after checking its hash."""
        dest = os.path.abspath(os.fspath(dest))
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        tmp = os.path.join(os.path.dirname(dest),
                           f".{os.path.basename(dest)}.{uuid.uuid4().hex}.tmp")
        h = new_hasher()
        try:
            with self.open(content_hash) as src, open(tmp, "wb") as dst:
                while chunk := src.read(CHUNK_SIZE):
                    h.update(chunk)
                    dst.write(chunk)
            if h.hexdigest() != content_hash:
                raise ArtifactError(
                    f"The artifact {content_hash} in {self.url} is damaged: its content no "
                    f"longer matches its hash. {dest} was left as it was.")
            os.replace(tmp, dest)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)

    def copy_to(self, content_hash: str, out: IO[bytes]) -> int:
        """Stream a stored file into a binary file object; returns the bytes written."""
        n = 0
        with self.open(content_hash) as src:
            while chunk := src.read(CHUNK_SIZE):
                out.write(chunk)
                n += len(chunk)
        return n

    # -- collecting -----------------------------------------------------------------
    def stored(self) -> Iterator[tuple[str, str, str, int, float | None]]:
        """Every stored item as ``(kind, hash, path, size, mtime)`` (kind: object,
        manifest, tmp)."""
        fs = self.fs
        for kind, sub in (("object", "objects"), ("manifest", "manifests"), ("tmp", "tmp")):
            base = self._path(sub)
            if not fs.exists(base):
                continue
            for path, info in fs.find(base, detail=True).items():
                name = path.rsplit("/", 1)[-1]
                content_hash = name[:-len(".json")] if kind == "manifest" else name
                yield kind, content_hash, path, int(info.get("size") or 0), _mtime(info)

    def remove(self, path: str) -> None:
        self.fs.rm(path)

    def remove_if_older(self, path: str, cutoff: float) -> bool:
        """Remove ``path`` unless it changed (was kept again) after ``cutoff``; whether it did."""
        try:
            mtime = _mtime(self.fs.info(path))
        except FileNotFoundError:
            return False
        if mtime is not None and mtime > cutoff:
            return False
        self.fs.rm(path)
        return True

    @property
    def can_touch(self) -> bool:
        """Whether content kept again is marked as new (a local file system); elsewhere gc
        removes nothing while a trial runs."""
        return _is_local(self.fs)

    def touch(self, path: str) -> None:
        """Mark an existing object as used now (so gc's grace period protects it)."""
        fs = self.fs
        try:
            if _is_local(fs):
                os.utime(path)
            else:
                fs.touch(path, truncate=False)
        except (OSError, NotImplementedError, ValueError):
            pass  # a file system that cannot: gc's re-check before removing still applies


def _mtime(info: Mapping[str, Any]) -> float | None:
    for key in ("mtime", "created", "LastModified", "last_modified"):
        value = info.get(key)
        if value is None:
            continue
        if hasattr(value, "timestamp"):
            return float(value.timestamp())
        try:
            return float(value)
        except (TypeError, ValueError):
            continue
    return None


# -- which store an experiment uses ------------------------------------------------
def resolve_store(backend: Backend, artifacts: Any, experiment_id: str) -> ArtifactStore | None:
    """The artifact store of an experiment: ``artifacts`` (a URL or directory, the
    experiment's own sub-directory of it), else the file backend's directory, else None."""
    if isinstance(artifacts, ArtifactStore):
        return artifacts
    if artifacts is not None:
        if not isinstance(artifacts, (str, os.PathLike)) or not os.fspath(artifacts):
            raise ArtifactError(
                f"artifacts= takes a directory or an fsspec URL (e.g. 's3://bucket/prefix', "
                f"'memory://name'), got {artifacts!r}.")
        url = os.fspath(artifacts).rstrip("/")
        if "://" not in url:
            url = os.path.abspath(url)
        return ArtifactStore(f"{url}/{experiment_id}", location=url)
    path = getattr(backend, "path", None)
    from .backends.file import FileBackend

    if isinstance(backend, FileBackend) and path is not None:
        return ArtifactStore(os.fspath(Path(path) / "artifacts"))
    return None


_WARNED: set[str] = set()  # experiment ids warned about outputs not kept (once per process)


def no_store_error(experiment_id: str, what: str) -> ArtifactError:
    return ArtifactError(
        f"Cannot keep {what}: experiment {experiment_id!r} has no artifact location (its "
        "backend, Redis or MongoDB, holds no large files). Give one with "
        "Experiment(..., artifacts='/a/directory' or 's3://bucket/prefix'), or pass "
        "keep=False to record the hash only.")


def declare(store: ArtifactStore | None, path: str | os.PathLike[str], *,
            role: str, keep: bool | None, experiment_id: str,
            producer: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The entry ``ex.input``/``ex.output`` add to the step's record (inputs are hashed,
    and kept if asked, now; outputs when the step finishes)."""
    if keep is not None and not isinstance(keep, bool):
        raise ArtifactError(f"keep= is True or False, got {keep!r}.")
    if not isinstance(path, (str, os.PathLike)) or not os.fspath(path):
        raise ArtifactError(f"ex.{role}() takes the path of a file or directory, got {path!r}.")
    wanted = (role == "output") if keep is None else keep
    if wanted and store is None:
        if keep:
            raise no_store_error(experiment_id, f"{os.fspath(path)!r}")
        if experiment_id not in _WARNED:
            _WARNED.add(experiment_id)
            logger.warning(
                "Outputs of experiment %s are hashed but not kept: its backend holds no "
                "large files. Give Experiment(..., artifacts=URL) to keep them.", experiment_id)
        wanted = False
    entry: dict[str, Any] = {"path": os.path.abspath(os.fspath(path))}
    if role == "input":
        if wanted:
            assert store is not None
            entry.update(_keep(store, entry["path"]))
        else:
            found = path_hash(path)
            found.pop("files", None)
            entry.update(found)
    elif wanted:
        entry["keep"] = store
        if producer is not None and store is not None and store.location:
            entry["producer"] = dict(producer)  # indexed in the location, then dropped
    return entry


def _keep(store: ArtifactStore, path: str) -> dict[str, Any]:
    kept = store.put_path(path)
    if isinstance(kept.get("files"), int):
        kept.pop("files")
    return {**kept, "kept": True, "store": store.url}


def finish_output(out: dict[str, Any]) -> None:
    """At the end of a step: hash (and keep, when asked) a declared output, in place."""
    if out.get("kind") == "model":  # kept when ex.model() was called
        return
    store = out.pop("keep", None)
    producer = out.pop("producer", None)
    try:
        if isinstance(store, ArtifactStore):
            out.update(_keep(store, out["path"]))
            if producer is not None:
                note_producer(store, out, producer)
        else:
            found = path_hash(out["path"])
            found.pop("files", None)
            out.update(found)
    except OSError as exc:
        out["error"] = f"{type(exc).__name__}: {exc}"


# -- who wrote what, across stores sharing an artifact location ----------------------
PRODUCERS = ".producers"


def note_producer(store: ArtifactStore, out: Mapping[str, Any],
                  producer: Mapping[str, Any]) -> None:
    """Index a kept output in the artifact location: ``.producers/<ab>/<hash>/<uuid>.json``
    names the experiment, trials, step, path and store that wrote it (append-only: one new
    small file each; a failure is logged, the output stays kept)."""
    if not store.location or not out.get("hash"):
        return
    entry = {**producer, "path": out["path"], "hash": out["hash"], "time": time.time()}
    content_hash = str(out["hash"])
    target = "/".join((store.location.rstrip("/"), PRODUCERS, content_hash[:2], content_hash,
                       f"{uuid.uuid4().hex}.json"))
    try:
        from fsspec.core import url_to_fs

        fs, path = url_to_fs(target)
        fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
        with fs.open(path, "wb") as f:
            f.write(json.dumps(entry, sort_keys=True).encode("utf-8"))
    except Exception as exc:  # lineage across stores is lost for this file, nothing else
        logger.warning("Could not note in %s that %s was written by trial(s) %s of %s: %s",
                       store.location, out["path"], producer.get("trial_ids"),
                       producer.get("experiment_id"), exc)


def producers(location: str, content_hash: str) -> list[dict[str, Any]]:
    """The trials that kept content ``content_hash`` in the artifact location, oldest first."""
    from fsspec.core import url_to_fs

    fs, base = url_to_fs("/".join((location.rstrip("/"), PRODUCERS, content_hash[:2],
                                   content_hash)))
    try:
        names = fs.ls(base, detail=False)
    except (FileNotFoundError, OSError):
        return []
    out = []
    for name in names:
        try:
            with fs.open(name, "rb") as f:
                out.append(json.loads(f.read().decode("utf-8")))
        except (OSError, ValueError) as exc:
            logger.warning("Skipping unreadable producer note %s: %s", name, exc)
    return sorted(out, key=lambda e: e.get("time", 0))


# -- reading back --------------------------------------------------------------------
def artifact_entries(record: TrialRecord) -> list[dict[str, Any]]:
    """The files a trial declared, kept or not: one dict each (role, step, path, hash,
    kind, size, kept)."""
    rows: list[dict[str, Any]] = []
    seen: set[tuple[str, str, Any]] = set()
    for step in record.steps:
        for role, items in (("output", step.outputs), ("input", step.inputs)):
            for item in items:
                if item.get("kind") in ("persisted", "model"):
                    continue
                key = (role, item["path"], item.get("hash"))
                if key in seen:
                    continue
                seen.add(key)
                rows.append({"path": item["path"], "role": role, "step": step.step,
                             "kind": item.get("kind"), "size": item.get("size"),
                             "hash": item.get("hash"), "kept": bool(item.get("kept")),
                             "store": item.get("store"), "error": item.get("error")})
    return rows


def describe(record: TrialRecord) -> list[str]:
    """Lines naming the files and models a trial recorded (for ``experigraph show``)."""
    lines = []
    rows = artifact_entries(record)
    if rows:
        lines += ["", "Files (role, step, size, kept):"]
        for r in rows:
            size = f"{r['size']} B" if isinstance(r["size"], int) else "-"
            kept = "kept" if r["kept"] else ("not readable" if r["error"] else "hash only")
            lines.append(f"  {r['role']:<6} {r['step']:<20} {size:>12}  {kept:<9}  {r['path']}")
    models = [(step.step, item) for step in record.steps for item in step.outputs
              if item.get("kind") == "model"]
    if models:
        lines += ["", "Models:"]
        for step, item in models:
            version = f" {item['framework_version']}" if item.get("framework_version") else ""
            lines.append(f"  {item.get('model')}: {item.get('type')} ({item.get('framework')}"
                         f"{version}), step {step}")
    return lines


def find_entry(record: TrialRecord, path: str | os.PathLike[str]) -> tuple[dict[str, Any], str]:
    """The kept entry for ``path`` in a trial, and the file inside it (for a file in a
    kept directory; else ""). ``path``: as recorded, relative to the current
    directory, a unique ending of a recorded path, or a file inside a kept directory."""
    wanted = os.fspath(path)
    rows = artifact_entries(record)
    if not rows:
        raise NotRecordedError(
            f"Trial {record.trial_id} declared no files (declare them with ex.output(path) "
            "or ex.input(path, keep=True) inside a step).")
    absolute = os.path.abspath(wanted)
    tail = "/" + wanted.strip("/").replace(os.sep, "/")
    # the output, when a path was both read and written (the trial's version of it)
    ordered = [r for r in rows if r["role"] == "output"] + [r for r in rows if r["role"] == "input"]
    for candidates in (
            [r for r in ordered if r["path"] in (wanted, absolute)],
            [r for r in ordered if r["path"].endswith(tail)]):
        paths = list(dict.fromkeys(r["path"] for r in candidates))
        if len(paths) == 1:
            return candidates[0], ""
        if len(paths) > 1:
            raise ArtifactError(
                f"{wanted!r} matches several files of trial {record.trial_id}: "
                f"{', '.join(paths)}. Give the full path.")
    for r in ordered:  # a file inside a kept directory
        if r["kind"] == "directory":
            for prefix in (r["path"] + "/",):
                if absolute.startswith(prefix):
                    return r, absolute[len(prefix):]
            base = os.path.basename(r["path"])
            marker = f"{base}/"
            if marker in wanted.replace(os.sep, "/"):
                return r, wanted.replace(os.sep, "/").split(marker, 1)[1]
    listed = ", ".join(dict.fromkeys(r["path"] for r in rows))
    raise NotRecordedError(f"Trial {record.trial_id} has no file {wanted!r} (its files: "
                           f"{listed}). See ex.get_artifacts({record.trial_id}).")


def stores_for(entry: Mapping[str, Any], store: ArtifactStore | None) -> list[ArtifactStore]:
    """Where to look for an entry's content: this experiment's store, then where it was kept."""
    out = [store] if store is not None else []
    recorded = entry.get("store")
    if recorded and (store is None or recorded != store.url):
        out.append(ArtifactStore(recorded))
    return out


def locate(entry: Mapping[str, Any], store: ArtifactStore | None, record_id: int) -> ArtifactStore:
    """The store that holds a kept entry's content."""
    if not entry.get("kept"):
        if entry.get("error"):
            reason = f"it could not be read ({entry['error']})"
        elif entry.get("role") == "input":
            reason = "inputs are kept only when declared with ex.input(path, keep=True)"
        else:
            reason = ("it was declared with keep=False, or its backend had no artifact "
                      "location (only its hash was recorded)")
        raise NotRecordedError(
            f"The content of {entry['path']} is not kept with trial {record_id}: {reason}.")
    candidates = stores_for(entry, store)
    manifest = entry.get("kind") == "directory"
    for candidate in candidates:
        try:
            exists = candidate.fs.exists(candidate.manifest_path(entry["hash"]) if manifest
                                         else candidate.object_path(entry["hash"]))
        except ArtifactError:
            continue
        if exists:
            return candidate
    raise ArtifactError(
        f"The content of {entry['path']} (trial {record_id}, hash {entry['hash']}) is not in "
        f"the artifact store ({', '.join(c.url for c in candidates) or 'none'}). Open the "
        "experiment with the artifacts= location that kept it.")


def restore(entry: Mapping[str, Any], inner: str, store: ArtifactStore, dest: str,
            overwrite: bool) -> Path:
    """Write a kept file (or directory, or a file of it) to ``dest``; returns its path.

    A file restored to an existing directory goes into it, under its own name (as
    ``cp`` does). An existing ``dest`` with other content is replaced only with
    ``overwrite``.
    """
    if (inner or entry.get("kind") != "directory") and os.path.isdir(dest):
        dest = os.path.join(dest, os.path.basename(inner or entry["path"]))
    if entry.get("kind") == "directory":
        manifest = store.manifest(entry["hash"])
        files: dict[str, str] = manifest["files"]
        if inner:
            if inner not in files:
                raise NotRecordedError(
                    f"{entry['path']} (kept) has no file {inner!r}; it has "
                    f"{', '.join(sorted(files)[:20])}{' ...' if len(files) > 20 else ''}.")
            _restore_one(store, files[inner], dest, overwrite)
            return Path(dest)
        clashes = [rel for rel, h in files.items()
                   if _differs(os.path.join(dest, rel), h)]
        if clashes and not overwrite:
            raise ArtifactError(
                f"{dest} has files that differ from the kept ones ({', '.join(clashes[:5])}"
                f"{' ...' if len(clashes) > 5 else ''}); nothing was written. Give another "
                "destination, or overwrite=True (--overwrite) to replace them.")
        os.makedirs(dest, exist_ok=True)  # also for a directory kept empty
        for rel, h in files.items():
            _restore_one(store, h, os.path.join(dest, rel), True)
        return Path(dest)
    _restore_one(store, entry["hash"], dest, overwrite)
    return Path(dest)


def _differs(path: str, content_hash: str) -> bool:
    if not os.path.exists(path):
        return False
    if os.path.isdir(path):
        return True
    return bool(path_hash(path)["hash"] != content_hash)


def _restore_one(store: ArtifactStore, content_hash: str, dest: str, overwrite: bool) -> None:
    if os.path.isdir(dest):
        raise ArtifactError(f"{dest} is a directory; give the path of the file to write.")
    if os.path.exists(dest):
        if not _differs(dest, content_hash):
            return
        if not overwrite:
            raise ArtifactError(
                f"{dest} exists with other content; nothing was written. Give another "
                "destination (dest= / -o), or overwrite=True (--overwrite) to replace it.")
    store.restore_file(content_hash, dest)


# -- putting inputs back for a reproduction ---------------------------------------------
class RestoredInputs:
    """Kept inputs written back to their paths for a rerun, and the files they displaced
    moved aside (``<path>.experigraph-aside-<id>``), put back by ``undo``."""

    def __init__(self) -> None:
        self.aside: list[tuple[str, str | None]] = []  # (path, where its file went, or None)

    def restore(self, entries: list[dict[str, Any]], store: ArtifactStore | None,
                trial_id: int) -> None:
        plan = []
        for entry in entries:  # check all before touching any
            plan.append((entry, locate(entry, store, trial_id)))
        for entry, holder in plan:
            path = entry["path"]
            if os.path.exists(path) and not _differs(path, entry["hash"]) and \
                    entry.get("kind") != "directory":
                continue
            aside = None
            if os.path.lexists(path):
                aside = f"{path}.experigraph-aside-{uuid.uuid4().hex[:8]}"
                os.replace(path, aside)
            self.aside.append((path, aside))
            restore(entry, "", holder, path, True)
            logger.info("Restored %s as trial %d read it%s", path, trial_id,
                        f" (the current file is at {aside} until the rerun ends)" if aside
                        else "")

    def undo(self) -> None:
        for path, aside in reversed(self.aside):
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path)
            elif os.path.lexists(path):
                os.unlink(path)
            if aside is not None:
                os.replace(aside, path)
        self.aside.clear()


def garbage(store: ArtifactStore, referenced: set[str], *, grace: float = GC_GRACE_SECONDS,
            now: float | None = None) -> list[tuple[str, str, int]]:
    """What ``gc`` may remove: ``(kind, path, size)`` of items no trial refers to and
    older than ``grace`` seconds (also manifests' files are kept while the manifest is)."""
    now = time.time() if now is None else now
    items = list(store.stored())
    keep = set(referenced)
    for kind, content_hash, _path, _size, _mtime in items:
        if kind == "manifest" and content_hash in referenced:
            keep.update(store.manifest(content_hash)["files"].values())
    out = []
    for kind, content_hash, path, size, mtime in items:
        if kind != "tmp" and content_hash in keep:
            continue
        if mtime is not None and now - mtime < grace:
            continue
        out.append((kind, path, size))
    return out
