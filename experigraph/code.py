"""Source capture and code hashes of steps.

A step's ``code_hash`` is computed once, when the step is declared, from its
source parsed with ``ast`` with docstrings dropped: comments, blank lines,
docstrings, the step's own decorator and formatting do not change it (cosmetic edits), while any change
of what the code does does. ``source_hash`` is the hash of the exact text, so a
cosmetic edit is still seen. A function whose source cannot be read (built in
a REPL without history, a C function) is hashed from its bytecode and recorded
as such with a WARNING.

Helper functions count as part of a step's code: the module-level functions of
the step's own module (file or notebook) that it calls, directly or through
other helpers, are captured with it. Their sources follow the step's in the
recorded text, and a change in a helper is a change of the step's code.
"""
from __future__ import annotations

import ast
import dataclasses
import difflib
import inspect
import logging
import textwrap
import types
from collections.abc import Callable
from typing import Any

from .hashing import json_hash, text_hash

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class StepCode:
    """What was captured of one step's code (and of the helper functions it calls)."""

    name: str
    source: str | None
    code_hash: str
    source_hash: str
    filename: str | None
    helpers: tuple[tuple[str, str], ...] = ()

    @property
    def has_source(self) -> bool:
        return self.source is not None

    @property
    def text(self) -> str | None:
        """The step's source followed by its helpers' sources: what is stored and diffed."""
        if self.source is None:
            return None
        if not self.helpers:
            return self.source
        parts = [self.source.rstrip("\n"), "", "# helper functions used by this step"]
        for name, src in self.helpers:
            parts.extend(["", src.rstrip("\n")])
        return "\n".join(parts) + "\n"


MAX_HELPERS = 50


def _global_names(code: types.CodeType) -> set[str]:
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _global_names(const)
    return names


def find_helpers(func: Callable[..., Any]) -> list[tuple[str, Callable[..., Any]]]:
    """Module-level functions of ``func``'s module that it calls, transitively."""
    module = getattr(func, "__module__", None)
    found: dict[str, Callable[..., Any]] = {}
    todo = [func]
    while todo and len(found) < MAX_HELPERS:
        current = todo.pop()
        code = getattr(current, "__code__", None)
        namespace = getattr(current, "__globals__", None)
        if code is None or namespace is None:
            continue
        for name in sorted(_global_names(code)):
            obj = namespace.get(name)
            if (inspect.isfunction(obj) and obj is not func and name not in found
                    and obj.__module__ == module and obj.__name__ != "<lambda>"):
                found[name] = obj
                todo.append(obj)
    return sorted(found.items())


def _strip_docstrings(tree: ast.AST) -> ast.AST:
    if isinstance(tree, ast.Module):  # the step's own decorator (@ex, @other_ex.step) is
        for top in tree.body:         # how it is declared, not what it does
            if isinstance(top, (ast.FunctionDef, ast.AsyncFunctionDef)):
                top.decorator_list = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Module)):
            body = node.body
            if (body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)
                    and isinstance(body[0].value.value, str)):
                node.body = body[1:] or [ast.Pass()]
    return tree


def normalized_hash(source: str) -> str:
    """Hash of what the code does: comments, docstrings and layout left out."""
    try:
        tree = ast.parse(textwrap.dedent(source))
    except SyntaxError:
        return text_hash(source)
    return text_hash(ast.dump(_strip_docstrings(tree), annotate_fields=False))


def _bytecode_parts(code: types.CodeType) -> list[Any]:
    parts: list[Any] = [code.co_code.hex(), list(code.co_names), list(code.co_varnames)]
    for const in code.co_consts:
        parts.append(_bytecode_parts(const) if isinstance(const, types.CodeType) else repr(const))
    return parts


def capture(func: Callable[..., Any], name: str | None = None) -> StepCode:
    """Capture the source and hashes of ``func`` (never raises)."""
    step_name: str = name or getattr(func, "__name__", None) or repr(func)
    filename = None
    try:
        filename = inspect.getsourcefile(func)
        source = textwrap.dedent(inspect.getsource(func))
    except (OSError, TypeError):
        source = None
    if source is not None:
        helpers = []
        for helper_name, helper in find_helpers(func):
            try:
                helpers.append((helper_name, textwrap.dedent(inspect.getsource(helper))))
            except (OSError, TypeError):
                helpers.append((helper_name, f"# source of {helper_name} is not available\n"))
        own = normalized_hash(source)
        code_hash = own if not helpers else json_hash(
            [own] + [[n, normalized_hash(src)] for n, src in helpers])
        captured = StepCode(step_name, source, code_hash, "", filename, tuple(helpers))
        return dataclasses.replace(captured, source_hash=text_hash(captured.text or ""))
    bytecode = getattr(func, "__code__", None)
    logger.warning("Source of step %s cannot be read; its code is recorded by bytecode hash "
                   "only, so code changes are detected but cannot be shown.", step_name)
    digest = json_hash(_bytecode_parts(bytecode)) if bytecode is not None \
        else text_hash(repr(func))
    return StepCode(step_name, None, digest, digest, filename)


def unified_diff(old: str, new: str, name: str) -> list[str]:
    """Diff lines of two versions of a step's source."""
    return list(difflib.unified_diff(old.splitlines(), new.splitlines(),
                                     fromfile=f"{name} (before)", tofile=f"{name} (after)",
                                     lineterm=""))
