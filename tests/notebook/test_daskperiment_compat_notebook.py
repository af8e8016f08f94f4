"""A daskperiment user changes only the import (issue 11), in a real Jupyter kernel:
the quickstart with ``import experigraph as daskperiment``, and what only a notebook
shows (the shell mode, the displayed reprs and history)."""
from __future__ import annotations

import shutil

import nbformat
import pytest
from nbclient import NotebookClient

from xg_testing import ROOT, python_env

pytestmark = pytest.mark.notebook


def run_notebook(nb, tmp_path, monkeypatch):
    for name, value in python_env().items():
        monkeypatch.setenv(name, value)  # the kernel inherits this environment
    NotebookClient(nb, timeout=180, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = [c.get("outputs", []) for c in nb.cells if c.cell_type == "code"]
    assert not any(o.get("output_type") == "error" for outs in outputs for o in outs), \
        [o for outs in outputs for o in outs if o.get("output_type") == "error"]
    return ["".join(o.get("text", "") + o.get("data", {}).get("text/plain", "") for o in outs
                    if o.get("name") != "stderr")  # not the log lines
            for outs in outputs]


def test_quickstart_runs_with_the_daskperiment_import(tmp_path, monkeypatch):
    notebook = tmp_path / "quickstart.ipynb"
    shutil.copy(ROOT / "notebooks" / "quickstart.ipynb", notebook)
    nb = nbformat.read(notebook, as_version=4)
    swapped = 0
    for cell in nb.cells:
        if cell.cell_type == "code":
            if "import experigraph as xg" in cell.source:
                swapped += 1
            cell.source = cell.source.replace("import experigraph as xg",
                                              "import experigraph as daskperiment")
            cell.source = cell.source.replace("xg.", "daskperiment.")
    assert swapped == 1
    assert "xg" not in "".join(c.source for c in nb.cells if c.cell_type == "code")
    texts = run_notebook(nb, tmp_path, monkeypatch)
    joined = "\n".join(texts)
    assert "3.3333333333333335" in joined and "2.5" in joined
    assert "failed as expected: division by zero" in joined

    import experigraph as xg

    ex = xg.Experiment(id="quickstart", backend=tmp_path / "experigraph_cache")
    history = ex.get_history(verbose=True)
    assert history["Status"].tolist() == ["succeeded", "succeeded", "succeeded", "failed",
                                          "succeeded"]
    assert ex.get_persisted(step="features", trial_id=3) == [2, 5, 10]


CELLS = [
    "import experigraph as daskperiment\n"
    "ex = daskperiment.Experiment(id='nbcompat', backend='cache_dir')\n"
    "a = ex.parameter('a')\n"
    "user = ex.parameter('user_name')\n"
    "ex",
    "a",
    "@ex\n"
    "def add(x, y):\n"
    "    return x + y\n\n"
    "@ex.result\n"
    "def score(s):\n"
    "    ex.save_metric(metric_key='m', epoch=0, value=s)\n"
    "    return s / 2\n\n"
    "r = score(add(a + 1, a + 3))\n"
    "ex.set_parameters(a=1, user_name='nb')\n"
    "r.compute()",
    "a",
    "print(ex.get_environment())",
    "print(ex.get_environment(category='python'))",
    "ex.get_history(verbose=True)",
    "print(ex.get_code())",
    "print(repr(ex))",
]


def test_what_a_notebook_shows_is_daskperiments(tmp_path, monkeypatch):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in CELLS])
    out = run_notebook(nb, tmp_path, monkeypatch)
    assert out[0] == "Experiment(id: nbcompat, trial_id: 0, backend: file://" \
        f"{(tmp_path / 'cache_dir').resolve()})"
    assert out[1] == "Parameter(a: Undefined)"
    assert out[2] == "3.0"
    assert out[3] == "Parameter(a: 1<class 'int'>)"
    summary = out[4].splitlines()
    assert "Python Shell Mode: Jupyter Notebook" in summary
    assert summary[0].startswith("Platform Information: ")
    assert summary[-3:] == ["Git Repository: Not Git Controlled",
                            "Git Active Branch: Not Git Controlled",
                            "Git HEAD Commit: Not Git Controlled"]
    assert "Python Shell Mode: Jupyter Notebook" in out[5].splitlines()
    history = out[6]
    assert "user_name" in history and "nb" in history
    assert "<class 'float'>" in history and "NaN" in history
    assert "    return x + y\n\n\n@ex.result\ndef score(s):" in out[7]
    assert out[8].strip() == out[0].replace("trial_id: 0", "trial_id: 1")

    import experigraph as xg

    ex = xg.Experiment(id="nbcompat", backend=tmp_path / "cache_dir")
    assert ex.get_parameters(1) == {"a": 1, "user_name": "nb"}
    assert ex.get_environment_snapshot(1, "python")["shell"] == "Jupyter Notebook"
    assert ex.load_metric(metric_key="m", trial_id=1)[1].tolist() == [6]
