"""Helpers shared by the environment collectors.

Nothing here holds state: the per-process caches live in the collector modules,
each next to the cheap check that decides when it is stale.
"""
from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import Any

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
