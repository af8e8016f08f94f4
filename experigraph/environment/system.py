"""The ``platform`` category: operating system, machine and host name.

The operating system and machine do not change while a process runs, and
:func:`platform.platform` reads the interpreter binary to find the libc version
(a few milliseconds), so they are gathered once per process. Only the host
name is checked on every call (one system call).
"""
from __future__ import annotations

import logging
import os
import platform
import socket
import threading
from typing import Any

logger = logging.getLogger(__name__)

# Per-process cache: the last value returned, replaced only when the host name changes.
_lock = threading.Lock()
_cache: dict[str, Any] = {}


def _gather(hostname: str) -> dict[str, Any]:
    uname = platform.uname()
    return {
        "os": platform.platform(),
        "system": uname.system,
        "release": uname.release,
        "version": uname.version,
        "machine": uname.machine,
        "processor": platform.processor(),
        "hostname": hostname,
        "cpu_count": os.cpu_count(),
    }


def collect_platform() -> dict[str, Any]:
    """Describe the operating system, machine and host.

    Returns
    -------
    dict
        ``os`` (:func:`platform.platform`), ``system``, ``release``, ``version``,
        ``machine``, ``processor``, ``hostname`` and ``cpu_count``. The same object is returned
        for as long as nothing changes; treat it as read-only.
    """
    hostname = socket.gethostname()
    value = _cache.get("value")
    if value is not None and value["hostname"] == hostname:
        return value
    with _lock:
        value = _cache.get("value")
        if value is None or value["hostname"] != hostname:
            value = _gather(hostname)
            _cache["value"] = value
            logger.debug("Collected platform information for %s", hostname)
        return value
