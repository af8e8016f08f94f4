"""The ``experigraph`` command, in-process (click's CliRunner) and as a real subprocess.

Every test works in its own ``tmp_path``: the script is copied there and the
default backend is ``tmp_path/experigraph_cache``.
"""
from __future__ import annotations

import io
import json
import logging
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

import experigraph as xg
from experigraph.cli import main

from xg_testing import python_env, this_python_command

SCRIPTS = Path(__file__).parent / "cli_scripts"
pytestmark = pytest.mark.timeout(240)


@pytest.fixture
def script(tmp_path, monkeypatch):
    """simple_experiment.py (experiment 'simple') in tmp_path, which is the cwd."""
    path = tmp_path / "simple_experiment.py"
    shutil.copy(SCRIPTS / "simple_experiment.py", path)
    monkeypatch.chdir(tmp_path)
    return path


def cli(*args, env=None):
    """Run ``experigraph args...`` in this process."""
    return CliRunner().invoke(main, [str(a) for a in args], env=env)


def store(tmp_path):
    return tmp_path / "experigraph_cache"


def history(tmp_path, experiment_id="simple"):
    return xg.Experiment(experiment_id, backend=store(tmp_path)).get_history(verbose=True)


def record(tmp_path, trial_id, experiment_id="simple"):
    return xg.Experiment(experiment_id, backend=store(tmp_path)).get_trial(trial_id)


def one_error_line(stderr):
    lines = [line for line in stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("Error: ")]
    assert len(errors) == 1, stderr
    assert "Traceback" not in stderr
    return errors[0]


def edit_score(path, new="20 / s"):
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace("10 / s", new), encoding="utf-8")


# -- run -------------------------------------------------------------------------------
def test_run_records_one_trial_with_parameters_seed_and_script(script, tmp_path):
    result = cli("run", script, "a=1", "b=3", "--seed", "7")
    assert result.exit_code == 0, result.output
    assert "Trial 1 of experiment 'simple' succeeded: result 2.5" in result.stdout
    frame = history(tmp_path)
    assert frame.loc[1, ["a", "b", "Seed", "Success"]].tolist() == [1, 3, 7, True]
    rec = record(tmp_path, 1)
    assert rec.script["path"] == str(script.resolve())
    assert rec.script["argv"] == ["a=1", "b=3", "--seed", "7"]
    assert rec.rerun_of is None


def test_run_parses_literals_and_strings(script, tmp_path):
    with script.open("a", encoding="utf-8") as f:
        f.write("\nmodel = ex.parameter('model', default='lr')\n"
                "@ex.result\ndef describe(a, model):\n    return f'{model}:{a!r}'\n"
                "s = describe(a, model)\n")
    result = cli("run", script, "a=[1, 2]", "model=rf")
    assert result.exit_code == 0, result.output
    # b is declared (default 2) and recorded though this result reads none of it
    assert record(tmp_path, 1).parameters == {"a": [1, 2], "model": "rf", "b": 2}
    assert record(tmp_path, 1).result == "rf:[1, 2]"


def test_run_with_backend_records_there_and_nowhere_else(script, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    result = cli("run", script, "a=1", "--backend", elsewhere)
    assert result.exit_code == 0, result.output
    assert xg.Experiment("simple", backend=elsewhere).trial_id == 1
    assert not store(tmp_path).exists()
    result = cli("history", "simple", "--backend", f"file://{elsewhere}", "--format", "json")
    assert result.exit_code == 0, result.output
    assert [row["Trial ID"] for row in json.loads(result.stdout)] == [1]


def test_backend_comes_from_the_environment(script, tmp_path):
    elsewhere = tmp_path / "from_env"
    result = cli("run", script, "a=1", env={"EXPERIGRAPH_BACKEND": str(elsewhere)})
    assert result.exit_code == 0, result.output
    assert xg.Experiment("simple", backend=elsewhere).trial_id == 1
    result = cli("list", env={"EXPERIGRAPH_BACKEND": str(elsewhere)})
    assert "simple" in result.stdout


def test_run_of_a_failing_trial_exits_1_and_records_it(script, tmp_path):
    result = cli("run", script, "a=-2")
    assert result.exit_code == 1
    line = one_error_line(result.stderr)
    assert "Trial 1 of experiment 'simple' failed: ZeroDivisionError" in line
    assert not history(tmp_path).loc[1, "Success"]


def test_run_of_a_broken_script_exits_1_naming_the_line(script, tmp_path):
    with script.open("a", encoding="utf-8") as f:
        f.write("\nundefined_name\n")
    result = cli("run", script, "a=1")
    assert result.exit_code == 1
    line = one_error_line(result.stderr)
    assert "simple_experiment.py raised NameError" in line and "(line " in line
    assert xg.Experiment("simple", backend=store(tmp_path)).trial_id == 0


# -- bad input: one line, exit code 2 (usage) or 1 (failure), nothing recorded ----------------
RUN_BAD_INPUTS = [
    (["a="], 2, "Missing value in 'a='"),
    (["=1"], 2, "Missing parameter name in '=1'"),
    (["a"], 2, "Not a parameter assignment: 'a'"),
    (["a=1", "c=1"], 2, "Parameter(s) 'c' not declared by experiment 'simple'"),
    (["a=1", "--seed", "x"], 2, "Invalid value for '--seed'"),
    (["a=1", "--seed", "-3"], 2, "Invalid value for '--seed'"),
    ([], 2, "Parameter(s) 'a' of experiment 'simple' have no value"),
]


@pytest.mark.parametrize("args, code, message", RUN_BAD_INPUTS,
                         ids=[" ".join(a) or "none" for a, _, _ in RUN_BAD_INPUTS])
def test_run_bad_input_is_one_line_and_records_nothing(script, tmp_path, args, code, message):
    assert cli("run", script, "a=1", "--seed", "7").exit_code == 0
    before = history(tmp_path)
    result = cli("run", script, *args)
    assert result.exit_code == code, result.output
    assert message in one_error_line(result.stderr)
    pd.testing.assert_frame_equal(history(tmp_path), before)


def test_run_of_a_missing_script_is_a_usage_error(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = cli("run", tmp_path / "missing.py", "a=1")
    assert result.exit_code == 2
    assert "does not exist" in one_error_line(result.stderr)
    assert not store(tmp_path).exists()


@pytest.mark.parametrize("command", [
    ["history", "nope"], ["show", "nope", "1"], ["diff", "nope", "1", "2"],
    ["rerun", "nope", "1"],
])
def test_unknown_experiment_is_one_line_exit_1_and_creates_nothing(tmp_path, monkeypatch,
                                                                   command):
    monkeypatch.chdir(tmp_path)
    result = cli(*command)
    assert result.exit_code == 1, result.output
    assert "No experiment 'nope'" in one_error_line(result.stderr)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("command", [["show", "simple", "5"], ["diff", "simple", "1", "5"],
                                     ["rerun", "simple", "5"]])
def test_unknown_trial_is_one_line_exit_1(script, tmp_path, command):
    assert cli("run", script, "a=1").exit_code == 0
    before = history(tmp_path)
    result = cli(*command)
    assert result.exit_code == 1, result.output
    assert "Trial 5 is not recorded in experiment 'simple' (its trials: 1)" in \
        one_error_line(result.stderr)
    pd.testing.assert_frame_equal(history(tmp_path), before)


@pytest.mark.parametrize("command, message", [
    (["show", "simple", "x"], "Invalid value for 'TRIAL_ID'"),
    (["history", "bad/id"], "Invalid experiment id 'bad/id'"),
    (["history", "simple", "--format", "xml"], "Invalid value for '--format'"),
    (["history", "simple", "--last", "0"], "Invalid value for '--last'"),
    (["history", "simple", "--backend", "ftp://host/x"], "Unknown backend 'ftp://host/x'"),
    (["rerun", "simple", "1", "b="], "Missing value in 'b='"),
    (["rerun", "simple", "1", "--seed", "x"], "Invalid value for '--seed'"),
])
def test_usage_errors_are_one_line_exit_2(tmp_path, monkeypatch, command, message):
    monkeypatch.chdir(tmp_path)
    result = cli(*command)
    assert result.exit_code == 2, result.output
    assert message in one_error_line(result.stderr)
    assert "Usage:" not in result.stderr
    assert list(tmp_path.iterdir()) == []


# -- rerun -------------------------------------------------------------------------------
def test_rerun_uses_recorded_parameters_and_seed_with_overrides(script, tmp_path):
    assert cli("run", script, "a=1", "b=2", "--seed", "7").exit_code == 0
    result = cli("rerun", "simple", "1", "b=5")
    assert result.exit_code == 0, result.output
    assert "Trial 2 of experiment 'simple' succeeded (rerun of trial 1)" in result.stdout
    rec = record(tmp_path, 2)
    assert (rec.parameters, rec.seed, rec.rerun_of) == ({"a": 1, "b": 5}, 7, 1)
    assert rec.script["argv"] == ["a=1", "b=5", "--seed", "7"]

    result = cli("rerun", "simple", "2", "--seed", "9")
    assert result.exit_code == 0, result.output
    rec = record(tmp_path, 3)
    assert (rec.parameters, rec.seed, rec.rerun_of) == ({"a": 1, "b": 5}, 9, 2)


def test_rerun_warns_with_a_diff_when_the_script_changed(script, tmp_path, caplog):
    assert cli("run", script, "a=1", "--seed", "7").exit_code == 0
    edit_score(script)
    with caplog.at_level(logging.WARNING, logger="experigraph"):
        result = cli("rerun", "simple", "1")
    assert result.exit_code == 0, result.output
    warnings = [r.getMessage() for r in caplog.records if r.name == "experigraph.script"]
    assert any("Script source has changed since trial 1" in w for w in warnings)
    assert "-    return 10 / s" in warnings and "+    return 20 / s" in warnings
    assert record(tmp_path, 2).result == pytest.approx(20 / 3)


def test_rerun_without_changes_does_not_warn(script, tmp_path, caplog):
    assert cli("run", script, "a=1").exit_code == 0
    with caplog.at_level(logging.WARNING, logger="experigraph"):
        assert cli("rerun", "simple", "1").exit_code == 0
    assert not [r for r in caplog.records if r.name == "experigraph.script"]


def test_rerun_of_a_trial_without_a_script_is_one_line_exit_1(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    ex = xg.Experiment("notebook", backend=store(tmp_path))
    a = ex.parameter("a")

    @ex.result
    def double(a):
        return 2 * a

    double(a)
    ex.set_parameters(a=1).compute()
    result = cli("rerun", "notebook", "1")
    assert result.exit_code == 1
    assert "Trial 1 of experiment 'notebook' has no recorded script" in \
        one_error_line(result.stderr)
    assert ex.trial_id == 1


def test_rerun_with_an_undeclared_override_records_nothing(script, tmp_path):
    assert cli("run", script, "a=1").exit_code == 0
    before = history(tmp_path)
    result = cli("rerun", "simple", "1", "zzz=1")
    assert result.exit_code == 2
    assert "Parameter(s) 'zzz' not declared" in one_error_line(result.stderr)
    pd.testing.assert_frame_equal(history(tmp_path), before)


# -- history, show, list, diff, board ------------------------------------------------------
@pytest.fixture
def two_trials(script, tmp_path):
    """Trials 1 (a=1, b=2, seed 7) and 2 (a=2, b=2, seed 8) of 'simple'."""
    assert cli("run", script, "a=1", "--seed", "7").exit_code == 0
    assert cli("run", script, "a=2", "--seed", "8").exit_code == 0
    return script


def test_history_in_all_three_formats(two_trials, tmp_path):
    table = cli("history", "simple")
    assert table.exit_code == 0, table.output
    header = table.stdout.splitlines()[0].split()
    assert header[:5] == ["a", "b", "Result", "Success", "Finished"]
    assert "Trial ID" in table.stdout

    csv = cli("history", "simple", "--format", "csv", "-v")
    assert csv.exit_code == 0, csv.output
    frame = pd.read_csv(io.StringIO(csv.stdout), index_col="Trial ID")
    assert frame.index.tolist() == [1, 2]
    assert frame["a"].tolist() == [1, 2] and frame["Seed"].tolist() == [7, 8]
    assert frame["Success"].tolist() == [True, True]

    js = cli("history", "simple", "--format", "json")
    assert js.exit_code == 0, js.output
    rows = json.loads(js.stdout)
    assert [(r["Trial ID"], r["a"], r["b"]) for r in rows] == [(1, 1, 2), (2, 2, 2)]
    assert rows[1]["Result"] == pytest.approx(2.5)
    assert isinstance(rows[0]["Process Time"], float)
    assert pd.Timestamp(rows[0]["Finished"]) <= pd.Timestamp(rows[1]["Finished"])

    last = json.loads(cli("history", "simple", "--format", "json", "--last", "1").stdout)
    assert [r["Trial ID"] for r in last] == [2]


def test_history_json_of_failed_trials_and_odd_results(script, tmp_path):
    assert cli("run", script, "a=-2").exit_code == 1
    rows = json.loads(cli("history", "simple", "--format", "json").stdout)
    assert rows[0]["Success"] is False and rows[0]["Result"] is None
    assert "ZeroDivisionError" in rows[0]["Description"]


def test_show_prints_everything_recorded(two_trials, tmp_path):
    assert cli("rerun", "simple", "1", "b=4").exit_code == 0
    result = cli("show", "simple", "3")
    assert result.exit_code == 0, result.output
    out = result.stdout
    for expected in ["Trial 3 of experiment 'simple'", "Status:", "succeeded",
                     "Parameters:", "a=1, b=4", "Seed:", "7", "Result:", "2.0 (float)",
                     "Rerun of:", "trial 1", "Script:", "simple_experiment.py a=1 b=4 --seed 7",
                     "Steps:", "prepare_data", "calculate_score", "return 10 / s"]:
        assert expected in out, expected
    as_json = json.loads(cli("show", "simple", "3", "--format", "json").stdout)
    assert as_json["trial_id"] == 3 and as_json["rerun_of"] == 1


def test_show_of_a_failed_trial_includes_the_traceback(script, tmp_path):
    assert cli("run", script, "a=-2").exit_code == 1
    out = cli("show", "simple", "1").stdout
    assert "failed" in out and "Traceback:" in out and "ZeroDivisionError" in out


def test_list_shows_experiments_with_trial_counts(two_trials, tmp_path):
    other = xg.Experiment("other", backend=store(tmp_path))
    p = other.parameter("p")

    @other.result
    def ident(p):
        return p

    ident(p)
    other.set_parameters(p=1).compute()
    result = cli("list")
    assert result.exit_code == 0, result.output
    rows = {line.split()[0]: line.split()[1] for line in result.stdout.splitlines()[1:]}
    assert rows == {"other": "1", "simple": "2"}


def test_list_of_an_empty_backend_creates_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = cli("list")
    assert result.exit_code == 0
    assert "No experiments" in result.stdout
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(not hasattr(xg.Experiment, "compare"),
                    reason="Experiment.compare is not in this checkout yet")
def test_diff_shows_parameters_and_a_code_change(script, tmp_path):
    assert cli("run", script, "a=1", "--seed", "7").exit_code == 0
    edit_score(script)
    assert cli("run", script, "a=2", "--seed", "7").exit_code == 0
    result = cli("diff", "simple", "1", "2")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "-    return 10 / s" in out and "+    return 20 / s" in out
    assert "calculate_score" in out
    assert "a" in out and "1 -> 2" in out
    ex = xg.Experiment("simple", backend=store(tmp_path))
    assert out.strip() == str(ex.compare(1, 2)).strip()


def test_board_help_is_quick_and_names_its_options():
    result = cli("board", "--help")
    assert result.exit_code == 0
    for option in ("--port", "--address", "--backend"):
        assert option in result.stdout


def test_every_command_has_help():
    for command in ("run", "rerun", "history", "show", "diff", "list", "board"):
        result = cli(command, "--help")
        assert result.exit_code == 0, (command, result.output)
        assert "Usage: " in result.stdout


# -- the installed command, as a real subprocess ---------------------------------------------
def experigraph(*args, cwd):
    command = this_python_command("experigraph", "experigraph.cli")
    env = python_env()
    env.pop("EXPERIGRAPH_BACKEND", None)
    return subprocess.run(command + [str(a) for a in args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=180)


def test_installed_command_runs_reruns_and_reports(script, tmp_path):
    proc = experigraph("run", script.name, "a=1", "b=2", "--seed", "7", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "Trial 1 of experiment 'simple' succeeded" in proc.stdout

    edit_score(script)
    proc = experigraph("rerun", "simple", "1", "b=3", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "Script source has changed since trial 1" in proc.stderr
    assert "+    return 20 / s" in proc.stderr
    rec = record(tmp_path, 2)
    assert (rec.parameters, rec.seed, rec.rerun_of) == ({"a": 1, "b": 3}, 7, 1)

    rows = json.loads(experigraph("history", "simple", "--format", "json",
                                  cwd=tmp_path).stdout)
    assert [(r["Trial ID"], r["b"]) for r in rows] == [(1, 2), (2, 3)]
    frame = pd.read_csv(io.StringIO(experigraph("history", "simple", "--format", "csv",
                                                cwd=tmp_path).stdout), index_col=0)
    assert frame.index.tolist() == [1, 2]
    table = experigraph("history", "simple", cwd=tmp_path).stdout
    assert "Result" in table.splitlines()[0]

    if hasattr(xg.Experiment, "compare"):
        proc = experigraph("diff", "simple", "1", "2", cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
        assert "-    return 10 / s" in proc.stdout and "+    return 20 / s" in proc.stdout

    proc = experigraph("show", "simple", "2", cwd=tmp_path)
    assert proc.returncode == 0 and "Rerun of:" in proc.stdout
    proc = experigraph("list", cwd=tmp_path)
    assert proc.returncode == 0 and "simple" in proc.stdout


def test_installed_command_errors_are_one_line(script, tmp_path):
    assert experigraph("run", script.name, "a=1", cwd=tmp_path).returncode == 0
    before = history(tmp_path)
    for args, code, message in [
        (["run", script.name, "a="], 2, "Missing value in 'a='"),
        (["run", script.name, "--seed", "x", "a=1"], 2, "Invalid value for '--seed'"),
        (["run", script.name, "nope=1"], 2, "Parameter(s) 'nope' not declared"),
        (["run", script.name, "a=-2"], 1, "ZeroDivisionError"),
        (["history", "missing"], 1, "No experiment 'missing'"),
        (["show", "simple", "9"], 1, "Trial 9 is not recorded"),
    ]:
        proc = experigraph(*args, cwd=tmp_path)
        assert proc.returncode == code, (args, proc.stderr)
        assert message in one_error_line(proc.stderr), args
    after = history(tmp_path)
    # only the failing trial (a=-2) was added, and recorded as failed
    pd.testing.assert_frame_equal(after.loc[before.index], before)
    assert after.index.tolist() == [1, 2] and not after.loc[2, "Success"]


def test_help_imports_nothing_beyond_the_package(tmp_path):
    code = ("import sys, experigraph; before = set(sys.modules); import experigraph.cli; "
            "from click.testing import CliRunner; "
            "CliRunner().invoke(experigraph.cli.main, ['run', '--help']); "
            "heavy = {'bokeh', 'redis', 'pymongo', 'cpuinfo', 'git', 'distributed'}; "
            "print(sorted(m for m in set(sys.modules) - before if m.split('.')[0] in heavy))")
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=python_env(),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_rerun_when_the_script_is_gone_is_one_line_exit_1(script, tmp_path):
    assert cli("run", script, "a=1").exit_code == 0
    script.unlink()
    result = cli("rerun", "simple", "1")
    assert result.exit_code == 1
    assert "no longer exists" in one_error_line(result.stderr)
    assert history(tmp_path).index.tolist() == [1]
