"""Every error experigraph raises on purpose.

Each message says what was wrong, what is accepted and what to do; the data is
kept on attributes so that callers need not parse messages.
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any


class ExperigraphError(Exception):
    """Base class of every error experigraph raises on purpose."""


class ParameterUndeclaredError(ExperigraphError, ValueError):
    """A parameter name was used that the experiment does not declare."""

    def __init__(self, name: str, declared: Iterable[str]) -> None:
        self.name, self.declared = name, sorted(declared)
        super().__init__(
            f"Parameter {name!r} is not declared in this experiment "
            f"(declared: {', '.join(self.declared) or 'none'}). "
            f"Declare it first with ex.parameter({name!r})."
        )


class InvalidParameterValueError(ExperigraphError, ValueError):
    """A value that a parameter declared with ``type=`` cannot take without losing information."""

    def __init__(self, name: str, type_name: str, value: Any, why: str) -> None:
        self.name, self.type_name, self.value = name, type_name, value
        super().__init__(f"Parameter {name!r} is declared as {type_name}, and {value!r} cannot "
                         f"be converted to it ({why}). Give a {type_name} value.")


class ParameterUndefinedError(ExperigraphError, ValueError):
    """A trial needs parameters that have no value and no default."""

    def __init__(self, names: Iterable[str]) -> None:
        self.names = sorted(names)
        listed = ", ".join(repr(n) for n in self.names)
        example = ", ".join(f"{n}=..." for n in self.names)
        super().__init__(
            f"Parameters without a value: {listed}. Nothing was run or recorded. "
            f"Set them with ex.set_parameters({example}) or declare a default."
        )


class ExperimentNotFoundError(ExperigraphError, LookupError):
    """A store has no experiment of that id."""

    def __init__(self, experiment_id: str, store_uri: str, known: Iterable[str]) -> None:
        self.experiment_id = experiment_id
        known = list(known)
        listed = ", ".join(known[:20]) + (", ..." if len(known) > 20 else "")
        super().__init__(
            f"No experiment {experiment_id!r} in {store_uri} (experiments there: "
            f"{listed or 'none'}). Check the id, or pass --backend / set EXPERIGRAPH_BACKEND "
            "to where it is recorded.")


class TrialIDNotFoundError(ExperigraphError, ValueError, KeyError):
    """A trial id that the experiment has not recorded, or a query outside a trial.

    A ``ValueError``, as daskperiment's was (and a ``KeyError``, as experigraph's was).
    """

    def __init__(self, trial_id: Any, message: str | None = None) -> None:
        self.trial_id = trial_id
        self.message = message or (
            f"Trial {trial_id!r} is not recorded in this experiment. "
            "See ex.get_history() for the recorded trial ids."
        )
        super().__init__(self.message)

    def __str__(self) -> str:  # KeyError would quote the message
        return self.message


class InvalidExperimentIdError(ExperigraphError, ValueError):
    """An experiment id that breaks the naming rule."""

    RULE = ("letters, digits, '_', '-' and '.', starting with a letter or digit, "
            "at most 128 characters")

    def __init__(self, experiment_id: Any) -> None:
        self.experiment_id = experiment_id
        super().__init__(
            f"Invalid experiment id {experiment_id!r}: an id may contain only {self.RULE} "
            "(no path separators). Choose an id such as 'my_experiment-1'."
        )


class NotRecordedError(ExperigraphError, ValueError, KeyError):
    """Something asked of a trial that it did not record (a persisted output, a metric,
    an environment category, a step). A ``ValueError`` (daskperiment raised one for a
    missing persisted output or metric) and a ``KeyError``."""

    def __init__(self, message: str) -> None:
        self.message = message
        super().__init__(message)

    def __str__(self) -> str:  # KeyError would quote the message
        return self.message


class InvalidArgumentError(ExperigraphError, ValueError):
    """An argument with a value experigraph cannot use (the message says what it takes)."""


class ArgumentNameError(ExperigraphError, TypeError):
    """A call without a required argument, or giving one under both of its names
    (experigraph's and daskperiment's, e.g. ``key=`` and ``metric_key=``); a
    ``TypeError``, as Python's own for a bad call."""


class SweepDefinitionError(ExperigraphError, TypeError):
    """A sweep given in a form ``ex.sweep`` does not take."""


class StepDefinitionError(ExperigraphError, TypeError):
    """A step or result was declared or called in a way experigraph cannot run."""


class NotInTrialError(TrialIDNotFoundError):
    """A call that needs a running trial (``ex.current_trial_id``, ``ex.save_metric``)
    was made outside one. A ``ValueError``, as daskperiment's was."""

    def __init__(self, what: str) -> None:
        super().__init__(
            None,
            f"{what} can only be used inside a step while a trial is running "
            "(a function decorated with @ex, @ex.persist or @ex.result, computed through "
            "Result.compute(), ex.compute() or ex.sweep()).",
        )


class BackendError(ExperigraphError, RuntimeError):
    """The storage behind an experiment failed or was given in a form it cannot use."""

    def __init__(self, message: str, *, result: Any = None, has_result: bool = False,
                 results: dict[int, Any] | None = None,
                 pending_ids: list[int] | None = None) -> None:
        super().__init__(message)
        self.result = result
        self.has_result = has_result
        self.results: dict[int, Any] = results or {}  # trial id -> value, computed
        #: the trials computed but not recorded (``ex.pending_trial_ids``; ``save_pending``)
        self.pending_ids: list[int] = pending_ids or []


class CorruptRecordError(BackendError):
    """A stored record could not be read back (torn or edited by hand)."""

    def __init__(self, where: str, reason: str, hint: str | None = None) -> None:
        self.where, self.reason = where, reason
        super().__init__(
            f"Record at {where} cannot be read ({reason}). "
            + (hint or "It was probably torn by a crash or edited by hand")
            + "; experigraph leaves it in place, skips it, and never reuses its trial id."
        )


class SignatureError(ExperigraphError, ValueError):
    """A pickled payload whose HMAC signature is missing or wrong was refused."""

    def __init__(self, what: str) -> None:
        super().__init__(
            f"Refusing to unpickle {what}: its signature is missing or does not match this "
            "machine's key, so it may have been written with another key or tampered with. "
            "A team shares one key: set the same EXPERIGRAPH_SECRET_KEY environment variable on "
            "every machine and worker. If you trust this payload, pass trust=True to load it "
            "anyway."
        )


class KeyFileError(ExperigraphError, OSError):
    """The per-user signing key file cannot be read or created."""

    def __init__(self, path: str, reason: OSError) -> None:
        self.path = path
        super().__init__(
            f"Cannot read or create the signing key file {path} ({type(reason).__name__}: "
            f"{reason}). Set the EXPERIGRAPH_SECRET_KEY environment variable (a team sets the "
            "same value on every machine and worker), or point XDG_CONFIG_HOME at a writable "
            "directory.")


class ReproductionError(ExperigraphError, ValueError):
    """A trial cannot be re-run as recorded (e.g. a parameter was kept by repr only)."""


class ScriptUsageError(ExperigraphError, ValueError):
    """Bad command-line input for a script: the CLI exits with code 2, nothing is recorded."""


class ScriptError(ExperigraphError, RuntimeError):
    """A script could not be run, or its trial failed: the CLI exits with code 1."""

    def __init__(self, message: str, *, trial_ids: Iterable[int] = ()) -> None:
        super().__init__(message)
        self.trial_ids = list(trial_ids)


class MissingDependencyError(ExperigraphError, ImportError):
    """An optional package needed for a feature is not installed."""


class PersistError(ExperigraphError, TypeError):
    """A step's output must be saved (``@ex.persist``, ``cache=True``) but cannot be pickled."""

    def __init__(self, step: str, kind: str, value_type: str, reason: BaseException) -> None:
        self.step, self.kind, self.value_type = step, kind, value_type
        decorator = "@ex.persist" if kind == "persist" else "@ex.step(cache=True)"
        super().__init__(
            f"Step {step!r} is declared with {decorator}, so its output is saved with the "
            f"trial, but its output of type {value_type} cannot be pickled "
            f"({type(reason).__name__}: {reason}). Return a picklable value (e.g. plain "
            "data instead of open files, locks or connections), or save it yourself to a "
            f"file declared with ex.output(path) and declare the step with @ex instead.")


class ArtifactError(ExperigraphError, ValueError):
    """A file kept with a trial (an artifact or a model) cannot be kept, found or restored."""
