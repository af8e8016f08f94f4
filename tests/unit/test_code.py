"""What a step's code is made of: the helpers followed into the user's own modules."""
from __future__ import annotations

import importlib
import sys

import pytest

from experigraph import code


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A project directory with a step module and a helper module, imported from it."""
    (tmp_path / "xg_helpers_lib.py").write_text(
        "import json\n\n"
        "def offset(x):\n    return _inner(x) + 1\n\n"
        "def _inner(x):\n    return x\n\n"
        "class Scaler:\n    def scale(self, x):\n        return double(x)\n\n"
        "def double(x):\n    return 2 * x\n\n"
        "def unused():\n    return 0\n")
    (tmp_path / "xg_steps_mod.py").write_text(
        "import json\nimport numpy as np\nimport xg_helpers_lib\n"
        "from xg_helpers_lib import offset\n\n"
        "def local(x):\n    return x\n\n"
        "def step(a):\n"
        "    return offset(a) + xg_helpers_lib.Scaler().scale(a) + local(a) + "
        "int(np.sqrt(4)) + len(json.dumps(a))\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "dont_write_bytecode", True)  # reloads read the edited source
    modules = [importlib.import_module(m) for m in ("xg_helpers_lib", "xg_steps_mod")]
    yield modules[1]
    for name in ("xg_helpers_lib", "xg_steps_mod"):
        sys.modules.pop(name, None)


def test_helpers_are_followed_into_own_modules_only(project):
    names = [f.name for f in code.follow(project.step)]
    assert names == ["local", "xg_helpers_lib.Scaler", "xg_helpers_lib._inner",
                     "xg_helpers_lib.double", "xg_helpers_lib.offset"]
    captured = code.capture(project.step)
    assert "# helper functions used by this step" in captured.text
    assert "class Scaler:" in captured.text and "def _inner(x):" in captured.text
    assert "def unused" not in captured.text
    assert not any(n.startswith(("json", "numpy")) for n, _ in captured.helpers)
    assert captured.helper_files == (str(project.__file__).replace("xg_steps_mod",
                                                                   "xg_helpers_lib"),)


def test_a_cosmetic_edit_of_a_helper_keeps_the_code_hash(project, tmp_path):
    before = code.capture(project.step)
    path = tmp_path / "xg_helpers_lib.py"
    path.write_text(path.read_text().replace("return 2 * x", "return 2 * x  # twice"))
    importlib.reload(sys.modules["xg_helpers_lib"])
    importlib.reload(project)
    after = code.capture(project.step)
    assert after.code_hash == before.code_hash and after.source_hash != before.source_hash
    path.write_text(path.read_text().replace("return 2 * x", "return 3 * x"))
    importlib.reload(sys.modules["xg_helpers_lib"])
    importlib.reload(project)
    assert code.capture(project.step).code_hash != before.code_hash


def test_a_removed_current_directory_does_not_break_capture(tmp_path, monkeypatch):
    gone = tmp_path / "gone"
    gone.mkdir()
    monkeypatch.chdir(gone)
    gone.rmdir()

    def step(a):
        return a

    assert code.project_dirs(step)  # the step's own directory still counts
    assert code.capture(step).source.startswith("def step(a):")
