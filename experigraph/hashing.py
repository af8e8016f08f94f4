"""Hashes of values, files, text and code; the only module that calls ``tokenize``.

* ``value_hash``: dask's ``tokenize`` in deterministic mode (fast for NumPy and
  pandas, uses xxhash when installed). A value that dask cannot hash
  deterministically gets ``None``: it is never compared, so never reported as
  impure. So does a value that dask would hash by pickling it (an object of a
  class dask does not know, without ``__dask_tokenize__``): such a token is stable
  within a process but not across processes (the pickle of a set of strings
  depends on the process's hash seed), and impurity is checked across processes.
* ``scalar_hash``: plain scalars (``None``, ``bool``, ``int``, ``float``, ``str``)
  and step calls whose arguments are all plain scalars, from a canonical encoding
  through XXH3-128 (``"s"`` + 32 hex digits); ``array_hash``: large NumPy arrays
  (``"a"`` + 32 hex digits). ``output_hash`` marks every output hash with its kind
  (``s``, ``a``, ``t`` for ``tokenize``), so that values of different kinds never
  share a hash and ``comparable`` tells this version's hashes from the unmarked
  ones of earlier versions.
* ``text_hash`` / ``json_hash``: content addresses of code and environment snapshots.
* ``path_hash``: streamed xxhash of a file, or of every file under a directory;
  not re-read while size and mtime are unchanged in this process.
"""
from __future__ import annotations

import dataclasses
import datetime
import decimal
import enum
import hashlib
import itertools
import json
import os
import pathlib
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from dask.base import normalize_token, tokenize

try:  # a declared dependency, but keep working with dask's fallback
    import xxhash

    def _new_hasher() -> Any:
        return xxhash.xxh3_128()
except ImportError:  # pragma: no cover - xxhash is in install_requires
    def _new_hasher() -> Any:
        return hashlib.blake2b(digest_size=16)

NONDETERMINISTIC = None
_GENERIC = normalize_token.dispatch(object)  # dask's fallback: pickle, or a random token
_CHUNK = 1 << 22
CHUNK = _CHUNK


_CONTENT_TYPES = frozenset({int, float, complex, str, bytes, bytearray, bool, type(None),
                            range, slice, datetime.date, datetime.datetime, datetime.time,
                            datetime.timedelta, decimal.Decimal, pathlib.PurePosixPath,
                            pathlib.PosixPath})
#: items of a container checked for stable tokens (the rest are taken to be alike)
_CHECKED_ITEMS = 1000


def is_content_tokenized(value: Any) -> bool:
    """Whether dask tokenizes ``value`` from its content, the same in every process."""
    kind = type(value)
    if kind in _CONTENT_TYPES:
        return True
    if kind in (list, tuple, set):  # dask sorts a set's items; a frozenset it pickles
        return all(is_content_tokenized(v) for v in itertools.islice(value, _CHECKED_ITEMS))
    if kind is dict:
        return all(is_content_tokenized(k) and is_content_tokenized(v)
                   for k, v in itertools.islice(value.items(), _CHECKED_ITEMS))
    if isinstance(value, type):
        return False
    if getattr(value, "__dask_tokenize__", None) is not None:
        return True
    if dataclasses.is_dataclass(value):
        return all(is_content_tokenized(getattr(value, f.name))
                   for f in dataclasses.fields(value))
    if isinstance(value, enum.Enum):  # pickled by name
        return True
    dtype = getattr(value, "dtype", None)  # NumPy scalars: pickled by value
    if kind.__module__ == "numpy" and getattr(dtype, "kind", "O") != "O":
        return True
    if normalize_token.dispatch(kind) is _GENERIC:
        return False
    if kind.__module__.partition(".")[0] in ("numpy", "pandas"):
        return _object_items_tokenized(value, dtype)
    return True


def _pickles_stably(value: Any) -> bool:
    """Whether ``value``'s pickle is the same in every process (a set's is not: its order
    follows the process's string hash seed)."""
    kind = type(value)
    if kind in _CONTENT_TYPES:
        return True
    if kind in (list, tuple):
        return all(_pickles_stably(v) for v in itertools.islice(value, _CHECKED_ITEMS))
    if kind is dict:
        return all(_pickles_stably(k) and _pickles_stably(v)
                   for k, v in itertools.islice(value.items(), _CHECKED_ITEMS))
    return False


def _object_items_tokenized(value: Any, dtype: Any) -> bool:
    """NumPy arrays and pandas objects of object dtype: dask pickles their items, so each
    (up to ``_CHECKED_ITEMS``) must be content-tokenized; other dtypes are by content."""
    if getattr(dtype, "kind", None) == "O":
        items = value.flat if hasattr(value, "flat") else value
        return all(_pickles_stably(v) for v in itertools.islice(items, _CHECKED_ITEMS))
    dtypes = getattr(value, "dtypes", None)  # a DataFrame: its object columns
    if dtypes is not None and hasattr(value, "columns") and hasattr(dtypes, "items"):
        for name, column_dtype in dtypes.items():
            if getattr(column_dtype, "kind", None) == "O" and not _object_items_tokenized(
                    value[name], column_dtype):
                return False
    return True


def value_hash(*values: Any) -> str | None:
    """Deterministic content hash of ``values``, or ``None`` if dask cannot make one
    that is the same in every process."""
    if not is_content_tokenized(values):
        return NONDETERMINISTIC
    try:
        return tokenize(*values, ensure_deterministic=True)
    except Exception:  # dask raises RuntimeError for objects without a stable token
        return NONDETERMINISTIC


#: NumPy arrays at least this large are hashed by :func:`array_hash`, and stand in a
#: step's input hash by that hash (see :func:`output_hash` and :func:`input_hash`)
BIG_ARRAY_BYTES = 1 << 20


class _Hashed:
    """Stands for a value in a token: tokenizes as the value's known hash."""

    __slots__ = ("token",)

    def __init__(self, token: str) -> None:
        self.token = token

    def __dask_tokenize__(self) -> Any:
        return ("experigraph-hashed", self.token)


def big_array(value: Any) -> bool:
    """Whether ``value`` is a large C-contiguous NumPy array of a non-object dtype."""
    if type(value).__name__ != "ndarray" or type(value).__module__ != "numpy":
        return False
    return (value.nbytes >= BIG_ARRAY_BYTES and value.flags.c_contiguous
            and value.dtype.kind not in "OV")


def array_hash(value: Any) -> str:
    """The hash of a large NumPy array (see :func:`big_array`): its dtype, shape and
    bytes, streamed through XXH3-128 (about 1.5x faster than ``tokenize``)."""
    h = _new_hasher()
    h.update(f"ndarray:{value.dtype.str}:{value.shape}:".encode())
    h.update(memoryview(value).cast("B"))
    return "a" + h.hexdigest()


def _marked(digest: str) -> bool:
    """Whether an output hash names how it was made (this version's: ``s``, ``a``, ``t``
    and 32 hex digits); an unmarked one is an earlier version's ``tokenize``."""
    return len(digest) == 33 and digest[0] in "ast"


def comparable(first: str, second: str) -> bool:
    """Whether two output hashes were made by the same rules, so that their difference
    means different values: both marked (:func:`output_hash`: a plain scalar, a large
    array or anything else hashed as its kind, so two values of different kinds differ
    too), or both an earlier version's unmarked ``tokenize``."""
    return _marked(first) == _marked(second)


_SCALARS = frozenset((int, float, str, bool, type(None)))


def _scalar_bytes(value: Any, out: list[bytes]) -> None:
    """Append the canonical encoding of a plain scalar (exact type, see ``_SCALARS``):
    a tag and the value, unambiguous and the same in every process and version
    (floats by ``float.hex``, text as UTF-8 with its length)."""
    kind = type(value)
    if kind is str:
        data = value.encode("utf-8", "surrogatepass")
        out.append(b"s%d:" % len(data))
        out.append(data)
    elif kind is int:
        out.append(b"i%x;" % value)  # hex: no limit on the number of digits
    elif kind is float:
        out.append(b"f" + value.hex().encode("ascii") + b";")
    elif kind is bool:
        out.append(b"T" if value else b"F")
    else:
        out.append(b"N")


def scalar_hash(*values: Any) -> str | None:
    """The hash of plain scalars (``None``, ``bool``, ``int``, ``float``, ``str``, exact
    types): XXH3-128 of their canonical encoding, ``"s"`` and 32 hex digits, a fifth
    of ``tokenize``'s cost; None if a value is of another type."""
    if not all(type(v) in _SCALARS for v in values):
        return None
    out: list[bytes] = []
    for v in values:
        _scalar_bytes(v, out)
    h = _new_hasher()
    h.update(b"".join(out))
    return "s" + h.hexdigest()


def _groups_digest(*groups: Sequence[Any]) -> str:
    """XXH3-128 hex digest of groups of plain scalars: each group's length, then the
    canonical encoding of each of its values (unambiguous: no two different series of
    groups encode alike)."""
    out: list[bytes] = []
    for group in groups:
        out.append(b"(%d" % len(group))
        for v in group:
            _scalar_bytes(v, out)
    h = _new_hasher()
    h.update(b"".join(out))
    return h.hexdigest()


def _scalar_call_hash(args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> str | None:
    """The marked hash of a call's arguments (positional, then keyword by name), or
    None unless every one is a plain scalar."""
    if not all(type(v) in _SCALARS for v in args) or not all(
            type(v) in _SCALARS for v in kwargs.values()):
        return None
    return "s" + _groups_digest(args, [x for name in sorted(kwargs)
                                       for x in (name, kwargs[name])])


def output_hash(value: Any) -> str | None:
    """A step output's hash, marked with how it was made (see :func:`comparable`):
    :func:`scalar_hash` for a plain scalar (``s``), :func:`array_hash` for a large array
    (``a``), else ``t`` and :func:`value_hash` (None when that is None)."""
    if type(value) in _SCALARS:
        return scalar_hash(value)
    if big_array(value):
        return array_hash(value)
    token = value_hash(value)
    return None if token is None else "t" + token


def input_hash(args: tuple[Any, ...], kwargs: Mapping[str, Any],
               known: Callable[[Any], str | None] | None = None) -> str | None:
    """The hash of a step call's arguments: when they are all plain scalars, their
    :func:`scalar_hash` (keyword arguments by name); else :func:`value_hash` of them,
    where each large array argument stands in by its :func:`output_hash` (``known(value)`` gives it when
    the step that made the value has hashed it already: not hashed twice)."""
    plain = _scalar_call_hash(args, kwargs)
    if plain is not None:
        return plain

    def stand_in(value: Any) -> Any:
        if not big_array(value):
            return value
        token = known(value) if known is not None else None
        return _Hashed(token or array_hash(value))

    for v in (*args, *kwargs.values()):  # most calls have no array: one type test each
        if type(v).__name__ == "ndarray" and big_array(v):
            args = tuple(stand_in(v) for v in args)
            kwargs = {k: stand_in(v) for k, v in kwargs.items()}
            break
    return value_hash(args, kwargs)


def loose_hash(*values: Any) -> str:
    """A token that is always made (random for values without a deterministic one)."""
    return tokenize(*values)


def call_key_token(static_token: str, seed: int, values: Sequence[Any],
                   dep_keys: Sequence[Any]) -> str:
    """The token of a step call's task key (equal for calls a sweep shares): when the
    parameters are plain scalars and the dependencies' keys text (the usual call), the
    digest of their canonical encoding (``1``, ``1.0`` and ``True`` differ), a fifth of
    ``tokenize``'s cost; else :func:`loose_hash`."""
    if all(type(v) in _SCALARS for v in values) and all(type(k) is str for k in dep_keys):
        return _groups_digest((static_token, seed), values, dep_keys)
    return loose_hash(static_token, seed, values, dep_keys)


def text_hash(text: str) -> str:
    """Hex hash of UTF-8 text."""
    h = _new_hasher()
    h.update(text.encode("utf-8"))
    return h.hexdigest()


def bytes_hash(data: bytes) -> str:
    """Hex hash of bytes (content addresses of blobs)."""
    h = _new_hasher()
    h.update(data)
    return h.hexdigest()


def json_hash(obj: Any) -> str:
    """Hex hash of a JSON-able object, independent of dict order."""
    return text_hash(json.dumps(obj, sort_keys=True, separators=(",", ":"), default=repr))


class _FileHashCache:
    """(path, size, mtime_ns) -> hash for this process, so unchanged files are not re-read."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[str, tuple[int, int, str]] = {}

    def file_hash(self, path: str) -> str:
        st = os.stat(path)
        with self._lock:
            hit = self._entries.get(path)
        if hit is not None and hit[0] == st.st_size and hit[1] == st.st_mtime_ns:
            return hit[2]
        h = _new_hasher()
        with open(path, "rb") as f:
            while chunk := f.read(_CHUNK):
                h.update(chunk)
        digest = h.hexdigest()
        with self._lock:
            self._entries[path] = (st.st_size, st.st_mtime_ns, digest)
        return digest


_FILES = _FileHashCache()  # per-process cache of file content hashes (see module docstring)


def new_hasher() -> Any:
    """The streaming hasher behind file hashes (``update(bytes)``, ``hexdigest()``)."""
    return _new_hasher()


def known_file_hash(path: str, st: os.stat_result) -> str | None:
    """The hash this process already computed for ``path`` at this size and mtime, or None."""
    with _FILES._lock:
        hit = _FILES._entries.get(path)
    if hit is not None and hit[0] == st.st_size and hit[1] == st.st_mtime_ns:
        return hit[2]
    return None


def remember_file_hash(path: str, st: os.stat_result, digest: str) -> None:
    """Note a hash computed elsewhere (while a file was copied), so it is not read again."""
    with _FILES._lock:
        _FILES._entries[path] = (st.st_size, st.st_mtime_ns, digest)


def path_hash(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Hash a file, or every file under a directory.

    Returns
    -------
    dict
        ``{"hash": hex, "kind": "file"|"directory", "files": {relpath: hex}, "size": bytes}``;
        ``files`` is empty for a single file.
    """
    p = Path(path)
    if p.is_dir():
        files: dict[str, str] = {}
        size = 0
        for root, dirs, names in os.walk(p):
            dirs.sort()
            for name in sorted(names):
                full = os.path.join(root, name)
                rel = os.path.relpath(full, p).replace(os.sep, "/")
                files[rel] = _FILES.file_hash(full)
                size += os.path.getsize(full)
        return {"hash": json_hash(files), "kind": "directory", "files": files, "size": size}
    digest = _FILES.file_hash(os.fspath(p))
    return {"hash": digest, "kind": "file", "files": {}, "size": p.stat().st_size}


def combine(parts: Mapping[str, Any]) -> str:
    """One hash of several named parts (e.g. a step's code and its helpers' code)."""
    return json_hash(dict(parts))
