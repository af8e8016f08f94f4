"""Script mode: ``python my_experiment.py a=1 b=2 --seed 7`` runs one trial.

``register`` is called whenever an ``@ex.result`` step is called. It does
nothing unless that happens in a script run as ``__main__`` (the command-line
issue fills this in); importing the same file from a notebook or a test must
never run anything.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .experiment import Experiment


def register(experiment: Experiment, result: Any) -> None:
    """Arrange for one trial of ``result`` when running as a script with parameter flags."""
    return None
