"""Helpers shared by test modules (a module of its own: ``conftest`` names collide
between test directories)."""
from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def python_env() -> dict[str, str]:
    """Environment for subprocesses that must import this checkout."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    return env


class Marker:
    """Unpickling this creates a file: proof that a payload was loaded."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple[object, ...]:
        return (open, (self.path, "w"))


PLUGIN = ROOT / "tests" / "plugins" / "xg_example_backend"


def install_example_plugin(site: Path, entry_points: str | None = None) -> Path:
    """Lay out the example backend plugin of ``tests/plugins/`` as an installed
    distribution under ``site`` (what pip would leave), with its entry points or
    ``entry_points`` (the text of an ``entry_points.txt``)."""
    import shutil

    site.mkdir(parents=True, exist_ok=True)
    shutil.copy(PLUGIN / "xg_example_backend.py", site)
    info = site / "xg_example_backend-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: xg-example-backend\n"
                                   "Version: 0.1\n")
    (info / "entry_points.txt").write_text(
        entry_points or (PLUGIN / "entry_points.txt").read_text())
    return site


COLLECTOR_PLUGIN = ROOT / "tests" / "plugins" / "xg_example_collector"


def install_example_collector(site: Path, entry_points: str | None = None) -> Path:
    """Lay out the example collector plugin of ``tests/plugins/`` as an installed
    distribution under ``site`` (what pip would leave), with its entry points or
    ``entry_points`` (the text of an ``entry_points.txt``)."""
    import shutil

    site.mkdir(parents=True, exist_ok=True)
    shutil.copy(COLLECTOR_PLUGIN / "xg_example_collector.py", site)
    info = site / "xg_example_collector-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: xg-example-collector\n"
                                   "Version: 0.1\n")
    (info / "entry_points.txt").write_text(
        entry_points or (COLLECTOR_PLUGIN / "entry_points.txt").read_text())
    return site
