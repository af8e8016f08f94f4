"""Environment collectors from other packages, found through the entry-point group
``experigraph.collectors``: the example plugin in ``tests/plugins/`` is laid out as an
installed distribution on a temporary ``sys.path`` entry, as pip would install it."""
from __future__ import annotations

import json
import logging
import subprocess
import sys

import pytest

import experigraph as xg
from experigraph.environment.collector import ENTRY_POINT_GROUP, plugin_collectors

from xg_testing import install_example_collector as install, python_env


@pytest.fixture
def site(tmp_path, monkeypatch):
    """Put a plugin site on sys.path; the collectors are read again without it afterwards."""
    made = []

    def add(entry_points: str | None = None):
        path = install(tmp_path / f"site{len(made)}", entry_points)
        monkeypatch.syspath_prepend(str(path))
        made.append(str(path))
        return path

    yield add
    for path in made:
        while path in sys.path:
            sys.path.remove(path)
    sys.modules.pop("xg_example_collector", None)
    plugin_collectors(reload=True)


def _experiment(tmp_path, **kwargs):
    ex = xg.Experiment("plugged", backend=tmp_path / "store", **kwargs)
    a = ex.parameter("a")

    @ex.result
    def double(a):
        return 2 * a

    double(a)
    return ex


def test_an_entry_point_collector_is_recorded_and_its_drift_reported(
        site, tmp_path, monkeypatch, caplog):
    site()
    assert [c.name for c in plugin_collectors(reload=True)] == ["threads"]
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    ex = _experiment(tmp_path)
    assert ex.set_parameters(a=1).compute() == 2
    assert ex.get_environment_snapshot(1, "threads")["OMP_NUM_THREADS"] == "1"
    assert "OMP_NUM_THREADS=1" in ex.get_environment(1, "threads").splitlines()
    assert ex.get_trial(1).drift == ()

    monkeypatch.setenv("OMP_NUM_THREADS", "4")
    with caplog.at_level(logging.WARNING, logger="experigraph"):
        ex.compute()
    messages = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert "Thread settings have been changed (since trial 1)" in messages
    assert "-OMP_NUM_THREADS=1" in messages and "+OMP_NUM_THREADS=4" in messages
    events = [e for e in ex.get_trial(2).drift if e.kind == "environment"]
    assert [(e.subject, e.message) for e in events] == [
        ("threads", "Thread settings have been changed")]
    assert "+OMP_NUM_THREADS=4" in events[0].diff
    assert "+OMP_NUM_THREADS=4" in ex.compare(1, 2).environment["threads"]

    monkeypatch.setenv("OMP_NUM_THREADS", "4")  # unchanged: no drift
    ex.compute()
    assert [e for e in ex.get_trial(3).drift if e.kind == "environment"] == []


def test_a_fresh_process_loads_the_plugin_lazily_and_reports_drift(site, tmp_path):
    path = site()
    script = tmp_path / "plugged.py"
    script.write_text(
        "import sys, experigraph as xg\n"
        "assert 'xg_example_collector' not in sys.modules  # not read at import\n"
        f"ex = xg.Experiment('plugged', backend={str(tmp_path / 'store')!r})\n"
        "a = ex.parameter('a')\n"
        "@ex.result\n"
        "def double(a):\n"
        "    return 2 * a\n"
        "double(a)\n")
    env = python_env()
    env["PYTHONPATH"] = f"{path}:{env['PYTHONPATH']}"
    runs = []
    for threads in ("2", "8"):
        env["OMP_NUM_THREADS"] = threads
        runs.append(subprocess.run([sys.executable, str(script), "a=5"], env=env, cwd=tmp_path,
                                   capture_output=True, text=True, timeout=120))
        assert runs[-1].returncode == 0, runs[-1].stderr
    assert "Thread settings have been changed" not in runs[0].stderr
    assert "Thread settings have been changed (since trial 1)" in runs[1].stderr
    assert "+OMP_NUM_THREADS=8" in runs[1].stderr
    env["OMP_NUM_THREADS"] = "8"
    proc = subprocess.run(
        [sys.executable, "-c",
         "import json, experigraph as xg\n"
         f"ex = xg.Experiment('plugged', backend={str(tmp_path / 'store')!r})\n"
         "print(json.dumps([ex.get_environment_snapshot(t, 'threads')['OMP_NUM_THREADS']"
         " for t in (1, 2)]))"],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.splitlines()[-1]) == ["2", "8"]


def test_plugins_come_from_the_kept_package_list_until_a_package_is_installed(tmp_path):
    """A new process finds the plugin collectors in the package list kept per user
    (no importlib.metadata entry-point scan). A plugin installed since that list was
    written, into a directory already on sys.path, is found all the same; so is the
    change of an entry_points.txt rewritten in place; a list kept without entry points
    (by an earlier version) makes each process read them."""
    site_dir = tmp_path / "site"
    site_dir.mkdir()
    env = python_env()
    env["PYTHONPATH"] = f"{site_dir}:{env['PYTHONPATH']}"
    env["XDG_CACHE_HOME"] = str(tmp_path / "cache")  # a kept list of its own
    check = ("import importlib.metadata, json\n"
             "def refused(*args, **kwargs):\n"
             "    raise RuntimeError('entry points scanned')\n"
             "if SCAN_REFUSED:\n"
             "    importlib.metadata.entry_points = refused\n"
             "from experigraph import environment\n"
             "print(json.dumps(sorted(environment.snapshot())))\n")

    def categories(scan_refused):
        proc = subprocess.run(
            [sys.executable, "-c", check.replace("SCAN_REFUSED", str(scan_refused))],
            env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
        assert "entry points scanned" not in proc.stderr
        return json.loads(proc.stdout.splitlines()[-1])

    assert "threads" not in categories(False)  # the list is gathered and kept
    assert "threads" not in categories(True)  # read from the kept list
    install(site_dir)
    assert "threads" in categories(False)  # installed since: gathered again
    assert "threads" in categories(True)  # kept with the new list

    kept = next((tmp_path / "cache" / "experigraph").glob("packages-*.json"))
    listed = json.loads(kept.read_text())
    del listed["entry_points"]  # as an earlier version kept the list: read each time
    kept.write_text(json.dumps(listed))
    assert "threads" in categories(False)

    (site_dir / "new").write_text("")  # the folder changed: the list is gathered again
    (site_dir / "new").unlink()
    assert "threads" in categories(False)
    assert "threads" in categories(True)  # kept again; then the entry point is removed in
    entry_points = next(site_dir.glob("*.dist-info")) / "entry_points.txt"  # place, the
    entry_points.write_text("[experigraph.collectors]\n")  # folder holding the same
    assert "threads" not in categories(False)  # distributions as before


def test_a_broken_entry_point_is_skipped_with_one_warning(site, tmp_path, caplog):
    site(f"[{ENTRY_POINT_GROUP}]\n"
         "threads = xg_example_collector:ThreadSettingsCollector\n"
         "broken = xg_example_collector:NoSuchClass\n"
         "notacollector = xg_example_collector:os\n")
    with caplog.at_level(logging.WARNING, logger="experigraph"):
        collectors = plugin_collectors(reload=True)
        assert plugin_collectors() is collectors  # read once per process
        ex = _experiment(tmp_path)
        assert ex.set_parameters(a=1).compute() == 2
    assert [c.name for c in collectors] == ["threads"]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2, warnings
    assert any("'broken'" in w and "xg_example_collector:NoSuchClass" in w for w in warnings)
    assert any("'notacollector'" in w and "not an instance" in w for w in warnings)
    assert "threads" in ex.get_environment_snapshot(1)


def test_an_entry_point_cannot_replace_a_built_in_category(site, tmp_path, caplog):
    site(f"[{ENTRY_POINT_GROUP}]\n"
         "packages = xg_example_collector:PackagesImpostor\n")
    sys.modules.pop("xg_example_collector", None)
    import xg_example_collector

    class PackagesImpostor(xg_example_collector.ThreadSettingsCollector):
        name = "packages"

    xg_example_collector.PackagesImpostor = PackagesImpostor  # type: ignore[attr-defined]
    with caplog.at_level(logging.WARNING, logger="experigraph"):
        assert plugin_collectors(reload=True) == ()
    assert any("'packages'" in r.getMessage() and "taken by experigraph" in r.getMessage()
               for r in caplog.records)
    ex = _experiment(tmp_path)
    ex.set_parameters(a=1).compute()
    assert isinstance(ex.get_environment_snapshot(1, "packages"), list)


def test_a_collector_given_to_the_experiment_replaces_the_entry_point_one(
        site, tmp_path, monkeypatch):
    site()
    plugin_collectors(reload=True)
    import xg_example_collector

    class Fixed(xg_example_collector.ThreadSettingsCollector):
        def snapshot(self, **kwargs):
            return {"fixed": True}

    ex = _experiment(tmp_path, collectors=[Fixed()])
    ex.set_parameters(a=1).compute()
    assert ex.get_environment_snapshot(1, "threads") == {"fixed": True}
