"""A store that cannot be written (or read) gives a BackendError naming the path and what
to do, never a raw OSError, writes nothing half-way, and script mode ends without a
traceback (issue 9, finding 4).

Permissions are real: the store is chmod'ed read-only and experigraph runs in a child
process that the permissions apply to. Tests run as root here, and root ignores file
modes through its CAP_DAC_OVERRIDE / CAP_DAC_READ_SEARCH capabilities, so as root the
child runs under ``setpriv`` with those two removed from its bounding set (it keeps
uid 0, so it can still reach the interpreter under /root). Without setpriv, or where
dropping them does not work, the tests skip and say why.
"""
from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

import experigraph as xg
from xg_testing import python_env

SCRIPTS = Path(__file__).parent / "cli_scripts"
pytestmark = pytest.mark.timeout(240)
SETPRIV = ["--bounding-set=-dac_override,-dac_read_search"]


def _unprivileged_prefix(probe_dir: Path) -> list[str]:
    """The command prefix under which file modes apply to the child (skips if none)."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root and setpriv (util-linux) is not installed, so a child "
                    "process cannot be made subject to file permissions")
    probe_dir.mkdir()
    probe_dir.chmod(0o555)
    try:
        proc = subprocess.run([setpriv, *SETPRIV, sys.executable, "-c",
                               f"open({str(probe_dir / 'x')!r}, 'w')"],
                              capture_output=True, text=True, timeout=60)
    finally:
        probe_dir.chmod(0o755)
    if proc.returncode == 0 or "PermissionError" not in proc.stderr:
        pytest.skip(f"running as root and setpriv {' '.join(SETPRIV)} could not drop the "
                    f"capability to ignore file modes: {proc.stderr.strip()[-300:]}")
    return [setpriv, *SETPRIV]


@pytest.fixture
def unprivileged(tmp_path):
    """``run(args, cwd) -> CompletedProcess``: a child process subject to file modes."""
    prefix = _unprivileged_prefix(tmp_path / "probe")

    def run(args, cwd, **env):
        return subprocess.run(prefix + [str(a) for a in args], cwd=cwd,
                              env={**python_env(), **env}, capture_output=True, text=True,
                              timeout=180)

    return run


def read_only(path: Path) -> None:
    """Remove write permission from ``path`` and everything under it."""
    for p in [path, *path.rglob("*")]:
        p.chmod(stat.S_IMODE(p.stat().st_mode) & ~0o222)


def writable_again(path: Path) -> None:  # so that tmp_path can be cleaned up
    for p in [path, *path.rglob("*")]:
        p.chmod(stat.S_IMODE(p.stat().st_mode) | 0o700)


def files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file()}


@pytest.fixture
def recorded(tmp_path, monkeypatch):
    """simple_experiment.py in tmp_path (the cwd) with trial 1 recorded by this process."""
    script = tmp_path / "simple_experiment.py"
    shutil.copy(SCRIPTS / "simple_experiment.py", script)
    proc = subprocess.run([sys.executable, script.name, "a=1"], cwd=tmp_path,
                          env=python_env(), capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr
    store = tmp_path / "experigraph_cache"
    yield script, store
    writable_again(store)


def test_script_mode_on_a_read_only_store_is_one_error_line(recorded, unprivileged, tmp_path):
    script, store = recorded
    script.write_text(script.read_text().replace("10 / s", "20 / s"))  # a new source blob
    read_only(store)
    before = files(store)
    proc = unprivileged([sys.executable, script.name, "a=2"], cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "PermissionError" in proc.stderr  # the cause, inside experigraph's own message
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, proc.stderr
    assert "File backend at" in errors[0] and str(store.absolute()) in errors[0]
    assert "readable and writable by this user" in errors[0]
    assert files(store) == before  # nothing written, not even a temporary file


def test_read_only_environment_blobs_is_a_backend_error(recorded, unprivileged, tmp_path):
    """The issue's reproducer: blobs/environment/.. cannot be written."""
    script, store = recorded
    environment = store / "simple" / "blobs" / "environment"
    shutil.rmtree(environment)  # this process's environment must be stored again
    environment.mkdir()
    read_only(environment)
    before = files(store)
    proc = unprivileged([sys.executable, script.name, "a=2"], cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    line, = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert "BackendError" in line and f"{environment}" in line and "chmod" in line
    assert files(store) == before
    assert sorted(p.name for p in (store / "simple" / "trials").iterdir()) == ["1.json"]

    proc = unprivileged([sys.executable, "-m", "experigraph.cli", "run", script.name, "a=3"],
                        cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    line, = [line for line in proc.stderr.splitlines() if line.startswith("Error:")]
    assert f"{environment}" in line
    assert files(store) == before


CHILD = """
import pathlib, sys, datetime as dt
import experigraph as xg
from experigraph.errors import BackendError
from experigraph.records import Status, TrialRecord
root = pathlib.Path(sys.argv[1])
ex = xg.Experiment("simple", backend=root)
print("history", list(ex.get_history().index))
b = ex.backend
rec = TrialRecord(experiment_id="simple", trial_id=9, status=Status.RUNNING, parameters={},
                  seed=1, started=dt.datetime.now(dt.timezone.utc))
ops = {
    "start_trial": lambda: b.start_trial(lambda i: rec.replace(trial_id=i)),
    "next_trial_id": b.next_trial_id,
    "create_trial": lambda: b.create_trial(rec),
    "write_trial": lambda: b.write_trial(b.read_trial(1)),
    "finish_trial": lambda: b.finish_trial(rec),
    "put_blob": lambda: b.put_blob("environment", b"{}"),
    "append_metric": lambda: b.append_metric(1, "loss", 0, 1.0),
    "append_step_records": lambda: b.append_step_records(1, b.read_trial(1).steps),
    "index_swap": lambda: b.index_swap("outputs", {"new-key": "h"}),
}
for name, op in ops.items():
    try:
        op()
    except BackendError as exc:
        print(name, "BackendError", "readable and writable by this user" in str(exc),
              str(root) in str(exc))
    except Exception as exc:
        print(name, "RAW", type(exc).__name__, exc)
    else:
        print(name, "WROTE")
"""


def test_every_write_to_a_read_only_store_is_a_backend_error(recorded, unprivileged,
                                                              tmp_path):
    script, store = recorded
    read_only(store)
    before = files(store)
    proc = unprivileged([sys.executable, "-c", CHILD, store.absolute()], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == "history [1]"  # reading still works
    assert lines[1:] == [f"{op} BackendError True True" for op in (
        "start_trial", "next_trial_id", "create_trial", "write_trial", "finish_trial",
        "put_blob", "append_metric", "append_step_records", "index_swap")]
    assert files(store) == before


def test_a_record_this_user_cannot_read_is_skipped_and_named(recorded, unprivileged,
                                                             tmp_path):
    script, store = recorded
    for a in (2, 3):
        proc = subprocess.run([sys.executable, script.name, f"a={a}"], cwd=tmp_path,
                              env=python_env(), capture_output=True, text=True, timeout=180)
        assert proc.returncode == 0, proc.stderr
    hidden = store / "simple" / "trials" / "2.json"
    hidden.chmod(0)
    proc = unprivileged([sys.executable, "-m", "experigraph.cli", "history", "simple",
                         "--format", "csv"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert [line.split(",")[0] for line in proc.stdout.splitlines()[1:]] == ["1", "3"]
    warning, = [line for line in proc.stderr.splitlines() if line.strip()]
    assert "[WARNING]" in warning and str(hidden) in warning
    assert "PermissionError" in warning and "may read it" in warning
    proc = unprivileged([sys.executable, script.name, "a=4"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    hidden.chmod(0o644)
    history = xg.Experiment("simple", backend=store).get_history()
    assert list(history.index) == [1, 2, 3, 4]


PERSIST = """
import experigraph as xg
ex = xg.Experiment(id="keyed")
a = ex.parameter("a")
@ex.persist
def keep(a):
    return {"a": a}
@ex.result
def out(k):
    return k["a"]
out(keep(a))
"""


def test_a_signing_key_that_cannot_be_created_is_one_clear_error(tmp_path, unprivileged):
    script = tmp_path / "keyed.py"
    script.write_text(PERSIST)
    config = tmp_path / "config"
    config.mkdir()
    read_only(config)
    try:
        proc = unprivileged([sys.executable, script.name, "a=1"], cwd=tmp_path,
                            XDG_CONFIG_HOME=str(config))
    finally:
        writable_again(config)
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, proc.stderr
    assert "signing key file" in errors[0] and str(config) in errors[0]
    assert "EXPERIGRAPH_SECRET_KEY" in errors[0]
    assert not any(config.iterdir())  # no key, no temporary file
    history = xg.Experiment("keyed", backend=tmp_path / "experigraph_cache").get_history()
    assert history["Success"].tolist() == [False]  # the trial is recorded as failed
    assert "signing key file" in history.loc[1, "Description"]


def test_history_of_a_read_only_store_without_its_summary_index(recorded, unprivileged,
                                                                 tmp_path):
    """The summary index is only a cache: missing, it is not rebuilt on a store this user
    cannot write, and the history is read from the records, unchanged on disk."""
    script, store = recorded
    proc = subprocess.run([sys.executable, script.name, "a=2"], cwd=tmp_path,
                          env=python_env(), capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr
    (store / "simple" / "summaries.jsonl").unlink()
    read_only(store)
    before = files(store)
    proc = unprivileged([sys.executable, "-m", "experigraph.cli", "history", "simple",
                         "--format", "csv"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert [line.split(",")[0] for line in proc.stdout.splitlines()[1:]] == ["1", "2"]
    assert files(store) == before
