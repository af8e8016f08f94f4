"""Backends, resolved from what the user passes as ``backend=``.

Laziness lives in one place: the registry maps URI schemes to import strings,
and a backend module (with its client library) is imported only when chosen.

Other packages add backends by URI scheme through the entry-point group
``experigraph.backends`` (as MLflow's store registry does): an entry point named
after the scheme, whose value is ``"module:Class"``, a :class:`Backend` subclass
(it implements the primitives listed in :mod:`experigraph.backends.base`, among
them the ``from_uri(uri, experiment_id)`` class method). Entry points are read
only when a URI's scheme is not a built-in one; a built-in scheme cannot be
replaced. Such a package tests its backend with experigraph's contract suite,
:mod:`experigraph.testing.backend_contract`.
"""
from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .base import Backend

#: scheme -> "module:Class"
REGISTRY: dict[str, str] = {
    "file": "experigraph.backends.file:FileBackend",
    "redis": "experigraph.backends.redis:RedisBackend",
    "rediss": "experigraph.backends.redis:RedisBackend",
    "unix": "experigraph.backends.redis:RedisBackend",
    "mongodb": "experigraph.backends.mongo:MongoBackend",
}

ENV_BACKEND = "EXPERIGRAPH_BACKEND"
DEFAULT_ROOT = "experigraph_cache"

ACCEPTED = (
    "None or 'local' (./experigraph_cache/, or $EXPERIGRAPH_BACKEND), a directory (a "
    "pathlib.Path or a plain string path such as 'some/dir') or 'file://' URI, a 'redis://', 'rediss://' or 'unix://' URI or a redis.ConnectionPool, "
    "a 'mongodb://host/dbname' URI or a pymongo Database, or a Backend instance"
)


ENTRY_POINT_GROUP = "experigraph.backends"


def plugin_schemes() -> dict[str, Any]:
    """URI schemes that installed packages register (entry points of
    ``experigraph.backends``), each with its entry point; built-in schemes excluded."""
    from importlib.metadata import entry_points

    found: dict[str, Any] = {}
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        scheme = entry.name.lower()
        if scheme not in REGISTRY:
            found.setdefault(scheme, entry)
    return found


def load_backend_class(scheme: str) -> Any:
    """The Backend class registered for ``scheme`` (its module imported now).

    Raises
    ------
    ValueError
        A package registers ``scheme`` but its entry point cannot be loaded, or is
        not a Backend subclass (the message names the entry point).
    KeyError
        No backend is registered for ``scheme``.
    """
    if scheme in REGISTRY:
        module_name, _, attr = REGISTRY[scheme].partition(":")
        return getattr(importlib.import_module(module_name), attr)
    entry = plugin_schemes()[scheme]
    try:
        cls = entry.load()
    except Exception as exc:
        raise ValueError(f"The backend for {scheme}:// URIs registered by entry point "
                         f"{entry.name} = {entry.value} (group {ENTRY_POINT_GROUP!r}) cannot "
                         f"be loaded: {type(exc).__name__}: {exc}. Reinstall the package "
                         "that provides it.") from exc
    if not (isinstance(cls, type) and issubclass(cls, Backend)):
        raise ValueError(f"Entry point {entry.name} = {entry.value} (group "
                         f"{ENTRY_POINT_GROUP!r}) is not a subclass of "
                         "experigraph.backends.base.Backend.")
    return cls


def _from_uri(uri: str, experiment_id: str) -> Backend:
    scheme = urlsplit(uri).scheme.lower()
    if scheme in REGISTRY:
        return load_backend_class(scheme).from_uri(uri, experiment_id)
    plugins = plugin_schemes()
    if scheme in plugins:
        return load_backend_class(scheme).from_uri(uri, experiment_id)
    extra = (f"; installed packages add {', '.join(f'{s}://' for s in sorted(plugins))}"
             if plugins else "")
    raise ValueError(f"Unknown backend {uri!r}: accepted are {ACCEPTED}{extra}. A backend "
                     f"for another scheme is added by a package's {ENTRY_POINT_GROUP!r} "
                     "entry point.")


def resolve_backend(backend: Any, experiment_id: str) -> Backend:
    """Turn the ``backend=`` argument into a Backend for ``experiment_id``.

    Raises
    ------
    ValueError
        ``backend`` is none of the accepted forms (the message lists them).
    """
    if isinstance(backend, Backend):
        return backend
    if backend is None or backend == "local":
        env = os.environ.get(ENV_BACKEND)
        if env and env != "local":
            return resolve_backend(env if "://" in env else Path(env), experiment_id)
        return load_backend_class("file")(Path(DEFAULT_ROOT), experiment_id)
    if isinstance(backend, os.PathLike):
        return load_backend_class("file")(Path(backend), experiment_id)
    if isinstance(backend, str) and "://" in backend:
        return _from_uri(backend, experiment_id)
    if isinstance(backend, str) and backend.strip():  # a plain path, as daskperiment took
        scheme = backend.partition(":")[0].lower()
        if scheme in REGISTRY and scheme != "file" and not os.path.exists(backend):
            raise ValueError(f"Unsupported backend {backend!r} (did you mean "
                             f"'{scheme}://...'?): accepted are {ACCEPTED}.")
        return load_backend_class("file")(Path(backend), experiment_id)
    for scheme, hook in _OBJECT_HOOKS:
        if scheme in REGISTRY and hook(backend):
            return load_backend_class(scheme).from_object(backend, experiment_id)
    raise ValueError(f"Unsupported backend {backend!r}: accepted are {ACCEPTED}.")


def _type_is(module_prefix: str, name: str):  # checks without importing the client
    def check(obj: Any) -> bool:
        return any(c.__module__.startswith(module_prefix) and c.__name__ == name
                   for c in type(obj).__mro__)
    return check


#: objects (not URIs) that select a backend, checked without importing clients
_OBJECT_HOOKS: list[tuple[str, Any]] = [
    ("redis", _type_is("redis", "ConnectionPool")),
    ("mongodb", _type_is("pymongo", "Database")),
    ("mongodb", _type_is("mongomock", "Database")),
]

__all__ = ["Backend", "REGISTRY", "ENTRY_POINT_GROUP", "ACCEPTED", "plugin_schemes",
           "resolve_backend"]
