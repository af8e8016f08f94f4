"""Hashes are equal in one process, after pickling, and across processes."""
from __future__ import annotations

import pickle

import numpy as np
import pandas as pd

from experigraph.code import capture, normalized_hash
from experigraph.hashing import path_hash, value_hash

SNIPPET = ("import numpy as np, pandas as pd\n"
           "from experigraph.hashing import value_hash\n"
           "print(value_hash(np.arange(10), pd.DataFrame({'a': [1, 2]}), {'k': (1, 2.5)}))")


def test_value_hash_is_stable_across_processes(run_python):
    here = value_hash(np.arange(10), pd.DataFrame({"a": [1, 2]}), {"k": (1, 2.5)})
    assert run_python(SNIPPET).stdout.strip() == here
    assert run_python(SNIPPET).stdout.strip() == here


def test_value_hash_survives_pickling():
    value = {"a": np.linspace(0, 1, 7), "b": [1, "x"]}
    assert value_hash(value) == value_hash(pickle.loads(pickle.dumps(value)))
    assert value_hash(value) != value_hash({"a": np.linspace(0, 1, 8), "b": [1, "x"]})


def test_path_hash_of_files_and_directories(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "x.txt").write_text("one")
    (tmp_path / "d" / "y.txt").write_text("two")
    first = path_hash(tmp_path / "d")
    assert first["kind"] == "directory" and set(first["files"]) == {"x.txt", "y.txt"}
    assert path_hash(tmp_path / "d")["hash"] == first["hash"]
    (tmp_path / "d" / "y.txt").write_text("changed")
    assert path_hash(tmp_path / "d")["hash"] != first["hash"]
    assert path_hash(tmp_path / "d" / "x.txt")["hash"] == first["files"]["x.txt"]


def test_cosmetic_edits_keep_the_code_hash():
    a = "def f(x):\n    return x + 1\n"
    b = 'def f(x):\n    """Add one."""\n    # a comment\n\n    return x + 1  # again\n'
    c = "def f(x):\n    return x + 2\n"
    assert normalized_hash(a) == normalized_hash(b)
    assert normalized_hash(a) != normalized_hash(c)


def test_capture_without_source_uses_bytecode(caplog):
    namespace: dict = {}
    exec("def g(x):\n    return x * 3\n", namespace)
    code = capture(namespace["g"])
    assert code.source is None and code.code_hash
    assert "cannot be read" in caplog.text


class _Vocabulary:
    """A plain class: dask would hash it by pickling, and a set of strings pickles in an
    order that depends on the process's hash seed."""

    def __init__(self):
        self.words = {"alpha", "beta", "gamma", "delta"}


def test_values_hashed_by_pickling_are_not_trusted():
    assert value_hash(_Vocabulary()) is None
    assert value_hash([1, _Vocabulary()]) is None
    assert value_hash(np.int64(3)) is not None and value_hash(np.float32(0.5)) is not None


def test_impurity_is_not_reported_across_hash_seeds(tmp_path):
    import os
    import subprocess
    import sys

    from xg_testing import python_env

    script = tmp_path / "vocab.py"
    script.write_text(
        "import pathlib, sys\n"
        "import experigraph as xg\n"
        "ex = xg.Experiment(id='vocab', backend=pathlib.Path(sys.argv[1]))\n"
        "n = ex.parameter('n', default=1)\n"
        "class Vocabulary:\n"
        "    def __init__(self):\n"
        "        self.words = {'alpha', 'beta', 'gamma', 'delta', 'epsilon'}\n"
        "@ex.result\n"
        "def vocab(n):\n"
        "    return Vocabulary()\n"
        "vocab(n)\n"
        "ex.compute(seed=1)\n")
    outputs = []
    for hash_seed in ("1", "2"):
        env = dict(python_env(), PYTHONHASHSEED=hash_seed)
        proc = subprocess.run([sys.executable, str(script), str(tmp_path / "store")], env=env,
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
        outputs.append(proc.stderr)
    assert "changed with the same input" not in outputs[1]
