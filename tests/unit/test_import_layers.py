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
    "_compat": 1, "records": 1, "hashing": 1, "signing": 1, "present": 1,
    "code": 2, "environment": 2, "provenance": 2, "sweep": 2, "events": 2,
    "backends": 3,
    "drift": 4, "hooks": 4, "graph": 4, "compare": 4, "artifacts": 4, "history_cache": 4,
    "trial": 5, "versioning": 5, "lineage": 5,
    "experiment": 6,
    "script": 7, "board": 7, "cli": 7, "cli_versioning": 7,
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


# -- private names stay in their module ----------------------------------------------
def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def _defined_private(tree: ast.AST) -> set[str]:
    """Private names a module defines: functions, classes, module and class variables,
    ``__slots__`` entries and attributes it sets on any object."""
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            found.add(node.name)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            found.add(node.id)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            found.add(node.attr)
        elif isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == "__slots__" for t in node.targets):
            found.update(c.value for c in ast.walk(node.value)
                         if isinstance(c, ast.Constant) and isinstance(c.value, str))
    return {n for n in found if _private(n)}


def _private_uses(path: Path, ours: set[str]) -> list[str]:
    """Where ``path`` reaches a private name of another experigraph module: imports of
    ``_name`` and ``obj._name`` for a ``_name`` only other modules define."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    own = _defined_private(tree)
    uses = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.level or (node.module or "").startswith(
                "experigraph")):
            uses += [f"{path.name}:{node.lineno} imports {a.name}" for a in node.names
                     if _private(a.name)]
        elif isinstance(node, ast.Attribute) and _private(node.attr) and \
                node.attr in ours and node.attr not in own:
            uses.append(f"{path.name}:{node.lineno} uses {ast.unparse(node)}")
    return uses


def test_no_module_uses_another_modules_private_names():
    modules = _modules()
    defined = {name: _defined_private(ast.parse(path.read_text(encoding="utf-8")))
               for name, path in modules.items()}
    ours = set().union(*defined.values())
    uses = [u for path in modules.values() for u in _private_uses(path, ours)]
    assert uses == []


def test_the_private_name_checker_sees_imports_and_attributes(tmp_path):
    source = tmp_path / "probe.py"
    source.write_text("from .graph import _Param\n"
                      "def f(result):\n    return result._node\n")
    assert _private_uses(source, {"_node", "_Param"}) == [
        "probe.py:1 imports _Param", "probe.py:3 uses result._node"]


#: names with a leading underscore that are public protocols, not private names
PROTOCOLS = {"_repr_html_", "_repr_mimebundle_", "_ipython_display_"}


def test_tests_use_only_public_names():
    """The tests reach experigraph through its public API (and ``experigraph.testing``):
    no ``from experigraph... import _name``, no ``obj._name`` of a private name the
    package defines (a test's own private names are its business)."""
    modules = _modules()
    ours = set().union(*(_defined_private(ast.parse(p.read_text(encoding="utf-8")))
                         for p in modules.values())) - PROTOCOLS
    tests = PACKAGE.parent / "tests"
    uses = [f"{path.relative_to(tests)}: {u}" for path in sorted(tests.rglob("*.py"))
            for u in _private_uses(path, ours)]
    assert uses == []
