"""Models recorded with ex.model: with their trial, step, framework and its version."""
from __future__ import annotations

import importlib.metadata

import numpy as np
import pytest

import experigraph as xg
from experigraph.board.table import TrialTable
from experigraph.errors import (ArtifactError, InvalidArgumentError, NotInTrialError,
                                NotRecordedError, SignatureError)

from versioning_setup import setup  # noqa: F401 - the fixture

sklearn = pytest.importorskip("sklearn")
from sklearn.linear_model import LogisticRegression  # noqa: E402

pytestmark = pytest.mark.timeout(240)


def training(ex):
    c = ex.parameter("c", default=1.0)

    @ex
    def data():
        rng = np.random.default_rng(0)
        x = rng.normal(size=(60, 3))
        return x, (x[:, 0] + 0.1 * x[:, 1] > 0).astype(int)

    @ex.result
    def train(xy, c):
        x, y = xy
        clf = LogisticRegression(C=c).fit(x, y)
        ex.model(clf, "classifier")
        return ex.metric("accuracy", float(clf.score(x, y)))

    return train(data(), c)


def test_a_fitted_model_comes_back_from_its_trial(setup):
    ex = setup()
    result = training(ex)
    ex.set_parameters(c=0.01)
    result.compute()
    ex.set_parameters(c=10.0)
    result.compute()
    x = np.eye(3)
    first, latest = ex.get_model("classifier", 1), ex.get_model("classifier")
    assert isinstance(first, LogisticRegression)
    assert first.C == 0.01 and latest.C == 10.0
    assert not np.allclose(first.coef_, latest.coef_)
    assert latest.predict(x).shape == (3,)
    models = ex.list_models()
    assert models[["Model", "Trial ID", "Step", "Framework", "Version", "Format"]].to_dict(
        "records") == [
        {"Model": "classifier", "Trial ID": t, "Step": "train", "Framework": "sklearn",
         "Version": importlib.metadata.version("scikit-learn"), "Format": "pickle"}
        for t in (1, 2)]
    assert list(models["Type"]) == ["sklearn.linear_model._logistic.LogisticRegression"] * 2
    assert models["accuracy"].between(0, 1).all()


def test_a_model_saved_as_a_file_is_kept_as_an_artifact(setup, tmp_path):
    ex = setup()
    saved = tmp_path / "weights.npy"

    @ex.result
    def train():
        np.save(saved, np.arange(5.0))
        ex.model(saved, "weights", flavor="numpy")
        return 1

    train().compute()
    saved.unlink()
    path = ex.get_model("weights")
    assert np.array_equal(np.load(path), np.arange(5.0))
    row = ex.list_models().iloc[0]
    assert (row["Framework"], row["Format"]) == ("numpy", "path")
    again = ex.get_model("weights", 1, dest=tmp_path / "w.npy")
    assert again == tmp_path / "w.npy" and np.array_equal(np.load(again), np.arange(5.0))


def test_latest_model_skips_failed_trials_unless_asked(make_experiment):
    ex = make_experiment()
    n = ex.parameter("n")

    @ex.result
    def train(n):
        ex.model({"n": n}, "m")
        if n == 2:
            raise RuntimeError("after recording the model")
        return n

    train(n)
    ex.set_parameters(n=1).compute()
    with pytest.raises(RuntimeError):
        ex.set_parameters(n=2).compute()
    assert ex.get_model("m") == {"n": 1}
    assert ex.get_model("m", 2) == {"n": 2}
    assert list(ex.list_models()["Status"]) == ["succeeded", "failed"]


def test_model_pickles_are_signed(make_experiment, monkeypatch):
    monkeypatch.setenv("EXPERIGRAPH_SECRET_KEY", "team-key")
    ex = make_experiment()

    @ex.result
    def train():
        ex.model([1, 2, 3], "m")
        return 1

    train().compute()
    monkeypatch.setenv("EXPERIGRAPH_SECRET_KEY", "another-key")
    with pytest.raises(SignatureError):
        ex.get_model("m")
    assert ex.get_model("m", trust=True) == [1, 2, 3]


def test_bad_model_declarations_say_what_to_do(make_experiment, tmp_path):
    ex = make_experiment()
    with pytest.raises(NotInTrialError):
        ex.model(object(), "m")
    case = ex.parameter("case")

    @ex.result
    def train(case):
        if case == "name":
            ex.model([1], "no spaces allowed")
        elif case == "path":
            ex.model(tmp_path / "missing.pkl", "m")
        elif case == "pickle":
            import threading
            ex.model(threading.Lock(), "lock")
        return case

    train(case)
    with pytest.raises(InvalidArgumentError, match="model name"):
        ex.set_parameters(case="name").compute()
    with pytest.raises(ArtifactError, match="does not exist"):
        ex.set_parameters(case="path").compute()
    with pytest.raises(ArtifactError, match="cannot be pickled"):
        ex.set_parameters(case="pickle").compute()
    with pytest.raises(NotRecordedError, match=r"models: none"):
        ex.get_model("m")


def test_redis_without_a_location_keeps_model_objects_in_the_backend(make_redis_backend):
    backend = make_redis_backend()
    ex = xg.Experiment(backend.experiment_id, backend=backend)

    @ex.result
    def train():
        ex.model({"w": [1.0, 2.0]}, "small")
        return 1

    train().compute()
    assert xg.Experiment(backend.experiment_id, backend=backend).get_model("small") == \
        {"w": [1.0, 2.0]}


def test_dashboard_shows_which_trials_produced_models(make_experiment):
    ex = make_experiment()
    n = ex.parameter("n")

    @ex.result
    def train(n):
        if n:
            ex.model({"n": n}, "classifier")
            ex.model({"n": n}, "scaler")
        return n

    train(n)
    for value in (0, 1):
        ex.set_parameters(n=value).compute()
    table = TrialTable(ex)
    table.refresh()
    assert "Models" in [c.title for c in table.columns]
    assert table.data()["m:Models"] == ["", "classifier, scaler"]


def test_cli_lists_models(make_experiment, backend_root):
    from click.testing import CliRunner

    from experigraph.cli import main

    ex = make_experiment()
    training(ex)
    ex.set_parameters(c=0.5).compute()
    out = CliRunner().invoke(main, ["models", ex.id, "--backend", str(backend_root)])
    assert out.exit_code == 0, out.output
    header, row = out.output.splitlines()[:2]
    assert header.split()[:5] == ["Model", "Trial", "ID", "Step", "Framework"]
    assert row.split()[:4] == ["classifier", "1", "train", "sklearn"]
    empty = make_experiment(id="nothing")
    empty.parameter("x")

    @empty.result
    def noop(x):
        return x

    noop(empty.parameters["x"])
    empty.set_parameters(x=1).compute()
    none = CliRunner().invoke(main, ["models", "nothing", "--backend", str(backend_root)])
    assert "No models recorded" in none.output


def test_show_names_the_files_and_models_of_a_trial(make_experiment, backend_root, tmp_path):
    from click.testing import CliRunner

    from experigraph.cli import main

    ex = make_experiment()
    out = tmp_path / "pred.csv"

    @ex.result
    def train():
        out.write_text("1\n")
        ex.output(out)
        ex.model(LogisticRegression(), "clf")
        return 1

    train().compute()
    shown = CliRunner().invoke(main, ["show", ex.id, "1", "--backend", str(backend_root)])
    assert shown.exit_code == 0, shown.output
    files = [line.split() for line in shown.output.splitlines() if line.endswith(str(out))]
    assert files == [["output", "train", "2", "B", "kept", str(out)]], shown.output
    version = importlib.metadata.version("scikit-learn")
    assert (f"clf: sklearn.linear_model._logistic.LogisticRegression (sklearn {version}), "
            "step train") in shown.output


def test_models_and_outputs_are_kept_from_distributed_workers(client, make_redis_backend,
                                                              tmp_path):
    backend = make_redis_backend()
    ex = xg.Experiment(backend.experiment_id, backend=backend, artifacts=tmp_path / "art")
    c = ex.parameter("c")

    @ex.result
    def train(c):
        x = np.array([[0.0], [1.0], [2.0], [3.0]])
        clf = LogisticRegression(C=c).fit(x, [0, 0, 1, 1])
        target = tmp_path / f"coef-{c}.txt"  # one file per trial: the trials run at once
        target.write_text(f"{clf.coef_[0][0]:.6f}\n")
        ex.output(target)
        ex.model(clf, "clf")
        return float(clf.coef_[0][0])

    train(c)
    ex.sweep(c=[0.1, 10.0], client=client, progress=False)
    for trial_id, value in ((1, 0.1), (2, 10.0)):
        assert ex.get_model("clf", trial_id).C == value
        assert ex.get_artifacts(trial_id)["kept"].tolist() == [True]
        kept = ex.get_artifact(trial_id, f"coef-{value}.txt",
                               tmp_path / f"c{trial_id}.txt").read_text()
        assert float(kept) == pytest.approx(ex.get_trial(trial_id).result, abs=1e-6)
