"""The ``python`` category: interpreter, prefixes, virtualenv and conda environment."""
from __future__ import annotations

import os
import platform
import sys
import threading
from typing import Any

# Per-process cache: the last value returned, so that unchanged state gives the same object.
_lock = threading.Lock()
_cache: dict[str, Any] = {}


def _virtualenv() -> str | None:
    venv = os.environ.get("VIRTUAL_ENV")
    if venv:
        return venv
    if sys.prefix != getattr(sys, "base_prefix", sys.prefix):
        return sys.prefix
    return None


def collect_python() -> dict[str, Any]:
    """Describe the running Python interpreter and the environment it runs in.

    Returns
    -------
    dict
        ``version`` (:data:`sys.version`), ``implementation``, ``executable``,
        ``prefix``, ``base_prefix``, ``virtualenv`` (the ``VIRTUAL_ENV`` path, or
        :data:`sys.prefix` when it differs from :data:`sys.base_prefix`, else
        ``None``) and ``conda_prefix`` (``CONDA_PREFIX`` or ``None``). The same
        object is returned while nothing changes; treat it as read-only.
    """
    value = {
        "version": sys.version,
        "implementation": platform.python_implementation(),
        "executable": os.path.realpath(sys.executable),  # python and python3.11 are one
        "prefix": sys.prefix,
        "base_prefix": getattr(sys, "base_prefix", sys.prefix),
        "virtualenv": _virtualenv(),
        "conda_prefix": os.environ.get("CONDA_PREFIX") or None,
    }
    with _lock:
        last = _cache.get("value")
        if last == value:
            return last
        _cache["value"] = value
        return value
