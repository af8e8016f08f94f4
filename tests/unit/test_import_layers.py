"""Imports point down one chain: cli, board, script -> experiment -> trial -> graph, hooks,
drift -> backends -> records, hashing -> errors.

Every import of the package is read from the source (module level, inside functions and
under ``TYPE_CHECKING`` alike): a module may import its own layer and the layers below,
never one above. The one listed exception is an upward *delegation*: methods of
``Experiment`` that are daskperiment's API but live in the dashboard
(``start_dashboard``, ``report``) import it inside the method.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "experigraph"

#: layer of each top-level module or subpackage of experigraph, lowest first
LAYERS: dict[str, int] = {
    "errors": 0,
    "_compat": 1, "records": 1, "hashing": 1, "signing": 1,
    "code": 2, "environment": 2, "provenance": 2, "sweep": 2, "events": 2,
    "backends": 3,
    "drift": 4, "hooks": 4, "graph": 4, "compare": 4,
    "trial": 5,
    "experiment": 6,
    "script": 7, "board": 7, "cli": 7,
    "": 8,  # the package itself (its lazy public names)
    "testing": 9,  # the contract suite for plugins: drives Experiment, imported by tests only
}

#: (importing module, imported unit): upward imports that are delegations, with why
ALLOWED_UPWARD = {
    ("experigraph.experiment", "board"): "Experiment.start_dashboard/report delegate lazily",
}


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _imports(name: str, path: Path) -> set[str]:
    """Absolute names of the experigraph modules ``name`` imports, anywhere in its source."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if node.module is None:  # "from . import x": x is a module of the package
                found.update(f"{target}.{alias.name}" for alias in node.names)
            else:
                found.add(target)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {t for t in found if t == "experigraph" or t.startswith("experigraph.")}


def _unit(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def test_every_module_has_a_layer():
    units = {_unit(m) for m in _modules()}
    assert units <= set(LAYERS), f"give these modules a layer: {sorted(units - set(LAYERS))}"


def test_imports_point_down():
    modules = _modules()
    upward = []
    for name, path in modules.items():
        here = LAYERS[_unit(name)]
        for target in _imports(name, path):
            if target not in modules and target.rpartition(".")[0] in modules:
                target = target.rpartition(".")[0]  # "from .x import name" of a module x
            if target not in modules:
                continue
            unit = _unit(target)
            if LAYERS[unit] > here and (name, unit) not in ALLOWED_UPWARD:
                upward.append(f"{name} (layer {here}) imports {target} (layer {LAYERS[unit]})")
    assert upward == []


@pytest.mark.parametrize("module, target", [
    ("experigraph.experiment", "experigraph.script"),
    ("experigraph.graph", "experigraph.experiment"),
    ("experigraph.trial", "experigraph.experiment"),
])
def test_the_former_upward_imports_are_gone(module, target):
    modules = _modules()
    assert target not in _imports(module, modules[module])


def test_the_checker_sees_imports_inside_functions_and_type_checking(tmp_path):
    source = tmp_path / "probe.py"
    source.write_text("from typing import TYPE_CHECKING\n"
                      "if TYPE_CHECKING:\n    from .experiment import Experiment\n"
                      "def f():\n    from . import script\n    from .board import app\n")
    assert _imports("experigraph.probe", source) >= {
        "experigraph.experiment", "experigraph.script", "experigraph.board"}
