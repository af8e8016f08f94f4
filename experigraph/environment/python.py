"""The ``python`` category: interpreter, prefixes, virtualenv and conda environment."""
from __future__ import annotations

import functools
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


def shell_mode() -> str:
    """How Python runs, in daskperiment's words: ``Jupyter Notebook``, ``IPython
    Terminal``, ``Test`` (pytest), ``File`` (a script) or ``Interactive Terminal``."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    if shell is not None:
        name = type(shell).__name__
        if name == "ZMQInteractiveShell":
            return "Jupyter Notebook"
        if name == "TerminalInteractiveShell":
            return "IPython Terminal"
        return name
    main = sys.modules.get("__main__")
    main_file = getattr(main, "__file__", None)
    if main_file:
        return "Test" if "pytest" in sys.modules and "pytest" in main_file else "File"
    return "Interactive Terminal"


@functools.lru_cache(maxsize=1)
def _implementation() -> str:
    return platform.python_implementation()


@functools.lru_cache(maxsize=1)
def _executable() -> str:
    """The running interpreter (resolved once per process: python and python3.11 are
    one; it cannot change under a running process)."""
    return os.path.realpath(sys.executable)


def collect_python() -> dict[str, Any]:
    """Describe the running Python interpreter and the environment it runs in.

    Returns
    -------
    dict
        ``version`` (:data:`sys.version`), ``implementation``, ``executable``,
        ``prefix``, ``base_prefix``, ``virtualenv`` (the ``VIRTUAL_ENV`` path, or
        :data:`sys.prefix` when it differs from :data:`sys.base_prefix`, else
        ``None``), ``conda_prefix`` (``CONDA_PREFIX`` or ``None``) and ``shell``
        (:func:`shell_mode`; how Python runs is not drift). The same
        object is returned while nothing changes; treat it as read-only.
    """
    value = {
        "version": sys.version,
        "implementation": _implementation(),
        "executable": _executable(),
        "prefix": sys.prefix,
        "base_prefix": getattr(sys, "base_prefix", sys.prefix),
        "virtualenv": _virtualenv(),
        "conda_prefix": os.environ.get("CONDA_PREFIX") or None,
        "shell": shell_mode(),
    }
    with _lock:
        last = _cache.get("value")
        if last == value:
            return last
        _cache["value"] = value
        return value
