"""The ``git`` category: the state of the git repositories that hold the source files.

For every distinct repository containing one of the given source files this
records the root, branch (``None`` when HEAD is detached), commit, dirty flag,
untracked files and the uncommitted diff (``git diff HEAD``) of those source
files.

Repositories are found by looking for ``.git`` in the files' directories and
their parents, as git does. The branch and commit are read from ``HEAD`` and the
refs (no process); ``git status`` and ``git diff`` run as two ``git`` processes
(no library to import: GitPython's import alone cost 60 ms of opening an
experiment). Asking git costs 10-50 ms, so each repository's record is kept per
process and gathered again only when a cheap ``os.stat`` signature changes: ``HEAD``, the index, the
ref ``HEAD`` points at (and ``packed-refs``), the repository root, the source
files and their directories, or when the record is older than
:data:`MAX_AGE_SECONDS`: an edit of another tracked file changes none of those
stats, so git is asked again at most that often to see it.

Nothing here raises: a file outside any repository is skipped, a missing ``git``
program gives an empty list (logged once at INFO), and a git command that fails
gives that repository's record an ``error``.
"""
from __future__ import annotations

import logging
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Iterable, Sequence
from typing import Any

from ..errors import MissingDependencyError
from ._common import stat_signature

logger = logging.getLogger(__name__)

#: the hash of git's empty tree, the base of the diff before the first commit
EMPTY_TREE = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"
#: at most this many untracked files are listed per repository
MAX_UNTRACKED = 1000
#: at most this many (repository, source files) records are kept per process
_MAX_CACHED = 64
#: a cached record older than this is gathered again even if no watched stat changed
MAX_AGE_SECONDS = 1.0

# Per-process caches, guarded by _lock:
#   _git_dirs:  repository root -> (git dir, common git dir)
#   _heads:     path of a HEAD file -> (its stat signature, its content)
#   _roots:     directory -> the repository root found for it (checked on every use)
#   _records:   (root, relative source files) -> (signature, record, monotonic time)
#   _results:   source files -> (records, category value), to return the same object
#   _state:     whether the missing-git message was logged; the git program's path
_lock = threading.Lock()
_git_dirs: dict[str, tuple[str, str]] = {}
_heads: dict[str, tuple[Any, str | None]] = {}
_roots: dict[str, str] = {}
_records: dict[tuple[str, tuple[str, ...]], tuple[Any, dict[str, Any], float]] = {}
_results: dict[tuple[str, ...], tuple[list[dict[str, Any]], dict[str, Any]]] = {}
_state: dict[str, Any] = {"unavailable_logged": False}


def find_repository_root(path: str) -> str | None:
    """Return the root of the git repository (or worktree) containing ``path``, else ``None``.

    Parameters
    ----------
    path : str
        A file or directory; it need not be absolute.

    Returns
    -------
    str or None
        The absolute path of the nearest directory, ``path`` itself or a parent,
        that holds ``.git``.
    """
    directory = os.path.abspath(path)
    if not os.path.isdir(directory):
        directory = os.path.dirname(directory)
    while True:
        if os.path.exists(os.path.join(directory, ".git")):
            return directory
        parent = os.path.dirname(directory)
        if parent == directory:
            return None
        directory = parent


def _read_text(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8") as file:
            return file.read().strip()
    except (OSError, UnicodeDecodeError):
        return None


def _locate_git_dirs(root: str) -> tuple[str, str]:
    """Return ``(git dir, common dir)``; they differ for linked worktrees."""
    cached = _git_dirs.get(root)
    if cached is not None:
        return cached
    dot_git = os.path.join(root, ".git")
    git_dir = dot_git
    if os.path.isfile(dot_git):  # worktree or submodule: "gitdir: <path>"
        content = _read_text(dot_git) or ""
        if content.startswith("gitdir:"):
            git_dir = os.path.normpath(os.path.join(root, content[len("gitdir:"):].strip()))
    common = _read_text(os.path.join(git_dir, "commondir"))
    common_dir = os.path.normpath(os.path.join(git_dir, common)) if common else git_dir
    _git_dirs[root] = (git_dir, common_dir)
    return git_dir, common_dir


def _signature(root: str, files: Sequence[str]) -> tuple[Any, ...]:
    git_dir, common_dir = _locate_git_dirs(root)
    head_path = os.path.join(git_dir, "HEAD")
    head_stat = stat_signature((head_path,))
    cached_head = _heads.get(head_path)
    if cached_head is not None and cached_head[0] == head_stat:
        head = cached_head[1]
    else:  # git replaces HEAD by renaming a new file, so its stat changes with it
        head = _read_text(head_path)
        _heads[head_path] = (head_stat, head)
    paths = [os.path.join(git_dir, "index")]
    if head is not None and head.startswith("ref:"):
        ref = head[len("ref:"):].strip()
        paths += [os.path.join(common_dir, ref), os.path.join(common_dir, "packed-refs")]
    paths.append(root)
    paths += sorted({os.path.dirname(f) for f in files})
    paths += files
    return (head, head_stat + stat_signature(paths))


def _only_index_changed(before: tuple[Any, ...], after: tuple[Any, ...]) -> bool:
    """Say whether two signatures differ only in the index entry (git refreshes it itself)."""
    if before[0] != after[0] or len(before[1]) != len(after[1]):
        return False
    index = 1  # after HEAD; see _signature
    return all(a == b for i, (a, b) in enumerate(zip(before[1], after[1])) if i != index)


def _parse_status(output: str) -> tuple[bool, list[str]]:
    """Read ``git status --porcelain=v1 -z``: (any tracked change?, untracked paths)."""
    is_dirty = False
    untracked: list[str] = []
    entries = iter(output.split("\0"))
    for entry in entries:
        if len(entry) < 4:
            continue
        code, path = entry[:2], entry[3:]
        if code == "??":
            untracked.append(path)
        elif code != "!!":
            is_dirty = True
            if "R" in code or "C" in code:  # a rename or copy is followed by its source path
                next(entries, None)
    return is_dirty, sorted(untracked)


def _git_executable() -> str:
    """The ``git`` program, found once per process (``MissingDependencyError`` if none)."""
    if "executable" not in _state:
        _state["executable"] = shutil.which("git")
    if _state["executable"] is None:
        raise MissingDependencyError(
            "Recording the git state of a trial needs the git program, which is not on "
            "PATH. Install git (e.g. apt-get install git) to record it.")
    return _state["executable"]


def _git(root: str, *args: str) -> str:
    """The output of ``git -C root args`` (``RuntimeError`` with git's message on failure)."""
    done = subprocess.run([_git_executable(), "-C", root, *args], capture_output=True,
                          stdin=subprocess.DEVNULL, check=False)
    if done.returncode != 0:
        message = done.stderr.decode("utf-8", "replace").strip() or f"exit {done.returncode}"
        raise RuntimeError(f"git {args[0]} failed: {message}")
    return done.stdout.decode("utf-8", "surrogateescape")


def _head(root: str) -> tuple[str | None, str | None]:
    """``(branch, commit)`` of the repository at ``root``, read from its files as git
    does (``HEAD``, the loose ref, ``packed-refs``): no git process. The branch is None
    for a detached HEAD, the commit None before the first commit."""
    git_dir, common_dir = _locate_git_dirs(root)
    head = _read_text(os.path.join(git_dir, "HEAD"))
    if not head:
        raise ValueError(f"{os.path.join(git_dir, 'HEAD')} is missing: not a git repository")
    if not head.startswith("ref:"):
        return None, head  # detached: HEAD holds the commit
    ref = head[len("ref:"):].strip()
    branch = ref[len("refs/heads/"):] if ref.startswith("refs/heads/") else ref
    for directory in dict.fromkeys((git_dir, common_dir)):  # per-worktree refs first
        commit = _read_text(os.path.join(directory, ref))
        if commit:
            return branch, commit
    packed = _read_text(os.path.join(common_dir, "packed-refs")) or ""
    for line in packed.splitlines():
        sha, _, name = line.partition(" ")
        if name == ref and not line.startswith(("#", "^")):
            return branch, sha
    return branch, None  # an unborn branch: no commit yet


def _gather(root: str, relative: tuple[str, ...]) -> dict[str, Any]:
    record: dict[str, Any] = {"root": root, "source_files": list(relative)}
    _git_executable()
    try:
        record["branch"], record["commit"] = _head(root)
        # One git process for both: tracked changes (staged or not) make the tree
        # dirty; an untracked directory is listed once, as git status shows it.
        is_dirty, untracked = _parse_status(
            _git(root, "status", "--porcelain=v1", "-z", "--untracked-files=normal"))
        record["is_dirty"] = is_dirty
        record["untracked"] = untracked[:MAX_UNTRACKED]
        if len(untracked) > MAX_UNTRACKED:
            record["untracked_truncated"] = len(untracked)
        base = record["commit"] or EMPTY_TREE
        record["diff"] = (
            _git(root, "diff", "--no-color", "--no-ext-diff", base, "--", *relative)
            .removesuffix("\n") if relative else ""
        )
    except Exception as exc:  # a broken or unreadable repository is recorded, not raised
        logger.warning("Could not read the git repository at %s: %s", root, exc)
        record["error"] = f"{type(exc).__name__}: {exc}"
    return record


def _record(root: str, files: list[str]) -> dict[str, Any]:
    relative = tuple(sorted(os.path.relpath(f, root) for f in files))
    key = (root, relative)
    before = _signature(root, files)
    cached = _records.get(key)
    if (cached is not None and cached[0] == before
            and time.monotonic() - cached[2] < MAX_AGE_SECONDS):
        return cached[1]
    record = _gather(root, relative)
    after = _signature(root, files)
    # git status refreshes the index's stat data, which changes the index's mtime;
    # that is git's own write, not a change in the repository.
    signature = after if _only_index_changed(before, after) else before
    if cached is not None and cached[1] == record:
        record = cached[1]
    _records.pop(key, None)
    _records[key] = (signature, record, time.monotonic())
    while len(_records) > _MAX_CACHED:
        _records.pop(next(iter(_records)))
    return record


def _repository_root(directory: str) -> str | None:
    """:func:`find_repository_root` with the answer kept while its ``.git`` still exists."""
    root = _roots.get(directory)
    if root is not None and os.path.exists(os.path.join(root, ".git")):
        return root
    root = find_repository_root(directory)
    if root is not None:
        _roots[directory] = root
    else:  # not cached: a repository created later is found on the next call
        _roots.pop(directory, None)
    return root


def _group_by_repository(source_files: Iterable[str]) -> dict[str, list[str]]:
    groups: dict[str, list[str]] = {}
    for source in source_files:
        path = os.path.abspath(source)
        if not os.path.isfile(path):  # "<stdin>", notebook cells, deleted files
            continue
        root = _repository_root(os.path.dirname(path))
        if root is not None:
            files = groups.setdefault(root, [])
            if path not in files:
                files.append(path)
    return groups


def collect_git(source_files: Sequence[str] = ()) -> dict[str, Any]:
    """Describe the git repositories that hold ``source_files``.

    Parameters
    ----------
    source_files : sequence of str
        Paths of the experiment's source files. Paths that are not files, or
        not in a git repository, are skipped.

    Returns
    -------
    dict
        ``{"repositories": [record, ...]}`` sorted by root, where each record
        has ``root``, ``source_files`` (relative to the root), ``branch``,
        ``commit``, ``is_dirty``, ``untracked`` (relative paths) and ``diff``
        (``git diff HEAD`` of the source files), or an ``error``. The same
        object is returned while nothing changed; treat it as read-only.
    """
    files_key = tuple(os.fspath(f) for f in source_files)
    with _lock:
        groups = _group_by_repository(files_key)
        try:
            records = [_record(root, files) for root, files in sorted(groups.items())]
        except MissingDependencyError as exc:
            if not _state["unavailable_logged"]:
                _state["unavailable_logged"] = True
                logger.info("Not recording the git state of trials: %s", exc)
            records = []
        previous = _results.get(files_key)
        if previous is not None and len(previous[0]) == len(records) and all(
            a is b for a, b in zip(previous[0], records)
        ):
            return previous[1]
        value = {"repositories": records}
        _results.pop(files_key, None)
        _results[files_key] = (records, value)
        while len(_results) > _MAX_CACHED:
            _results.pop(next(iter(_results)))
        return value
