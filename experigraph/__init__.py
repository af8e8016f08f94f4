"""experigraph: reproducible experiments as dask graphs.

Decorate plain functions with ``@ex``, ``@ex.persist`` and ``@ex.result``, declare
parameters with ``ex.parameter(name)``, and every ``compute()`` becomes a recorded
trial. See README.rst for a tour.
"""
from __future__ import annotations

import importlib
import logging
import os
from typing import TYPE_CHECKING, Any

from . import errors
from .errors import (
    BackendError,
    ExperigraphError,
    ParameterUndeclaredError,
    ParameterUndefinedError,
    SignatureError,
    TrialIDNotFoundError,
)

if TYPE_CHECKING:
    from .environment.collector import Collector
    from .experiment import Experiment, Store
    from .graph import NOTHING, Parameter, Result
    from .hooks import StepHook
    from .trial import Outcome

#: public names imported on first use, so that ``import experigraph`` (and the
#: ``experigraph --help`` command) does not load dask and pandas
_LAZY = {"Experiment": "experiment", "Store": "experiment", "Parameter": "graph", "Result": "graph",
         "NOTHING": "graph", "Outcome": "trial", "StepHook": "hooks",
         "Collector": "environment.collector"}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'experigraph' has no attribute {name!r}")
    if module == "experiment":  # script mode watches the experiment's events
        importlib.import_module(".script", __name__)
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value

__version__ = "0.1.0"

__all__ = [
    "Experiment", "Store", "Parameter", "Result", "Outcome", "StepHook", "Collector", "NOTHING", "errors", "ExperigraphError",
    "ParameterUndeclaredError", "ParameterUndefinedError", "TrialIDNotFoundError",
    "BackendError", "SignatureError", "__version__",
]

LOG_FORMAT = "%(asctime)s [%(name)s] [%(levelname)s] %(message)s"


def _install_log_handler() -> None:
    """One stderr handler on the ``experigraph`` logger, in daskperiment's format.

    Installed once, and only when neither that logger nor the root logger has a
    handler; the level comes from ``EXPERIGRAPH_LOG_LEVEL`` (default INFO).
    """
    logger = logging.getLogger("experigraph")
    level = os.environ.get("EXPERIGRAPH_LOG_LEVEL", "INFO").upper()
    if logger.level == logging.NOTSET:
        logger.setLevel(level if level in logging.getLevelNamesMapping() else logging.INFO)
    if logger.handlers or logging.getLogger().handlers:
        return
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    logger.addHandler(handler)


_install_log_handler()
