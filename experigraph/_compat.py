"""Lazy imports of optional packages, with an error that says how to fix them."""
from __future__ import annotations

import importlib
from types import ModuleType

from .errors import MissingDependencyError

#: distribution names where they differ from the import name
_DISTRIBUTIONS = {"git": "gitpython", "cpuinfo": "py-cpuinfo", "bson": "pymongo"}


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
