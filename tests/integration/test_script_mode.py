"""Script mode: ``python my_experiment.py a=1 b=2 --seed 7`` runs exactly one trial.

The scripts run as real subprocesses in ``tmp_path`` (the default backend is
``tmp_path/experigraph_cache``); importing the same file runs nothing.
"""
from __future__ import annotations

import importlib.util
import runpy
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

import experigraph as xg
from experigraph import script as script_mode
from experigraph.records import Unrepresentable

from xg_testing import python_env, this_python_command

SCRIPTS = Path(__file__).parent / "cli_scripts"
pytestmark = pytest.mark.timeout(240)


@pytest.fixture
def script(tmp_path):
    """A copy of daskperiment's simple_experiment.py in tmp_path (experiment 'simple')."""
    path = tmp_path / "simple_experiment.py"
    shutil.copy(SCRIPTS / "simple_experiment.py", path)
    return path


def run_script(path, *args, cwd=None, timeout=180, exe=None):
    """``python path args...`` in the script's directory (so the backend is there);
    ``exe``: the command instead of ``python`` (a list)."""
    env = python_env()
    env.pop("EXPERIGRAPH_BACKEND", None)
    return subprocess.run([*(exe or [sys.executable]), str(path), *map(str, args)],
                          cwd=cwd or path.parent, env=env, capture_output=True, text=True,
                          timeout=timeout)


def store(tmp_path):
    return tmp_path / "experigraph_cache"


def history(tmp_path):
    """The history of 'simple' under tmp_path, read without creating anything."""
    return xg.Experiment("simple", backend=store(tmp_path)).get_history(verbose=True)


def error_lines(stderr):
    return [line for line in stderr.splitlines() if line.startswith("error:")]


def record_one_trial(script_path):
    """Record trial 1 (a=1, b=2, seed 7) through the in-process driver."""
    outcome = script_mode.run_script(script_path, ["a=1", "b=2", "--seed", "7"], env={
        "EXPERIGRAPH_BACKEND": str(store(script_path.parent))})
    assert [r.trial_id for r in outcome.trials] == [1]


# -- the command line syntax ---------------------------------------------------------
@pytest.mark.parametrize("arg, expected", [
    ("a=1", {"a": 1}), ("a=0.5", {"a": 0.5}), ("a=True", {"a": True}),
    ("a=None", {"a": None}), ("a=[1, 2]", {"a": [1, 2]}), ("a='text'", {"a": "text"}),
    ("model=rf", {"model": "rf"}), ("a=1e3", {"a": 1000.0}), ("a=(1, 'x')", {"a": (1, "x")}),
    ("path=/tmp/x.csv", {"path": "/tmp/x.csv"}), ("a=b=c", {"a": "b=c"}),
    ("a=-1", {"a": -1}), ("a=''", {"a": ""}),
])
def test_parse_assignments_reads_literals_else_strings(arg, expected):
    assert script_mode.parse_assignments([arg]) == expected


@pytest.mark.parametrize("arg, message", [
    ("a=", "Missing value in 'a='"),
    ("=1", "Missing parameter name in '=1'"),
    ("a", "Not a parameter assignment: 'a'"),
    ("1a=3", "is not a Python identifier"),
    ("a b=3", "is not a Python identifier"),
])
def test_parse_assignments_names_the_bad_argument_and_the_syntax(arg, message):
    with pytest.raises(script_mode.ScriptUsageError, match=message) as info:
        script_mode.parse_assignments([arg])
    assert "name=value" in str(info.value)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("argv, message", [
    (["--seed", "x"], "--seed takes an integer from 0 to 4294967295, got 'x'"),
    (["--seed", "-1"], "got '-1'"),
    (["--seed", str(2**32)], "got '4294967296'"),
    (["--seed"], "--seed needs a value"),
    (["--bogus"], "Unknown option '--bogus'"),
])
def test_parse_script_argv_rejects_bad_flags(argv, message):
    with pytest.raises(script_mode.ScriptUsageError, match=message):
        script_mode.parse_script_argv(argv)


def test_parse_script_argv_reads_seed_in_both_spellings():
    assert script_mode.parse_script_argv(["a=1", "--seed", "7"]).seed == 7
    args = script_mode.parse_script_argv(["--seed=8", "b=rf"])
    assert (args.seed, args.parameters) == (8, {"b": "rf"})


def test_format_assignments_round_trips_and_refuses_reprs():
    values = {"a": 1, "b": "rf", "c": [1, (2, 3)], "d": None, "e": 0.1}
    assert script_mode.parse_assignments(script_mode.format_assignments(values)) == values
    with pytest.raises(script_mode.ScriptUsageError, match="cannot be written as a Python "
                       "literal"):
        script_mode.format_assignments({"x": Unrepresentable("<obj>", "Obj")})


# -- python script.py ----------------------------------------------------------------------
def test_script_runs_one_trial_with_its_parameters_and_seed(script, tmp_path):
    proc = run_script(script, "a=1", "b=3", "--seed", "7")
    assert proc.returncode == 0, proc.stderr
    assert not error_lines(proc.stderr)
    frame = history(tmp_path)
    assert list(frame.index) == [1]
    row = frame.loc[1]
    assert (row["a"], row["b"], row["Seed"], row["Success"]) == (1, 3, 7, True)
    assert row["Result"] == pytest.approx(10 / 4)

    ex = xg.Experiment("simple", backend=store(tmp_path))
    recorded = ex.get_trial(1).script
    assert recorded["path"] == str(script.resolve())
    assert recorded["argv"] == ["a=1", "b=3", "--seed", "7"]
    source = ex.backend.get_blob("source", recorded["source_hash"]).decode("utf-8")
    assert source == script.read_text(encoding="utf-8") == ex.get_script(1)
    assert "source" not in recorded  # the text is a blob, the record names it


def test_failing_trial_exits_1_with_one_error_line_and_is_recorded(script, tmp_path):
    proc = run_script(script, "a=-2")  # b defaults to 2: 10 / 0
    assert proc.returncode == 1
    errors = error_lines(proc.stderr)
    assert len(errors) == 1 and "ZeroDivisionError" in errors[0], proc.stderr
    assert "Traceback" not in proc.stderr
    frame = history(tmp_path)
    assert list(frame.index) == [1]
    assert not frame.loc[1, "Success"]
    assert "ZeroDivisionError" in frame.loc[1, "Description"]


BAD_INPUTS = [
    (["a="], "Missing value in 'a='"),
    (["=1"], "Missing parameter name in '=1'"),
    (["a"], "Not a parameter assignment: 'a'; expected name=value"),
    (["a=1", "c=1"], "Parameter(s) 'c' not declared by experiment 'simple' (declared: a, b)"),
    (["a=1", "--seed", "x"], "--seed takes an integer from 0 to 4294967295, got 'x'"),
    (["a=1", "--verbose"], "Unknown option '--verbose'"),
    ([], "Parameter(s) 'a' of experiment 'simple' have no value: give them as a=VALUE"),
]


@pytest.mark.parametrize("args, message", BAD_INPUTS, ids=[" ".join(a) or "none"
                                                           for a, _ in BAD_INPUTS])
def test_bad_input_exits_2_with_one_line_and_records_nothing(script, tmp_path, args, message):
    record_one_trial(script)
    before = history(tmp_path)
    proc = run_script(script, *args)
    assert proc.returncode == 2, proc.stderr
    errors = error_lines(proc.stderr)
    assert len(errors) == 1, proc.stderr
    assert message in errors[0]
    assert "Traceback" not in proc.stderr
    pd.testing.assert_frame_equal(history(tmp_path), before)


def test_bad_input_on_a_new_experiment_creates_nothing(script, tmp_path):
    proc = run_script(script, "a=1", "undeclared=2")
    assert proc.returncode == 2
    assert not store(tmp_path).exists()


def test_help_lists_the_declared_parameters_and_runs_nothing(script, tmp_path):
    proc = run_script(script, "--help")
    assert proc.returncode == 0, proc.stderr
    assert "usage: python simple_experiment.py" in proc.stdout
    assert "a (required)" in proc.stdout and "b (default 2)" in proc.stdout
    assert not store(tmp_path).exists()


def test_importing_the_script_runs_nothing(script, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", [str(script), "a=1"])
    spec = importlib.util.spec_from_file_location("simple_experiment_imported", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    runpy.run_path(str(script), run_name="not_main")
    assert script_mode.current_session() is None
    assert module.ex.trial_id == 0
    assert not store(tmp_path).exists()


def test_importing_the_script_from_another_script_runs_nothing(script, tmp_path):
    driver = tmp_path / "driver.py"
    driver.write_text("import simple_experiment\nprint(simple_experiment.ex.trial_id)\n")
    proc = run_script(driver, "a=1")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "0"
    assert not store(tmp_path).exists()


def test_running_the_script_in_ipython_runs_nothing(script, tmp_path):
    ipython = this_python_command("ipython", "IPython")
    if ipython is None:
        pytest.skip("IPython is not installed for this Python")
    proc = run_script(script, "a=1", exe=ipython)
    assert proc.returncode == 0, proc.stderr
    assert not store(tmp_path).exists()


def test_interactive_session_runs_nothing(script, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "ps1", ">>> ", raising=False)
    monkeypatch.setattr(sys, "argv", [str(script), "a=1"])
    runpy.run_path(str(script), run_name="__main__")
    assert script_mode.current_session() is None
    assert not store(tmp_path).exists()


def test_script_that_computes_itself_runs_no_second_trial(script, tmp_path):
    with script.open("a", encoding="utf-8") as f:
        f.write("\nex.set_parameters(a=1)\nprint(s.compute(seed=3))\n")
    proc = run_script(script)
    assert proc.returncode == 0, proc.stderr
    assert list(history(tmp_path).index) == [1]


def test_script_whose_own_compute_fails_exits_1_once(script, tmp_path):
    with script.open("a", encoding="utf-8") as f:
        f.write("\nex.set_parameters(a=-2)\ns.compute()\n")
    proc = run_script(script)
    assert proc.returncode == 1
    frame = history(tmp_path)
    assert list(frame.index) == [1] and not frame.loc[1, "Success"]


def test_declarations_after_the_result_call_are_honoured(script, tmp_path):
    with script.open("a", encoding="utf-8") as f:
        f.write("\nscale = ex.parameter('scale', default=1)\nex.set_parameters(b=8)\n")
    proc = run_script(script, "a=2", "scale=3")  # 'scale' is declared after s = ...
    assert proc.returncode == 0, proc.stderr
    proc = run_script(script, "a=2", "b=3")  # the command line wins over the script
    assert proc.returncode == 0, proc.stderr
    frame = history(tmp_path)
    assert frame["b"].tolist() == [8, 3]


def test_script_body_error_after_the_result_call_runs_no_trial(script, tmp_path):
    with script.open("a", encoding="utf-8") as f:
        f.write("\nraise RuntimeError('broken script')\n")
    proc = run_script(script, "a=1")
    assert proc.returncode == 1
    assert "RuntimeError: broken script" in proc.stderr
    assert xg.Experiment("simple", backend=store(tmp_path)).trial_id == 0


def test_script_without_a_result_call_is_an_error(tmp_path):
    path = tmp_path / "no_result.py"
    path.write_text("import experigraph as xg\nex = xg.Experiment('simple')\n")
    with pytest.raises(script_mode.ScriptError, match="did not build an experiment result"):
        script_mode.run_script(path, [])


def test_in_process_driver_records_the_script(script, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    outcome = script_mode.run_script(script, ["a=1", "--seed", "5"])
    record, = outcome.trials
    assert (record.parameters, record.seed) == ({"a": 1, "b": 2}, 5)
    assert record.script["argv"] == ["a=1", "--seed", "5"]
    assert script_mode.current_session() is None
    assert sys.argv[0] != str(script)


TYPED = '''
import experigraph as xg
ex = xg.Experiment(id="typed")
lr = ex.parameter("lr", type=float)
name = ex.parameter("name", default="x", type=str)

@ex.result
def show(lr, name):
    return [type(lr).__name__, lr, name]

show(lr, name)
'''


def test_typed_parameters_convert_command_line_values(tmp_path):
    path = tmp_path / "typed.py"
    path.write_text(TYPED)
    proc = run_script(path, "lr=1", "name=7")
    assert proc.returncode == 0, proc.stderr
    ex = xg.Experiment("typed", backend=store(tmp_path))
    assert ex.get_parameters(1) == {"lr": 1.0, "name": "7"}
    assert ex.get_trial(1).result == ["float", 1.0, "7"]
    bad = run_script(path, "lr=fast")
    assert bad.returncode == 2
    assert "'lr' is declared as float" in bad.stderr
    assert list(ex.get_history().index) == [1]


OWN_ARGS = '''
import argparse
import experigraph as xg
parser = argparse.ArgumentParser()
parser.add_argument("--repeat", type=int)
options = parser.parse_args()
ex = xg.Experiment(id="own")
a = ex.parameter("a", default=1)

@ex.result
def ident(a):
    return a

r = ident(a)
for value in range(options.repeat):
    ex.set_parameters(a=value).compute()
'''


def test_script_with_its_own_arguments_that_computes_itself(tmp_path):
    path = tmp_path / "own.py"
    path.write_text(OWN_ARGS)
    proc = run_script(path, "--repeat", "3")
    assert proc.returncode == 0, proc.stderr
    assert "error:" not in proc.stderr
    ex = xg.Experiment("own", backend=store(tmp_path))
    assert ex.get_history()["a"].tolist() == [0, 1, 2]  # its own trials, no extra one
