"""The environment a trial runs in: collected cheaply, hashed, shown as text, diffed.

A snapshot maps each category of :data:`CATEGORIES` to JSON-serialisable data
(dicts, lists, str, int, float, bool, None). It is taken once per trial, so
everything slow happens once per process and is reused while a cheap check says
nothing changed:

``platform``
    OS, machine, processor, host name; gathered once (host name checked).
``cpu``
    py-cpuinfo (about 1 s), gathered only in a daemon thread started by
    :func:`start_background_collection`; the key is absent until it is ready.
``python``
    Interpreter, prefixes, virtualenv and conda environment.
``packages``
    Installed distributions; re-read when a ``sys.path`` directory changes.
``numeric``
    NumPy/SciPy/pandas build information, only for modules already imported.
``git``
    State of the git repositories holding the source files; re-read when
    ``HEAD``, the index, the current ref or a source file changes.

Each category is filled by a collector (:mod:`experigraph.environment.collector`);
more categories come from collectors registered in the ``experigraph.collectors``
entry-point group or given to ``Experiment(collectors=...)``.

Invariants
----------
* No collector raises. An unexpected failure is logged as a WARNING and the
  category's value is ``{"error": "..."}``, which :func:`diff_snapshots` treats
  like a missing category (it is not drift).
* For unchanged state :func:`snapshot` returns the *same* category objects, so
  :func:`fingerprint` hashes each of them once per process. They are shared:
  treat them as read-only (copy before changing anything).
* ``import experigraph.environment`` imports neither cpuinfo nor git.
"""
from __future__ import annotations

import difflib
import json
import logging
import os
import threading
from collections.abc import Mapping, Sequence
from typing import Any

from ..hashing import bytes_hash
from ._common import failure, is_failure
from .collector import BUILTIN_COLLECTORS, Collector, collect, extra_collectors, package_lines, \
    text_lines
from .cpu import cpu_info  # noqa: F401  (Experiment waits on it for get_environment("cpu"))
from .cpu import start_background_collection as _start_cpu


__all__ = [
    "CATEGORIES",
    "MESSAGES",
    "category_lines",
    "diff_snapshots",
    "fingerprint",
    "python_packages",
    "snapshot",
    "start_background_collection",
]

logger = logging.getLogger(__name__)

#: the categories of a snapshot, in display order (the built-in collectors'; those of
#: plugins follow, sorted by name; see :mod:`experigraph.environment.collector`)
CATEGORIES: tuple[str, ...] = tuple(c.name for c in BUILTIN_COLLECTORS)

#: category -> the WARNING logged when it drifts between trials
MESSAGES: dict[str, str] = {c.name: c.message or "" for c in BUILTIN_COLLECTORS}

#: how many recent category objects per category keep their memoised digest
_MEMO_SIZE = 16

# Per-process memo of category digests: category -> [[object, digest or None], ...].
# Only objects produced by snapshot() are entered (strong references, compared
# with ``is``), so an entry can never be confused with a different object.
_memo_lock = threading.Lock()
_memo: dict[str, list[list[Any]]] = {}


def start_background_collection() -> None:
    """Start gathering py-cpuinfo in a daemon thread, once per process.

    Idempotent and cheap to call again. Until the thread has finished,
    snapshots have no ``cpu`` key; :func:`snapshot` never waits for it.
    """
    _start_cpu()


def _remember(category: str, value: Any) -> None:
    with _memo_lock:
        entries = _memo.setdefault(category, [])
        for entry in entries:
            if entry[0] is value:
                return
        entries.append([value, None])
        if len(entries) > _MEMO_SIZE:
            del entries[0]


def snapshot(source_files: Sequence[str] = (), *,
             collectors: Sequence[Collector] = ()) -> dict[str, Any]:
    """Take a snapshot of the environment.

    Also starts the background CPU collection if it was not started yet. The
    first call in a process takes about 0.1-0.3 s (installed packages, git);
    later calls return cached data in well under a millisecond unless
    something changed.

    Parameters
    ----------
    source_files : sequence of str
        Paths of the experiment's source files, for the ``git`` category. Paths
        that are not files or not in a git repository are ignored.
    collectors : sequence of Collector
        Extra collectors (``Experiment(collectors=...)``), after those registered
        in the ``experigraph.collectors`` entry-point group, which are always
        included (see :mod:`experigraph.environment.collector`).

    Returns
    -------
    dict
        Category -> JSON-serialisable data, in :data:`CATEGORIES` order, then
        the extra collectors' categories;
        ``cpu`` is absent until the background thread has gathered it. The
        category values are shared per-process objects: do not modify them.

    Examples
    --------
    >>> snap = snapshot()
    >>> sorted(set(snap) - {"cpu"})
    ['git', 'numeric', 'packages', 'platform', 'python']
    """
    if isinstance(source_files, (str, os.PathLike)):
        source_files = (source_files,)
    start_background_collection()
    files = tuple(os.fspath(f) for f in source_files)
    snap: dict[str, Any] = {}
    for collector in BUILTIN_COLLECTORS:  # no fingerprint: each module keeps its own cache
        try:
            value = collector.snapshot(source_files=files)
        except Exception as exc:  # a collector never raises: record the failure instead
            logger.warning("Could not collect %s environment information: %s",
                           collector.name, exc)
            value = failure(exc)
        if value is not None:
            snap[collector.name] = value
    for collector in extra_collectors(collectors):
        value = collect(collector, source_files=files)
        if value is not None:
            snap[collector.name] = value
    for category, value in snap.items():
        _remember(category, value)
    return snap


def _hexdigest(data: bytes) -> str:
    return bytes_hash(data)


def _canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str).encode("ascii")


def _category_digest(category: str, value: Any) -> str:
    with _memo_lock:
        for entry in _memo.get(category, ()):
            if entry[0] is value:
                if entry[1] is None:
                    entry[1] = _hexdigest(_canonical(value))
                return entry[1]
    return _hexdigest(_canonical(value))


def fingerprint(snap: Mapping[str, Any]) -> str:
    """Return a stable hex content hash of a snapshot.

    Equal snapshots give equal fingerprints, in any process and after a JSON
    round trip (:func:`experigraph.hashing.bytes_hash` over canonical JSON). Each category is hashed separately; for the category objects that
    :func:`snapshot` returned, the hash is memoised, so fingerprinting a fresh
    snapshot of unchanged state costs a few microseconds.

    Parameters
    ----------
    snap : Mapping
        A snapshot, as returned by :func:`snapshot` or read back from storage.

    Returns
    -------
    str
        32 hex digits.
    """
    parts = [f"{category}={_category_digest(category, snap[category])}" for category in sorted(snap)]
    return _hexdigest("\n".join(parts).encode("utf-8"))


def category_lines(snap: Mapping[str, Any], category: str, *,
                   collectors: Sequence[Collector] = ()) -> list[str]:
    """Render one category of a snapshot as text lines, in a stable order.

    Parameters
    ----------
    snap : Mapping
        A snapshot.
    category : str
        One of :data:`CATEGORIES` (or any other key of ``snap``).
    collectors : sequence of Collector
        Extra collectors whose ``text`` renders their categories.

    Returns
    -------
    list of str
        ``packages``: ``name==version`` lines as pip freeze prints them;
        ``git``: per repository ``key: value`` lines, then its diff lines;
        a plugin's category: its collector's ``text``; others: ``key: value``
        lines (nested keys joined with ``.``, one line per list item). Empty
        when the category is absent.

    Examples
    --------
    >>> category_lines({"python": {"version": "3.11.7", "virtualenv": None}}, "python")
    ['version: 3.11.7', 'virtualenv: None']
    """
    if category not in snap:
        return []
    return text_lines(category, snap[category], collectors)


def _ordered(categories: set[str]) -> list[str]:
    return [c for c in CATEGORIES if c in categories] + sorted(categories - set(CATEGORIES))


#: keys of the ``python`` category that describe how Python runs, not what it is
_NOT_DRIFT = frozenset({"shell"})
#: fields a category gained in a later version of experigraph: compared only when both
#: snapshots have them, so upgrading experigraph is not reported as environment drift
_ADDED_FIELDS = {"platform": frozenset({"cpu_count"})}


def diff_snapshots(old: Mapping[str, Any], new: Mapping[str, Any], *,
                   collectors: Sequence[Collector] = ()) -> dict[str, list[str]]:
    """Say which categories drifted between two snapshots, as unified diffs.

    A category missing from either side (e.g. ``cpu`` not gathered yet) or
    recorded as ``{"error": ...}`` on either side is not drift, nor is the Python
    shell mode (notebook, script or test). In ``numeric``
    only the modules imported on both sides are compared: a module imported in
    one trial and not in the other has not changed its build.

    Parameters
    ----------
    old, new : Mapping
        The previous and the current snapshot.
    collectors : sequence of Collector
        Extra collectors whose ``text`` renders their categories (a category no
        collector knows is compared as ``key: value`` lines).

    Returns
    -------
    dict
        Category -> ``difflib.unified_diff`` lines (``lineterm=''``) of
        :func:`category_lines`, for the categories that differ, in
        :data:`CATEGORIES` order; ``{}`` when nothing drifted.

    Examples
    --------
    >>> old = {"packages": [{"name": "dask", "version": "1.0", "location": "/x"}]}
    >>> new = {"packages": [{"name": "dask", "version": "2.0", "location": "/x"}]}
    >>> diff_snapshots(old, new)["packages"][-2:]
    ['-dask==1.0', '+dask==2.0']
    """
    drift: dict[str, list[str]] = {}
    for category in _ordered(set(old) & set(new)):
        before, after = old[category], new[category]
        if before is after or is_failure(before) or is_failure(after):
            continue
        if category == "python" and isinstance(before, Mapping) and isinstance(after, Mapping):
            # how Python runs (notebook, script, test) is not a change of environment
            before = {k: v for k, v in before.items() if k not in _NOT_DRIFT}
            after = {k: v for k, v in after.items() if k not in _NOT_DRIFT}
        added = _ADDED_FIELDS.get(category, ())
        if added and isinstance(before, Mapping) and isinstance(after, Mapping):
            # a field a newer experigraph records is not drift against a snapshot without it
            gone = {k for k in added if (k in before) != (k in after)}
            before = {k: v for k, v in before.items() if k not in gone}
            after = {k: v for k, v in after.items() if k not in gone}
        if category == "numeric" and isinstance(before, Mapping) and isinstance(after, Mapping):
            both = set(before) & set(after)
            before = {k: v for k, v in before.items() if k in both}
            after = {k: v for k, v in after.items() if k in both}
        if before == after:
            continue
        lines = list(difflib.unified_diff(
            text_lines(category, before, collectors),
            text_lines(category, after, collectors),
            fromfile=f"{category} (previous)",
            tofile=f"{category} (current)",
            lineterm="",
        ))
        if lines:
            drift[category] = lines
    return drift


def python_packages(snap: Mapping[str, Any]) -> list[str]:
    """Return the snapshot's installed packages as pip-freeze-like ``name==version`` lines.

    Parameters
    ----------
    snap : Mapping
        A snapshot.

    Returns
    -------
    list of str
        Sorted case-insensitively; empty when the snapshot has no packages.

    Examples
    --------
    >>> python_packages({"packages": [{"name": "Zope", "version": "5"},
    ...                               {"name": "attrs", "version": "23.1"}]})
    ['attrs==23.1', 'Zope==5']
    """
    return package_lines(snap.get("packages"))
