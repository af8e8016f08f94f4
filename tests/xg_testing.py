"""Helpers shared by test modules (a module of its own: ``conftest`` names collide
between test directories)."""
from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def python_env() -> dict[str, str]:
    """Environment for subprocesses that must import this checkout."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    return env


def this_python_command(script: str, module: str) -> list[str] | None:
    """The command that runs ``script`` as installed for the interpreter running the
    tests: its console script beside ``sys.executable`` (a virtualenv's ``bin/``), else
    ``python -m module``; None if ``module`` is not importable here. Not the first
    ``script`` on PATH: with a virtualenv not activated, that is another Python's."""
    beside = Path(sys.executable).parent / script
    if beside.is_file() and os.access(beside, os.X_OK):
        return [str(beside)]
    if importlib.util.find_spec(module.split(".")[0]) is None:
        return None
    return [sys.executable, "-m", module]


from experigraph.testing.backend_contract import Marker  # noqa: E402,F401  (one copy)

PLUGINS = ROOT / "tests" / "plugins"


def install_plugin(name: str, site: Path, entry_points: str | None = None) -> Path:
    """Lay out the example plugin ``tests/plugins/<name>/`` (one module, its
    ``entry_points.txt``) as an installed distribution under ``site``, as pip would
    leave it; ``entry_points`` replaces the text of its ``entry_points.txt``."""
    import shutil

    source = PLUGINS / name
    site.mkdir(parents=True, exist_ok=True)
    shutil.copy(source / f"{name}.py", site)
    info = site / f"{name}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name.replace('_', '-')}\n"
                                   "Version: 0.1\n")
    (info / "entry_points.txt").write_text(
        entry_points or (source / "entry_points.txt").read_text())
    return site


def install_example_plugin(site: Path, entry_points: str | None = None) -> Path:
    """The example backend plugin (``examplefs://``), installed under ``site``."""
    return install_plugin("xg_example_backend", site, entry_points)


def install_example_collector(site: Path, entry_points: str | None = None) -> Path:
    """The example environment collector plugin (category ``threads``), under ``site``."""
    return install_plugin("xg_example_collector", site, entry_points)
