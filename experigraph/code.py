"""Source capture and code hashes of steps.

A step's ``code_hash`` is computed once, when the step is declared, from its
source parsed with ``ast`` with docstrings dropped: comments, blank lines,
docstrings, the step's own decorator and formatting do not change it (cosmetic edits), while any change
of what the code does does. ``source_hash`` is the hash of the exact text, so a
cosmetic edit is still seen. A function whose source cannot be read (built in
a REPL without history, a C function) is hashed from its bytecode and recorded
as such with a WARNING.

Helper code counts as part of a step's code. Followed, from the names the step's
code uses and then from the names its helpers use:

* module-level functions of the step's own module (file or notebook);
* functions and classes (with their methods) defined in the *user's own
  modules*: a module whose file is under the step's directory or the current
  directory and not in the standard library, a site-packages directory or
  experigraph, reached by name (``from featurelib import offset``) or as an
  attribute of a module (``featurelib.offset``).

Their sources follow the step's in the recorded text (named ``module.name`` when
they come from another module), and a change in one is a change of the step's
code; a cosmetic edit there is cosmetic as anywhere. What was followed is watched
per trial by identity (the helper and its code object), so a module is read again
only when it was re-imported or reloaded, or code was replaced in place; a file
edited without a reload changes nothing that runs, and keeps its recorded source.
"""
from __future__ import annotations

import ast
import contextlib
import dataclasses
import difflib
import functools
import inspect
import logging
import os
import site
import sys
import sysconfig
import textwrap
import threading
import types
import weakref
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
    #: files of the helpers followed into the user's other modules
    helper_files: tuple[str, ...] = ()

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


@functools.lru_cache(maxsize=1)
def _library_dirs() -> tuple[str, ...]:
    """Directories whose modules are never the user's own: stdlib and site-packages."""
    paths = sysconfig.get_paths()
    dirs = {paths.get(k) for k in ("stdlib", "platstdlib", "purelib", "platlib")}
    dirs |= set(site.getsitepackages()) if hasattr(site, "getsitepackages") else set()
    dirs.add(getattr(site, "getusersitepackages", lambda: None)())
    dirs.add(os.path.dirname(os.path.abspath(__file__)))  # experigraph itself
    return tuple(sorted(os.path.realpath(d) + os.sep for d in dirs if d))


@functools.lru_cache(maxsize=4096)
def _is_own_file(filename: str, project_dirs: tuple[str, ...]) -> bool:
    if not filename or filename.startswith("<"):
        return False
    path = os.path.realpath(filename)
    parts = path.split(os.sep)
    if "site-packages" in parts or "dist-packages" in parts:
        return False
    if any(path.startswith(d) for d in _library_dirs()):
        return False
    return any(path.startswith(d) for d in project_dirs)


def project_dirs(func: Callable[..., Any]) -> tuple[str, ...]:
    """Where the user's own modules are: the step's directory and the current one."""
    try:
        dirs = {os.getcwd()}
    except OSError:  # the current directory was removed
        dirs = set()
    filename = getattr(getattr(func, "__code__", None), "co_filename", "")
    if filename and not filename.startswith("<") and os.path.isabs(filename):
        dirs.add(os.path.dirname(filename))
    return tuple(sorted(os.path.realpath(d) + os.sep for d in dirs))


def file_of(obj: Any) -> str:
    if inspect.isfunction(obj):
        return obj.__code__.co_filename
    module = sys.modules.get(getattr(obj, "__module__", "") or "")
    return getattr(module, "__file__", None) or ""


@dataclasses.dataclass(frozen=True)
class Followed:
    """One helper a step reaches: its recorded name, the object, and where it was found
    (a namespace dict and the name in it), which is watched for re-definitions."""

    name: str
    obj: Any
    namespace: Any
    attr: str


def follow(func: Callable[..., Any]) -> list[Followed]:
    """The helpers ``func`` reaches (see the module docstring), sorted by name."""
    module = getattr(func, "__module__", None)
    dirs = project_dirs(func)
    found: dict[int, Followed] = {}
    todo: list[Any] = [func]
    while todo and len(found) < MAX_HELPERS:
        current = todo.pop()
        code = getattr(current, "__code__", None)
        namespace = getattr(current, "__globals__", None)
        if code is None or namespace is None:
            continue
        names = _global_names(code)
        for name in sorted(names):
            obj = namespace.get(name)
            candidates = [(obj, namespace, name)]
            if inspect.ismodule(obj) and _is_own_file(getattr(obj, "__file__", "") or "", dirs):
                vars_ = vars(obj)  # featurelib.offset: the attributes the code names
                candidates = [(vars_.get(n), vars_, n) for n in sorted(names) if n in vars_]
            for target, holder, attr in candidates:
                if target is None or target is func or id(target) in found:
                    continue
                is_function = inspect.isfunction(target) and target.__name__ != "<lambda>"
                if not (is_function or inspect.isclass(target)):
                    continue
                same_module = is_function and target.__module__ == module
                try:
                    if not same_module and not _is_own_file(file_of(target), dirs):
                        continue
                except Exception:  # an odd object (a proxy, a broken module): not followed
                    continue
                label = (target.__name__ if same_module
                         else f"{target.__module__}.{target.__qualname__}")
                found[id(target)] = Followed(label, target, holder, attr)
                if is_function:
                    todo.append(target)
                else:  # a class: its methods' code and what they use
                    todo.extend(v for v in vars(target).values() if inspect.isfunction(v))
                if len(found) >= MAX_HELPERS:
                    break
    return sorted(found.values(), key=lambda f: f.name)


def find_helpers(func: Callable[..., Any]) -> list[tuple[str, Callable[..., Any]]]:
    """(name, object) of the helpers ``func`` reaches (see :func:`follow`)."""
    return [(f.name, f.obj) for f in follow(func)]


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


class _HelperSources:
    """Per process: the source first read for each live helper and its code object.

    A helper whose code object is unchanged keeps that source, although its file may
    have been edited since without being reloaded: the code that runs is the loaded
    one. Entries go with the helper (weak keys).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sources: weakref.WeakKeyDictionary[Any, tuple[Any, str]] = \
            weakref.WeakKeyDictionary()

    def get(self, helper: Any) -> str:
        code = getattr(helper, "__code__", None)
        try:
            with self._lock:
                entry = self._sources.get(helper)
        except TypeError:  # not weak-referenceable: read it each time
            entry = None
        if entry is not None and entry[0] is code:
            return entry[1]
        text = textwrap.dedent(inspect.getsource(helper))
        with contextlib.suppress(TypeError), self._lock:
            self._sources[helper] = (code, text)
        return text


_HELPER_SOURCES = _HelperSources()  # per-process cache (see its docstring)


def capture(func: Callable[..., Any], name: str | None = None,
            followed: list[Followed] | None = None) -> StepCode:
    """Capture the source and hashes of ``func`` (never raises).

    A helper's source is the one read when it (with its code object) was first
    captured in this process: editing its file without reloading the module changes
    nothing that runs, so nothing that is recorded.
    """
    step_name: str = name or getattr(func, "__name__", None) or repr(func)
    filename = None
    try:
        filename = inspect.getsourcefile(func)
        source = textwrap.dedent(inspect.getsource(func))
    except (OSError, TypeError):
        source = None
    if source is not None:
        helpers = []
        if followed is None:
            followed = follow(func)
        for helper_name, helper in [(f.name, f.obj) for f in followed]:
            try:
                helpers.append((helper_name, _HELPER_SOURCES.get(helper)))
            except (OSError, TypeError):
                helpers.append((helper_name, f"# source of {helper_name} is not available\n"))
        own = normalized_hash(source)
        code_hash = own if not helpers else json_hash(
            [own] + [[n, normalized_hash(src)] for n, src in helpers])
        own_file = getattr(getattr(func, "__code__", None), "co_filename", "")
        files = sorted({file_of(f.obj) for f in followed or ()} - {own_file, ""})
        captured = StepCode(step_name, source, code_hash, "", filename, tuple(helpers),
                            tuple(files))
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
