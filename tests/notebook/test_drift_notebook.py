"""Drift, impurity and seed-dependence as a notebook user meets them, in a real kernel.

Each case is provoked one at a time in cells of its own (with an experiment of its
own); the test reads what each cell printed on stderr (experigraph's log lines) and
what was recorded, and checks that nothing is said for identical reruns, a re-run
cell, a cosmetic edit or values without a deterministic hash.
"""
from __future__ import annotations

import json
import re

import nbformat
import pytest
from nbclient import NotebookClient

from xg_testing import python_env

pytestmark = pytest.mark.notebook

SETUP = """
import json, pathlib, random, threading
import numpy as np
import experigraph as xg

STORE = pathlib.Path("store")

def drift(ex):
    print("DRIFT " + json.dumps([[[d.kind, d.subject] for d in ex.get_trial(t).drift]
                                 for t in ex.get_history().index]))
"""

CELLS = [
    ("setup", SETUP),
    # the example: global state read by a step, no seeds given
    ("impure-1", """
ex = xg.Experiment(id="impure", backend=STORE)
a = ex.parameter("a")
state = {"offset": 0}

@ex
def step(a):
    return a + state["offset"]

@ex.result
def res(x):
    return x

r = res(step(a)); ex.set_parameters(a=1)
r.compute()
"""),
    ("impure-2", "r.compute()"),
    ("impure-3", 'state["offset"] = 1\nr.compute()'),
    ("impure-4", "r.compute()\ndrift(ex)"),
    # a CSV read without ex.input, changed between trials ("Track Data Version")
    ("data-1", """
pathlib.Path("data.csv").write_text("1\\n2\\n")
ex = xg.Experiment(id="data", backend=STORE)
path = ex.parameter("path", default="data.csv")

@ex
def load(path):
    return sum(int(x) for x in open(path).read().split())

@ex.result
def total(x):
    return x

total(load(path))
ex.compute()
"""),
    ("data-2", 'pathlib.Path("data.csv").write_text("1\\n2\\n3\\n")\nex.compute()\ndrift(ex)'),
    # the same cell run twice, then a cosmetic edit, then a real change
    ("rerun-1", """
ex = xg.Experiment(id="cells", backend=STORE)
a = ex.parameter("a")

@ex
def prepare(a):
    return a + 1

@ex.result
def final(x):
    return x * 10

final(prepare(a))
ex.set_parameters(a=1).compute()
"""),
    ("rerun-2", None),  # rerun-1 again
    ("cosmetic", """
ex = xg.Experiment(id="cells", backend=STORE)
a = ex.parameter("a")

@ex
def prepare(a):
    \"\"\"Add one.\"\"\"
    return a + 1  # the same computation

@ex.result
def final(x):
    return x * 10

final(prepare(a))
ex.set_parameters(a=1).compute()
"""),
    ("code", """
ex = xg.Experiment(id="cells", backend=STORE)
a = ex.parameter("a")

@ex
def prepare(a):
    return a + 2

@ex.result
def final(x):
    return x * 10

final(prepare(a))
ex.set_parameters(a=1).compute()
drift(ex)
"""),
    # the decorator: @ex -> @ex.persist, then cache=True on and off
    ("declare-1", """
ex = xg.Experiment(id="declare", backend=STORE)
a = ex.parameter("a")

@ex
def prep(a):
    return a * 3

@ex.result
def out(x):
    return x

out(prep(a))
ex.set_parameters(a=1).compute()
"""),
    ("declare-2", """
@ex.persist
def prep(a):
    return a * 3

out(prep(a))
ex.compute()
"""),
    ("declare-3", """
@ex.step(cache=True)
def prep(a):
    return a * 3

out(prep(a))
ex.compute()
"""),
    ("declare-4", """
@ex
def prep(a):
    return a * 3

out(prep(a))
ex.compute()
drift(ex)
print("HASHES", len({ex.get_trial(t).code["prep"]["code_hash"] for t in (1, 2, 3, 4)}))
"""),
    # seeded randomness: seed-dependent, not impure; the step's own generator: impure
    ("seed-1", """
ex = xg.Experiment(id="seeded", backend=STORE)
a = ex.parameter("a")

@ex
def noisy(a):
    return a + np.random.rand() + random.random()

@ex.result
def keep(x):
    return x

keep(noisy(a))
ex.set_parameters(a=1)
ex.compute(); ex.compute()
"""),
    ("seed-2", "ex.compute(seed=5); ex.compute(seed=5)\ndrift(ex)"),
    ("own-rng", """
ex = xg.Experiment(id="ownrng", backend=STORE)
a = ex.parameter("a")

@ex
def unseeded(a):
    return a + np.random.default_rng().random()

@ex.result
def keep(x):
    return x

keep(unseeded(a))
ex.set_parameters(a=1)
ex.compute(); ex.compute()
drift(ex)
"""),
    # no deterministic hash: never impure, and reproduce says what it did not compare
    ("unhashable", """
class Model:
    def __init__(self, coef):
        self.coef, self.lock = coef, threading.Lock()

ex = xg.Experiment(id="unhashable", backend=STORE)
a = ex.parameter("a")
calls = []

@ex
def fit(a):
    calls.append(1)
    return Model(a + len(calls))

@ex.result
def score(m):
    return 1.0

score(fit(a))
ex.set_parameters(a=1)
ex.compute(); ex.compute()
drift(ex)
print(ex.reproduce(1))
"""),
]


def log_lines(text: str, level: str) -> list[str]:
    return [line.split("] ", 2)[-1] for line in text.splitlines() if f"[{level}]" in line]


def test_drift_cases_in_a_notebook_kernel(tmp_path, monkeypatch):
    for name, value in python_env().items():
        monkeypatch.setenv(name, value)  # the kernel inherits this environment
    monkeypatch.setenv("EXPERIGRAPH_LOG_LEVEL", "INFO")
    sources = dict(CELLS)
    names = [name for name, _ in CELLS]
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(sources[name] or sources[name.replace("-2", "-1")])
                for name in names]
    NotebookClient(nb, timeout=180, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    errors = [o for c in nb.cells for o in c.outputs if o.get("output_type") == "error"]
    assert not errors, errors
    # printed lines (stdout) and log lines (stderr) apart: the two streams can interleave
    out = {name: "".join(o.get("text", "") for o in cell.outputs if o.get("name") == "stdout")
           for name, cell in zip(names, nb.cells)}
    err = {name: "".join(o.get("text", "") for o in cell.outputs if o.get("name") == "stderr")
           for name, cell in zip(names, nb.cells)}
    warnings = {name: log_lines(text, "WARNING") for name, text in err.items()}
    infos = {name: log_lines(text, "INFO") for name, text in err.items()}

    def recorded(name):
        (line,) = [x for x in out[name].splitlines() if x.startswith("DRIFT ")]
        return json.loads(line[len("DRIFT "):])

    # impurity without seeds: once, naming the step, its inputs and both hashes
    assert warnings["impure-1"] == warnings["impure-2"] == warnings["impure-4"] == []
    (line,) = warnings["impure-3"]
    assert re.fullmatch(r"Step result changed with the same input: step \(inputs: a=1; input "
                        r"hash \w+\): output hash \w+, previously \w+", line)
    assert recorded("impure-4") == [[], [], [["impurity", "step"]], []]
    # a changed CSV read without ex.input: the loader is impure
    (line,) = warnings["data-2"]
    assert line.startswith("Step result changed with the same input: load (inputs: "
                           "path='data.csv'")
    assert recorded("data-2") == [[], [["impurity", "load"]]]
    # a re-run cell and a cosmetic edit say nothing at WARNING; a real change does
    assert warnings["rerun-1"] == warnings["rerun-2"] == warnings["cosmetic"] == []
    assert not any("Code context" in x for x in infos["rerun-2"])
    assert ("Code context has been changed cosmetically: prepare (comments, docstrings or "
            "layout only)") in infos["cosmetic"]
    assert warnings["code"][0] == "Code context has been changed: prepare"
    assert "-    return a + 1  # the same computation" in warnings["code"]
    assert "+    return a + 2" in warnings["code"]
    assert recorded("code") == [[], [], [["code-cosmetic", "prepare"]], [["code", "prepare"]]]
    # decorators: a declaration change at WARNING with the diff; the code hash unchanged
    assert warnings["declare-1"] == []
    assert warnings["declare-2"][0] == ("Code context has been changed: prep (declaration @ex "
                                        "-> @ex.persist)")
    assert "-@ex" in warnings["declare-2"] and "+@ex.persist" in warnings["declare-2"]
    assert warnings["declare-3"][0] == ("Code context has been changed: prep (declaration "
                                        "@ex.persist -> @ex.step(cache=True))")
    assert warnings["declare-4"][0] == ("Code context has been changed: prep (declaration "
                                        "@ex.step(cache=True) -> @ex)")
    assert recorded("declare-4") == [[], [["declaration", "prep"]], [["declaration", "prep"]],
                                     [["declaration", "prep"]]]
    assert "HASHES 1" in out["declare-4"]
    # seeded global generators: seed-dependence (INFO), never impurity
    assert warnings["seed-1"] == warnings["seed-2"] == []
    assert any(x.startswith("Step result depends on the seed: noisy (") for x in infos["seed-1"])
    assert recorded("seed-2") == [[], [["seed", "noisy"]], [["seed", "noisy"]], []]
    # a generator of the step's own, unseeded: impure although the seeds differ
    (line,) = warnings["own-rng"]
    assert line.startswith("Step result changed with the same input: unseeded")
    assert recorded("own-rng") == [[], [["impurity", "unseeded"]]]
    # no deterministic hash: nothing reported, and reproduce says it did not compare it
    assert warnings["unhashable"] == []
    assert recorded("unhashable") == [[], []]
    assert ("Trial 3 reproduced trial 1 in what could be compared: same result and same "
            "output of every other step. Not compared:") in out["unhashable"]
    assert "  fit: output of type __main__.Model has no deterministic hash" in \
        out["unhashable"]
