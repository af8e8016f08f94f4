"""The history table kept between processes: a large history is read back in one go.

Building the table of a 10,000-trial history parses 10,000 summaries into rows
and tabulates them (about 100 ms on a 2-core machine); the table it made
unpickles in under a millisecond.
So ``Experiment.get_history`` keeps the table of a history of at least
:data:`MIN_TRIALS` trials in the per-user cache directory
(``$XDG_CACHE_HOME/experigraph/history-<digest>.pkl``, one file per store and
experiment), and reuses it while everything it was made of is unchanged:

* what the backend reads the summaries from, by its digest
  (``Backend.read_summary_rows``, with the digest of ``read_summaries_keyed``: for
  the file backend, the bytes of
  ``summaries.jsonl`` and every record file's signature; for Redis, a SHA-1 the
  server makes of every stored summary in the script that would return them); a
  backend that makes no digest (MongoDB) keeps no table;
* the annotation log (tags, archived trials), the parameters this process has
  declared, the arguments (``verbose``, ``archived``), the local time zone (the
  ``Finished`` column is in local time), pandas' options that change dtypes, and
  the versions of Python, pandas, NumPy and orjson, and of experigraph by its
  modules' sizes and times.

``EXPERIGRAPH_HISTORY_CACHE=0`` turns this off: nothing kept, nothing read.

A table showing a running trial is never kept: whether its process still runs is
read at each call. The file is a pickle signed with the per-user key (see
:mod:`experigraph.signing`); one whose signature is wrong is never unpickled. A
file that cannot be read or written costs a rebuild, nothing else.
"""
from __future__ import annotations

import functools
import hashlib
import hmac
import json
import logging
import os
import pickle
import sys
import warnings
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import signing
from .environment._common import cache_path
from .hashing import new_hasher
from .records import ROW_RUNNING, history_row

if TYPE_CHECKING:
    import pandas as pd

    from .backends.base import Backend

logger = logging.getLogger(__name__)

#: histories of fewer trials are built at each call (a few milliseconds) and not kept
MIN_TRIALS = 1000
#: set to 0 to neither keep nor read tables
ENV_SWITCH = "EXPERIGRAPH_HISTORY_CACHE"

_MAGIC = b"XGHIST1\x00"
_DIGEST = 32  # HMAC-SHA256


def _digest(*parts: str) -> str:
    h = new_hasher()
    for part in parts:
        data = part.encode("utf-8", "surrogatepass")
        h.update(b"%d:" % len(data))
        h.update(data)
    return str(h.hexdigest())


@functools.lru_cache(maxsize=1)
def _code_stamp() -> str:
    """The versions a table's layout depends on (read once per process)."""
    import numpy
    import pandas

    package = Path(__file__).resolve().parent
    modules = []
    for path in sorted(package.rglob("*.py")):
        st = path.stat()
        modules.append((str(path.relative_to(package)), st.st_size, st.st_mtime_ns))
    try:
        import orjson

        parser = orjson.__version__
    except ImportError:  # pragma: no cover - orjson is in install_requires
        parser = None
    return repr((sys.version, pandas.__version__, numpy.__version__, parser, modules))


def _pandas_options() -> str:
    """The pandas options that change the dtypes of a table pandas builds."""
    import pandas

    values = []
    for name in ("future.infer_string", "mode.string_storage", "mode.copy_on_write"):
        try:
            with warnings.catch_warnings():  # deprecated in some versions: still read
                warnings.simplefilter("ignore")
                values.append((name, pandas.get_option(name)))
        except Exception:  # an option this pandas does not have
            values.append((name, None))
    return repr(values)


def _path(uri: str, experiment_id: str) -> Path:
    return cache_path(f"history-{_digest(uri, experiment_id)}.pkl")


def _sign(body: bytes | memoryview) -> bytes:
    # the purpose first: no other signed payload of this key can pass for a table
    mac = hmac.new(signing.secret_key(), b"experigraph history table\x00", hashlib.sha256)
    mac.update(body)
    return mac.digest()


class _Kept:
    """A kept table's file, read; its pickle is unpickled only once its signature holds."""

    def __init__(self, path: Path, data: bytes) -> None:
        self.path, self.data = path, data
        start = len(_MAGIC) + _DIGEST
        size = int.from_bytes(data[start:start + 4], "big")
        header = json.loads(data[start + 4:start + 4 + size])
        self.context: str = header["context"]
        self.summaries: str = header["summaries"]
        self.body = start + 4 + size

    @classmethod
    def read(cls, path: Path) -> _Kept | None:
        try:
            data = path.read_bytes()
            if not data.startswith(_MAGIC):
                return None
            return cls(path, data)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            logger.debug("Ignoring the kept history table %s: %s", path, exc)
            return None

    def frame(self) -> pd.DataFrame | None:
        signed = memoryview(self.data)[len(_MAGIC) + _DIGEST:]
        try:
            good = hmac.compare_digest(self.data[len(_MAGIC):len(_MAGIC) + _DIGEST],
                                       _sign(signed))
        except Exception as exc:  # no key: a key file that cannot be made or read
            logger.debug("Cannot check the kept history table %s: %s", self.path, exc)
            return None
        if not good:
            logger.debug("Ignoring the kept history table %s: its signature is wrong "
                         "(another key made it)", self.path)
            return None
        try:
            return pickle.loads(memoryview(self.data)[self.body:])  # type: ignore[no-any-return]
        except Exception as exc:  # made by another pandas, say
            logger.debug("Ignoring the kept history table %s: %s", self.path, exc)
            return None


def _keep(path: Path, context: str, summaries: str, frame: pd.DataFrame) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{id(frame):x}.tmp")
    try:
        header = json.dumps({"context": context, "summaries": summaries}).encode("ascii")
        signed = len(header).to_bytes(4, "big") + header + pickle.dumps(
            frame, protocol=pickle.HIGHEST_PROTOCOL)
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(_MAGIC + _sign(signed) + signed)
        os.replace(tmp, path)
    except Exception as exc:  # a read-only cache directory, no key, an odd cell
        logger.debug("Could not keep the history table in %s: %s", path, exc)
        try:
            tmp.unlink()
        except OSError:
            pass


def history_table(backend: Backend, entries: Sequence[Any], declared: Iterable[str],
                  verbose: bool, archived: bool,
                  build: Callable[[list[tuple[Any, ...]]], pd.DataFrame]) -> pd.DataFrame:
    """``build(rows)`` of the history's rows (``records.history_row`` of each summary,
    by id), or the table it made from the same summaries and the same context before,
    kept by an earlier call (of this process or another)."""
    from .present import local_zone

    if os.environ.get(ENV_SWITCH, "1").strip() == "0":
        rows = backend.read_summary_rows(history_row)[1]
        assert rows is not None
        return build(rows)
    context = _digest(_code_stamp(), _pandas_options(), repr(list(entries)),
                      repr(tuple(declared)), repr((bool(verbose), bool(archived))),
                      repr(local_zone()))
    path = _path(backend.uri, backend.experiment_id)
    kept = _Kept.read(path)
    known = kept.summaries if kept is not None and kept.context == context else None
    if kept is not None and known is None:
        logger.debug("The history table kept in %s was made in another context (arguments, "
                     "declared parameters, annotations, time zone or versions)", path)
    key, rows = backend.read_summary_rows(history_row, known)
    if known is not None and rows is not None:
        logger.debug("The history table kept in %s was made of other summaries", path)
    if rows is None:
        frame = kept.frame() if kept is not None else None
        if frame is not None:
            logger.debug("History of %s read from the table kept in %s", backend.experiment_id,
                         path)
            return frame
        key, rows = backend.read_summary_rows(history_row, None)
        assert rows is not None
    frame = build(rows)
    if key is not None and len(rows) >= MIN_TRIALS and not any(
            row[ROW_RUNNING] is not None for row in rows):
        _keep(path, context, key, frame)
    return frame
