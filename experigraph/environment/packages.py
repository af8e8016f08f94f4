"""The ``packages`` category: installed distributions, from :mod:`importlib.metadata`.

Reading every distribution's metadata costs 15-100 ms, so the list is kept
per process and read again only when a cheap signature changes: ``sys.path``
itself, the working directory when ``''`` is on it, and the ``os.stat`` of each
directory that held a ``.dist-info``/``.egg-info`` at the last collection.
Installing, upgrading or removing a package adds or removes such an entry,
which changes its directory's mtime. The list and its signature are also kept
in a per-user cache file (one per interpreter), so that a new process whose
signature is unchanged, and whose ``sys.path`` entries are as they were, reads
one small file instead (opening an experiment compares the environment), for
at most an hour. A ``sys.path`` directory that held no distribution may change
while it still holds none: a script's or notebook's own directory changes with
every file written next to it.

The same cache keeps the entry points of the collector plugins
(:data:`KEPT_GROUPS`), as :func:`importlib.metadata.entry_points` gave them, with
the ``os.stat`` of every listed distribution's ``entry_points.txt``: while the
list holds and none of those files changed, a new process finds its collector
plugins without importing :mod:`importlib.metadata` or reading every
``entry_points.txt``.
"""
from __future__ import annotations

import logging
import os
import re
import sys
import threading
import time
from typing import Any

from ..hashing import json_hash
from ._common import jsonable, read_cache, stat_signature, write_cache

logger = logging.getLogger(__name__)

# Per-process cache: the signature and the list collected under it.
_lock = threading.Lock()
_cache: dict[str, Any] = {"signature": None, "value": None, "locations": (),
                          "entry_points": None}
#: the entry-point groups kept with the list (the collector plugins, read by every new
#: process that takes an environment snapshot)
KEPT_GROUPS = ("experigraph.collectors",)
#: "index": (the list of packages, its versions by normalized name)
_versions: dict[str, tuple[list[dict[str, Any]], dict[str, str | None]]] = {}

_NORMALIZE = re.compile(r"[-_.]+")
_HEADER_END = re.compile(r"\r?\n\r?\n")


def normalize_name(name: str) -> str:
    """Return the PEP 503 normalised form of a distribution name (``Foo_Bar`` -> ``foo-bar``)."""
    return _NORMALIZE.sub("-", name).lower()


def _signature(locations: tuple[str, ...]) -> tuple[Any, ...]:
    cwd = None
    if "" in sys.path:  # '' means the working directory, which may have moved
        try:
            cwd = os.getcwd()
        except OSError:  # the working directory was deleted
            cwd = None
    return (tuple(sys.path), cwd, stat_signature(locations))


def _name_and_version(dist: Any) -> tuple[str | None, str | None]:
    """Read ``Name`` and ``Version`` from the metadata's header block.

    ``dist.metadata`` parses the whole file with :mod:`email`, long description
    included, which is most of the cost of listing packages; the two fields are
    single-line headers in the first lines. Anything unusual (a folded header, a
    missing field, a ``.egg-info`` file) falls back to ``dist.metadata``.
    """
    text = dist.read_text("METADATA") or dist.read_text("PKG-INFO")
    if text:
        found: dict[str, str] = {}
        last_key = ""
        for line in _HEADER_END.split(text, maxsplit=1)[0].splitlines():
            if line[:1] in (" ", "\t"):  # continuation of the previous header
                if last_key in ("name", "version"):
                    found.clear()  # folded: let the email parser handle it
                    break
                continue
            key, sep, value = line.partition(":")
            last_key = key.strip().lower()
            if sep and last_key in ("name", "version") and last_key not in found:
                found[last_key] = value.strip()
        if found.get("name") and found.get("version"):
            return found["name"], found["version"]
    return dist.metadata["Name"], dist.version


def _gather() -> tuple[list[dict[str, Any]], tuple[str, ...], dict[str, Any] | None]:
    """The packages, their locations and, to keep (:func:`_entry_points`), the entry
    points of :data:`KEPT_GROUPS` (None when they cannot be kept)."""
    import importlib.metadata  # about 20 ms to import: only when first needed

    seen: set[str] = set()
    packages: list[dict[str, Any]] = []
    locations: set[str] = set()
    files: list[str] | None = []
    for dist in importlib.metadata.distributions():
        folder = getattr(dist, "_path", None)  # the distribution's metadata folder
        if files is not None and folder is not None:  # all: entry_points() reads them all
            files.append(os.path.join(os.path.abspath(folder), "entry_points.txt"))
        else:  # a distribution from elsewhere (a zip, a custom finder): not watched
            files = None
        try:
            name, version = _name_and_version(dist)
            location = str(dist.locate_file(""))
        except Exception as exc:  # one broken .dist-info must not hide the others
            logger.debug("Skipping an unreadable distribution: %s", exc)
            continue
        if not name:
            continue
        location = os.path.abspath(location)
        locations.add(location)
        key = normalize_name(name)
        if key in seen:  # shadowed by an earlier sys.path entry, as for import and pip
            continue
        seen.add(key)
        packages.append({"name": name, "version": version, "location": location})
    packages.sort(key=lambda p: (p["name"].lower(), p["version"] or "", p["location"]))
    return packages, tuple(sorted(locations)), _entry_points(files)


def _entry_points(files: list[str] | None) -> dict[str, Any] | None:
    """The entry points of :data:`KEPT_GROUPS` as ``[group, name, value]``, as
    ``importlib.metadata.entry_points`` gives them, with the stat signature of
    ``files`` (every listed distribution's ``entry_points.txt``, found or not); None
    when they cannot be read or watched (each process then reads them itself)."""
    if files is None:
        return None
    import importlib.metadata

    try:
        found = [[group, ep.name, ep.value] for group in KEPT_GROUPS
                 for ep in importlib.metadata.entry_points(group=group)]
    except Exception as exc:  # broken metadata: not kept, and said where it is read
        logger.debug("Not keeping the entry points: %s", exc)
        return None
    return {"entries": found, "files": files, "signature": jsonable(stat_signature(files))}


def collect_packages() -> list[dict[str, Any]]:
    """List the installed Python distributions, as pip would see them.

    Returns
    -------
    list of dict
        ``{"name", "version", "location"}`` per distribution, sorted by name
        case-insensitively; where a name is installed twice only the one found
        first on ``sys.path`` is listed. The same list object is returned while
        the signature is unchanged; treat it as read-only.
    """
    if _cache["value"] is not None and _signature(_cache["locations"]) == _cache["signature"]:
        return _cache["value"]
    with _lock:
        if _cache["value"] is not None and _signature(_cache["locations"]) == _cache["signature"]:
            return _cache["value"]
        kept = _from_file() if _cache["value"] is None else None
        if kept is not None:
            return kept
        packages, locations, entry_points = _gather()
        signature = _signature(locations)
        if packages != _cache["value"]:
            _cache["value"] = packages
        _cache["locations"], _cache["signature"] = locations, signature
        _cache["entry_points"] = entry_points
        write_cache(_cache_name(), {"locations": list(locations), "signature": signature,
                                    "packages": packages, "entry_points": entry_points,
                                    "paths": _path_signature(),
                                    "bare": [p for p in _path_entries() if _bare(p)],
                                    "written": time.time()})
        logger.debug("Collected %d installed packages", len(packages))
        return _cache["value"]


def _cache_name() -> str:
    """This interpreter's file among the per-user cache files."""
    return f"packages-{json_hash([sys.executable, sys.prefix])[:16]}.json"


#: the list kept in the cache file is gathered again once it is this old
FILE_MAX_AGE_SECONDS = 3600.0


#: what marks a distribution in a ``sys.path`` directory, for ``importlib.metadata``
_METADATA_SUFFIXES = (".dist-info", ".egg-info")


def _path_entries() -> list[str]:
    cwd = os.getcwd() if "" in sys.path else ""
    return [p or cwd for p in sys.path]


def _path_signature() -> Any:
    """The stat of every ``sys.path`` entry, as JSON: a package installed where none was
    before (``pip install --target``) changes its directory, not one of the locations."""
    return jsonable(stat_signature(_path_entries()))


def _bare(path: str) -> bool:
    """Whether ``path`` is a directory that holds no distribution's metadata."""
    try:
        return not any(name.endswith(_METADATA_SUFFIXES) for name in os.listdir(path))
    except OSError:  # not a directory (a zip), or gone
        return False


def _paths_hold(kept: Any, bare: Any) -> bool:
    """Whether the ``sys.path`` entries are as in ``kept`` (:func:`_path_signature`), but
    for directories that held no distribution (``bare``) and still hold none: files
    written next to a script or notebook change its directory, not the packages."""
    now = _path_signature()
    if now == kept:
        return True
    if not isinstance(kept, list) or len(kept) != len(now) or not isinstance(bare, list):
        return False
    for then, entry in zip(kept, now):
        if then != entry and not (isinstance(then, list) and then and then[0] == entry[0]
                                  and entry[0] in bare and _bare(entry[0])):
            return False
    return True


def _from_file() -> list[dict[str, Any]] | None:
    """The list kept by an earlier process, taken when its signature still holds, no
    ``sys.path`` entry changed (but for what :func:`_paths_hold` lets pass), and it is
    younger than :data:`FILE_MAX_AGE_SECONDS`."""
    kept = read_cache(_cache_name())
    try:
        locations = tuple(kept["locations"])
        packages = kept["packages"]
        entry_points = kept.get("entry_points")  # None: not kept (or an earlier version)
        valid = (isinstance(packages, list) and all(isinstance(p, dict) for p in packages)
                 and (entry_points is None or _valid_entry_points(entry_points))
                 and 0 <= time.time() - kept["written"] < FILE_MAX_AGE_SECONDS
                 and jsonable(_signature(locations)) == kept["signature"]
                 and _paths_hold(kept["paths"], kept.get("bare")))
    except (TypeError, KeyError, OSError):
        return None
    if not valid:
        return None
    _cache["value"], _cache["locations"] = packages, locations
    _cache["signature"] = _signature(locations)
    _cache["entry_points"] = entry_points
    return packages


def _valid_entry_points(kept: Any) -> bool:
    """Whether ``kept`` has the form :func:`_entry_points` gives."""
    return (isinstance(kept, dict) and isinstance(kept.get("entries"), list)
            and all(isinstance(e, list) and len(e) == 3 and all(isinstance(f, str) for f in e)
                    for e in kept["entries"])
            and isinstance(kept.get("files"), list)
            and all(isinstance(f, str) for f in kept["files"]) and "signature" in kept)


def kept_entry_points(group: str) -> list[tuple[str, str]] | None:
    """``(name, value)`` of the entry points of ``group`` (one of :data:`KEPT_GROUPS`), as the
    package list kept for this process or in the per-user cache file has them, while
    that list holds (see the module docstring) and no listed distribution's
    ``entry_points.txt`` changed; None when there are none to trust (the caller asks
    :mod:`importlib.metadata`). Never gathers the list itself."""
    if group not in KEPT_GROUPS:
        return None
    with _lock:
        valid = (_cache["value"] is not None
                 and _signature(_cache["locations"]) == _cache["signature"])
        if not valid and (_cache["value"] is not None or _from_file() is None):
            return None
        kept = _cache["entry_points"]
    if kept is None or jsonable(stat_signature(kept["files"])) != kept["signature"]:
        return None
    return [(name, value) for g, name, value in kept["entries"] if g == group]


def version_of(name: str) -> str | None:
    """The version of the installed distribution ``name`` (as ``importlib.metadata``
    would give it: the first found on ``sys.path``), from :func:`collect_packages`."""
    packages = collect_packages()
    indexed = _versions.get("index")
    if indexed is None or indexed[0] is not packages:  # a new list whenever packages change
        versions: dict[str, str | None] = {}
        for package in packages:
            versions.setdefault(normalize_name(package["name"]), package["version"])
        indexed = _versions["index"] = (packages, versions)
    return indexed[1].get(normalize_name(name))
