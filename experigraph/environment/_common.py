"""Helpers shared by the environment collectors.

Nothing here holds state: the per-process caches live in the collector modules,
each next to the cheap check that decides when it is stale, and so do the rules
for the per-user cache files written here (:func:`read_cache`, :func:`write_cache`).
"""
from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

#: what :func:`stat_signature` records for a path that does not exist
MISSING: tuple[()] = ()


def failure(exc: BaseException) -> dict[str, str]:
    """Return the ``{"error": ...}`` value recorded for a category that failed.

    Parameters
    ----------
    exc : BaseException
        What the collector raised.

    Returns
    -------
    dict
        ``{"error": "<ExceptionType>: <message>"}``.
    """
    return {"error": f"{type(exc).__name__}: {exc}"}


def is_failure(value: Any) -> bool:
    """Say whether a category value is only an error marker from :func:`failure`."""
    return isinstance(value, Mapping) and set(value) == {"error"}


def jsonable(value: Any) -> Any:
    """Convert ``value`` to plain JSON types (dict, list, str, int, float, bool, None).

    Mappings get ``str`` keys, tuples/lists become lists, sets become sorted
    lists, and anything else becomes its ``str``. Non-finite floats become strings
    so that the result is strict JSON.

    Parameters
    ----------
    value : Any
        Data from a third-party API (build configuration, cpuinfo, ...).

    Returns
    -------
    Any
        An equivalent value made only of JSON types.
    """
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if value == value and value not in (float("inf"), float("-inf")) else str(value)
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, (set, frozenset)):
        return sorted((jsonable(v) for v in value), key=repr)
    return str(value)


def stat_signature(paths: Iterable[str]) -> tuple[tuple[Any, ...], ...]:
    """Return a cheap change signature of ``paths``: inode, size and mtime of each.

    A path that does not exist contributes :data:`MISSING`, so creating or
    deleting it changes the signature too. This costs one ``os.stat`` per path
    (about a microsecond each).

    Parameters
    ----------
    paths : iterable of str
        Files or directories.

    Returns
    -------
    tuple
        One ``(path, inode, size, mtime_ns)`` tuple (or ``(path,)`` when missing)
        per path, in the given order.
    """
    signature: list[tuple[Any, ...]] = []
    for path in paths:
        try:
            st = os.stat(path)
        except OSError:
            signature.append((path, *MISSING))
        else:
            signature.append((path, st.st_ino, st.st_size, st.st_mtime_ns))
    return tuple(signature)


def cache_path(name: str) -> Path:
    """``$XDG_CACHE_HOME/experigraph/<name>`` (default ``~/.cache``): what one process
    gathered and the next can reuse."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "experigraph" / name


def read_cache(name: str) -> Any:
    """The JSON kept by :func:`write_cache` under ``name``, or None (missing, unreadable)."""
    try:
        with open(cache_path(name), "rb") as f:
            return json.loads(f.read())
    except (OSError, ValueError):
        return None


def write_cache(name: str, value: Any) -> None:
    """Keep ``value`` (JSON) under ``name``, replaced atomically; a failure is only logged
    (the next process gathers it again)."""
    path = cache_path(name)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{id(value):x}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(json.dumps(value, sort_keys=True) + "\n", encoding="utf-8")
        os.replace(tmp, path)
    except OSError as exc:
        logger.debug("Could not keep %s: %s", path, exc)
        try:
            tmp.unlink()
        except OSError:
            pass
