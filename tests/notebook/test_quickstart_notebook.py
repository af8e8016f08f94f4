"""notebooks/quickstart.ipynb runs top to bottom in a real Jupyter kernel."""
from __future__ import annotations

import shutil

import nbformat
import pytest
from nbclient import NotebookClient

from xg_testing import ROOT, python_env

pytestmark = pytest.mark.notebook


def test_quickstart_notebook_runs_and_records(tmp_path, monkeypatch):
    notebook = tmp_path / "quickstart.ipynb"
    shutil.copy(ROOT / "notebooks" / "quickstart.ipynb", notebook)
    for name, value in python_env().items():
        monkeypatch.setenv(name, value)  # the kernel inherits this environment
    nb = nbformat.read(notebook, as_version=4)
    NotebookClient(nb, timeout=180, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = {i: c.get("outputs", []) for i, c in enumerate(nb.cells) if c.cell_type == "code"}
    texts = {i: "".join(o.get("text", "") + o.get("data", {}).get("text/plain", "")
                        for o in outs) for i, outs in outputs.items()}
    joined = "\n".join(texts.values())
    assert "3.3333333333333335" in joined and "2.5" in joined
    assert "failed as expected: division by zero" in joined
    assert "Trial 1 -> trial 2" in joined and "b: 2 -> 3" in joined
    assert "0.125" in joined  # the final loss after 3 epochs
    assert not any(o.get("output_type") == "error" for outs in outputs.values() for o in outs)

    import experigraph as xg

    ex = xg.Experiment(id="quickstart", backend=tmp_path / "experigraph_cache")
    history = ex.get_history(verbose=True)
    assert list(history.index) == [1, 2, 3, 4, 5]
    assert history["Status"].tolist() == ["succeeded", "succeeded", "succeeded", "failed",
                                          "succeeded"]
    assert history.loc[3, "final_loss"] == 0.125
    assert ex.get_persisted("features", 3) == [2, 5, 10]
    assert ex.get_trial(5).rerun_of == 1

    # files, models and lineage
    assert "3\n4\n1\n9\n2\n6" in joined  # trial 1's clean.csv, brought back
    assert "written by quickstart-prep trial 2 (succeeded): threshold=2, step clean" in joined
    prep = xg.Experiment(id="quickstart-prep", backend=tmp_path / "experigraph_cache")
    assert (tmp_path / "clean.csv").read_text() == "3\n4\n9\n6\n"
    assert prep.get_artifacts(1)["kept"].tolist() == [True]
    model = xg.Experiment(id="quickstart-model", backend=tmp_path / "experigraph_cache")
    assert model.list_models()[["Model", "Trial ID", "Framework"]].values.tolist() == [
        ["trend", 1, "numpy"]]
    assert len(model.get_model("trend")) == 2
