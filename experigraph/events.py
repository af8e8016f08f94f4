"""What the layers above the experiment watch in this process, without being imported by it.

The experiment announces three things here: an ``@ex.result`` step was called (a
result was built), a compute starts, and a trial was computed. A watcher (an
object with the methods of :class:`Watcher`) subscribes with :func:`watch`;
script mode is one (``experigraph.script`` subscribes when it is imported, which
``import experigraph`` arranges on first use). So imports point one way: the
experiment knows this module, and script mode knows the experiment.

A watcher's own failure is logged and never changes what the experiment does.
"""
from __future__ import annotations

import logging
from typing import Any, Protocol

logger = logging.getLogger(__name__)


class Watcher(Protocol):
    """What a watcher implements (every method is called; make unused ones no-ops)."""

    def result_built(self, experiment: Any, result: Any) -> None:
        """An ``@ex.result`` step was called and returned ``result``."""

    def computing(self) -> None:
        """A compute (a trial or a sweep) is about to start."""

    def ran(self, experiment: Any, trial_id: int) -> None:
        """A trial was computed in this process (recorded, or pending)."""


#: the process's watchers (a registry, as dask's for callbacks): appended once each
_WATCHERS: list[Watcher] = []


def watch(watcher: Watcher) -> None:
    """Subscribe ``watcher`` for the life of the process (once: a second call is ignored)."""
    if not any(w is watcher for w in _WATCHERS):
        _WATCHERS.append(watcher)


def _tell(method: str, *args: Any) -> None:
    for watcher in _WATCHERS:
        try:
            getattr(watcher, method)(*args)
        except Exception:
            logger.exception("Watcher %r failed in %s (ignored)", watcher, method)


def result_built(experiment: Any, result: Any) -> None:
    _tell("result_built", experiment, result)


def computing() -> None:
    _tell("computing")


def ran(experiment: Any, trial_id: int) -> None:
    _tell("ran", experiment, trial_id)
