"""Backends, resolved from what the user passes as ``backend=``.

Laziness lives in one place: the registry maps URI schemes to import strings,
and a backend module (with its client library) is imported only when chosen.
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


def load_backend_class(scheme: str) -> Any:
    """The Backend class registered for ``scheme`` (its module imported now)."""
    module_name, _, attr = REGISTRY[scheme].partition(":")
    return getattr(importlib.import_module(module_name), attr)


def _from_uri(uri: str, experiment_id: str) -> Backend:
    scheme = urlsplit(uri).scheme.lower()
    if scheme in REGISTRY:
        return load_backend_class(scheme).from_uri(uri, experiment_id)
    raise ValueError(f"Unknown backend {uri!r}: accepted are {ACCEPTED}.")


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

__all__ = ["Backend", "REGISTRY", "resolve_backend", "ACCEPTED"]
