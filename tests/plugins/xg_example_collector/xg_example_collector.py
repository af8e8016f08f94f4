"""An example third-party environment collector: the thread settings of numeric libraries.

``OMP_NUM_THREADS`` and its relatives change how fast, and sometimes what, NumPy,
SciPy, PyTorch and friends compute, yet they are set outside Python. This
package records them with every trial, in the category ``threads``, so that a
change between two trials is reported as environment drift.

It is a package of its own that experigraph finds through its
``experigraph.collectors`` entry point (see ``entry_points.txt``); the tests
install it by laying it out as an installed distribution on a temporary
``sys.path`` entry.
"""
from __future__ import annotations

import os
from typing import Any

from experigraph import Collector

#: the environment variables recorded
VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
             "NUMEXPR_NUM_THREADS", "CUDA_VISIBLE_DEVICES")


class ThreadSettingsCollector(Collector):
    """The thread-count environment variables of the numeric libraries (unset: ``None``)."""

    name = "threads"
    message = "Thread settings have been changed"

    def fingerprint(self, **kwargs: Any) -> Any:
        # cheap: while these are unchanged, snapshot() is not called again
        return tuple(os.environ.get(v) for v in VARIABLES)

    def snapshot(self, **kwargs: Any) -> dict[str, Any]:
        return {v: os.environ.get(v) for v in VARIABLES}

    def text(self, data: Any) -> list[str]:
        return [f"{k}={'(unset)' if v is None else v}" for k, v in sorted(data.items())]
