"""Versioning on ``Experiment``: artifacts, models, tags/notes/archive and ``gc``.

``Experiment`` inherits these methods; they read records back through the
experiment's query methods and keep file content in its
:class:`~experigraph.artifacts.ArtifactStore`. Nothing here rewrites a record:
annotations are appended to the backend's annotation log (see
:meth:`Backend.append_annotation`), and ``gc`` removes only stored content that
no recorded trial refers to.
"""
from __future__ import annotations

import contextlib
import getpass
import json
import logging
import os
import re
import socket
import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from . import artifacts as store_mod
from . import signing
from .artifacts import ArtifactStore
from .errors import ArtifactError, InvalidArgumentError, NotRecordedError
from .records import Status, encode_value, is_json_exact, now, type_name

if TYPE_CHECKING:
    import pandas as pd

    from .backends.base import Backend
    from .records import TrialRecord

logger = logging.getLogger(__name__)

ENV_ARTIFACTS = "EXPERIGRAPH_ARTIFACTS"
_NAME_RULE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$")
#: import name -> distribution, for the frameworks a model is recorded with
FRAMEWORKS = {"sklearn": "scikit-learn", "xgboost": "xgboost", "lightgbm": "lightgbm",
              "catboost": "catboost", "torch": "torch", "keras": "keras",
              "tensorflow": "tensorflow", "statsmodels": "statsmodels", "jax": "jax",
              "flax": "flax", "transformers": "transformers"}


def framework_of(obj: Any) -> tuple[str, str | None]:
    """The framework of a model object (its top-level module) and that package's version."""
    import importlib.metadata  # about 10 ms to import: only once a model is recorded

    module = (type(obj).__module__ or "").partition(".")[0]
    if module in ("builtins", "__main__", ""):
        return "python", None
    dist = FRAMEWORKS.get(module)
    names = [dist] if dist else []
    names += importlib.metadata.packages_distributions().get(module, []) if not dist else []
    for name in names:
        try:
            return module, importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    version = getattr(__import__("sys").modules.get(module), "__version__", None)
    return module, str(version) if version is not None else None


class Annotations:
    """The annotation log read once: tags, notes and archived trials (the last entry wins)."""

    def __init__(self, entries: Iterable[Mapping[str, Any]]) -> None:
        self.entries = list(entries)
        self.tags: dict[int, dict[str, Any]] = {}
        self.notes: dict[int, list[Mapping[str, Any]]] = {}
        self.archived: set[int] = set()
        for e in self.entries:
            action, trial_id = e.get("action"), e.get("trial_id")
            if not isinstance(trial_id, int):
                continue
            if action == "tag":
                self.tags.setdefault(trial_id, {})[str(e.get("name"))] = e.get("value")
            elif action == "untag":
                self.tags.get(trial_id, {}).pop(str(e.get("name")), None)
            elif action == "note":
                self.notes.setdefault(trial_id, []).append(e)
            elif action == "archive":
                self.archived.add(trial_id)
            elif action == "unarchive":
                self.archived.discard(trial_id)


class Versioning:
    """The versioning methods of :class:`~experigraph.Experiment` (see the module docstring)."""

    id: str
    _backend: Backend
    _artifacts: ArtifactStore | None

    if TYPE_CHECKING:
        def _read(self, trial_id: int) -> TrialRecord: ...
        def get_trials(self) -> list[TrialRecord]: ...
        def _scope(self, what: str) -> Any: ...

    # -- where files are kept -------------------------------------------------------------
    @property
    def artifact_store(self) -> ArtifactStore | None:
        """Where this experiment keeps files and models (None: it keeps none)."""
        return self.__dict__.get("_artifacts")

    # -- artifacts ------------------------------------------------------------------------
    def get_artifacts(self, trial_id: int) -> pd.DataFrame:
        """The files a trial declared with ``ex.output`` / ``ex.input``, one row each.

        Columns: ``path``, ``role`` (output, input), ``step``, ``kind`` (file,
        directory), ``size`` (bytes), ``hash`` and ``kept`` (whether its content is
        kept and :meth:`get_artifact` can bring it back).
        """
        import pandas as pd

        rows = store_mod.artifact_entries(self._read(trial_id))
        columns = ["path", "role", "step", "kind", "size", "hash", "kept"]
        return pd.DataFrame([{c: r[c] for c in columns} for r in rows], columns=columns)

    def get_artifact(self, trial_id: int, path: str | os.PathLike[str],
                     dest: str | os.PathLike[str] | None = None, *,
                     overwrite: bool = False) -> Path:
        """Bring back a file (or directory) a trial kept, exactly as the trial left it.

        Parameters
        ----------
        trial_id : int
        path : str or path
            As recorded (see :meth:`get_artifacts`), relative to the current
            directory, a unique ending of a recorded path (``"predictions.csv"``),
            or a file inside a kept directory.
        dest : str or path, optional
            Where to write it; default: the path it was recorded at.
        overwrite : bool
            Replace an existing ``dest`` whose content differs (otherwise an
            ``ArtifactError``, and nothing is written).

        Returns
        -------
        pathlib.Path
            Where it was written. The content is streamed and its hash checked
            before it is moved into place.
        """
        record = self._read(trial_id)
        entry, inner = store_mod.find_entry(record, path)
        holder = store_mod.locate(entry, self.artifact_store, trial_id)
        target = os.path.abspath(os.fspath(dest)) if dest is not None else \
            (os.path.join(entry["path"], inner) if inner else entry["path"])
        return store_mod.restore(entry, inner, holder, target, overwrite)

    def open_artifact(self, trial_id: int, path: str | os.PathLike[str]) -> IO[bytes]:
        """A kept file of a trial as a binary file object (read it in chunks)."""
        record = self._read(trial_id)
        entry, inner = store_mod.find_entry(record, path)
        holder = store_mod.locate(entry, self.artifact_store, trial_id)
        content_hash = entry["hash"]
        if entry.get("kind") == "directory":
            if not inner:
                raise ArtifactError(f"{entry['path']} is a directory; name a file in it, or "
                                    "restore it with get_artifact(trial_id, path, dest).")
            files = holder.manifest(content_hash)["files"]
            if inner not in files:
                raise NotRecordedError(f"{entry['path']} (kept) has no file {inner!r}.")
            content_hash = files[inner]
        return holder.open(content_hash)

    def _kept_inputs(self, trial_id: int) -> list[dict[str, Any]]:
        record = self._read(trial_id)
        return [r for r in store_mod.artifact_entries(record) if r["role"] == "input"]

    @contextlib.contextmanager
    def restored_inputs(self, trial_id: int) -> Iterator[list[str]]:
        """While inside, the files trial ``trial_id`` read with ``ex.input(path, keep=True)``
        are at their paths as the trial read them; after, the current files are back.

        The current files are moved aside (``<path>.experigraph-aside-<id>``) meanwhile.
        Every input must have been kept (``NotRecordedError`` otherwise, and nothing is
        touched). Yields the restored paths. ``reproduce(t, restore_inputs=True)`` and
        ``experigraph rerun --restore-inputs`` use it.
        """
        restored = self._restore_inputs(trial_id)
        try:
            yield [path for path, _ in restored.aside]
        finally:
            restored.undo()

    def _restore_inputs(self, trial_id: int) -> store_mod.RestoredInputs:
        inputs = self._kept_inputs(trial_id)
        not_kept = [r["path"] for r in inputs if not r["kept"]]
        if not inputs:
            raise NotRecordedError(f"Trial {trial_id} declared no inputs with ex.input(path), "
                                   "so there is nothing to restore.")
        if not_kept:
            raise NotRecordedError(
                f"Trial {trial_id} did not keep the content of {', '.join(not_kept)} (declare "
                "inputs with ex.input(path, keep=True) to keep them); nothing was restored. "
                "Rerun without restore_inputs to use the files as they are now.")
        restored = store_mod.RestoredInputs()
        try:
            restored.restore(inputs, self.artifact_store, trial_id)
        except BaseException:
            restored.undo()
            raise
        return restored

    def lineage_tree(self, trial_id: int) -> str:
        """Where a trial's data came from, as the indented tree ``experigraph lineage``
        prints: the trials (of any experiment in the store) that wrote the files it
        read, or the persisted outputs it loaded, back to the first inputs."""
        from .lineage import render_tree

        store = self.artifact_store
        return render_tree(self._backend, self._read(trial_id),
                           store.location if store is not None else None)

    # -- models ---------------------------------------------------------------------------
    def model(self, obj_or_path: Any, name: str, *, flavor: str | None = None) -> Any:
        """Inside a step: record a model with the trial, the step and its framework.

        Parameters
        ----------
        obj_or_path : object, str or path
            A model object (kept as a signed pickle) or the path of a saved model
            file or directory (kept as an artifact).
        name : str
            The model's name (letters, digits, ``_``, ``-``, ``.``); a trial may
            record several models under different names.
        flavor : str, optional
            The framework, when it cannot be told from the object's module.

        Returns
        -------
        The object or path given.
        """
        scope = self._scope("ex.model")
        if not isinstance(name, str) or not _NAME_RULE.match(name):
            raise InvalidArgumentError(
                f"A model name is letters, digits, '_', '-' and '.' (starting with a letter "
                f"or digit), got {name!r}.")
        if flavor is not None and (not isinstance(flavor, str) or not flavor):
            raise InvalidArgumentError(f"flavor= names a framework as a string, got {flavor!r}.")
        store = self.artifact_store
        entry: dict[str, Any] = {"path": f"model:{name}", "kind": "model", "model": name,
                                 "kept": True}
        if isinstance(obj_or_path, (str, os.PathLike)):
            if store is None:
                raise store_mod.no_store_error(self.id, f"model file {os.fspath(obj_or_path)!r}")
            if not os.path.exists(obj_or_path):
                raise ArtifactError(f"ex.model() was given the path {os.fspath(obj_or_path)!r}, "
                                    "which does not exist: save the model first.")
            kept = store.put_path(obj_or_path)
            entry.update({"format": "path", "source": os.path.abspath(os.fspath(obj_or_path)),
                          "path_kind": kept["kind"], "hash": kept["hash"],
                          "size": kept["size"], "store": store.url,
                          "framework": flavor or "path", "framework_version": None,
                          "type": "path"})
        else:
            framework, version = framework_of(obj_or_path)
            try:
                payload = signing.dumps(obj_or_path)
            except Exception as exc:
                raise ArtifactError(
                    f"Model {name!r} ({type_name(obj_or_path)}) cannot be pickled "
                    f"({type(exc).__name__}: {exc}). Save it with its framework to a file "
                    "and record the path: ex.model(path, name).") from exc
            if store is not None:
                digest, where = store.put_bytes(payload), "store"
            else:
                digest, where = self._backend.put_blob("pickle", payload), "backend"
            entry.update({"format": "pickle", "hash": digest, "size": len(payload),
                          "where": where, "store": store.url if store is not None else None,
                          "framework": flavor or framework, "framework_version": version,
                          "type": type_name(obj_or_path)})
        scope.outputs.append(entry)
        return obj_or_path

    def _model_entries(self, archived: bool = True) -> list[tuple[TrialRecord, str, dict[str, Any]]]:
        hidden = set() if archived else self._annotations().archived
        out = []
        for record in self.get_trials():
            if record.trial_id in hidden:
                continue
            for step in record.steps:
                for item in step.outputs:
                    if item.get("kind") == "model":
                        out.append((record, step.step, dict(item)))
        return out

    def list_models(self, archived: bool = False) -> pd.DataFrame:
        """Every recorded model: ``Model``, ``Trial ID``, ``Step``, ``Framework``,
        ``Version``, ``Format``, ``Type``, ``Status``, then the trial's scalar metrics."""
        import pandas as pd

        rows = []
        metrics: dict[str, None] = {}
        for record, step, item in self._model_entries(archived):
            row = {"Model": item["model"], "Trial ID": record.trial_id, "Step": step,
                   "Framework": item.get("framework"), "Version": item.get("framework_version"),
                   "Format": item.get("format"), "Type": item.get("type"),
                   "Status": record.status.value}
            for key, value in record.metrics.items():
                metrics.setdefault(key)
                row[key] = value
            rows.append(row)
        columns = ["Model", "Trial ID", "Step", "Framework", "Version", "Format", "Type",
                   "Status", *metrics]
        return pd.DataFrame(rows, columns=columns)

    def get_model(self, name: str, trial_id: int | None = None, *, trust: bool = False,
                  dest: str | os.PathLike[str] | None = None) -> Any:
        """A recorded model: of ``trial_id``, or of the latest succeeded trial that has one.

        An object comes back unpickled (signed pickles only, unless ``trust=True``);
        a model recorded as a path comes back as the path of a restored copy
        (``dest``, or a new temporary directory).
        """
        if trial_id is not None:
            record = self._read(trial_id)
            found = [(record, s.step, dict(i)) for s in record.steps for i in s.outputs
                     if i.get("kind") == "model" and i.get("model") == name]
            if not found:
                names = sorted({str(i.get("model")) for s in record.steps for i in s.outputs
                                if i.get("kind") == "model"})
                raise NotRecordedError(f"Trial {trial_id} recorded no model {name!r} (its "
                                       f"models: {', '.join(names) or 'none'}).")
        else:
            entries = self._model_entries()
            found = [e for e in entries if e[2].get("model") == name
                     and e[0].status is Status.SUCCEEDED]
            if not found:
                names = sorted({str(e[2].get("model")) for e in entries})
                raise NotRecordedError(f"No succeeded trial recorded a model {name!r} (models: "
                                       f"{', '.join(names) or 'none'}); give trial_id= for a "
                                       "failed trial's model.")
        record, _step, item = found[-1]
        what = f"model {name!r} of trial {record.trial_id}"
        if item.get("format") == "pickle":
            if item.get("where") == "backend":
                payload = self._backend.get_blob("pickle", item["hash"])
            else:
                holder = store_mod.locate(item, self.artifact_store, record.trial_id)
                payload = holder.read_bytes(item["hash"])
            return signing.loads(payload, what=what, trust=trust)
        holder = store_mod.locate({**item, "kind": item.get("path_kind")}, self.artifact_store,
                                  record.trial_id)
        if dest is None:
            dest = os.path.join(tempfile.mkdtemp(prefix=f"experigraph-model-{name}-"),
                                os.path.basename(item.get("source") or name))
        return store_mod.restore({**item, "kind": item.get("path_kind")}, "", holder,
                                 os.path.abspath(os.fspath(dest)), False)

    # -- tags, notes, archive ---------------------------------------------------------------
    def _annotations(self) -> Annotations:
        return read_annotations(self._backend)

    def _annotate(self, action: str, trial_ids: Iterable[int], **fields: Any) -> None:
        ids = [self._read(t).trial_id for t in trial_ids]  # all known before any is written
        stamp = {"time": encode_value(now()), "user": _user(), "host": socket.gethostname()}
        for trial_id in ids:
            self._backend.append_annotation({"action": action, "trial_id": trial_id,
                                             **fields, **stamp})

    def tag(self, trial_id: int, name: str, value: Any = True) -> None:
        """Tag a trial after the fact (``name`` = ``value``, a history column); recorded
        with the time and user, never replacing what was recorded before."""
        if not isinstance(name, str) or not name.strip():
            raise InvalidArgumentError(f"A tag name is a non-empty string, got {name!r}.")
        if not is_json_exact(value):
            raise InvalidArgumentError(
                f"A tag value is kept as JSON (numbers, text, booleans, lists, dicts), got "
                f"{type_name(value)} {value!r}. Give it as text.")
        self._annotate("tag", [trial_id], name=name, value=value)

    def untag(self, trial_id: int, name: str) -> None:
        """Remove a tag from the trial's history row (the log keeps both entries)."""
        self._annotate("untag", [trial_id], name=str(name))

    def note(self, trial_id: int, text: str) -> None:
        """Attach a note to a trial (with the time and user); notes accumulate."""
        if not isinstance(text, str) or not text.strip():
            raise InvalidArgumentError(f"A note is non-empty text, got {text!r}.")
        self._annotate("note", [trial_id], text=text)

    def archive(self, trial_ids: int | Iterable[int]) -> None:
        """Hide trials from the history and the dashboard by default; nothing is deleted
        (``get_history(archived=True)`` shows them, :meth:`unarchive` brings them back)."""
        self._annotate("archive", _ids(trial_ids))

    def unarchive(self, trial_ids: int | Iterable[int]) -> None:
        """Show archived trials again."""
        self._annotate("unarchive", _ids(trial_ids))

    def get_annotations(self, trial_id: int | None = None) -> pd.DataFrame:
        """The annotation log (tags, notes, archiving), oldest first: ``Time``, ``User``,
        ``Trial ID``, ``Action``, ``Name``, ``Value``, ``Text``."""
        import pandas as pd

        from .records import decode_value

        if trial_id is not None:
            trial_id = self._read(trial_id).trial_id
        rows = [{"Time": decode_value(e.get("time")), "User": e.get("user"),
                 "Trial ID": e.get("trial_id"), "Action": e.get("action"),
                 "Name": e.get("name"), "Value": e.get("value"), "Text": e.get("text")}
                for e in self._backend.read_annotations()
                if trial_id is None or e.get("trial_id") == trial_id]
        return pd.DataFrame(rows, columns=["Time", "User", "Trial ID", "Action", "Name",
                                           "Value", "Text"])

    def archived_trial_ids(self) -> set[int]:
        """The ids of the trials archived now (hidden from history and the dashboard)."""
        return set(self._annotations().archived)

    def get_notes(self, trial_id: int) -> list[str]:
        """The notes of a trial, oldest first."""
        trial_id = self._read(trial_id).trial_id
        return [str(e.get("text")) for e in self._annotations().notes.get(trial_id, [])]

    # -- garbage collection -----------------------------------------------------------------
    def gc(self, dry_run: bool = False, *, grace: float = store_mod.GC_GRACE_SECONDS
           ) -> dict[str, Any]:
        """Remove stored content that no recorded trial refers to; say what was freed.

        Collected: the artifact store (kept files, directory listings, models, stale
        copies in ``tmp/``) and the backend's pickle blobs (persisted outputs,
        results, models kept in the backend) of trials that were never recorded.
        Archived trials still refer to theirs; cached outputs (``cache=True``), code
        and environment snapshots are never collected. Artifacts written less than
        ``grace`` seconds ago, or since the oldest trial still running started, are
        kept (a running trial refers to them when it finishes; a file kept again is
        touched, so it counts as new). Pickle blobs carry no time: they are
        collected only while no trial is running. Returns ``{"removed": [...],
        "freed": bytes, "dry_run": bool, "store": url or None, "skipped": why}``.
        """
        records = self.get_trials()
        last_seen = self._backend.last_trial_id()
        referenced: set[str] = set()
        pickles: set[str] = set()
        oldest_running = None
        for record in records:
            if record.status is Status.RUNNING:
                started = record.started.timestamp()
                oldest_running = started if oldest_running is None else min(oldest_running,
                                                                            started)
            if record.result_blob:
                pickles.add(record.result_blob)
            for step in record.steps:
                if step.persisted:
                    pickles.add(step.persisted)
                for item in (*step.inputs, *step.outputs):
                    if item.get("hash") and (item.get("kept") or item.get("kind") == "model"):
                        referenced.add(str(item["hash"]))
                        if item.get("kind") == "model" and item.get("where") == "backend":
                            pickles.add(str(item["hash"]))
        current = time.time()
        if oldest_running is not None:
            grace = max(grace, current - oldest_running)
        removed: list[str] = []
        freed = 0
        skipped: list[str] = []
        store = self.artifact_store
        if store is not None and oldest_running is not None and not store.can_touch:
            skipped.append(f"artifacts: a trial is running, and {store.url} cannot mark "
                           "content kept again as new")
        elif store is not None:
            garbage = store_mod.garbage(store, referenced, grace=grace, now=current)
            if garbage and not dry_run and not store.can_touch and \
                    self._backend.last_trial_id() != last_seen:
                skipped.append("artifacts: a trial started while gc ran; run it again")
                garbage = []
            for _kind, path, size in garbage:
                if not dry_run and not store.remove_if_older(path, current - grace):
                    continue  # kept again meanwhile
                removed.append(path)
                freed += size
        if store is not None and not store.can_touch and removed and not dry_run and \
                self._backend.last_trial_id() != last_seen:
            logger.warning("gc: a trial started while gc removed artifacts from %s; if it "
                           "kept a file with the content of one removed, that trial's copy "
                           "is gone: run it again.", store.url)
        blobs, why = self._unreferenced_pickles(pickles, oldest_running is not None)
        if why:
            skipped.append(why)
        elif blobs and not dry_run and self._backend.last_trial_id() != last_seen:
            skipped.append("pickle blobs: a trial started while gc ran; run it again")
            blobs = []
        for blob_hash in blobs:
            size = len(self._backend.get_blob("pickle", blob_hash)) if dry_run else \
                self._backend.delete_blob("pickle", blob_hash)
            removed.append(f"{self._backend.uri} pickle blob {blob_hash}")
            freed += size
        logger.info("gc of experiment %s: %s %d item(s), %d bytes", self.id,
                    "would remove" if dry_run else "removed", len(removed), freed)
        return {"removed": removed, "freed": freed, "dry_run": dry_run,
                "store": store.url if store is not None else None, "skipped": skipped}

    def _unreferenced_pickles(self, referenced: set[str], running: bool
                              ) -> tuple[list[str], str]:
        """Pickle blobs no trial and no cache entry refers to, or why none are collected."""
        backend = self._backend
        stored = backend.blob_hashes("pickle")
        if stored is None:
            return [], f"pickle blobs: {type(backend).__name__} cannot list its blobs"
        if running:
            return [], "pickle blobs: a trial is running (they carry no time to tell)"
        entries = backend.blob_hashes("cache")
        if entries is None:
            return [], "pickle blobs: the cache entries cannot be listed"
        cached = set()
        for entry in entries:  # a cache entry names the pickle of its output
            try:
                cached.add(str(json.loads(backend.get_blob("cache", entry))["output"]))
            except (KeyError, ValueError, TypeError):
                continue
        return [h for h in stored if h not in referenced and h not in cached], ""


def _ids(trial_ids: int | Iterable[int]) -> list[int]:
    if hasattr(trial_ids, "__index__"):
        return [trial_ids]  # type: ignore[list-item]
    if isinstance(trial_ids, (str, bytes)) or not isinstance(trial_ids, Iterable):
        raise InvalidArgumentError(f"Give a trial id or a list of trial ids, got {trial_ids!r}.")
    ids = list(trial_ids)
    if not ids:
        raise InvalidArgumentError("Give at least one trial id.")
    return ids


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return os.environ.get("USER") or "unknown"


def with_annotations(frame: pd.DataFrame, notes: Annotations, archived: bool) -> pd.DataFrame:
    """A history frame with a column per tag (``tag:<name>`` if the name is taken), and
    ``Archived`` when archived trials are shown."""
    names: dict[str, None] = {}
    for trial_id in frame.index:
        for name in notes.tags.get(int(trial_id), {}):
            names.setdefault(name)
    import pandas as pd

    columns: dict[str, list[Any]] = {}  # added at once: one column at a time fragments
    for name in names:
        column = name if name not in frame.columns else f"tag:{name}"
        columns[column] = [notes.tags.get(int(t), {}).get(name) for t in frame.index]
    if archived:
        columns["Archived"] = [int(t) in notes.archived for t in frame.index]
    if not columns:
        return frame
    return pd.concat([frame, pd.DataFrame(columns, index=frame.index)], axis=1)


def read_annotations(backend: Backend) -> Annotations:
    """The annotation log of an experiment, read once."""
    return Annotations(backend.read_annotations())


def resolve_artifacts(backend: Backend, artifacts: Any, experiment_id: str
                      ) -> ArtifactStore | None:
    """The artifact store of an experiment: ``artifacts=``, else ``$EXPERIGRAPH_ARTIFACTS``,
    else the file backend's directory, else None."""
    if artifacts is None and os.environ.get(ENV_ARTIFACTS):
        artifacts = os.environ[ENV_ARTIFACTS]
    return store_mod.resolve_store(backend, artifacts, experiment_id)


def declare_file(store: ArtifactStore | None, path: Any, role: str, keep: bool | None,
                 experiment_id: str, scope: Any = None) -> dict[str, Any]:
    """The entry ``ex.input``/``ex.output`` add to their step's record (``scope``: the
    running step, which an output kept in a shared artifact location is indexed with)."""
    producer = None
    if scope is not None and role == "output":
        producer = {"experiment_id": experiment_id, "trial_ids": list(scope.ctx.trial_ids),
                    "step": getattr(scope.step, "name", str(scope.step)),
                    "backend": scope.ctx.backend.uri}
    return store_mod.declare(store, path, role=role, keep=keep, experiment_id=experiment_id,
                             producer=producer)
