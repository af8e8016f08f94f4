"""Environment collectors: the public extension point for what a trial's environment holds.

A collector owns one category of a snapshot. It has a ``name`` (the category),
a cheap :meth:`Collector.fingerprint` that says whether anything changed since
the last time, a :meth:`Collector.snapshot` that returns the category's data
(JSON types), :meth:`Collector.text` that renders that data as lines (for drift
diffs and ``get_environment(category=...)``) and an optional drift ``message``.
experigraph's own categories (``platform``, ``cpu``, ``python``, ``packages``,
``numeric``, ``git``) are collectors too (:data:`BUILTIN_COLLECTORS`).

Extra collectors come from two places:

* the entry-point group ``experigraph.collectors`` (:data:`ENTRY_POINT_GROUP`),
  read lazily the first time a snapshot is taken and then once per process;
  an entry point names a :class:`Collector` subclass (instantiated without
  arguments) or an instance. One that fails to load, or is not a valid
  collector, is skipped with one WARNING naming it;
* ``Experiment(id, collectors=[...])``: instances, for that experiment only
  (they replace an entry-point collector of the same name).

Invariants
----------
* Collecting never raises: a collector whose ``fingerprint`` or ``snapshot``
  raises gets ``{"error": "..."}`` for its category and a WARNING; that is not
  drift, and the trial goes on.
* While ``fingerprint()`` returns the same (non-``None``) value, ``snapshot()``
  is not called again and the category is the *same* object, so its content
  hash is computed once per process.
* A category no collector knows any more (an uninstalled plugin, in an old
  record) is still shown and compared, as ``key: value`` lines.
"""
from __future__ import annotations

import abc
import logging
import re
import threading
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ._common import failure, is_failure, jsonable

__all__ = [
    "BUILTIN_COLLECTORS",
    "Collector",
    "ENTRY_POINT_GROUP",
    "drift_message",
    "plugin_collectors",
    "text_lines",
]

logger = logging.getLogger(__name__)

#: the entry-point group third-party collectors are registered in
ENTRY_POINT_GROUP = "experigraph.collectors"

#: what a collector's name may be made of
_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")


def flatten(prefix: str, value: Any, lines: list[str]) -> None:
    """Append ``key: value`` lines of ``value`` (nested keys joined with ``.``, one line
    per list item, one per line of a multi-line string) to ``lines``, in sorted key order."""
    if isinstance(value, Mapping):
        if not value and prefix:
            lines.append(f"{prefix}: {{}}")
        for key in sorted(value, key=str):
            flatten(f"{prefix}.{key}" if prefix else str(key), value[key], lines)
    elif isinstance(value, (list, tuple)):
        if not value:
            lines.append(f"{prefix}: []")
        for index, item in enumerate(value):
            if isinstance(item, (Mapping, list, tuple)):
                flatten(f"{prefix}[{index}]", item, lines)
            else:
                flatten(prefix, item, lines)
    elif isinstance(value, str) and "\n" in value:
        lines.extend(f"{prefix}: {line}" for line in value.splitlines())
    else:
        lines.append(f"{prefix}: {value}")


class Collector(abc.ABC):
    """One category of the environment a trial records.

    Subclass it (``experigraph.Collector``), set :attr:`name` (and optionally
    :attr:`message`), and implement :meth:`snapshot`; implement :meth:`fingerprint` when collecting is
    not cheap, and :meth:`text` when ``key: value`` lines are not the best view.
    Methods take keyword arguments only and must accept ``**kwargs`` (later
    versions may pass more).

    Examples
    --------
    >>> import os
    >>> class ThreadsCollector(Collector):
    ...     name = "threads"
    ...     message = "Thread settings have been changed"
    ...     def fingerprint(self, **kwargs):
    ...         return os.environ.get("OMP_NUM_THREADS")
    ...     def snapshot(self, **kwargs):
    ...         return {"OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS")}
    >>> ex = Experiment("demo", collectors=[ThreadsCollector()])   # doctest: +SKIP
    """

    #: the category this collector fills in a snapshot (letters, digits, ``_ . -``)
    name: str = ""
    #: the WARNING logged when the category drifts; default "Environment (<name>) has changed"
    message: str | None = None

    def fingerprint(self, *, source_files: Sequence[str] = (), **kwargs: Any) -> Any:
        """A cheap value that changes whenever :meth:`snapshot` would (compared with ``==``).

        While it returns the value it returned last time, :meth:`snapshot` is not
        called and the last snapshot is reused. ``None`` (the default) means "no
        cheap check": :meth:`snapshot` is called for every trial and should cache
        its own work (the built-in collectors do: each keeps its data per process
        and checks a host name, ``os.stat`` signatures or module versions).

        Parameters
        ----------
        source_files : sequence of str
            The experiment's source files (what ``git`` looks at).
        """
        return None

    @abc.abstractmethod
    def snapshot(self, *, source_files: Sequence[str] = (), **kwargs: Any) -> Any:
        """Return this category's data: dicts, lists, str, int, float, bool, None.

        Other values are converted (tuples to lists, other objects to ``str``).
        Return ``None`` to leave the category out of this trial (e.g. not ready
        yet); raise to have ``{"error": ...}`` recorded. Runs once per trial at
        most, in the process that runs the trial, never on workers. A subclass
        must implement it (it cannot be instantiated otherwise).
        """

    def text(self, data: Any) -> list[str]:
        """Render recorded data as lines, in a stable order.

        Used for drift (a unified diff of these lines) and for
        ``ex.get_environment(category=<name>)``. The default gives sorted
        ``key: value`` lines, nested keys joined with ``.``.
        """
        lines: list[str] = []
        flatten("", data, lines)
        return lines

    def __repr__(self) -> str:
        return f"<experigraph collector {self.name!r} ({type(self).__module__}." \
               f"{type(self).__qualname__})>"


# -- collecting ------------------------------------------------------------------------
def collect(collector: Collector, *, source_files: Sequence[str] = ()) -> Any:
    """Run one collector: its cached value while its fingerprint holds, else a new
    snapshot converted to JSON types; ``None`` when it left its category out;
    ``{"error": ...}`` (and a WARNING) when it raised."""
    name = getattr(collector, "name", "?")
    try:
        key = collector.fingerprint(source_files=source_files)
        cache = getattr(collector, "_experigraph_cache", None)
        if key is not None and cache is not None and cache[0] is not None:
            try:
                same = bool(cache[0] == key)
            except Exception:  # an odd fingerprint type: collect again
                same = False
            if same:
                return cache[2]
        raw = collector.snapshot(source_files=source_files)
        if raw is None:
            value = None
        elif cache is not None and cache[1] is raw:  # the collector kept its own object
            value = cache[2]
        else:
            value = jsonable(raw)
    except Exception as exc:  # a collector never breaks a trial: record the failure instead
        logger.warning("Could not collect %s environment information: %s", name, exc)
        return failure(exc)
    try:
        collector._experigraph_cache = (key, raw, value)  # type: ignore[attr-defined]
    except AttributeError:  # __slots__ without a place for it: no caching
        pass
    return value


# -- the built-in categories -----------------------------------------------------------
class _Builtin(Collector):
    """A built-in category: its module keeps its own per-process cache."""

    def __init__(self, name: str, message: str, collect: Any, *, with_files: bool = False,
                 text: Any = None) -> None:
        self.name = name
        self.message = message
        self._collect = collect
        self._with_files = with_files
        self._text = text

    def snapshot(self, *, source_files: Sequence[str] = (), **kwargs: Any) -> Any:
        return self._collect(source_files) if self._with_files else self._collect()

    def text(self, data: Any) -> list[str]:
        return self._text(data) if self._text is not None else super().text(data)


def package_lines(packages: Any) -> list[str]:
    """``name==version`` lines of a ``packages`` category, sorted case-insensitively."""
    if not isinstance(packages, list):
        return []
    return sorted(
        (f"{p.get('name')}=={p.get('version')}" for p in packages if isinstance(p, Mapping)),
        key=str.lower,
    )


def _package_text(value: Any) -> list[str]:
    if isinstance(value, list):
        return package_lines(value)
    lines: list[str] = []
    flatten("", value, lines)
    return lines


#: the order of a git repository record's fields in text form (others follow, sorted)
_GIT_FIELDS = ("root", "branch", "commit", "is_dirty", "source_files", "untracked",
               "untracked_truncated", "error")


def git_lines(value: Any) -> list[str]:
    """Per repository ``key: value`` lines, then its diff lines."""
    if not isinstance(value, Mapping):
        lines: list[str] = []
        flatten("git", value, lines)
        return lines
    lines = []
    flatten("", {k: v for k, v in value.items() if k != "repositories"}, lines)
    for repository in value.get("repositories") or ():
        if not isinstance(repository, Mapping):
            continue
        fields = [f for f in _GIT_FIELDS if f in repository]
        fields += sorted(k for k in repository if k not in _GIT_FIELDS and k != "diff")
        for field in fields:
            flatten(field, repository[field], lines)
        lines.extend((repository.get("diff") or "").splitlines())
    return lines


def _make_builtins() -> tuple[Collector, ...]:
    from .cpu import cpu_info
    from .git import collect_git
    from .numeric import collect_numeric
    from .packages import collect_packages
    from .python import collect_python
    from .system import collect_platform

    return (
        _Builtin("platform", "Platform information has been changed", collect_platform),
        _Builtin("cpu", "CPU information has been changed", cpu_info),
        _Builtin("python", "Python information has been changed", collect_python),
        _Builtin("packages", "Installed Python packages have been changed", collect_packages,
                 text=_package_text),
        _Builtin("numeric", "NumPy/SciPy/pandas build information has been changed",
                 collect_numeric),
        _Builtin("git", "Git repository state has been changed", collect_git,
                 with_files=True, text=git_lines),
    )


#: experigraph's own collectors, in display order
BUILTIN_COLLECTORS: tuple[Collector, ...] = _make_builtins()
_BUILTIN_BY_NAME = {c.name: c for c in BUILTIN_COLLECTORS}
#: names a plugin may not take: the built-in categories and get_environment's text categories
RESERVED = frozenset(_BUILTIN_BY_NAME) | {"numpy", "scipy", "pandas", "conda", "requirements"}


# -- plugins ---------------------------------------------------------------------------
_plugins_lock = threading.Lock()
_plugins: dict[str, Any] = {"loaded": None}


def _problem(collector: Any, taken: Iterable[str]) -> str | None:
    """Why ``collector`` cannot be used, or None."""
    if not isinstance(collector, Collector):
        return (f"{collector!r} is not an instance of a Collector subclass (subclass "
                f"experigraph.Collector and give an instance)")
    name = collector.name
    if not isinstance(name, str) or not _NAME.match(name):
        return (f"its name {name!r} is not a category name (set the class attribute name "
                f"to letters, digits, '_', '.' or '-')")
    if name in RESERVED:
        return (f"its name {name!r} is taken by experigraph's own environment categories "
                f"({', '.join(sorted(RESERVED))}); give it another name")
    if name in taken:
        return f"its name {name!r} is taken by another collector; give it another name"
    return None


class _KeptEntryPoint:
    """An entry point of the package list kept for this interpreter (``name``, and
    ``value`` as ``module:attribute [extras]``), loaded as ``importlib.metadata``
    loads one: by :func:`pkgutil.resolve_name`, extras aside."""

    def __init__(self, name: str, value: str) -> None:
        self.name, self.value = name, value

    def load(self) -> Any:
        import pkgutil

        return pkgutil.resolve_name(self.value.partition("[")[0].strip())


def plugin_collectors(*, reload: bool = False) -> tuple[Collector, ...]:
    """The collectors registered in the entry-point group ``experigraph.collectors``.

    Read the first time this is called in a process (the first snapshot calls
    it), then kept: from the list of installed packages kept for this interpreter
    while it is valid (see :mod:`experigraph.environment.packages`), else from
    :mod:`importlib.metadata`. An entry point that fails to load or is not a valid
    collector is skipped, with one WARNING naming it.

    Parameters
    ----------
    reload : bool
        Read the entry points again (after installing a plugin into a running
        process).

    Returns
    -------
    tuple of Collector
        Sorted by category name.
    """
    loaded = _plugins["loaded"]
    if loaded is not None and not reload:
        return loaded
    with _plugins_lock:
        if _plugins["loaded"] is not None and not reload:
            return _plugins["loaded"]
        from .packages import kept_entry_points

        found: dict[str, Collector] = {}
        entry_points: list[Any] = []
        kept = None if reload else kept_entry_points(ENTRY_POINT_GROUP)
        if kept is not None:  # from the package list kept for this interpreter
            entry_points = sorted((_KeptEntryPoint(name, value) for name, value in kept),
                                  key=lambda ep: (ep.name, ep.value))
        else:
            import importlib.metadata  # about 10 ms to import: only when first needed

            try:
                entry_points = sorted(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP),
                                      key=lambda ep: (ep.name, ep.value))
            except Exception as exc:  # broken metadata on sys.path must not break trials
                logger.warning("Could not read the %s entry points: %s", ENTRY_POINT_GROUP,
                               exc)
        for entry_point in entry_points:
            try:
                obj = entry_point.load()
                collector = obj() if isinstance(obj, type) else obj
                problem = _problem(collector, found)
            except Exception as exc:
                problem = f"{type(exc).__name__}: {exc}"
            if problem is not None:
                logger.warning("Skipping the environment collector %r (entry point %s in "
                               "group %s): %s", entry_point.name, entry_point.value,
                               ENTRY_POINT_GROUP, problem)
                continue
            found[collector.name] = collector
            logger.debug("Loaded environment collector %r from %s", collector.name,
                         entry_point.value)
        _plugins["loaded"] = tuple(found[name] for name in sorted(found))
        return _plugins["loaded"]


def validate_collectors(collectors: Iterable[Any] | None) -> tuple[Collector, ...]:
    """Check ``Experiment(collectors=...)``: instances with distinct, free names.

    Raises
    ------
    InvalidArgumentError
        Something is not a :class:`Collector` instance (a class given instead of
        an instance, too), or its name is invalid, reserved or repeated.
    """
    from ..errors import InvalidArgumentError

    if collectors is None:
        return ()
    if isinstance(collectors, (Collector, str, bytes)) or not isinstance(collectors, Iterable):
        raise InvalidArgumentError(
            f"collectors must be a list of Collector instances, got {collectors!r}.")
    result: list[Collector] = []
    for collector in collectors:
        if isinstance(collector, type) and issubclass(collector, Collector):
            raise InvalidArgumentError(
                f"collectors takes instances: pass {collector.__name__}(), not the class "
                f"{collector.__name__}.")
        problem = _problem(collector, [c.name for c in result])
        if problem is not None:
            raise InvalidArgumentError(f"Cannot use the environment collector {collector!r}: "
                                       f"{problem}.")
        result.append(collector)
    return tuple(result)


def extra_collectors(collectors: Sequence[Collector] = ()) -> tuple[Collector, ...]:
    """The entry-point collectors, with those of ``collectors`` replacing any of the same
    name, then the rest of ``collectors``."""
    given = {c.name: c for c in collectors}
    plugins = tuple(c for c in plugin_collectors() if c.name not in given)
    return plugins + tuple(collectors)


def find_collector(name: str, collectors: Sequence[Collector] = ()) -> Collector | None:
    """The collector of category ``name``: built-in, given, or from an entry point."""
    builtin = _BUILTIN_BY_NAME.get(name)
    if builtin is not None:
        return builtin
    for collector in collectors:
        if collector.name == name:
            return collector
    for collector in plugin_collectors():
        if collector.name == name:
            return collector
    return None


def text_lines(name: str, data: Any, collectors: Sequence[Collector] = ()) -> list[str]:
    """Render a category's data as lines with its collector's :meth:`Collector.text`;
    ``key: value`` lines when no collector knows the category or its ``text`` fails."""
    collector = find_collector(name, collectors)
    if collector is not None and not is_failure(data):
        try:
            lines = collector.text(data)
            return [str(line) for line in lines]
        except Exception as exc:  # a plugin's own failure: show the data anyway
            logger.warning("The environment collector %r could not render its data as text: "
                           "%s", name, exc)
    lines = []
    flatten("", data, lines)
    return lines


def drift_message(name: str, collectors: Sequence[Collector] = ()) -> str:
    """The WARNING logged when category ``name`` drifts."""
    collector = find_collector(name, collectors)
    message = getattr(collector, "message", None) if collector is not None else None
    return message if isinstance(message, str) and message else \
        f"Environment ({name}) has changed"
