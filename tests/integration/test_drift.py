"""Code, data and git drift are reported once, with the right diff, and recorded;
nothing is reported when nothing changed."""
from __future__ import annotations

import importlib.util
import itertools
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
