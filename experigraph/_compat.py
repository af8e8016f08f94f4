"""Lazy imports of optional packages, with an error that says how to fix them."""
from __future__ import annotations

import importlib
import sys
from types import ModuleType

from .errors import MissingDependencyError

#: distribution names where they differ from the import name
_DISTRIBUTIONS = {"cpuinfo": "py-cpuinfo", "bson": "pymongo"}


def import_optional(name: str, *, needed_for: str) -> ModuleType:
    """Import ``name`` or raise :class:`MissingDependencyError` saying what to install."""
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        dist = _DISTRIBUTIONS.get(name.split(".")[0], name.split(".")[0])
        raise MissingDependencyError(
            f"{needed_for} needs the {dist!r} package, which is not installed. "
            f"Install it with: pip install {dist}"
        ) from exc


def is_interactive(*, event_loop: bool = False) -> bool:
    """Whether this runs in Jupyter/IPython or an interactive interpreter (with
    ``event_loop``, also: inside a running asyncio event loop)."""
    if event_loop:
        import asyncio

        try:
            asyncio.get_running_loop()
            return True
        except RuntimeError:
            pass
    if hasattr(sys, "ps1") or sys.flags.interactive:
        return True
    ipython = sys.modules.get("IPython")
    get_ipython = getattr(ipython, "get_ipython", None)
    return get_ipython is not None and get_ipython() is not None
