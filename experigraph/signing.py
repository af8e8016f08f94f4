"""Signed pickles: the only way experigraph stores Python objects.

Persisted step outputs, cached outputs and non-JSON results are pickled and
signed with HMAC-SHA256. The key comes from ``EXPERIGRAPH_SECRET_KEY`` or else
from a per-user key file created on first use, readable by its owner only
(``$XDG_CONFIG_HOME/experigraph/secret_key``, default ``~/.config``). A payload
whose signature is missing or wrong is refused before anything is unpickled,
unless the caller passes ``trust=True``.

Layout of a payload: ``MAGIC`` (8 bytes) + HMAC-SHA256 digest (32 bytes) + pickle.
"""
from __future__ import annotations

import hashlib
import hmac
import os
import pickle
import secrets
import uuid
from pathlib import Path
from typing import Any

import cloudpickle

MAGIC = b"XGPKL1\x00\x00"
_DIGEST = 32
ENV_KEY = "EXPERIGRAPH_SECRET_KEY"


def key_file() -> Path:
    """Where the per-user key lives when ``EXPERIGRAPH_SECRET_KEY`` is not set."""
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "experigraph" / "secret_key"


def _file_key() -> bytes:
    path = key_file()
    try:
        return path.read_bytes().strip()
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, secrets.token_hex(32).encode("ascii"))
    finally:
        os.close(fd)
    try:
        os.link(tmp, path)  # atomic, and fails if another process made the key first
    except FileExistsError:
        pass
    finally:
        tmp.unlink()
    return path.read_bytes().strip()


def _file_key_or_error() -> bytes:
    try:
        return _file_key()
    except OSError as exc:
        from .errors import KeyFileError

        raise KeyFileError(str(key_file()), exc) from exc


def secret_key() -> bytes:
    """The signing key: the environment variable, else the per-user key file."""
    env = os.environ.get(ENV_KEY)
    if env:
        return env.encode("utf-8")
    return _file_key_or_error()


def dumps(obj: Any) -> bytes:
    """Pickle ``obj`` (cloudpickle, so lambdas and notebook classes work) and sign it."""
    body = cloudpickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    digest = hmac.new(secret_key(), body, hashlib.sha256).digest()
    return MAGIC + digest + body


def is_signed_by_us(data: bytes) -> bool:
    """Whether ``data`` carries a valid signature for this machine's key."""
    if len(data) < len(MAGIC) + _DIGEST or not data.startswith(MAGIC):
        return False
    digest = data[len(MAGIC):len(MAGIC) + _DIGEST]
    body = data[len(MAGIC) + _DIGEST:]
    return hmac.compare_digest(digest, hmac.new(secret_key(), body, hashlib.sha256).digest())


def loads(data: bytes, *, what: str, trust: bool = False) -> Any:
    """Verify and unpickle a payload made by :func:`dumps`.

    Raises
    ------
    SignatureError
        The signature is missing or wrong and ``trust`` is false; nothing was unpickled.
    """
    from .errors import SignatureError

    if not is_signed_by_us(data):
        if not trust:
            raise SignatureError(what)
        body = data[len(MAGIC) + _DIGEST:] if data.startswith(MAGIC) else data
        return pickle.loads(body)
    return pickle.loads(data[len(MAGIC) + _DIGEST:])
