"""The ``cpu`` category: py-cpuinfo, gathered once per machine in a daemon thread.

py-cpuinfo needs about a second (it runs a helper interpreter), which is far too
slow for a trial. :func:`start_background_collection` starts a daemon thread
that gathers it once; :func:`cpu_info` returns the result, or ``None`` while the
thread is still working, and never waits for it. A process forked before the
result was ready starts its own thread on the next call.

The result is also kept in a per-user cache file
(``$XDG_CACHE_HOME/experigraph/cpuinfo-<key>.json``, default ``~/.cache``) whose
key is a hash of what the machine says of its processor in an instant
(``/proc/cpuinfo``'s model and flags, the host name and architecture). A later
process on the same hardware reads it at once, so its first trial, and every
trial of a short script, records the CPU too; other hardware has another key.
"""
from __future__ import annotations

import logging
import os
import platform
import threading
from typing import Any

from .._compat import import_optional
from ..hashing import json_hash
from ._common import failure, jsonable, read_cache, write_cache

logger = logging.getLogger(__name__)

#: the keys of ``cpuinfo.get_cpu_info()`` that describe the hardware, not its current state
_KEYS = (
    "brand_raw",
    "vendor_id_raw",
    "arch",
    "bits",
    "count",
    "family",
    "model",
    "stepping",
    "l1_data_cache_size",
    "l1_instruction_cache_size",
    "l2_cache_size",
    "l3_cache_size",
)

# Per-process state: the result once gathered, and the pid that started the thread.
_lock = threading.Lock()
_state: dict[str, Any] = {"result": None, "pid": None}


def summarize(info: dict[str, Any]) -> dict[str, Any]:
    """Keep the stable, hardware-describing part of ``cpuinfo.get_cpu_info()``.

    Current clock speeds are dropped (they change from call to call). The
    advertised frequency is kept only when the brand string states one: without
    it py-cpuinfo reports the *current* frequency as the advertised one, which
    would look like drift between two processes on the same machine.

    Parameters
    ----------
    info : dict
        The result of ``cpuinfo.get_cpu_info()``.

    Returns
    -------
    dict
        JSON-serialisable subset; ``flags`` is the sorted list of CPU flags.
    """
    summary = {key: info[key] for key in _KEYS if key in info}
    brand = str(info.get("brand_raw", ""))
    if "hz" in brand.lower() and "hz_advertised_friendly" in info:
        summary["hz_advertised_friendly"] = info["hz_advertised_friendly"]
    summary["flags"] = sorted(str(flag) for flag in info.get("flags", ()))
    return jsonable(summary)


def _cache_name() -> str:
    """The name of this hardware's CPU summary among the per-user cache files."""
    fingerprint = [platform.node(), platform.machine(), platform.processor()]
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            lines = f.read(1 << 16).splitlines()
        fingerprint += sorted({line for line in lines
                               if line.split(":")[0].strip() in _PROC_FIELDS})
    except OSError:  # not Linux: the host name and architecture only
        pass
    return f"cpuinfo-{json_hash(fingerprint)[:16]}.json"


#: the lines of /proc/cpuinfo that say which processor this is (not its current state)
_PROC_FIELDS = {"vendor_id", "cpu family", "model", "model name", "stepping", "flags",
                "cache size", "siblings", "cpu cores"}


def _read_cache() -> dict[str, Any] | None:
    data = read_cache(_cache_name())
    return data if isinstance(data, dict) and "brand_raw" in data else None


def _write_cache(result: dict[str, Any]) -> None:
    write_cache(_cache_name(), result)


def _gather() -> None:
    try:
        cpuinfo = import_optional("cpuinfo", needed_for="Recording the CPU of a trial")
        result = summarize(cpuinfo.get_cpu_info())
    except Exception as exc:  # a collector never raises; the thread must not die noisily
        logger.warning("Could not gather CPU information: %s", exc)
        result = failure(exc)
    else:
        logger.debug("Gathered CPU information: %s", result.get("brand_raw"))
        _write_cache(result)
    _state["result"] = result


def start_background_collection() -> None:
    """Start gathering py-cpuinfo in a daemon thread, once per process.

    Idempotent and cheap to call again: once the thread is running (or has
    finished) in this process, this returns at once.
    """
    if _state["result"] is not None or _state["pid"] == os.getpid():
        return
    with _lock:
        if _state["result"] is not None or _state["pid"] == os.getpid():
            return
        _state["pid"] = os.getpid()
        cached = _read_cache()
        if cached is not None:
            _state["result"] = cached
            return
        thread = threading.Thread(target=_gather, name="experigraph-cpuinfo", daemon=True)
        thread.start()


def cpu_info() -> dict[str, Any] | None:
    """Return the CPU summary if the background thread has gathered it, else ``None``.

    Never blocks. The returned object is the same for the life of the process;
    treat it as read-only.
    """
    return _state["result"]
