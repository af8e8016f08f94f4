"""Code, data and git drift are reported once, with the right diff, and recorded;
nothing is reported when nothing changed."""
from __future__ import annotations

import importlib.util
import itertools
import os
import linecache
import logging

import pytest

import experigraph as xg

_cells = itertools.count()


def run_cell(source: str, namespace: dict) -> dict:
    """Execute ``source`` as a notebook cell: its code stays readable by inspect."""
    filename = f"<cell-{next(_cells)}>"
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    exec(compile(source, filename, "exec"), namespace)
    return namespace


CELL = """
a = ex.parameter("a")
b = ex.parameter("b")

@ex
def prepare_data(a, b):
    return a {op} b

@ex.result
def calculate_score(s):
    return 10 / s

s = calculate_score(prepare_data(a, b))
"""


def warnings_of(caplog):
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING
            and r.name.startswith("experigraph")]


def test_code_change_is_warned_once_with_its_diff(make_experiment, caplog):
    ns = {"ex": make_experiment()}
    ex = ns["ex"]
    run_cell(CELL.format(op="+"), ns)
    ex.set_parameters(a=1, b=2).compute(seed=1)
    run_cell(CELL.format(op="*"), ns)
    with caplog.at_level(logging.WARNING, logger="experigraph"):
        assert ex.compute(seed=1) == 5.0
        ex.compute(seed=1)  # nothing changed since trial 2
    lines = warnings_of(caplog)
    assert lines[0] == "Code context has been changed: prepare_data"
    assert "-    return a + b" in lines and "+    return a * b" in lines
    assert sum(m.startswith("Code context") for m in lines) == 1
    drift = ex.get_trial(2).drift
    assert [(d.kind, d.subject) for d in drift] == [("code", "prepare_data")]
    assert "+    return a * b" in drift[0].diff
    assert ex.get_trial(3).drift == ()
    assert "return a * b" in ex.get_code(2) and "return a + b" in ex.get_code(1)


def test_a_trial_compares_with_the_newest_trial_whoever_wrote_it(make_experiment, caplog):
    """A trial is compared with the newest trial of the store, not with the one its own
    process wrote last: here another writer's trial 2 came in between."""
    mine, other = {"ex": make_experiment()}, {"ex": make_experiment()}
    run_cell(CELL.format(op="+"), mine)
    mine["ex"].set_parameters(a=1, b=2).compute(seed=1)  # trial 1: a + b
    run_cell(CELL.format(op="*"), other)
    other["ex"].set_parameters(a=1, b=2).compute(seed=1)  # trial 2: a * b
    with caplog.at_level(logging.WARNING, logger="experigraph"):
        assert mine["ex"].compute(seed=1) == 10 / 3  # trial 3: a + b, changed since 2
    drift = mine["ex"].get_trial(3).drift
    assert [(d.kind, d.subject, d.detail["previous_trial"]) for d in drift] == [
        ("code", "prepare_data", 2)]
    assert "+    return a + b" in drift[0].diff and "-    return a * b" in drift[0].diff
    assert "Code context has been changed: prepare_data" in warnings_of(caplog)
    mine["ex"].compute(seed=1)  # nothing in between: compared with trial 3
    assert mine["ex"].get_trial(4).drift == ()


def test_drift_warnings_name_the_trial_compared_with(make_experiment, caplog):
    """The warnings of a trial compared, at first, with the one its process wrote last
    wait until the claimed id shows which trial is the newest: here another writer's
    trial 2 has the same code, so nothing is said."""
    mine, other = {"ex": make_experiment()}, {"ex": make_experiment()}
    run_cell(CELL.format(op="+"), mine)
    mine["ex"].set_parameters(a=1, b=2).compute(seed=1)  # trial 1: a + b
    run_cell(CELL.format(op="*"), other)
    other["ex"].set_parameters(a=1, b=2).compute(seed=1)  # trial 2: a * b
    run_cell(CELL.format(op="*"), mine)
    caplog.clear()  # trial 2's own warning (a + b -> a * b) is right
    with caplog.at_level(logging.INFO, logger="experigraph"):
        mine["ex"].set_parameters(a=1, b=2).compute(seed=1)  # trial 3: a * b, as trial 2
    assert mine["ex"].get_trial(3).drift == ()
    assert not [m for m in warnings_of(caplog) if "Code context" in m]
    mine["ex"].compute(seed=1)
    assert mine["ex"].get_trial(4).drift == ()


def test_rerunning_the_same_cell_is_not_drift(make_experiment, caplog):
    ns = {"ex": make_experiment()}
    with caplog.at_level(logging.INFO, logger="experigraph"):
        for _ in range(3):
            run_cell(CELL.format(op="+"), ns)
            ns["ex"].set_parameters(a=1, b=2).compute(seed=1)
    assert warnings_of(caplog) == []
    assert not any("Code context" in r.getMessage() for r in caplog.records)
    assert all(ns["ex"].get_trial(i).drift == () for i in (1, 2, 3))


def test_cosmetic_edit_is_reported_as_cosmetic(make_experiment, caplog):
    ns = {"ex": make_experiment()}
    ex = ns["ex"]
    run_cell(CELL.format(op="+"), ns)
    ex.set_parameters(a=1, b=2).compute(seed=1)
    run_cell(CELL.format(op="+").replace("    return a + b",
                                         '    """Sum."""\n    return a + b  # add'), ns)
    with caplog.at_level(logging.INFO, logger="experigraph"):
        ex.compute(seed=1)
    assert warnings_of(caplog) == []
    assert any(r.getMessage().startswith(
        "Code context has been changed cosmetically: prepare_data") for r in caplog.records)
    assert [(d.kind, d.subject) for d in ex.get_trial(2).drift] == [
        ("code-cosmetic", "prepare_data")]
    hashes = {ex.get_trial(t).code["prepare_data"]["code_hash"] for t in (1, 2)}
    assert len(hashes) == 1


HELPER_CELL = """
def scale(x):
    return x * {factor}
"""

STEP_CELL = """
a = ex.parameter("a")

@ex.result
def scaled(a):
    return scale(a) + 1

r = scaled(a)
"""


def test_changed_helper_function_is_a_code_change(make_experiment, caplog):
    ns = {"ex": make_experiment()}
    ex = ns["ex"]
    run_cell(HELPER_CELL.format(factor=2), ns)
    run_cell(STEP_CELL, ns)
    assert ex.set_parameters(a=3).compute(seed=1) == 7
    run_cell(HELPER_CELL.format(factor=10), ns)  # only the helper's cell is re-run
    with caplog.at_level(logging.WARNING, logger="experigraph"):
        assert ex.compute(seed=1) == 31
    lines = warnings_of(caplog)
    assert lines[0] == "Code context has been changed: scaled"
    assert "-    return x * 2" in lines and "+    return x * 10" in lines
    assert "def scale(x):" in ex.get_code(2)


def test_changed_input_file_is_data_drift(make_experiment, tmp_path, caplog):
    data = tmp_path / "data.csv"
    data.write_text("1\n2\n")
    ex = make_experiment()
    path = ex.parameter("path", default=str(data))

    @ex.result
    def total(path):
        with open(ex.input(path)) as f:
            return sum(int(x) for x in f)

    r = total(path)
    with caplog.at_level(logging.WARNING, logger="experigraph"):
        assert r.compute(seed=1) == 3
        assert r.compute(seed=1) == 3
        assert warnings_of(caplog) == []
        data.write_text("1\n2\n3\n")
        assert r.compute(seed=1) == 6
    (line,) = warnings_of(caplog)
    assert line.startswith(f"Input data has been changed: {data} (read by step total")
    (event,) = ex.get_trial(3).drift
    assert event.kind == "data" and event.subject == str(data)
    assert event.detail["old_hash"] != event.detail["new_hash"]
    assert ex.compare(2, 3).inputs == {str(data): (event.detail["old_hash"],
                                                   event.detail["new_hash"])}


GIT_STEPS = """
def build(ex):
    a = ex.parameter("a")

    @ex.result
    def ident(a):
        return a

    return ident(a)
"""


def test_git_commit_dirty_and_new_commit(make_experiment, tmp_path, caplog, monkeypatch):
    import git

    from experigraph.environment import git as git_collector

    monkeypatch.setattr(git_collector, "MAX_AGE_SECONDS", 0.0)  # ask git on every trial
    repo_dir = tmp_path / "repo"
    repo_dir.mkdir()
    repo = git.Repo.init(repo_dir)
    with repo.config_writer() as cw:
        cw.set_value("user", "name", "Test").set_value("user", "email", "test@example.invalid")
    (repo_dir / "steps.py").write_text(GIT_STEPS)
    (repo_dir / "notes.txt").write_text("first\n")
    repo.index.add(["steps.py", "notes.txt"])
    first_commit = repo.index.commit("first").hexsha
    spec = importlib.util.spec_from_file_location("xg_git_steps", repo_dir / "steps.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    ex = make_experiment()
    r = module.build(ex)
    ex.set_parameters(a=1)
    r.compute(seed=1)
    git_env = ex.get_environment_snapshot(1, "git")
    (entry,) = git_env["repositories"]
    assert entry["commit"] == first_commit and entry["is_dirty"] is False
    (repo_dir / "notes.txt").write_text("edited\n")
    with caplog.at_level(logging.WARNING, logger="experigraph"):
        r.compute(seed=1)
        r.compute(seed=1)
    assert sum(m.startswith("Git repository state has been changed")
               for m in warnings_of(caplog)) == 1
    assert ex.get_environment_snapshot(2, "git")["repositories"][0]["is_dirty"] is True
    assert [d.subject for d in ex.get_trial(2).drift] == ["git"]
    assert ex.get_trial(3).drift == ()
    repo.index.add(["notes.txt"])
    second_commit = repo.index.commit("second").hexsha
    r.compute(seed=1)
    entry = ex.get_environment_snapshot(4, "git")["repositories"][0]
    assert entry["commit"] == second_commit and entry["is_dirty"] is False
    assert "git" in ex.compare(1, 4).environment


def test_environment_queries(make_experiment):
    ex = make_experiment()
    a = ex.parameter("a")

    @ex.result
    def ident(a):
        return a

    ident(a)
    ex.set_parameters(a=1).compute()
    env = ex.get_environment_snapshot(1)
    assert {"platform", "python", "packages"} <= set(env)
    packages = ex.get_python_packages(1)
    import dask

    assert f"dask=={dask.__version__}" in packages.splitlines()
    assert ex.get_environment_snapshot(1, "python")["version"]
    with pytest.raises(ValueError, match="choose one of platform"):
        ex.get_environment_snapshot(1, "gpu")
    assert "packages" in ex.get_environment_snapshot()


# -- the user's own modules, followed as code (each run a fresh process) ------------
MODULE_SCRIPT = """
import os, pathlib
import experigraph as xg
import featurelib
from featurelib import offset

ex = xg.Experiment(id="modules", backend=pathlib.Path(os.environ["XG_STORE"]))
a = ex.parameter("a")

@ex.result
def score(a):
    return offset(a) + featurelib.Scaler(2).scale(a)

score(a)
ex.set_parameters(a=1).compute(seed=1)
"""

FEATURELIB = '''
def offset(x):
    return x + {step}


class Scaler:
    def __init__(self, factor):
        self.factor = factor

    def scale(self, x):
        return x * self.factor{extra}
'''


def run_script(tmp_path, featurelib_source):
    import subprocess
    import sys

    from xg_testing import python_env

    (tmp_path / "featurelib.py").write_text(featurelib_source)
    env = python_env()
    env.update(XG_STORE=str(tmp_path / "store"), PYTHONDONTWRITEBYTECODE="1",
               EXPERIGRAPH_LOG_LEVEL="INFO")
    out = subprocess.run([sys.executable, str(tmp_path / "experiment.py")], cwd=tmp_path,
                         env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return [line.split("] ", 2)[-1] for line in out.stderr.splitlines()
            if "[WARNING]" in line or "[INFO] Code context" in line]


def test_a_helper_in_a_local_module_is_followed_as_code(tmp_path):
    (tmp_path / "experiment.py").write_text(MODULE_SCRIPT)
    assert run_script(tmp_path, FEATURELIB.format(step=1, extra="")) == []
    assert run_script(tmp_path, FEATURELIB.format(step=1, extra="")) == []  # identical rerun
    cosmetic = FEATURELIB.format(step=1, extra="  # scaled").replace(
        "def offset(x):\n", 'def offset(x):\n    """Shift."""\n')
    assert run_script(tmp_path, cosmetic) == [
        "Code context has been changed cosmetically: score (comments, docstrings or layout "
        "only)"]
    lines = run_script(tmp_path, FEATURELIB.format(step=10, extra=""))
    assert lines[0] == "Code context has been changed: score"
    assert "-    return x + 1" in lines and "+    return x + 10" in lines
    assert sum(line.startswith("Code context") for line in lines) == 1
    lines = run_script(tmp_path, FEATURELIB.format(step=10, extra=" + 1"))  # a method
    assert lines[0] == "Code context has been changed: score"
    assert "+        return x * self.factor + 1" in lines

    ex = xg.Experiment(id="modules", backend=tmp_path / "store")
    assert ex.get_history()["Result"].tolist() == [4, 4, 4, 13, 14]
    kinds = [[(d.kind, d.subject) for d in ex.get_trial(t).drift] for t in range(1, 6)]
    assert kinds == [[], [], [("code-cosmetic", "score")], [("code", "score")],
                     [("code", "score")]]
    hashes = [ex.get_trial(t).code["score"]["code_hash"] for t in range(1, 6)]
    assert hashes[0] == hashes[1] == hashes[2] != hashes[3] != hashes[4]
    code = ex.get_code(4)
    assert "def offset(x):\n    return x + 10" in code and "class Scaler:" in code
    assert ex.get_trial(5).drift[0].detail["previous_trial"] == 4


def test_installed_and_standard_modules_are_not_followed(make_experiment):
    import json
    import textwrap

    import numpy as np

    ex = make_experiment()
    a = ex.parameter("a")

    @ex.result
    def uses_libraries(a):
        return json.dumps(float(np.sqrt(a))) + textwrap.dedent(" x")

    uses_libraries(a)
    ex.set_parameters(a=4).compute(seed=1)
    code = ex.get_code(1)
    assert "helper functions" not in code and code.startswith("@ex.result")


def test_a_reloaded_local_module_is_captured_again(tmp_path, make_experiment, monkeypatch,
                                                   caplog):
    import importlib
    import sys

    (tmp_path / "xg_local_helpers.py").write_text("def shift(x):\n    return x + 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "dont_write_bytecode", True)  # the reload reads the new source
    import xg_local_helpers

    ns = {"ex": make_experiment(), "helpers": xg_local_helpers}
    run_cell("""
a = ex.parameter("a")

@ex.result
def shifted(a):
    return helpers.shift(a)

r = shifted(a)
""", ns)
    try:
        assert ns["ex"].set_parameters(a=1).compute(seed=1) == 2
        (tmp_path / "xg_local_helpers.py").write_text("def shift(x):\n    return x + 100\n")
        importlib.reload(xg_local_helpers)
        with caplog.at_level(logging.WARNING, logger="experigraph"):
            assert ns["ex"].compute(seed=1) == 101
            assert ns["ex"].compute(seed=1) == 101
        lines = warnings_of(caplog)
        assert lines[0] == "Code context has been changed: shifted"
        assert "+    return x + 100" in lines
        assert sum(line.startswith("Code context") for line in lines) == 1
    finally:
        sys.modules.pop("xg_local_helpers", None)


def test_a_local_module_edited_but_not_reloaded_is_not_a_change(tmp_path, make_experiment,
                                                                  monkeypatch, caplog):
    """What runs is the loaded code: a file edited on disk and never reloaded is not drift,
    and the trial records the source that ran, even when another helper is redefined."""
    import sys

    (tmp_path / "xg_unreloaded.py").write_text("def shift(x):\n    return x + 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.chdir(tmp_path)  # the project's own modules: under the current directory
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    import xg_unreloaded

    ns = {"ex": make_experiment(), "helpers": xg_unreloaded}
    cell = """
a = ex.parameter("a")

def bump(x):
    return x{bump}

@ex.result
def shifted(a):
    return bump(helpers.shift(a))

r = shifted(a)
"""
    run_cell(cell.format(bump=""), ns)
    try:
        assert ns["ex"].set_parameters(a=1).compute(seed=1) == 2
        (tmp_path / "xg_unreloaded.py").write_text("def shift(x):\n    return x + 100\n")
        with caplog.at_level(logging.WARNING, logger="experigraph"):
            assert ns["ex"].compute(seed=1) == 2  # the loaded code still adds 1
        assert warnings_of(caplog) == []
        assert "x + 1" in ns["ex"].get_code(2) and "x + 100" not in ns["ex"].get_code(2)
        run_cell(cell.format(bump=" * 10"), ns)  # another helper redefined: captured again
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="experigraph"):
            assert ns["ex"].compute(seed=1) == 20
        lines = warnings_of(caplog)
        assert "+    return x * 10" in lines and "+    return x + 100" not in lines
        assert "x + 100" not in ns["ex"].get_code(3)
    finally:
        sys.modules.pop("xg_unreloaded", None)


GIT_SCRIPT = """
import logging, os, pathlib
import experigraph as xg

ex = xg.Experiment(id="reopen", backend=pathlib.Path(os.environ["XG_STORE"]))
logging.getLogger("experigraph").warning("OPENED")
a = ex.parameter("a")

@ex.result
def ident(a):
    return a

ident(a)
ex.set_parameters(a=1).compute(seed=1)
"""


def test_git_drift_is_reported_when_the_experiment_is_reopened(tmp_path):
    import subprocess
    import sys

    import git

    from xg_testing import python_env

    repo_dir = tmp_path / "project"
    repo_dir.mkdir()
    repo = git.Repo.init(repo_dir)
    with repo.config_writer() as cw:
        cw.set_value("user", "name", "Test").set_value("user", "email", "test@example.invalid")
    (repo_dir / "experiment.py").write_text(GIT_SCRIPT)
    (repo_dir / "notes.txt").write_text("first\n")
    repo.index.add(["experiment.py", "notes.txt"])
    first = repo.index.commit("first").hexsha
    env = python_env()
    env.update(XG_STORE=str(tmp_path / "store"), EXPERIGRAPH_LOG_LEVEL="INFO")

    def run() -> list[str]:
        out = subprocess.run([sys.executable, "experiment.py"], cwd=repo_dir, env=env,
                             capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        return [line.split("] ", 2)[-1] for line in out.stderr.splitlines()
                if "[WARNING]" in line]

    assert run() == ["OPENED"]
    assert run() == ["OPENED"]                       # nothing changed: nothing said
    (repo_dir / "notes.txt").write_text("second\n")
    repo.index.add(["notes.txt"])
    second = repo.index.commit("second").hexsha
    lines = run()
    assert lines[0] == (f"Git repository state has been changed (since trial 2): commit "
                        f"{first[:12]} -> {second[:12]}")
    assert f"-commit: {first}" in lines and f"+commit: {second}" in lines
    assert lines.index("OPENED") > lines.index(f"+commit: {second}")  # before any trial
    assert sum(line.startswith("Git repository state") for line in lines) == 1
    assert run() == ["OPENED"]                       # reported once
    ex = xg.Experiment(id="reopen", backend=tmp_path / "store")
    assert [[d.kind for d in ex.get_trial(t).drift] for t in (1, 2, 3, 4)] == [
        [], [], ["environment"], []]
    assert ex.get_trial(3).drift[0].subject == "git"


# -- cache=True: never serves what is not reproducible, and says why it missed --------
def cache_misses(ex, step, trials):
    return [next(s.cache_miss if not s.cached else "hit" for s in ex.get_trial(t).steps
                 if s.step == step) for t in trials]


IMPURE_CELL = """
a = ex.parameter("a")
state = globals().setdefault("state", {{"offset": 0, "runs": 0}})

@ex{decorator}
def features(a):
    state["runs"] += 1
    return a + state["offset"]

@ex.result
def score(x):
    return x * 2

r = score(features(a))
"""


def test_a_step_seen_impure_is_never_served_from_the_cache(make_experiment, caplog):
    ns = {"ex": make_experiment()}
    ex = ns["ex"]
    run_cell(IMPURE_CELL.format(decorator=""), ns)
    ex.set_parameters(a=1).compute()
    ns["state"]["offset"] = 1
    with caplog.at_level(logging.INFO, logger="experigraph"):
        ex.compute()                                       # impure: warned, remembered
        run_cell(IMPURE_CELL.format(decorator=".step(cache=True)"), ns)
        ex.compute()
        ex.compute()
    assert ns["state"]["runs"] == 4                        # never served from the cache
    why = ("the step was seen impure (impurity in trial 2), so its output cannot be "
           "reused")
    assert cache_misses(ex, "features", [3, 4]) == [why, why]
    assert f"Cached output of step features not used: {why}" in caplog.text
    assert [(d.kind, d.subject) for d in ex.get_trial(2).drift] == [("impurity", "features")]
    (declared,) = ex.get_trial(3).drift                    # @ex -> cache=True: a WARNING
    assert declared.kind == "declaration" and declared.message == (
        "Code context has been changed: features (declaration @ex -> @ex.step(cache=True))")
    assert "-@ex" in declared.diff and "+@ex.step(cache=True)" in declared.diff
    assert ex.get_trial(3).code["features"]["code_hash"] == \
        ex.get_trial(2).code["features"]["code_hash"]      # the computation is unchanged


def test_cache_misses_say_why(make_experiment, tmp_path, caplog):
    data = tmp_path / "numbers.txt"
    data.write_text("1 2")
    ns = {"ex": make_experiment(), "data": str(data)}
    ex = ns["ex"]
    cell = """
a = ex.parameter("a")

@ex.step(cache=True)
def load(a):
    with open(ex.input(data)) as f:
        return sum(int(x) for x in f.read().split()) {op} a

@ex.result
def total(x):
    return x

r = total(load(a))
"""
    run_cell(cell.format(op="+"), ns)
    ex.set_parameters(a=1).compute()                    # 1: nothing saved yet
    ex.compute()                                        # 2: served
    ex.set_parameters(a=2).compute()                    # 3: other input
    run_cell(cell.format(op="*"), ns)
    ex.set_parameters(a=1).compute()                    # 4: code changed
    data.write_text("1 2 3")
    ex.compute()                                        # 5: the file changed
    assert ex.get_history()["Result"].tolist() == [4, 4, 5, 3, 6]
    assert cache_misses(ex, "load", range(1, 6)) == [
        "no output of it is saved yet", "hit", "no output is saved for these inputs",
        "its code changed since its output for these inputs was saved", f"{data} changed"]


def test_a_cached_step_that_drew_from_the_seed_is_served_only_under_that_seed(
        make_experiment, caplog):
    ex = make_experiment()
    a = ex.parameter("a")

    @ex.step(cache=True)
    def sample(a):
        return a + float(ex.rng().random())

    @ex.result
    def out(x):
        return x

    out(sample(a))
    ex.set_parameters(a=1)
    first = ex.compute(seed=1)
    with caplog.at_level(logging.INFO, logger="experigraph"):
        assert ex.compute(seed=1) == first                  # served: same seed
        second = ex.compute(seed=2)                          # not served: another seed
    assert second != first
    assert cache_misses(ex, "sample", [1, 2, 3]) == [
        "no output of it is saved yet", "hit",
        "its saved output used the trial's randomness under seed 1 (this trial's seed is 2)"]
    assert [(d.kind, d.subject) for d in ex.get_trial(3).drift] == [("seed", "sample")]
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


CACHE_SCRIPT = """
import os, pathlib
import experigraph as xg

ex = xg.Experiment(id="cached", backend=pathlib.Path(os.environ["XG_STORE"]))
a = ex.parameter("a")

@ex.step(cache=True)
def slow(a):
    return a * 2

@ex.result
def out(x):
    return x

out(slow(a))
ex.set_parameters(a=1).compute(seed=1)
"""


def test_a_changed_environment_is_a_cache_miss(tmp_path):
    import subprocess
    import sys

    from xg_testing import python_env

    (tmp_path / "experiment.py").write_text(CACHE_SCRIPT)
    extra = tmp_path / "extra"
    dist = extra / "xg_fake_package-1.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: xg-fake-package\n"
                                   "Version: 1.0\n")
    env = python_env()
    env["XG_STORE"] = str(tmp_path / "store")
    for pythonpath in (env["PYTHONPATH"], env["PYTHONPATH"],
                       os.pathsep.join([env["PYTHONPATH"], str(extra)])):
        out = subprocess.run([sys.executable, "experiment.py"], cwd=tmp_path,
                             env={**env, "PYTHONPATH": pythonpath}, capture_output=True,
                             text=True, timeout=120)
        assert out.returncode == 0, out.stderr
    ex = xg.Experiment(id="cached", backend=tmp_path / "store")
    assert cache_misses(ex, "slow", [1, 2, 3]) == [
        "no output of it is saved yet", "hit",
        "the environment (Python or installed packages) changed"]
    assert "Installed Python packages have been changed" in out.stderr


IMPURE_SCRIPT = """
import os, pathlib
import numpy as np
import experigraph as xg

ex = xg.Experiment(id="script", backend=pathlib.Path(os.environ["XG_STORE"]))
path = ex.parameter("path", default="data.csv")

@ex
def load(path):                        # reads a file without ex.input
    return sum(int(x) for x in open(path).read().split())

@ex
def noisy(total):                      # the seeded global generator
    return total + float(np.random.rand())

@ex.result
def report(total, sample):
    return total

report(load(path), noisy(load(path)))
ex.compute()                           # no seed: a new one every run
"""


def test_impurity_and_seed_dependence_across_script_runs(tmp_path):
    import subprocess
    import sys

    from xg_testing import python_env

    (tmp_path / "experiment.py").write_text(IMPURE_SCRIPT)
    data = tmp_path / "data.csv"
    env = python_env()
    env.update(XG_STORE=str(tmp_path / "store"), EXPERIGRAPH_LOG_LEVEL="INFO")

    def run() -> tuple[list[str], list[str]]:
        out = subprocess.run([sys.executable, "experiment.py"], cwd=tmp_path, env=env,
                             capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        lines = [line.split("] ", 2)[-1] for line in out.stderr.splitlines()]
        return ([x for x, raw in zip(lines, out.stderr.splitlines()) if "[WARNING]" in raw],
                [x for x in lines if x.startswith("Step result depends on the seed")])

    data.write_text("1\n2\n")
    assert run() == ([], [])
    warnings, seeded = run()                          # another process, another seed
    assert warnings == [] and len(seeded) == 1 and seeded[0].startswith(
        "Step result depends on the seed: noisy (inputs: output of load;")
    data.write_text("1\n2\n3\n")
    warnings, seeded = run()
    (line,) = warnings
    assert line.startswith("Step result changed with the same input: load (inputs: "
                           "path='data.csv'; input hash ")
    assert seeded == []                               # noisy's input changed: not compared
    ex = xg.Experiment(id="script", backend=tmp_path / "store")
    assert [[(d.kind, d.subject) for d in ex.get_trial(t).drift] for t in (1, 2, 3)] == [
        [], [("seed", "noisy")], [("impurity", "load")]]
    assert [s.used_seed for s in ex.get_trial(3).steps] == [False, True, False]


def test_parallel_steps_that_draw_nothing_are_impure_not_seed_dependent(make_experiment,
                                                                          tmp_path, caplog):
    """Two loaders side by side on the threaded scheduler, no seed given: a changed file
    read without ex.input makes each impure; neither is taken to depend on the seed."""
    import threading

    ex = make_experiment()
    a = ex.parameter("a")
    train, test = tmp_path / "train.txt", tmp_path / "test.txt"
    barrier = threading.Barrier(2, timeout=30)

    @ex
    def load_train(a):
        barrier.wait()  # both loaders run at the same time
        return a + int(train.read_text())

    @ex
    def load_test(a):
        barrier.wait()
        return a + int(test.read_text())

    @ex.result
    def score(x, y):
        return x + y

    r = score(load_train(a), load_test(a))
    ex.set_parameters(a=1)
    train.write_text("1")
    test.write_text("2")
    r.compute(scheduler="threads")
    train.write_text("10")
    test.write_text("20")
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="experigraph"):
        r.compute(scheduler="threads")
    events = sorted((d.kind, d.subject) for d in ex.get_trial(2).drift
                    if d.kind in ("impurity", "seed"))
    assert events == [("impurity", "load_test"), ("impurity", "load_train")]
    assert not any("depends on the seed" in r.getMessage() for r in caplog.records)
    steps = {s.step: s.used_seed for s in ex.get_trial(2).steps}
    assert steps == {"load_train": False, "load_test": False, "score": False}
