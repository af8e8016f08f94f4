"""A daskperiment user changes only the import (issue 11): each gap, through the public API,
on the file and Redis backends."""
from __future__ import annotations

import datetime as dt
import decimal
import math
import re
import subprocess
import sys

import dask
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from dask.delayed import Delayed

import experigraph as xg
from experigraph.cli import main as cli_main
from experigraph.errors import ExperigraphError, TrialIDNotFoundError
from fixtures_backends import SUBPROCESS_PRELUDE, backend_to_arg
from xg_testing import python_env


@pytest.fixture(params=["file", "redis"])
def backend(request):
    make = request.getfixturevalue(f"make_{request.param}_backend")
    return make(experiment_id="compat")


def experiment(backend):
    return xg.Experiment(id=backend.experiment_id, backend=backend)


# -- 1. arithmetic on parameters, plain dask.delayed pieces ---------------------------------
def test_arithmetic_on_parameters_runs_and_is_recorded(backend):
    ex = experiment(backend)
    a = ex.parameter("a")

    @ex
    def add(x, y):
        return x + y

    @ex.result
    def score(s):
        return s / 2

    r = score(add(a + 1, a + 3))
    ex.set_parameters(a=1)
    assert r.compute() == 3.0
    assert ex.set_parameters(a=2).compute() == 4.0
    history = ex.get_history()
    assert history["a"].tolist() == [1, 2] and history["Result"].tolist() == [3.0, 4.0]
    assert ex.get_parameters(2) == {"a": 2}
    first, second = ([s for s in ex.get_trial(i).steps if s.step == "add"][0] for i in (1, 2))
    assert first.parameters == second.parameters == ("a",)  # reached through a + 1, a + 3
    assert first.input_hash != second.input_hash  # the input hash covers the untracked values


def test_plain_dask_delayed_mixed_with_steps_runs_in_the_trial(backend):
    ex = experiment(backend)
    a = ex.parameter("a")
    b = ex.parameter("b", default=10)

    @ex
    def double(x):
        return x * 2

    @ex
    def add(x, y):
        return x + y

    @ex.result
    def score(s):
        return s + 0.5

    plain = dask.delayed(lambda v: v + 1)(double(a)) * 2  # untracked pieces on a step
    r = score(add(plain, b))
    ex.set_parameters(a=3)
    assert r.compute(seed=1) == (3 * 2 + 1) * 2 + 10 + 0.5
    record = ex.get_trial(1)
    assert record.parameters == {"a": 3, "b": 10}
    steps = {s.step: s for s in record.steps}
    assert set(steps) == {"double", "add", "score"}
    assert steps["add"].dependencies == (steps["double"].key,)  # seen through the plain part
    assert set(steps["add"].parameters) == {"b"}
    table = ex.sweep(a=[1, 2], progress=False)
    assert table["Result"].tolist() == [16.5, 20.5]
    assert ex.set_parameters(a=1).compute(scheduler="processes") == 16.5
    lineage = ex.get_lineage("add", 1)
    assert "double" in lineage["steps"] and "a" in lineage["parameters"]


def test_plain_pieces_run_on_a_distributed_cluster(make_experiment, client):
    ex = make_experiment()
    a = ex.parameter("a")

    @ex
    def double(x):
        return x * 2

    @ex.result
    def score(s):
        return s + ex.current_trial_id * 0

    r = score(dask.delayed(lambda v: v + 1)(double(a)) * 2 + a)
    ex.set_parameters(a=3)
    assert r.compute(client=client) == 17
    assert ex.sweep(a=[1, 2], client=client, progress=False)["Result"].tolist() == [7, 12]
    assert [s.step for s in ex.get_trial(1).steps] == ["double", "score"]
    assert {s.pid for s in ex.get_trial(1).steps} != {__import__("os").getpid()}


def test_a_plain_delayed_reads_parameters_directly(backend):
    ex = experiment(backend)
    a = ex.parameter("a")
    unread = ex.parameter("unread")

    @ex.result
    def total(values):
        return sum(values)

    r = total([dask.delayed(pow)(a, 2), a * 10])
    with pytest.raises(xg.ParameterUndefinedError, match="'a'"):
        r.compute()
    assert ex.get_history().empty
    assert ex.set_parameters(a=3).compute() == 39
    assert ex.get_parameters(1) == {"a": 3}
    assert "unread" not in ex.get_history().columns and repr(unread) == \
        "Parameter(unread: Undefined)"


def test_a_plain_piece_on_another_experiments_parameter_is_refused(make_experiment,
                                                                     experiment_id):
    ex = make_experiment()
    other = make_experiment(id=f"{experiment_id}_other")
    foreign = other.parameter("zzz", default=1)

    @ex.result
    def ident(v):
        return v

    r = ident(foreign + 1)
    with pytest.raises(xg.ParameterUndeclaredError, match="'zzz' is not declared"):
        r.compute()
    assert ex.get_history().empty


# -- 2. daskperiment's keyword names ----------------------------------------------------
def test_daskperiment_keyword_names_and_ours(backend):
    ex = experiment(backend)
    a = ex.parameter("a")

    @ex.persist
    def feature(a):
        return [a, a * 2]

    @ex.result
    def train(f):
        ex.save_metric(metric_key="loss", epoch=0, value=1.0)
        ex.save_metric("loss", epoch=1, value=0.5)
        ex.save_metric(key="acc", epoch=0, value=0.9)
        return sum(f)

    train(feature(a))
    ex.set_parameters(a=1).compute()
    by_theirs = ex.load_metric(metric_key="loss", trial_id=1)
    by_ours = ex.load_metric("loss", trial_id=[1])
    pd.testing.assert_frame_equal(by_theirs, by_ours)
    assert by_theirs[1].tolist() == [1.0, 0.5] and by_theirs.index.name == "Epoch"
    assert ex.load_metric(key="acc", trial_id=1)[1].tolist() == [0.9]
    assert ex.get_persisted(step="feature", trial_id=1) == [1, 2]
    assert ex.get_persisted("feature", 1) == ex.get_persisted(step_name="feature", trial_id=1)
    with pytest.raises(TypeError, match="both 'step_name' and 'step'"):
        ex.get_persisted("feature", 1, step="feature")
    with pytest.raises(TypeError, match="missing required argument: 'key' \\(or 'metric_key'\\)"):
        ex.load_metric(trial_id=1)


# -- 3. every declared parameter with a value is recorded -------------------------------
def test_a_parameter_no_step_reads_is_recorded(backend):
    ex = experiment(backend)
    a = ex.parameter("a")
    ex.parameter("user_name")
    ex.parameter("team", default="ml")
    ex.parameter("never_set")

    @ex.result
    def ident(a):
        return a

    ident(a)
    ex.set_parameters(a=1, user_name="sinhrks").compute()
    assert ex.get_parameters(1) == {"a": 1, "user_name": "sinhrks", "team": "ml"}
    history = ex.get_history()
    assert history.loc[1, "user_name"] == "sinhrks" and history.loc[1, "team"] == "ml"
    assert "never_set" not in history.columns
    table = ex.sweep(user_name=["x", "y"], progress=False)
    assert table["user_name"].tolist() == ["x", "y"]


# -- 4. the environment as text --------------------------------------------------------
def test_environment_is_daskperiment_text(backend):
    ex = experiment(backend)
    a = ex.parameter("a")

    @ex.result
    def ident(a):
        return a

    ident(a)
    ex.set_parameters(a=1).compute()
    summary = ex.get_environment(1)
    assert isinstance(summary, str)
    labels = [line.split(":")[0] for line in summary.splitlines()]
    assert labels[:5] == ["Platform Information", "Device CPU Count", "Python Implementation",
                          "Python Version", "Python Shell Mode"]
    assert labels[5] in ("Python venv", "Python venv Name")
    assert labels[-3:] == ["Git Repository", "Git Active Branch", "Git HEAD Commit"]
    assert f"Python Version: {sys.version.split()[0]}" in summary.splitlines()
    assert "Python Shell Mode: Test" in summary.splitlines()
    assert ex.get_environment() .splitlines()[0] == summary.splitlines()[0]
    platform = ex.get_environment(1, "platform").splitlines()
    assert platform[1] == f"Device CPU Count: {__import__('os').cpu_count()}"
    python = ex.get_environment(trial_id=1, category="PYTHON")
    assert "Python venv Flag: " in python and "Python Base Prefix: " in python
    assert f"pandas          : {pd.__version__}" in ex.get_environment(1, "pandas")
    assert ex.get_environment(1, "numpy").startswith(f"NumPy Version: {np.__version__}")
    assert ex.get_environment(1, "git").startswith("Git Repository: ")
    assert ex.get_environment(1, "conda")
    assert "Brand: " in ex.get_environment(category="cpu")
    assert isinstance(ex.get_environment(1, "scipy"), str)
    requirements = ex.get_environment(1, "requirements")
    packages = ex.get_python_packages(1)
    assert isinstance(packages, str) and packages == requirements
    assert f"pandas=={pd.__version__}" in packages.splitlines()
    with pytest.raises(ValueError, match="platform, cpu, python, numpy, scipy, pandas, conda, "
                                         "git, requirements"):
        ex.get_environment(1, "gpu")
    snap = ex.get_environment_snapshot(1)  # the structured form, as compare reads it
    assert {"platform", "python", "packages", "numeric", "git"} <= set(snap)
    assert ex.get_environment_snapshot(1, "python")["shell"] == "Test"


# -- 5. errors a daskperiment user catches as ValueError --------------------------------
def test_errors_daskperiment_raised_as_value_error_still_are(backend):
    ex = experiment(backend)
    a = ex.parameter("a")

    @ex.persist
    def one(a):
        return a

    @ex.result
    def ident(x):
        return x

    r = ident(one(a))
    with pytest.raises(ValueError):  # ParameterUndefinedError
        r.compute()
    with pytest.raises(ValueError):  # ParameterUndeclaredError
        ex.set_parameters(z=1)
    ex.set_parameters(a=1).compute()
    cases = [
        lambda: ex.get_parameters(99),
        lambda: ex.get_code(99),
        lambda: ex.get_persisted("one", 42),
        lambda: ex.load_metric("loss", 7),
        lambda: ex.current_trial_id,
        lambda: ex.save_metric("loss", 0, 1.0),
        lambda: ex.get_persisted("nope", 1),
        lambda: ex.load_metric("nope", 1),
        lambda: ex.get_environment(1, "gpu"),
        lambda: xg.Experiment(id="bad/id", backend=backend),
    ]
    for case in cases:
        with pytest.raises(ValueError) as info:
            case()
        assert isinstance(info.value, ExperigraphError), info.value
    with pytest.raises(ValueError, match="Unsupported backend 42"):
        xg.Experiment(id="x", backend=42)
    with pytest.raises(TrialIDNotFoundError):
        ex.current_trial_id
    assert issubclass(xg.errors.NotInTrialError, ValueError)


# -- 6. history as daskperiment showed it ------------------------------------------------
def test_history_description_result_type_and_process_time(backend):
    ex = experiment(backend)
    a = ex.parameter("a")

    @ex.result
    def inverse(a):
        return 1 / a

    inverse(a)
    ex.set_parameters(a=2).compute()
    with pytest.raises(ZeroDivisionError):
        ex.set_parameters(a=0).compute()
    history = ex.get_history(verbose=True)
    assert math.isnan(history.loc[1, "Description"])
    assert history.loc[2, "Description"] == "ZeroDivisionError(division by zero)"
    assert history["Result Type"].tolist() == ["<class 'float'>", "None"]
    assert isinstance(history.loc[1, "Process Time"], pd.Timedelta)
    assert pd.api.types.is_timedelta64_dtype(history["Process Time"])


def test_cli_history_shows_process_time_readably(backend_root, experiment_id):
    ex = xg.Experiment(id=experiment_id, backend=backend_root)
    a = ex.parameter("a")

    @ex.result
    def ident(a):
        return a

    ident(a)
    ex.set_parameters(a=1).compute()
    result = CliRunner().invoke(cli_main, ["history", experiment_id, "--backend",
                                           str(backend_root)])
    assert result.exit_code == 0, result.output
    assert "days" not in result.output
    row = [line for line in result.output.splitlines() if line.startswith("1 ")][0]
    assert re.search(r" \d+\.\d{3} s ", row), row


# -- 7. values keep their types -------------------------------------------------------
TYPED = {
    "ts": pd.Timestamp("2024-01-02 03:04:05.123456789", tz="Asia/Tokyo"),
    "td": pd.Timedelta("1 days 00:00:01.5"),
    "when": dt.datetime(2024, 1, 2, 3, 4, 5),
    "day": dt.date(2024, 1, 2),
    "f32": np.float32(0.1),
    "i64": np.int64(7),
    "flag": np.bool_(True),
    "price": decimal.Decimal("19.99"),
    "shape": (3, (4, 5)),
}

READ_BACK = SUBPROCESS_PRELUDE + """
import experigraph as xg
backend = backend_from_arg(sys.argv[1])
ex = xg.Experiment(id=backend.experiment_id, backend=backend)
params = ex.get_parameters(1)
result = ex.get_trial(1).result
history = ex.get_history()
for name, value in sorted(params.items()):
    print(name, type(value).__name__, repr(value))
print("result", type(result).__name__, repr(result))
print("history-td", type(history.loc[1, "td"]).__name__, repr(history.loc[1, "td"]))
"""


def test_parameter_and_result_types_survive_every_backend_and_process(backend):
    ex = experiment(backend)
    declared = {name: ex.parameter(name) for name in TYPED}

    @ex.result
    def echo(ts, td, when, day, f32, i64, flag, price, shape):
        return ts + td

    echo(**declared)
    ex.set_parameters(**TYPED)
    value = ex.compute()
    assert value == TYPED["ts"] + TYPED["td"]
    expected = dict(TYPED)
    again = experiment(backend)  # a fresh object reads the stored records
    for source in (ex, again):
        params = source.get_parameters(1)
        assert {k: (type(v), repr(v)) for k, v in params.items()} == \
            {k: (type(v), repr(v)) for k, v in expected.items()}
        assert type(source.get_trial(1).result) is pd.Timestamp
        assert source.get_trial(1).result == value
        history = source.get_history()
        assert history.loc[1, "td"] == TYPED["td"] and history.loc[1, "ts"] == TYPED["ts"]
        assert history.loc[1, "price"] == TYPED["price"]
        assert type(history.loc[1, "price"]) is decimal.Decimal
        assert history.loc[1, "shape"] == (3, (4, 5))
        assert history.loc[1, "Result"] == value
    proc = subprocess.run([sys.executable, "-c", READ_BACK, backend_to_arg(backend)],
                          env=dict(python_env(), EXPERIGRAPH_LOG_LEVEL="WARNING"),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    lines = dict(line.split(" ", 1) for line in proc.stdout.splitlines())
    for name, v in TYPED.items():
        assert lines[name] == f"{type(v).__name__} {v!r}"
    assert lines["result"] == f"Timestamp {value!r}"
    assert lines["history-td"] == f"Timedelta {TYPED['td']!r}"


# -- 8. printed forms ------------------------------------------------------------------
def test_reprs_and_code_layout(backend):
    ex = experiment(backend)
    a = ex.parameter("a")
    b = ex.parameter("b", default=2.5)
    assert repr(a) == "Parameter(a: Undefined)"
    assert repr(b) == "Parameter(b: 2.5<class 'float'>)"
    assert isinstance(b.real, Delayed)  # attributes stay dask's lazy access

    @ex
    def prepare(a, b):
        return a + b

    @ex.result
    def score(s):
        return s * 2

    score(prepare(a, b))
    assert repr(ex) == f"Experiment(id: {ex.id}, trial_id: 0, backend: {backend.uri})"
    ex.set_parameters(a=1).compute()
    assert repr(a) == "Parameter(a: 1<class 'int'>)"
    assert repr(ex) == f"Experiment(id: {ex.id}, trial_id: 1, backend: {backend.uri})"
    for code in (ex.get_code(), ex.get_code(1)):
        assert "    return a + b\n\n\n@ex.result\ndef score(s):" in code
        assert code.startswith("@ex\ndef prepare(a, b):") and code.endswith("return s * 2\n")


# -- 9. backends as daskperiment accepted them ----------------------------------------
def test_a_plain_string_path_is_a_file_backend(tmp_path, monkeypatch, experiment_id):
    monkeypatch.chdir(tmp_path)
    ex = xg.Experiment(id=experiment_id, backend="some/dir")
    a = ex.parameter("a")

    @ex.result
    def ident(a):
        return a

    ident(a)
    ex.set_parameters(a=5).compute()
    assert (tmp_path / "some" / "dir").is_dir()
    again = xg.Experiment(id=experiment_id, backend=tmp_path / "some" / "dir")
    assert again.get_history()["Result"].tolist() == [5]
    assert ex.backend.uri == again.backend.uri
    with pytest.raises(ValueError, match="did you mean 'redis://...'"):
        xg.Experiment(id=experiment_id, backend="redis:localhost")


def test_history_columns_keep_the_declaration_order_in_a_new_process(tmp_path, run_python):
    run_python(
        "import pathlib\n"
        "import experigraph as xg\n"
        f"ex = xg.Experiment('order', backend=pathlib.Path({str(tmp_path / 'store')!r}))\n"
        "zeta = ex.parameter('zeta'); alpha = ex.parameter('alpha')\n"
        "user_name = ex.parameter('user_name', default='ana')\n"
        "@ex.result\n"
        "def f(alpha, zeta):\n"
        "    return alpha + zeta\n"
        "f(alpha, zeta)\n"
        "ex.set_parameters(zeta=1, alpha=2).compute()\n")
    fresh = xg.Experiment("order", backend=tmp_path / "store")
    assert list(fresh.get_history().columns[:3]) == ["zeta", "alpha", "user_name"]
    assert list(fresh.get_parameters(1)) == ["zeta", "alpha", "user_name"]
