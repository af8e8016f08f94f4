"""The ``numeric`` category: NumPy, SciPy and pandas versions and build information.

Only modules that are already imported are described (this module never
imports them: a trial that does not use pandas must not pay for importing it).
The description of each module is gathered once per process per version.
"""
from __future__ import annotations

import logging
import sys
import threading
from types import ModuleType
from typing import Any

from ._common import failure, jsonable
from .packages import version_of

logger = logging.getLogger(__name__)

#: the modules described, in this order
MODULES: tuple[str, ...] = ("numpy", "scipy", "pandas")

#: distributions whose versions shape pandas' behaviour and speed
_PANDAS_DEPENDENCIES = (
    "numpy",
    "python-dateutil",
    "pytz",
    "tzdata",
    "pyarrow",
    "numexpr",
    "bottleneck",
)

# Per-process caches: one description per (module, version), and the last combined value.
_lock = threading.Lock()
_modules: dict[tuple[str, str], dict[str, Any]] = {}
_last: dict[str, Any] = {"key": None, "value": None}


def _show_config(module: ModuleType) -> Any:
    show = getattr(module, "show_config", None)
    if show is None:
        return None
    try:
        # mode="dicts" returns the configuration without printing. Older releases
        # (NumPy < 1.26, SciPy < 1.11) can only print it, so they are not asked:
        # capturing stdout would swallow other threads' output.
        config = show(mode="dicts")
    except TypeError:
        return None
    return jsonable(config) if isinstance(config, dict) else None


def _distribution_version(name: str) -> str | None:
    return version_of(name)  # the packages category's list: no second metadata scan


def _describe(name: str, module: ModuleType, version: str) -> dict[str, Any]:
    if name == "pandas":
        return {
            "version": version,
            "git_version": getattr(module, "__git_version__", None),
            "dependencies": {dep: _distribution_version(dep) for dep in _PANDAS_DEPENDENCIES},
        }
    info: dict[str, Any] = {"version": version}
    version_module = getattr(module, "version", None)
    git_revision = getattr(version_module, "git_revision", None)
    if isinstance(git_revision, str):
        info["git_revision"] = git_revision
    info["config"] = _show_config(module)
    return info


def collect_numeric() -> dict[str, Any]:
    """Describe the imported ones among NumPy, SciPy and pandas.

    Returns
    -------
    dict
        Module name -> ``{"version", ...}``: for NumPy and SciPy their git
        revision and ``show_config(mode="dicts")`` (compilers, BLAS/LAPACK, SIMD);
        for pandas its git version and the versions of the distributions it
        depends on. Modules that are not imported are absent. The same object is
        returned while the set of imported modules and their versions is
        unchanged; treat it as read-only.
    """
    present: list[tuple[str, ModuleType, str]] = []
    for name in MODULES:
        module = sys.modules.get(name)
        version = getattr(module, "__version__", None) if module is not None else None
        if module is not None and isinstance(version, str):  # no __version__ while importing
            present.append((name, module, version))
    key = tuple((name, version) for name, _, version in present)
    if key == _last["key"]:
        return _last["value"]
    with _lock:
        if key == _last["key"]:
            return _last["value"]
        value: dict[str, Any] = {}
        for name, module, version in present:
            described = _modules.get((name, version))
            if described is None:
                try:
                    described = _describe(name, module, version)
                except Exception as exc:  # one module's odd build must not hide the others
                    logger.warning("Could not describe the %s build: %s", name, exc)
                    described = {"version": version, **failure(exc)}
                _modules[(name, version)] = described
            value[name] = described
        _last["key"], _last["value"] = key, value
        return value
