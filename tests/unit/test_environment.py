"""Tests of experigraph.environment: snapshots, caching, fingerprints, text and drift."""
from __future__ import annotations

import concurrent.futures
import copy
import importlib.metadata
import json
import logging
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from experigraph import environment
from experigraph.environment import (
    CATEGORIES,
    MESSAGES,
    category_lines,
    diff_snapshots,
    fingerprint,
    python_packages,
    snapshot,
    start_background_collection,
)
from experigraph.environment.git import find_repository_root

REPO_ROOT = Path(__file__).resolve().parents[2]


def run_python(code: str, *, timeout: float = 120) -> Any:
    """Run ``code`` in a fresh interpreter that imports this checkout; return its JSON output."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH")) if p)
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout, env=env
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def without_cpu(snap: dict[str, Any]) -> dict[str, Any]:
    """The background thread may add ``cpu`` between two calls; compare the rest."""
    return {k: v for k, v in snap.items() if k != "cpu"}


def make_repository(path: Path) -> Any:
    """A real git repository with a user configured (CI machines have none)."""
    import git  # gitpython, a dependency; imported here so that importing this file stays light

    repo = git.Repo.init(path)
    with repo.config_writer() as config:
        config.set_value("user", "name", "Experigraph Test")
        config.set_value("user", "email", "test@example.com")
    return repo


def the_repository(snap: dict[str, Any]) -> dict[str, Any]:
    repositories = snap["git"]["repositories"]
    assert len(repositories) == 1, repositories
    return repositories[0]


# --- the API's constants -------------------------------------------------------------


def test_every_category_has_a_drift_message() -> None:
    assert CATEGORIES == ("platform", "cpu", "python", "packages", "numeric", "git")
    assert set(MESSAGES) == set(CATEGORIES)
    assert MESSAGES["packages"] == "Installed Python packages have been changed"


# --- snapshot ------------------------------------------------------------------------


def test_snapshot_is_json_serialisable_and_second_call_is_fast_and_equal() -> None:
    first = snapshot([__file__])
    assert set(first) - {"cpu"} == set(CATEGORIES) - {"cpu"}
    json.dumps(first, allow_nan=False)
    for category, value in first.items():
        assert not (isinstance(value, dict) and "error" in value), (category, value)

    started = time.perf_counter()
    second = snapshot([__file__])
    elapsed = time.perf_counter() - started

    assert elapsed < 0.05
    assert without_cpu(second) == without_cpu(first)
    for category in set(first) & set(second):  # unchanged state: the very same objects
        assert second[category] is first[category], category


def test_platform_and_python_describe_this_process() -> None:
    snap = snapshot()
    assert snap["platform"]["hostname"]
    assert snap["platform"]["system"]
    # resolved, so that `python` and `python3.11` (one interpreter) are not drift
    assert snap["python"]["executable"] == os.path.realpath(sys.executable)
    assert snap["python"]["version"] == sys.version
    assert snap["python"]["base_prefix"] == sys.base_prefix
    expected_venv = os.environ.get("VIRTUAL_ENV") or (
        sys.prefix if sys.prefix != sys.base_prefix else None
    )
    assert snap["python"]["virtualenv"] == expected_venv


def test_concurrent_snapshots_agree() -> None:
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        snaps = list(pool.map(lambda _: snapshot([__file__]), range(32)))
    reference = without_cpu(snaps[0])
    assert all(without_cpu(s) == reference for s in snaps)


def test_snapshot_in_fresh_process_does_not_wait_for_cpuinfo() -> None:
    result = run_python(
        "import json, sys, time\n"
        "import experigraph.environment as env\n"
        "started = time.perf_counter()\n"
        "env.start_background_collection()\n"
        "env.start_background_collection()\n"
        "first = env.snapshot()\n"
        "elapsed = time.perf_counter() - started\n"
        "deadline = time.monotonic() + 60\n"
        "snap = first\n"
        "while 'cpu' not in snap and time.monotonic() < deadline:\n"
        "    time.sleep(0.02)\n"
        "    snap = env.snapshot()\n"
        "print(json.dumps({'elapsed': elapsed, 'cpu': snap.get('cpu'),\n"
        "                  'same': env.snapshot()['cpu'] is snap.get('cpu')}))\n"
    )
    assert result["elapsed"] < 0.5
    cpu = result["cpu"]
    assert cpu is not None, "cpu never appeared within the deadline"
    assert "error" not in cpu, cpu
    assert cpu["count"] >= 1
    assert isinstance(cpu["flags"], list) and cpu["flags"] == sorted(cpu["flags"])
    assert result["same"]  # gathered once, reused for the life of the process


def test_cpu_appears_in_this_process_after_background_collection() -> None:
    start_background_collection()
    deadline = time.monotonic() + 60
    snap = snapshot()
    while "cpu" not in snap and time.monotonic() < deadline:
        time.sleep(0.02)
        snap = snapshot()
    assert "cpu" in snap
    assert snap["cpu"]["brand_raw"] is not None
    json.dumps(snap["cpu"], allow_nan=False)


def test_import_loads_neither_cpuinfo_nor_git() -> None:
    result = run_python(
        "import json, sys\n"
        "import experigraph.environment as env\n"
        "imported = {'cpuinfo': 'cpuinfo' in sys.modules, 'git': 'git' in sys.modules}\n"
        "before = set(sys.modules)\n"
        "snap = env.snapshot()\n"
        "new = sorted({'numpy', 'scipy', 'pandas'} & (set(sys.modules) - before))\n"
        "print(json.dumps({'imported': imported, 'git_after_snapshot': 'git' in sys.modules,\n"
        "                  'newly_imported_numeric': new}))\n"
    )
    assert result["imported"] == {"cpuinfo": False, "git": False}
    assert result["git_after_snapshot"] is False  # no source files: no reason to load gitpython
    assert result["newly_imported_numeric"] == []  # numeric never imports them


# --- fingerprint ---------------------------------------------------------------------


def test_fingerprint_is_stable_content_hash_and_fast() -> None:
    snap = snapshot([__file__])
    digest = fingerprint(snap)
    int(digest, 16)
    assert fingerprint(without_cpu(snapshot([__file__]))) == fingerprint(without_cpu(snap))
    assert fingerprint(json.loads(json.dumps(snap))) == digest  # read back from storage

    changed = copy.deepcopy(snap)
    changed["python"]["version"] = "0.0.0"
    assert fingerprint(changed) != digest

    timings = []
    for _ in range(20):
        fresh = snapshot([__file__])
        started = time.perf_counter()
        fingerprint(fresh)
        timings.append(time.perf_counter() - started)
    assert statistics.median(timings) < 0.001


def test_fingerprint_is_equal_across_processes() -> None:
    snap = {
        "python": {"version": "3.11.7", "virtualenv": None},
        "packages": [{"name": "dask", "version": "2024.1.0", "location": "/x"}],
        "git": {"repositories": []},
    }
    code = (
        "import json\n"
        "from experigraph.environment import fingerprint\n"
        f"print(json.dumps(fingerprint(json.loads({json.dumps(snap)!r}))))\n"
    )
    assert run_python(code) == run_python(code) == fingerprint(snap)


# --- text and drift ------------------------------------------------------------------


def test_category_lines_are_stable_text() -> None:
    snap = {
        "packages": [
            {"name": "zope", "version": "5", "location": "/x"},
            {"name": "Attrs", "version": "23.1", "location": "/x"},
        ],
        "python": {"version": "3.11.7", "virtualenv": None},
        "numeric": {"numpy": {"version": "2.0", "config": {"SIMD": ["AVX2", "SSE3"]}}},
        "git": {"repositories": [{
            "root": "/r", "branch": None, "commit": "abc", "is_dirty": True,
            "source_files": ["a.py"], "untracked": [], "diff": "--- a/a.py\n+++ b/a.py\n+x = 2",
        }]},
    }
    assert category_lines(snap, "packages") == ["Attrs==23.1", "zope==5"]
    assert category_lines(snap, "python") == ["version: 3.11.7", "virtualenv: None"]
    assert category_lines(snap, "numeric") == [
        "numpy.config.SIMD: AVX2", "numpy.config.SIMD: SSE3", "numpy.version: 2.0",
    ]
    assert category_lines(snap, "git") == [
        "root: /r", "branch: None", "commit: abc", "is_dirty: True", "source_files: a.py",
        "untracked: []", "--- a/a.py", "+++ b/a.py", "+x = 2",
    ]
    assert category_lines(snap, "cpu") == []
    assert category_lines(snapshot(), "packages") == python_packages(snapshot())


def test_identical_snapshots_do_not_drift() -> None:
    snap = snapshot([__file__])
    assert diff_snapshots(snap, snap) == {}
    assert diff_snapshots(snap, json.loads(json.dumps(snap))) == {}


def test_changed_package_version_is_packages_drift() -> None:
    old = json.loads(json.dumps(without_cpu(snapshot())))
    new = copy.deepcopy(old)
    old["packages"].append({"name": "examplepkg", "version": "1.0", "location": "/site"})
    new["packages"].append({"name": "examplepkg", "version": "2.0", "location": "/site"})

    drift = diff_snapshots(old, new)

    assert list(drift) == ["packages"]
    assert "-examplepkg==1.0" in drift["packages"]
    assert "+examplepkg==2.0" in drift["packages"]
    assert drift["packages"][0].startswith("---") and drift["packages"][1].startswith("+++")


def test_category_missing_or_failed_on_one_side_is_not_drift() -> None:
    old = {"cpu": {"brand_raw": "A"}, "python": {"version": "1"}, "numeric": {"numpy": {"version": "1"}}}
    assert diff_snapshots(old, {"python": {"version": "1"}}) == {}
    assert diff_snapshots({"python": {"version": "1"}}, old) == {}
    assert diff_snapshots(old, {**old, "cpu": {"error": "RuntimeError: no"}}) == {}
    # a module imported in one trial only has not changed its build
    both = {**old, "numeric": {"numpy": {"version": "1"}, "pandas": {"version": "3"}}}
    assert diff_snapshots(old, both) == {}

    drift = diff_snapshots(old, {**old, "cpu": {"brand_raw": "B"}})
    assert drift == {"cpu": ["--- cpu (previous)", "+++ cpu (current)", "@@ -1 +1 @@",
                             "-brand_raw: A", "+brand_raw: B"]}


# --- packages ------------------------------------------------------------------------


def test_installed_package_is_listed_with_its_metadata_version() -> None:
    version = importlib.metadata.version("dask")
    snap = snapshot()
    dask = [p for p in snap["packages"] if p["name"].lower() == "dask"]
    assert len(dask) == 1
    assert dask[0]["version"] == version
    assert os.path.isdir(dask[0]["location"])

    lines = python_packages(snap)
    assert f"dask=={version}" in lines
    assert lines == sorted(lines, key=str.lower)
    assert all("==" in line for line in lines)


def _write_distribution(site: Path, version: str) -> None:
    for old in site.glob("experigraph_probe-*.dist-info"):
        shutil.rmtree(old)
    info = site / f"experigraph_probe-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: experigraph-probe\nVersion: {version}\n", encoding="utf-8"
    )


def test_packages_are_read_again_when_a_path_directory_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = tmp_path / "site-packages"
    site.mkdir()
    _write_distribution(site, "1.0")
    monkeypatch.syspath_prepend(str(site))
    old = snapshot()
    assert "experigraph-probe==1.0" in python_packages(old)
    assert python_packages(snapshot()) == python_packages(old)

    before = os.stat(site).st_mtime_ns
    _write_distribution(site, "2.0")  # what "pip install -U" does: a new .dist-info
    if os.stat(site).st_mtime_ns == before:  # same coarse filesystem timestamp tick
        os.utime(site, ns=(before + 1_000_000, before + 1_000_000))
    new = snapshot()

    assert "experigraph-probe==2.0" in python_packages(new)
    assert "experigraph-probe==1.0" not in python_packages(new)
    drift = diff_snapshots(old, new)
    assert "-experigraph-probe==1.0" in drift["packages"]
    assert "+experigraph-probe==2.0" in drift["packages"]


# --- numeric -------------------------------------------------------------------------


def test_numeric_describes_imported_numpy() -> None:
    import numpy

    numeric = snapshot()["numeric"]
    assert numeric["numpy"]["version"] == numpy.__version__
    json.dumps(numeric, allow_nan=False)
    assert snapshot()["numeric"] is numeric  # cached per process and version


# --- git -----------------------------------------------------------------------------


def test_git_follows_commits_edits_and_detached_head(tmp_path: Path) -> None:
    root = tmp_path / "project"
    repo = make_repository(root)
    try:
        source = root / "experiment.py"
        source.write_text("x = 1\n", encoding="utf-8")
        repo.index.add(["experiment.py"])
        first_commit = repo.index.commit("first").hexsha

        clean = snapshot([str(source)])
        state = the_repository(clean)
        assert state["root"] == str(root)
        assert state["commit"] == first_commit
        assert state["branch"] == repo.active_branch.name
        assert state["is_dirty"] is False
        assert state["source_files"] == ["experiment.py"]
        assert state["untracked"] == []
        assert state["diff"] == ""
        assert snapshot([str(source)])["git"] is clean["git"]  # cached while unchanged

        source.write_text("x = 1\ny = 'edited line'\n", encoding="utf-8")
        (root / "notes.txt").write_text("not committed\n", encoding="utf-8")
        edited = snapshot([str(source)])
        state = the_repository(edited)
        assert state["commit"] == first_commit
        assert state["is_dirty"] is True
        assert state["untracked"] == ["notes.txt"]
        assert "+y = 'edited line'" in state["diff"].splitlines()
        drift = diff_snapshots(clean, edited)
        assert list(drift) == ["git"]
        assert "+is_dirty: True" in drift["git"]
        assert "++y = 'edited line'" in drift["git"]  # the diff's own line, added

        repo.index.add(["experiment.py"])
        second_commit = repo.index.commit("second").hexsha
        state = the_repository(snapshot([str(source)]))
        assert state["commit"] == second_commit != first_commit
        assert state["is_dirty"] is False
        assert state["diff"] == ""

        repo.git.checkout(first_commit)
        state = the_repository(snapshot([str(source)]))
        assert state["branch"] is None
        assert state["commit"] == first_commit
    finally:
        repo.close()


def test_git_reads_packed_refs_and_linked_worktrees(tmp_path: Path) -> None:
    root = tmp_path / "project"
    repo = make_repository(root)
    try:
        source = root / "experiment.py"
        source.write_text("x = 1\n", encoding="utf-8")
        repo.index.add(["experiment.py"])
        commit = repo.index.commit("first").hexsha
        repo.git.pack_refs("--all")  # the branch's ref now lives in packed-refs only
        assert not (root / ".git" / "refs" / "heads" / repo.active_branch.name).exists()
        state = the_repository(snapshot([str(source)]))
        assert (state["branch"], state["commit"]) == (repo.active_branch.name, commit)

        linked = tmp_path / "linked"
        repo.git.worktree("add", "-b", "other", str(linked))
        (linked / "experiment.py").write_text("x = 2\n", encoding="utf-8")
        state = the_repository(snapshot([str(linked / "experiment.py")]))
        assert state["root"] == str(linked)
        assert (state["branch"], state["commit"]) == ("other", commit)
        assert state["is_dirty"] is True
        assert "+x = 2" in state["diff"].splitlines()
    finally:
        repo.close()


def test_without_the_git_program_no_repository_is_recorded(tmp_path: Path) -> None:
    root = tmp_path / "project"
    make_repository(root).close()
    (root / "experiment.py").write_text("x = 1\n", encoding="utf-8")
    code = (
        "import json, logging, os\n"
        "logging.basicConfig(level=logging.INFO, format='%(name)s %(message)s')\n"
        "os.environ['PATH'] = ''\n"
        "from experigraph.environment import snapshot\n"
        f"snap = snapshot([{str(root / 'experiment.py')!r}])\n"
        "print(json.dumps(snap['git']))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == {"repositories": []}
    assert "needs the git program" in proc.stderr and "Install git" in proc.stderr


def test_git_groups_files_by_repository(tmp_path: Path) -> None:
    roots = [tmp_path / "b", tmp_path / "a"]
    repos = [make_repository(root) for root in roots]
    try:
        files = []
        for root, repo in zip(roots, repos):
            for name in ("one.py", "two.py"):
                (root / name).write_text(f"# {name}\n", encoding="utf-8")
                files.append(str(root / name))
            repo.index.add(["one.py", "two.py"])
            repo.index.commit("initial")
        repositories = snapshot(files)["git"]["repositories"]
        assert [r["root"] for r in repositories] == sorted(str(root) for root in roots)
        assert all(r["source_files"] == ["one.py", "two.py"] for r in repositories)
    finally:
        for repo in repos:
            repo.close()


def test_files_outside_any_repository_give_no_repositories(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    if find_repository_root(str(tmp_path)) is not None:
        pytest.skip(f"the temporary directory {tmp_path} is inside a git repository")
    source = tmp_path / "script.py"
    source.write_text("x = 1\n", encoding="utf-8")
    with caplog.at_level(logging.WARNING, logger="experigraph"):
        snap = snapshot([str(source), str(tmp_path / "missing.py"), "<stdin>"])
    assert snap["git"] == {"repositories": []}
    assert [r for r in caplog.records if r.name.startswith("experigraph")] == []


def test_broken_repository_is_recorded_not_raised(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root = tmp_path / "broken"
    (root / ".git").mkdir(parents=True)  # a .git that is not a repository
    source = root / "script.py"
    source.write_text("x = 1\n", encoding="utf-8")
    with caplog.at_level(logging.WARNING, logger="experigraph.environment"):
        state = the_repository(snapshot([str(source)]))
    assert state["root"] == str(root)
    assert "error" in state
    assert any(r.levelno == logging.WARNING and str(root) in r.getMessage() for r in caplog.records)
    json.dumps(state)


def test_environment_module_exposes_only_the_api() -> None:
    assert sorted(environment.__all__) == sorted([
        "CATEGORIES", "MESSAGES", "category_lines", "diff_snapshots", "fingerprint",
        "python_packages", "snapshot", "start_background_collection",
    ])


def test_a_field_added_by_a_newer_experigraph_is_not_drift():
    from experigraph.environment import diff_snapshots

    old = {"platform": {"system": "Linux", "machine": "x86_64"}}
    new = {"platform": {"system": "Linux", "machine": "x86_64", "cpu_count": 2}}
    assert diff_snapshots(old, new) == {}
    assert diff_snapshots(new, old) == {}
    changed = {"platform": {"system": "Linux", "machine": "x86_64", "cpu_count": 4}}
    assert "platform" in diff_snapshots(new, changed)
    moved = {"platform": {"system": "Linux", "machine": "aarch64", "cpu_count": 2}}
    assert any("aarch64" in line for line in diff_snapshots(old, moved)["platform"])


def test_the_first_trial_of_a_later_process_records_the_cpu(tmp_path, monkeypatch) -> None:
    """py-cpuinfo runs once per machine: its summary is kept in the user's cache, so a
    short script's only trial records the CPU as well."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    first = run_python(
        "import json, time\n"
        "import experigraph.environment as env\n"
        "env.start_background_collection()\n"
        "deadline = time.monotonic() + 60\n"
        "while env.snapshot().get('cpu') is None and time.monotonic() < deadline:\n"
        "    time.sleep(0.02)\n"
        "print(json.dumps(env.snapshot().get('cpu')))\n")
    assert first is not None and "error" not in first
    (kept,) = (tmp_path / "cache" / "experigraph").glob("cpuinfo-*.json")
    assert json.loads(kept.read_text()) == first
    second = run_python(
        "import json, pathlib, sys, time\n"
        "import experigraph as xg\n"
        f"ex = xg.Experiment('cpu', backend=pathlib.Path({str(tmp_path / 'store')!r}))\n"
        "a = ex.parameter('a', default=1)\n"
        "@ex.result\n"
        "def one(a):\n"
        "    return a\n"
        "one(a)\n"
        "ex.compute()\n"
        "print(json.dumps({'cpu': ex.get_environment_snapshot(1).get('cpu')}))\n")
    assert second["cpu"] == first


def test_the_package_list_is_kept_for_the_next_process(tmp_path, monkeypatch) -> None:
    """A new process reads the list of packages from the user's cache file while the
    signature holds (no metadata is read), and reads the metadata again after an
    install changed a location; the numeric category's versions come from that list."""
    def write_dist(version: str) -> None:
        for old in site.glob("fakepkg-*.dist-info"):
            shutil.rmtree(old)
        dist = site / f"fakepkg-{version}.dist-info"
        dist.mkdir()
        (dist / "METADATA").write_text(
            f"Metadata-Version: 2.1\nName: fakepkg\nVersion: {version}\n\n", encoding="utf-8")

    def process(read_metadata: bool) -> Any:
        return run_python(
            "import importlib.metadata, json, sys\n"
            f"sys.path[:0] = [{str(site)!r}, {str(extra)!r}]\n"
            + ("" if read_metadata else
               "def refuse(*args, **kwargs):\n"
               "    raise AssertionError('the metadata was read')\n"
               "importlib.metadata.distributions = refuse\n")
            + "import pandas\n"  # numeric describes pandas and its dependencies' versions
            "import experigraph.environment as env\n"
            "snap = env.snapshot()\n"
            "print(json.dumps([env.python_packages(snap), snap['packages'], snap['numeric']]))\n")

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    site, extra = tmp_path / "site", tmp_path / "extra"  # extra: on sys.path, no package
    site.mkdir()
    extra.mkdir()
    write_dist("1.0")
    lines, first, numeric = process(read_metadata=True)
    assert "fakepkg==1.0" in lines
    assert numeric["pandas"]["dependencies"]["numpy"] == next(
        line.split("==")[1] for line in lines if line.startswith("numpy=="))
    assert list((tmp_path / "cache" / "experigraph").glob("packages-*.json"))
    assert process(read_metadata=False) == [lines, first, numeric]  # from the file
    time.sleep(0.01)
    (extra / "results.csv").write_text("a,b\n", encoding="utf-8")  # next to a script
    assert process(read_metadata=False) == [lines, first, numeric]  # still from the file

    time.sleep(0.01)
    write_dist("2.0")  # an upgrade: the location's entries change
    lines, _, _ = process(read_metadata=True)
    assert "fakepkg==2.0" in lines and "fakepkg==1.0" not in lines
    assert process(read_metadata=False)[0] == lines

    time.sleep(0.01)  # installed where no package was (pip install --target): seen too
    other = extra / "otherpkg-3.0.dist-info"
    other.mkdir()
    (other / "METADATA").write_text("Metadata-Version: 2.1\nName: otherpkg\nVersion: 3.0\n\n",
                                    encoding="utf-8")
    lines, _, _ = process(read_metadata=True)
    assert "otherpkg==3.0" in lines
