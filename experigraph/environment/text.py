"""The environment as daskperiment showed it: text with its labels, per category.

``Experiment.get_environment`` returns these texts (a daskperiment user's code
reads them); the structured snapshot they are rendered from stays available as
``Experiment.get_environment_snapshot``. Nothing here collects anything: every
text is rendered from a snapshot (:func:`experigraph.environment.snapshot`, or
one read back from a trial), so a trial's text is the same in any process.

Categories (daskperiment's): ``platform``, ``cpu``, ``python``, ``numpy``,
``scipy``, ``pandas``, ``conda``, ``git``, ``requirements``. Without a
category, :func:`summary_text` gives the platform, Python and git lines that
daskperiment logged when an experiment was created.
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from ._common import is_failure

__all__ = ["TEXT_CATEGORIES", "summary_text", "category_text"]

#: daskperiment's environment categories, in its order
TEXT_CATEGORIES: tuple[str, ...] = ("platform", "cpu", "python", "numpy", "scipy", "pandas",
                                    "conda", "git", "requirements")

NOT_GIT = "Not Git Controlled"

#: py-cpuinfo key -> daskperiment's label
_CPU_LABELS = (
    ("vendor_id_raw", "Vendor ID"),
    ("brand_raw", "Brand"),
    ("hz_advertised_friendly", "Hz Advertised"),
    ("arch", "Arch"),
    ("bits", "Bits"),
    ("count", "Count"),
    ("l1_data_cache_size", "L1 Data Cache Size"),
    ("l1_instruction_cache_size", "L1 Instruction Cache Size"),
    ("l2_cache_size", "L2 Cache Size"),
    ("l3_cache_size", "L3 Cache Size"),
    ("stepping", "Stepping"),
    ("model", "Model"),
    ("family", "Family"),
    ("flags", "Flags"),
)


def _section(snap: Mapping[str, Any], category: str) -> Mapping[str, Any]:
    value = snap.get(category)
    return value if isinstance(value, Mapping) else {}


def _error(snap: Mapping[str, Any], category: str) -> str | None:
    value: Any = snap.get(category)
    return f"Unable to collect {category} information: {value['error']}" \
        if is_failure(value) else None


def _experigraph_version(snap: Mapping[str, Any]) -> str:
    for package in snap.get("packages") or ():
        if isinstance(package, Mapping) and str(package.get("name", "")).lower() == "experigraph":
            return str(package.get("version"))
    return "unknown"


# -- per category ---------------------------------------------------------------------
def _platform_lines(snap: Mapping[str, Any]) -> list[str]:
    platform = _section(snap, "platform")
    count = platform.get("cpu_count", _section(snap, "cpu").get("count", "unknown"))
    return [f"Platform Information: {platform.get('os', 'unknown')}",
            f"Device CPU Count: {count}"]


def _python_version(python: Mapping[str, Any]) -> str:
    return str(python.get("version", "unknown")).split()[0]


def _is_venv(python: Mapping[str, Any]) -> bool:
    return bool(python.get("prefix")) and python.get("prefix") != python.get("base_prefix")


def _python_summary(snap: Mapping[str, Any]) -> list[str]:
    python = _section(snap, "python")
    lines = [f"Python Implementation: {python.get('implementation', 'unknown')}",
             f"Python Version: {_python_version(python)}",
             f"Python Shell Mode: {python.get('shell', 'unknown')}"]
    if _is_venv(python):
        lines.append(f"Python venv Name: {os.path.basename(str(python['prefix']))}")
    else:
        lines.append("Python venv: False")
    lines.append(f"Experigraph Version: {_experigraph_version(snap)}")
    return lines


def _python_detail(snap: Mapping[str, Any]) -> list[str]:
    python = _section(snap, "python")
    is_venv = _is_venv(python)
    return [f"Python Implementation: {python.get('implementation', 'unknown')}",
            f"Python Version: {_python_version(python)}",
            f"Python Shell Mode: {python.get('shell', 'unknown')}",
            f"Python Prefix: {python.get('prefix', 'unknown')}",
            f"Python Base Prefix: {python.get('base_prefix', 'unknown')}",
            f"Python venv Flag: {is_venv}",
            f"Python venv Name: {os.path.basename(str(python['prefix'])) if is_venv else ''}",
            f"Python Executable: {python.get('executable', 'unknown')}",
            f"Experigraph Version: {_experigraph_version(snap)}"]


def _cpu_lines(snap: Mapping[str, Any]) -> list[str]:
    cpu = _section(snap, "cpu")
    lines = []
    for key, label in _CPU_LABELS:
        if key in cpu:
            value = cpu[key]
            if isinstance(value, list):
                value = ",".join(str(v) for v in value)
            lines.append(f"{label}: {value}")
    return lines


def _repositories(snap: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return [r for r in _section(snap, "git").get("repositories") or ()
            if isinstance(r, Mapping)]


def _git_summary(snap: Mapping[str, Any]) -> list[str]:
    repositories = _repositories(snap)
    if not repositories:
        return [f"Git Repository: {NOT_GIT}", f"Git Active Branch: {NOT_GIT}",
                f"Git HEAD Commit: {NOT_GIT}"]
    lines = []
    for repo in repositories:
        dirty = " (DIRTY)" if repo.get("is_dirty") else ""
        lines += [f"Git Repository: {repo.get('root')}",
                  f"Git Active Branch: {repo.get('branch') or 'DETACHED'}",
                  f"Git HEAD Commit: {repo.get('commit')}{dirty}"]
    return lines


def _git_detail(snap: Mapping[str, Any]) -> list[str]:
    repositories = _repositories(snap)
    if not repositories:
        return [f"Git Repository: {NOT_GIT}", f"Git Active Branch: {NOT_GIT}",
                f"Git HEAD Commit: {NOT_GIT}", "Git Dirty Flag: False"]
    lines = []
    for repo in repositories:
        lines += [f"Git Repository: {repo.get('root')}",
                  f"Git Active Branch: {repo.get('branch') or 'DETACHED'}",
                  f"Git HEAD Commit: {repo.get('commit')}",
                  f"Git Dirty Flag: {bool(repo.get('is_dirty'))}",
                  f"Git Source Files: {', '.join(repo.get('source_files') or ())}"]
        if repo.get("untracked"):
            lines.append(f"Git Untracked Files: {', '.join(repo['untracked'])}")
        if repo.get("error"):
            lines.append(f"Git Error: {repo['error']}")
        diff = repo.get("diff") or ""
        if diff:
            lines.append("Git Uncommitted Changes:")
            lines.extend(diff.splitlines())
    return lines


def _flat(prefix: str, value: Any, lines: list[str]) -> None:
    if isinstance(value, Mapping):
        for key in value:
            _flat(f"{prefix}{key}" if not prefix else f"{prefix}.{key}", value[key], lines)
    elif isinstance(value, list):
        lines.append(f"{prefix}: {', '.join(str(v) for v in value)}")
    else:
        lines.append(f"{prefix}: {value}")


_MODULE_NAMES = {"numpy": "NumPy", "scipy": "SciPy", "pandas": "pandas"}


def _module_lines(snap: Mapping[str, Any], module: str) -> list[str]:
    numeric = _section(snap, "numeric")
    info = numeric.get(module)
    name = _MODULE_NAMES[module]
    if not isinstance(info, Mapping):
        return [f"{name} was not imported by the trial (only imported modules are described)"]
    if module == "pandas":
        rows = [("commit", info.get("git_version")), ("pandas", info.get("version"))]
        rows += list((info.get("dependencies") or {}).items())
        width = max(len(k) for k, _ in rows)
        return ["INSTALLED VERSIONS", "------------------",
                *(f"{k:<{width}} : {v}" for k, v in rows)]
    lines = [f"{name} Version: {info.get('version')}"]
    if info.get("git_revision"):
        lines.append(f"{name} Git Revision: {info['git_revision']}")
    if info.get("error"):
        lines.append(f"Error: {info['error']}")
    if isinstance(info.get("config"), Mapping):
        _flat("", info["config"], lines)
    return lines


def _conda_lines(snap: Mapping[str, Any]) -> list[str]:
    prefix = _section(snap, "python").get("conda_prefix")
    if not prefix:
        return ["conda is not installed"]
    return [f"active environment : {os.path.basename(str(prefix))}",
            f"active env location : {prefix}"]


def _requirements_lines(snap: Mapping[str, Any]) -> list[str]:
    from . import python_packages

    return python_packages(snap)


_RENDER = {
    "platform": _platform_lines,
    "cpu": _cpu_lines,
    "python": _python_detail,
    "numpy": lambda snap: _module_lines(snap, "numpy"),
    "scipy": lambda snap: _module_lines(snap, "scipy"),
    "pandas": lambda snap: _module_lines(snap, "pandas"),
    "conda": _conda_lines,
    "git": _git_detail,
    "requirements": _requirements_lines,
}

#: the snapshot category each text category is rendered from
SOURCES = {"platform": "platform", "cpu": "cpu", "python": "python", "numpy": "numeric",
           "scipy": "numeric", "pandas": "numeric", "conda": "python", "git": "git",
           "requirements": "packages"}


def summary_text(snap: Mapping[str, Any]) -> str:
    """Platform, Python and git, as daskperiment's ``get_environment()`` returned them.

    Examples
    --------
    >>> print(summary_text({"platform": {"os": "Linux-6.1", "cpu_count": 2}}).splitlines()[0])
    Platform Information: Linux-6.1
    """
    lines: list[str] = []
    for category, render in (("platform", _platform_lines), ("python", _python_summary),
                             ("git", _git_summary)):
        error = _error(snap, category)
        lines.extend([error] if error else render(snap))
    return "\n".join(lines)


def category_text(snap: Mapping[str, Any], category: str) -> str:
    """One of :data:`TEXT_CATEGORIES` as text (lines joined by ``"\\n"``).

    Examples
    --------
    >>> category_text({"packages": [{"name": "dask", "version": "1.0"}]}, "requirements")
    'dask==1.0'
    """
    error = _error(snap, SOURCES[category])
    return error if error else "\n".join(_RENDER[category](snap))
