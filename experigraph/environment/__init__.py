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
import hashlib
import json
import logging
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ._common import failure, is_failure
from .cpu import cpu_info
from .cpu import start_background_collection as _start_cpu
from .git import collect_git
from .numeric import collect_numeric
from .packages import collect_packages
from .python import collect_python
from .system import collect_platform

xxhash: Any
try:  # about ten times faster than sha256; either gives a stable content hash
    import xxhash
except ImportError:  # pragma: no cover - xxhash is a dependency, but optional here
    xxhash = None

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

#: the categories of a snapshot, in display order
CATEGORIES: tuple[str, ...] = ("platform", "cpu", "python", "packages", "numeric", "git")

#: category -> the WARNING logged when it drifts between trials
MESSAGES: dict[str, str] = {
    "platform": "Platform information has been changed",
    "cpu": "CPU information has been changed",
    "python": "Python information has been changed",
    "packages": "Installed Python packages have been changed",
    "numeric": "NumPy/SciPy/pandas build information has been changed",
    "git": "Git repository state has been changed",
}

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


def _collect(category: str, collect: Callable[..., Any], *args: Any) -> Any:
    try:
        return collect(*args)
    except Exception as exc:  # a collector never raises: record the failure instead
        logger.warning("Could not collect %s environment information: %s", category, exc)
        return failure(exc)


def _remember(category: str, value: Any) -> None:
    with _memo_lock:
        entries = _memo.setdefault(category, [])
        for entry in entries:
            if entry[0] is value:
                return
        entries.append([value, None])
        if len(entries) > _MEMO_SIZE:
            del entries[0]


def snapshot(source_files: Sequence[str] = ()) -> dict[str, Any]:
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

    Returns
    -------
    dict
        Category -> JSON-serialisable data, in :data:`CATEGORIES` order;
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
    snap: dict[str, Any] = {"platform": _collect("platform", collect_platform)}
    cpu = cpu_info()
    if cpu is not None:
        snap["cpu"] = cpu
    snap["python"] = _collect("python", collect_python)
    snap["packages"] = _collect("packages", collect_packages)
    snap["numeric"] = _collect("numeric", collect_numeric)
    snap["git"] = _collect("git", collect_git, tuple(os.fspath(f) for f in source_files))
    for category, value in snap.items():
        _remember(category, value)
    return snap


def _hexdigest(data: bytes) -> str:
    if xxhash is not None:
        return xxhash.xxh3_128_hexdigest(data)
    return hashlib.sha256(data).hexdigest()


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
    round trip (xxhash's XXH3-128 when installed, else SHA-256, over canonical
    JSON). Each category is hashed separately; for the category objects that
    :func:`snapshot` returned, the hash is memoised, so fingerprinting a fresh
    snapshot of unchanged state costs a few microseconds.

    Parameters
    ----------
    snap : Mapping
        A snapshot, as returned by :func:`snapshot` or read back from storage.

    Returns
    -------
    str
        32 (xxhash) or 64 (sha256) hex digits.
    """
    parts = [f"{category}={_category_digest(category, snap[category])}" for category in sorted(snap)]
    return _hexdigest("\n".join(parts).encode("utf-8"))


def _flatten(prefix: str, value: Any, lines: list[str]) -> None:
    if isinstance(value, Mapping):
        if not value and prefix:
            lines.append(f"{prefix}: {{}}")
        for key in sorted(value, key=str):
            _flatten(f"{prefix}.{key}" if prefix else str(key), value[key], lines)
    elif isinstance(value, (list, tuple)):
        if not value:
            lines.append(f"{prefix}: []")
        for index, item in enumerate(value):
            if isinstance(item, (Mapping, list, tuple)):
                _flatten(f"{prefix}[{index}]", item, lines)
            else:
                _flatten(prefix, item, lines)
    elif isinstance(value, str) and "\n" in value:
        lines.extend(f"{prefix}: {line}" for line in value.splitlines())
    else:
        lines.append(f"{prefix}: {value}")


def _package_lines(packages: Any) -> list[str]:
    if not isinstance(packages, list):
        return []
    return sorted(
        (f"{p.get('name')}=={p.get('version')}" for p in packages if isinstance(p, Mapping)),
        key=str.lower,
    )


#: the order of a git repository record's fields in text form (others follow, sorted)
_GIT_FIELDS = ("root", "branch", "commit", "is_dirty", "source_files", "untracked",
               "untracked_truncated", "error")


def _git_lines(value: Any) -> list[str]:
    if not isinstance(value, Mapping):
        lines: list[str] = []
        _flatten("git", value, lines)
        return lines
    lines = []
    _flatten("", {k: v for k, v in value.items() if k != "repositories"}, lines)
    for repository in value.get("repositories") or ():
        if not isinstance(repository, Mapping):
            continue
        fields = [f for f in _GIT_FIELDS if f in repository]
        fields += sorted(k for k in repository if k not in _GIT_FIELDS and k != "diff")
        for field in fields:
            _flatten(field, repository[field], lines)
        lines.extend((repository.get("diff") or "").splitlines())
    return lines


def category_lines(snap: Mapping[str, Any], category: str) -> list[str]:
    """Render one category of a snapshot as text lines, in a stable order.

    Parameters
    ----------
    snap : Mapping
        A snapshot.
    category : str
        One of :data:`CATEGORIES` (or any other key of ``snap``).

    Returns
    -------
    list of str
        ``packages``: ``name==version`` lines as pip freeze prints them;
        ``git``: per repository ``key: value`` lines, then its diff lines;
        others: ``key: value`` lines (nested keys joined with ``.``, one line
        per list item). Empty when the category is absent.

    Examples
    --------
    >>> category_lines({"python": {"version": "3.11.7", "virtualenv": None}}, "python")
    ['version: 3.11.7', 'virtualenv: None']
    """
    if category not in snap:
        return []
    value = snap[category]
    if category == "packages" and isinstance(value, list):
        return _package_lines(value)
    if category == "git":
        return _git_lines(value)
    lines: list[str] = []
    _flatten("", value, lines)
    return lines


def _ordered(categories: set[str]) -> list[str]:
    return [c for c in CATEGORIES if c in categories] + sorted(categories - set(CATEGORIES))


#: keys of the ``python`` category that describe how Python runs, not what it is
_NOT_DRIFT = frozenset({"shell"})
#: fields a category gained in a later version of experigraph: compared only when both
#: snapshots have them, so upgrading experigraph is not reported as environment drift
_ADDED_FIELDS = {"platform": frozenset({"cpu_count"})}


def diff_snapshots(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, list[str]]:
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
            category_lines({category: before}, category),
            category_lines({category: after}, category),
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
    return _package_lines(snap.get("packages"))
