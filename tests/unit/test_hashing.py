"""Hashes are equal in one process, after pickling, and across processes."""
from __future__ import annotations

import pickle

import numpy as np
import pandas as pd

from experigraph.code import capture, normalized_hash
from experigraph.hashing import call_key_token, loose_hash, path_hash, value_hash

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


HASHES_OF_CONTAINERS = """
import json
import numpy as np, pandas as pd
from experigraph.hashing import value_hash
class C:
    pass
values = {
    "frozenset": frozenset(f"w{i}" for i in range(20)),
    "dict_of_frozenset": {"k": frozenset(f"w{i}" for i in range(20))},
    "set": {f"w{i}" for i in range(20)},
    "series_of_sets": pd.Series([{"q", "r", "s", "t"}]),
    "series_of_objects": pd.Series([C()]),
    "object_array": np.array([C()], dtype=object),
    "frame_of_frozensets": pd.DataFrame({"x": [frozenset("ab")]}),
    "series_of_str": pd.Series(["a", "b"]),
    "frame": pd.DataFrame({"x": ["a"], "y": [1.0]}),
    "object_array_of_str": np.array(["a", "b"], dtype=object),
}
print(json.dumps({k: value_hash(v) for k, v in values.items()}))
"""


def test_container_hashes_are_the_same_in_every_process_or_not_made():
    """A value whose token depends on the process's hash seed gets no hash at all."""
    import json
    import subprocess
    import sys

    from xg_testing import python_env

    runs = []
    for hash_seed in ("1", "2", "3"):
        proc = subprocess.run([sys.executable, "-c", HASHES_OF_CONTAINERS],
                              env=dict(python_env(), PYTHONHASHSEED=hash_seed),
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
        runs.append(json.loads(proc.stdout))
    for name in runs[0]:
        assert runs[0][name] == runs[1][name] == runs[2][name], name
    unhashed = {name for name, h in runs[0].items() if h is None}
    assert unhashed == {"frozenset", "dict_of_frozenset", "series_of_sets",
                        "series_of_objects", "object_array", "frame_of_frozensets"}


def test_call_keys_are_equal_exactly_for_equal_calls():
    key = call_key_token("spec", 7, [1, 2.5, "x", None], ["prep-1a2b"])
    assert key == call_key_token("spec", 7, [1, 2.5, "x", None], ["prep-1a2b"])
    others = [call_key_token("spec", 7, [v, 2.5, "x", None], ["prep-1a2b"])
              for v in (True, 1.0, "1", 2)]
    others += [call_key_token("other", 7, [1, 2.5, "x", None], ["prep-1a2b"]),
               call_key_token("spec", 8, [1, 2.5, "x", None], ["prep-1a2b"]),
               call_key_token("spec", 7, [1, 2.5, "x", None], ["prep-9f9f"])]
    assert len({key, *others}) == 1 + len(others)
    # other values go through dask's tokenize, as loose_hash does
    array = np.arange(3)
    assert call_key_token("spec", 7, [array], []) == loose_hash("spec", 7, [array], [])
    assert call_key_token("spec", 7, [array], []) != call_key_token("spec", 7, [array + 1], [])


def test_plain_scalars_hash_by_type_and_value_the_same_in_every_process():
    from experigraph.hashing import comparable, input_hash, output_hash, scalar_hash

    values = [None, True, False, 0, 1, -1, 2**200, 1.0, -0.0, 0.0, float("nan"),
              float("inf"), "", "1", "a\udc80", "é"]
    hashes = [scalar_hash(v) for v in values]
    assert all(h is not None and len(h) == 33 and h[0] == "s" for h in hashes)
    assert len(set(hashes)) == len(values)  # 1, 1.0, True and "1" differ
    assert output_hash(1.5) == scalar_hash(1.5)
    assert scalar_hash(np.float64(1.5)) is None  # not a plain scalar: dask's tokenize
    assert output_hash(np.float64(1.5)) == "t" + value_hash(np.float64(1.5))
    # a call: positional order matters, keyword order does not; two args are not one tuple
    assert input_hash((1, 2), {}) != input_hash((2, 1), {})
    assert input_hash((), {"a": 1, "b": "x"}) == input_hash((), {"b": "x", "a": 1})
    assert input_hash((1, 2), {}) != input_hash((1,), {"b": 2})
    assert input_hash(("ab",), {}) != input_hash(("a", "b"), {})
    assert input_hash(([1, 2],), {}) == value_hash(([1, 2],), {})  # a list: tokenize
    # fixed: hashes stored by earlier runs stay valid
    assert scalar_hash(1) == "s" + __import__("xxhash").xxh3_128(b"i1;").hexdigest()
    # this version's output hashes are marked with their kind, so values of different
    # kinds differ and compare as values; an earlier version's unmarked tokens do not
    array_like = "a" + "0" * 32
    ours = [output_hash(v) for v in (1, None, np.int64(1), [1], {"a": 1}, b"1")]
    assert len(set(ours)) == len(ours) and all(h[0] in "st" for h in ours)
    assert all(comparable(a, b) for a in [*ours, array_like] for b in ours)
    assert not comparable(scalar_hash(1), value_hash(1))  # value_hash: unmarked, as before
    assert not comparable(output_hash([1]), value_hash([1]))
    assert comparable(value_hash("x"), value_hash("y"))
