"""A torn, empty or unreadable trial record, wherever it is, is skipped with ONE WARNING
naming its path: in every CLI command and in the dashboard's data path (issue 9, finding 2).

The Python API is covered on every backend by the contract suite
(``test_unreadable_record_is_skipped_with_one_warning``); here the file backend, as a
user's ``experigraph_cache`` directory, through the installed command too.
"""
from __future__ import annotations

import json
import logging
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

import experigraph as xg
from experigraph.cli import main
from xg_testing import python_env, this_python_command

SCRIPTS = Path(__file__).parent / "cli_scripts"
pytestmark = pytest.mark.timeout(240)
DAMAGE = {"garbage": b"garbage\n", "empty": b"", "torn": None}


@pytest.fixture
def three_trials(tmp_path, monkeypatch):
    """Trials 1, 2, 3 (a = 1, 2, 3) of experiment 'simple' in tmp_path/experigraph_cache."""
    script = tmp_path / "simple_experiment.py"
    shutil.copy(SCRIPTS / "simple_experiment.py", script)
    monkeypatch.chdir(tmp_path)
    for a in (1, 2, 3):
        result = CliRunner().invoke(main, ["run", str(script), f"a={a}"])
        assert result.exit_code == 0, result.output
    return script


def damage(tmp_path: Path, trial_id: int, how: str) -> Path:
    path = tmp_path / "experigraph_cache" / "simple" / "trials" / f"{trial_id}.json"
    data = DAMAGE[how]
    path.write_bytes(path.read_bytes()[:50] if data is None else data)
    return path


def warnings_about(caplog, path: Path) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.levelno == logging.WARNING and str(path) in r.getMessage()]


@pytest.mark.parametrize("how", sorted(DAMAGE))
@pytest.mark.parametrize("position", [1, 2, 3], ids=["first", "middle", "latest"])
def test_every_command_skips_it_with_one_warning(three_trials, tmp_path, caplog, position,
                                                 how):
    path = damage(tmp_path, position, how)
    good = [i for i in (1, 2, 3) if i != position]
    commands = [["history", "simple"], ["history", "simple", "--format", "json"],
                ["show", "simple", good[0]], ["diff", "simple", *good], ["list"]]
    for args in commands:
        caplog.clear()
        with caplog.at_level(logging.WARNING):
            result = CliRunner().invoke(main, [str(a) for a in args])
        assert result.exit_code == 0, (args, result.output)
        seen = warnings_about(caplog, path)
        # at most one WARNING, and one whenever the command read the record: history
        # and list always, every command when it is the latest (opening reads it)
        must_read = args[0] in ("history", "list") or position == 3
        assert len(seen) == (1 if must_read else len(seen)) and len(seen) <= 1, (args, seen)
        if seen:
            assert "cannot be read" in seen[0] and "skips it" in seen[0]
        if args[-1] == "json":
            assert [row["Trial ID"] for row in json.loads(result.stdout)] == good
            assert [row["a"] for row in json.loads(result.stdout)] == good
    listed = CliRunner().invoke(main, ["list"]).stdout.splitlines()
    assert listed[1].split()[:3] == ["simple", "2", str(good[-1])]  # readable trials only

    # the command whose own target is the record fails, naming it, in one line
    shown = CliRunner().invoke(main, ["show", "simple", str(position)])
    assert shown.exit_code == 1
    assert str(path) in shown.stderr and "Traceback" not in shown.stderr

    # new trials continue after it and never take its id
    result = CliRunner().invoke(main, ["run", str(three_trials), "a=4"])
    assert result.exit_code == 0, result.output
    assert "Trial 4 of experiment 'simple' succeeded" in result.stdout
    history = xg.Experiment("simple", backend=tmp_path / "experigraph_cache").get_history()
    assert list(history.index) == [*good, 4]
    assert path.exists()  # left in place


def experigraph(*args, cwd):
    command = this_python_command("experigraph", "experigraph.cli")
    env = python_env()
    env.pop("EXPERIGRAPH_BACKEND", None)
    env.pop("EXPERIGRAPH_LOG_LEVEL", None)
    return subprocess.run(command + [str(a) for a in args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=180)


@pytest.mark.parametrize("position, how", [(3, "garbage"), (2, "empty")],
                         ids=["garbage-latest", "empty-middle"])
def test_installed_command_warns_once_on_stderr(three_trials, tmp_path, position, how):
    """The issue's reproducers: ``printf 'garbage\\n' > trials/3.json`` and an empty
    ``trials/2.json``."""
    path = damage(tmp_path, position, how)
    good = [i for i in (1, 2, 3) if i != position]
    for args in (["history", "simple"], ["show", "simple", good[-1]],
                 ["diff", "simple", *good], ["list"]):
        proc = experigraph(*args, cwd=tmp_path)
        assert proc.returncode == 0, (args, proc.stderr)
        lines = [line for line in proc.stderr.splitlines() if line.strip()]
        if args[0] in ("history", "list") or position == 3:
            assert len(lines) == 1, (args, proc.stderr)
            assert "[WARNING]" in lines[0] and str(path) in lines[0], lines
        else:
            assert all("[WARNING]" in line and str(path) in line for line in lines), lines
            assert len(lines) <= 1
        assert "Traceback" not in proc.stderr
    rows = json.loads(experigraph("history", "simple", "--format", "json", cwd=tmp_path).stdout)
    assert [row["Trial ID"] for row in rows] == good

    script = subprocess.run([sys.executable, three_trials.name, "a=4"], cwd=tmp_path,
                            env=python_env(), capture_output=True, text=True, timeout=180)
    assert script.returncode == 0, script.stderr
    rows = json.loads(experigraph("history", "simple", "--format", "json", cwd=tmp_path).stdout)
    assert [(row["Trial ID"], row["a"]) for row in rows] == [*((i, i) for i in good), (4, 4)]


@pytest.mark.parametrize("position", [1, 2, 3], ids=["first", "middle", "latest"])
def test_dashboard_table_skips_it_with_one_warning(three_trials, tmp_path, caplog, position):
    from experigraph.board.table import TrialTable

    path = damage(tmp_path, position, "garbage")
    good = [i for i in (1, 2, 3) if i != position]
    with caplog.at_level(logging.WARNING):
        ex = xg.Experiment("simple", backend=tmp_path / "experigraph_cache")
        table = TrialTable(ex)
        assert table.refresh()
        table.refresh()
    assert table.trial_ids == good
    seen = warnings_about(caplog, path)
    assert len(seen) == 1, caplog.messages
    assert not [m for m in caplog.messages if "Dashboard cannot" in m]
