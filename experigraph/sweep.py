"""Progress display for sweeps: many trials as one dask graph.

On dask's local schedulers a dask ``Callback`` advances a tqdm bar as tasks
finish (a dask Callback is process-wide: other computes running at the same
time in other threads advance it too); on a dask.distributed cluster
``trial._compute`` shows distributed's own progress display of the futures.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from dask.callbacks import Callback


class _TaskBar(Callback):
    def __init__(self, bar: Any) -> None:
        super().__init__()
        self._bar = bar

    def _start_state(self, dsk: Any, state: Any) -> None:
        self._bar.total = sum(len(state[k]) for k in ("ready", "waiting", "running", "finished"))
        self._bar.refresh()

    def _posttask(self, key: Any, result: Any, dsk: Any, state: Any, worker_id: Any) -> None:
        self._bar.update(1)


@contextlib.contextmanager
def progress(enabled: bool, n_trials: int) -> Iterator[None]:
    """Show a progress bar of the tasks of a sweep of ``n_trials`` trials."""
    if not enabled:
        yield
        return
    from tqdm.auto import tqdm

    with tqdm(desc=f"sweep of {n_trials} trials", unit="task", leave=True) as bar:
        with _TaskBar(bar):
            yield
