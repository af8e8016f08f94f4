"""Backends from other packages, found by URI scheme through the entry-point group
``experigraph.backends``: the example plugin in ``tests/plugins/`` is laid out as an
installed distribution on a temporary ``sys.path`` entry, as pip would install it."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import experigraph as xg
from experigraph.backends import ENTRY_POINT_GROUP, plugin_schemes

from xg_testing import install_example_plugin as install, python_env

@pytest.fixture
def installed(tmp_path, monkeypatch):
    site = install(tmp_path / "site")
    monkeypatch.syspath_prepend(str(site))
    yield site
    sys.modules.pop("xg_example_backend", None)


def test_a_plugin_scheme_is_found_by_entry_point(installed, tmp_path):
    assert "examplefs" in plugin_schemes()
    ex = xg.Experiment("plugged", backend=f"examplefs://{tmp_path / 'store'}")
    assert type(ex.backend).__name__ == "ExampleBackend"
    a = ex.parameter("a")

    @ex.result
    def double(a):
        return 2 * a

    double(a)
    assert ex.set_parameters(a=21).compute() == 42
    again = xg.Experiment("plugged", backend=f"examplefs://{tmp_path / 'store'}")
    assert again.get_history()["Result"].tolist() == [42]
    assert (tmp_path / "store" / "plugged" / "trials" / "1.json").exists()


def test_an_unknown_scheme_names_the_installed_ones(installed):
    with pytest.raises(ValueError, match=r"Unknown backend 'nosuch://x'.*examplefs://"):
        xg.Experiment("plugged", backend="nosuch://x")


def test_a_broken_entry_point_is_a_clear_error(tmp_path, monkeypatch):
    site = install(tmp_path / "site",
                   f"[{ENTRY_POINT_GROUP}]\nbrokenfs = xg_example_backend:NoSuchClass\n"
                   f"notabackend = xg_example_backend:Path\n")
    monkeypatch.syspath_prepend(str(site))
    with pytest.raises(ValueError, match=r"brokenfs = xg_example_backend:NoSuchClass.*"
                                         r"cannot be loaded"):
        xg.Experiment("plugged", backend="brokenfs:///x")
    with pytest.raises(ValueError, match="is not a subclass of"):
        xg.Experiment("plugged", backend="notabackend:///x")
    sys.modules.pop("xg_example_backend", None)


def test_a_plugin_cannot_replace_a_built_in_scheme(tmp_path, monkeypatch):
    site = install(tmp_path / "site",
                   f"[{ENTRY_POINT_GROUP}]\nfile = xg_example_backend:ExampleBackend\n")
    monkeypatch.syspath_prepend(str(site))
    assert "file" not in plugin_schemes()
    ex = xg.Experiment("plugged", backend=(tmp_path / "store").as_uri())
    assert type(ex.backend).__name__ == "FileBackend"


def test_the_cli_and_a_worker_process_use_the_plugin(installed, tmp_path):
    """The backend pickles as its configuration, so another process rebuilds it."""
    uri = f"examplefs://{tmp_path / 'store'}"
    script = tmp_path / "plugged.py"
    script.write_text(
        "import experigraph as xg\n"
        f"ex = xg.Experiment('plugged', backend={uri!r})\n"
        "a = ex.parameter('a')\n"
        "@ex.result\n"
        "def double(a):\n"
        "    return 2 * a\n"
        "double(a)\n")
    env = python_env()
    env["PYTHONPATH"] = f"{installed}:{env['PYTHONPATH']}"
    proc = subprocess.run([sys.executable, str(script), "a=5"], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    proc = subprocess.run([sys.executable, "-m", "experigraph.cli", "history", "plugged",
                           "--backend", uri, "--format", "csv"], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[1].split(",")[:3] == ["1", "5", "10"]
