"""The life of a trial: start -> steps -> finish.

For every compute (one trial, or a sweep's many), in the caller's process:

1. the code of the steps in the graph is snapshotted (step sources as
   content-addressed blobs) and compared with the previous trial's (code drift);
2. each trial claims an id together with its ``running`` record
   (``backend.start_trial``: created only where no record exists, so a claim
   never replaces a record): from here on a crash leaves a record that reads back
   as *interrupted*, never a hole or a torn file;
3. dask runs the graph, each step inside ``hooks.run_step``;
4. each trial finishes: its step records are gathered (from memory, and from
   the backend for steps that ran in other processes), outputs are checked for
   impurity, and the final record (status, result, timings, drift events)
   replaces the running one in a single atomic write (``backend.finish_trial``,
   which replaces only the trial's own record: if the store lost it and another
   process took the id, the trial moves to a new id, with a WARNING).

A step's exception is recorded (``Success=False``, ``Description``) and then
propagates unchanged. In a sweep a failing step fails only the trials that
depend on it.
"""
from __future__ import annotations

import datetime as _dt
import logging
import os
import random
import reprlib
import sys
import time
import traceback
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import dask
import dask.threaded

from . import drift as drift_checks
from . import signing
from .backends.base import Backend
from .errors import BackendError, InvalidArgumentError
from .graph import CallNode, StepSpec, TrialPlan, build_trial_graph
from .hashing import value_hash
from .hooks import (HOST, RecordSink, StepFailure, StepHook, TrialContext, call_hooks,
                    seed_globals)
from .sweep import progress
from .records import (DriftEvent, Status, StepRecord, TrialRecord, is_json_exact, merge_steps,
                      now, type_name)

logger = logging.getLogger(__name__)

_SHORT = reprlib.Repr()
_SHORT.maxstring = 60
_SHORT.maxother = 60

__all__ = ["TrialRecord", "StepRecord", "DriftEvent", "Status", "Outcome", "run_trials",
           "new_seed", "trial_times", "derive_status"]


def new_seed() -> int:
    """A fresh seed for a trial that was given none."""
    return random.SystemRandom().randrange(2**32)


class PendingTrial:
    """A finished trial that could not be recorded (the backend failed): kept in memory."""

    __slots__ = ("record", "value")

    def __init__(self, record: TrialRecord, value: Any) -> None:
        self.record, self.value = record, value

    def save(self, backend: Backend) -> TrialRecord:
        """Record it now and return the record as stored (raises again if the backend is
        still unreachable).

        It claims its id as a new trial would (``Backend.finish_trial``): it replaces
        only its own running record, and if meanwhile the id was taken by another
        record (a store that lost its data, or its counter, while this trial ran),
        it is recorded under a new id, with a WARNING naming both; nothing recorded
        is ever replaced.
        """
        record = self.record
        if record.status is Status.SUCCEEDED:
            record = record.replace(**_result_fields(backend, self.value))
        record = backend.finish_trial(record)
        logger.info("Recorded pending trial %d", record.trial_id)
        return record


class Outcome:
    """What one trial of a compute gave (``Experiment.run`` returns it).

    Attributes
    ----------
    trial_id : int
        The id of this trial.
    value : Any
        Its result (None when it failed).
    exception : BaseException or None
        The step's exception when it failed.
    record : TrialRecord
        Its final record, as written to the backend.
    """

    __slots__ = ("trial_id", "value", "exception", "record")

    def __init__(self, trial_id: int, value: Any, exception: BaseException | None,
                 record: TrialRecord) -> None:
        self.trial_id, self.value, self.exception, self.record = (
            trial_id, value, exception, record)

    @property
    def succeeded(self) -> bool:
        return self.exception is None

    def __repr__(self) -> str:
        what = f"value={_SHORT.repr(self.value)}" if self.exception is None else \
            f"exception={_describe(self.exception)}"
        return f"Outcome(trial_id={self.trial_id}, {what})"


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}({exc})"


def _format_parameters(parameters: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={_SHORT.repr(v)}" for k, v in parameters.items())


# -- code snapshot and code drift ---------------------------------------------------
def snapshot_code(backend: Backend, order: Sequence[CallNode], stored: set[str]
                  ) -> dict[str, dict[str, str]]:
    """``{step: {"code_hash", "source_hash"}}`` for the steps in a graph; sources stored once."""
    code: dict[str, dict[str, str]] = {}
    for node in order:
        spec = node.call.spec
        if not isinstance(spec, StepSpec) or spec.name in code:
            continue
        spec.refresh_code()
        entry = {"code_hash": spec.code.code_hash, "source_hash": spec.code.source_hash,
                 "declaration": drift_checks.declaration(spec.kind, spec.cache)}
        text = spec.code.text
        if text is not None:
            if spec.code.source_hash not in stored:
                backend.put_blob("source", text.encode("utf-8"))
                stored.add(spec.code.source_hash)
        else:
            entry["source_hash"] = ""
        code[spec.name] = entry
    return code


def _cache_environment(order: Sequence[CallNode]) -> str | None:
    """What a ``cache=True`` output depends on besides code and inputs: the Python
    interpreter and the installed packages (a hash), when the graph has such a step."""
    if not any(getattr(n.call.spec, "cache", False) for n in order):
        return None
    from . import environment

    snap = environment.snapshot()
    return environment.fingerprint({k: snap[k] for k in ("python", "packages") if k in snap})


def read_source(backend: Backend, source_hash: str) -> str | None:
    if not source_hash:
        return None
    try:
        return backend.get_blob("source", source_hash).decode("utf-8")
    except KeyError:
        return None


def code_drift(backend: Backend, previous: TrialRecord | None,
               code: Mapping[str, Mapping[str, str]]) -> list[DriftEvent]:
    """Drift events (and WARNINGs) for steps whose code or declaration changed."""
    return drift_checks.code_drift(previous, code, lambda h: read_source(backend, h))


# -- running ----------------------------------------------------------------------
def _scheduler_get(dask_kwargs: dict[str, Any]) -> Any:
    """The ``get`` function for ``client=``/``scheduler=``, dask's configuration or default.

    dask's own lookup imports dask.distributed to look for a default client
    (about half a second); when distributed was never imported there is none.
    """
    client = dask_kwargs.pop("client", None)
    scheduler = dask_kwargs.pop("scheduler", None)
    if (client is None and scheduler is None and "distributed" not in sys.modules
            and dask.config.get("scheduler", None) is None):
        return dask.threaded.get
    try:
        get = dask.base.get_scheduler(scheduler=client if client is not None else scheduler)
    except ValueError as exc:
        raise InvalidArgumentError(f"Unknown dask scheduler {scheduler!r} ({exc}). Pass "
                         "scheduler='threads', 'processes' or 'sync', or "
                         "client=distributed.Client(...). Nothing was run or recorded."
                         ) from exc
    return get or dask.threaded.get


def _compute(get: Any, dsk: dict[Any, Any], keys: list[str], kwargs: dict[str, Any],
             show_progress: bool, n_trials: int) -> Any:
    """Run the graph; with a progress display, dask.distributed's own for a cluster."""
    client = getattr(get, "__self__", None)
    if show_progress and client is not None and hasattr(client, "gather"):
        from distributed import progress as cluster_progress

        futures = get(dsk, keys, sync=False, **kwargs)
        # a bar in a terminal, a widget in a notebook
        cluster_progress(futures, scheduler=client.scheduler.address)
        return client.gather(futures)
    with progress(show_progress, n_trials):
        return get(dsk, keys, **kwargs)


def run_trials(
    *,
    backend: Backend,
    experiment_id: str,
    order: list[CallNode],
    parameter_sets: Sequence[Mapping[str, Any]],
    seeds: Sequence[int],
    dask_kwargs: Mapping[str, Any],
    stored_sources: set[str],
    isolate: bool = False,
    sweep_id: str | None = None,
    rerun_of: int | None = None,
    previous: TrialRecord | None = None,
    environment: tuple[str | None, Sequence[DriftEvent]] = (None, ()),
    show_progress: bool = False,
    script: Mapping[str, Any] | None = None,
    raise_errors: bool = True,
    hooks: Sequence[StepHook] = (),
) -> list[Outcome]:
    """Start, compute and finish one trial per parameter set (see the module docstring).

    A step's exception propagates once the trials are recorded; with
    ``raise_errors=False`` an ``Exception`` is returned in the outcomes instead
    (``Outcome.exception``), so the caller knows the failed trials' ids.
    """
    kwargs = dict(dask_kwargs)
    get = _scheduler_get(kwargs)  # a bad scheduler= fails here, before anything is recorded
    code = snapshot_code(backend, order, stored_sources)
    drift = code_drift(backend, previous, code)
    environment_hash, env_drift = environment
    drift.extend(env_drift)
    started_at = time.perf_counter()
    records: list[TrialRecord] = []
    for parameters, seed in zip(parameter_sets, seeds):
        def make_record(trial_id: int) -> TrialRecord:
            return TrialRecord(
                experiment_id=experiment_id, trial_id=trial_id, status=Status.RUNNING,
                parameters=dict(parameters), seed=seed, started=now(), host=HOST,
                pid=os.getpid(), code=code, environment_hash=environment_hash,
                drift=tuple(drift), rerun_of=rerun_of, sweep_id=sweep_id, script=script,
                claim=uuid.uuid4().hex)

        record = backend.start_trial(make_record)
        records.append(record)
        logger.info("Started trial %d (seed=%d): %s", record.trial_id, seed,
                    _format_parameters(parameters))
        if hooks:
            call_hooks(hooks, "before_trial", experiment_id=experiment_id,
                       trial_id=record.trial_id, parameters=record.parameters, seed=seed)

    plans = [TrialPlan(r.trial_id, r.parameters, r.seed) for r in records]
    cache_environment = _cache_environment(order)
    sink = RecordSink(backend)

    def make_context(group: tuple[int, ...], plan: TrialPlan) -> TrialContext:
        return TrialContext(experiment_id, group, plan.seed, backend, sink, isolate,
                            cache_environment, tuple(hooks))

    if len(plans) == 1:
        seed_globals(plans[0].seed)  # as daskperiment did, for code around the steps
    try:
        dsk, result_keys = build_trial_graph(order, plans, make_context)
        values = _compute(get, dsk, result_keys, kwargs, show_progress, len(plans))
    except BaseException as exc:
        elapsed = time.perf_counter() - started_at
        status = Status.FAILED if isinstance(exc, Exception) else Status.INTERRUPTED
        tb = traceback.format_exc()
        by_trial = _by_trial(sink.records)
        failed_outcomes = []
        for record in records:
            final = record
            try:
                final = _finish(backend, record, by_trial.get(record.trial_id, []),
                                status=status, elapsed=elapsed, own_span=isolate,
                                exception=exc, tb=tb)
            except Exception:  # recording must never mask the step's own exception
                logger.exception("Could not record the failure of trial %d in %s",
                                 record.trial_id, backend.uri)
            failed_outcomes.append(Outcome(record.trial_id, None, exc, final))
        _after_trials(hooks, failed_outcomes)
        if raise_errors or not isinstance(exc, Exception):
            raise
        return failed_outcomes
    elapsed = time.perf_counter() - started_at
    outcomes, pending, failure = [], [], None
    by_trial = _by_trial(sink.records)
    for record, value in zip(records, values):
        local = by_trial.get(record.trial_id, [])
        failed = type(value) is StepFailure
        how: dict[str, Any] = (
            dict(status=Status.FAILED, exception=value.exception, tb=value.traceback)
            if failed else dict(status=Status.SUCCEEDED, value=value))
        try:
            final = _finish(backend, record, local, elapsed=elapsed, own_span=isolate, **how)
        except Exception as exc:  # computed, but the backend failed: keep it for later
            final = _unrecorded(record, local, elapsed=elapsed, own_span=isolate, **how)
            pending.append(PendingTrial(final, None if failed else value))
            failure = failure or exc
            logger.error("Trial %d was computed but could not be recorded in %s: %s",
                         record.trial_id, backend.uri, exc)
        outcomes.append(Outcome(final.trial_id, None if failed else value,
                                value.exception if failed else None, final))
    _after_trials(hooks, outcomes)
    if pending:
        ids = ", ".join(str(p.record.trial_id) for p in pending)
        error = BackendError(
            f"Trial(s) {ids} computed their result but could not be recorded in "
            f"{backend.uri}: {failure}. Nothing is lost: the result is in err.result "
            "(err.results maps every trial id to its value); once the backend is reachable "
            "again, call ex.save_pending() to record them.",
            result=outcomes[0].value if len(outcomes) == 1 else None, has_result=True)
        error.pending = pending
        error.results = {o.trial_id: o.value for o in outcomes}
        raise error from failure
    return outcomes


def trial_times(record: TrialRecord, steps: Sequence[StepRecord], elapsed: float,
           own_span: bool) -> dict[str, Any]:
    """``started``, ``finished`` and ``process_time`` of a finishing trial.

    A trial computed alone keeps the start of its record and takes the wall time
    of its compute. A trial of a sweep (``own_span``) spans from its first step's
    start to its last step's end, so each trial's times are its own; a step shared
    by several trials counts for each of them. A sweep trial with no step record
    (it failed before any step ran) falls back to the compute's times.
    """
    if own_span and steps:
        first = min(s.started for s in steps)
        last = max(s.started + _dt.timedelta(seconds=s.duration) for s in steps)
        return {"started": first, "finished": last,
                "process_time": (last - first).total_seconds()}
    return {"finished": now(), "process_time": elapsed}


def _after_trials(hooks: Sequence[StepHook], outcomes: Sequence[Outcome]) -> None:
    for outcome in outcomes if hooks else ():
        record = outcome.record
        call_hooks(hooks, "after_trial", experiment_id=record.experiment_id,
                   trial_id=outcome.trial_id, status=record.status.value, value=outcome.value,
                   error=outcome.exception, duration=record.process_time)


def _unrecorded(record: TrialRecord, local: Sequence[StepRecord], *, status: Status,
                elapsed: float, own_span: bool = False, value: Any = None,
                exception: BaseException | None = None, tb: str | None = None) -> TrialRecord:
    """The final record of a trial whose backend failed: built from what is in memory."""
    steps = merge_steps(local, [])
    changes: dict[str, Any] = dict(status=status, steps=steps,
                                   **trial_times(record, steps, elapsed, own_span))
    if exception is not None:
        changes.update(_error_fields(exception, tb))
    else:  # the result's pickle is stored by PendingTrial.save, once the backend is back
        changes.update(result=value, result_type=type_name(value),
                       result_hash=value_hash(value))
    return record.replace(**changes)


def _error_fields(exception: BaseException, tb: str | None) -> dict[str, Any]:
    return {"description": _describe(exception),
            "error": {"type": type_name(exception), "message": str(exception),
                      "traceback": tb or ""}}


def _by_trial(records: Sequence[StepRecord]) -> dict[int, list[StepRecord]]:
    """Step records by trial id (a step shared by a sweep's trials is in each list)."""
    out: dict[int, list[StepRecord]] = {}
    for rec in records:
        for trial_id in rec.trial_ids:
            out.setdefault(trial_id, []).append(rec)
    return out


def _finish(backend: Backend, record: TrialRecord, local: Sequence[StepRecord], *,
            status: Status, elapsed: float, own_span: bool = False, value: Any = None,
            exception: BaseException | None = None, tb: str | None = None) -> TrialRecord:
    trial_id = record.trial_id
    try:
        remote = backend.read_step_records(trial_id)
    except Exception as exc:  # the trial's own outcome matters more than late step records
        logger.warning("Could not read the step records of trial %d from %s (%s: %s); it is "
                       "recorded with the steps this process ran", trial_id, backend.uri,
                       type(exc).__name__, exc)
        remote = []
    steps = merge_steps(local, remote)
    drift = list(record.drift)
    drift.extend(drift_checks.check_outputs(backend, steps, seed=record.seed,
                                            trial_id=trial_id, parameters=record.parameters))
    metrics: dict[str, Any] = {}
    labels: dict[str, Any] = {}
    description = ""
    for step in steps:
        metrics.update(step.metrics)
        labels.update(step.labels)
        if step.description:
            description = step.description
    changes: dict[str, Any] = dict(
        status=status, steps=steps, drift=tuple(drift), metrics=metrics, labels=labels,
        description=description, **trial_times(record, steps, elapsed, own_span))
    if exception is not None:
        changes.update(_error_fields(exception, tb))
    elif status is Status.SUCCEEDED:
        changes.update(_result_fields(backend, value))
    final = backend.finish_trial(record.replace(**changes))  # may move to a new id (WARNING)
    trial_id = final.trial_id
    if status is Status.SUCCEEDED:
        logger.info("Finished trial %d: result %s (%.3f s)", trial_id,
                    _SHORT.repr(value), final.process_time)
    else:
        logger.info("Trial %d %s: %s", trial_id, status.value, final.description)
    return final


def _result_fields(backend: Backend, value: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {"result": value, "result_type": type_name(value),
                              "result_hash": value_hash(value)}
    if not is_json_exact(value):
        try:
            fields["result_blob"] = backend.put_blob("pickle", signing.dumps(value))
        except Exception as exc:  # an unpicklable result is recorded by repr only
            logger.warning("Result of type %s cannot be pickled (%s); only its repr is recorded",
                           type_name(value), exc)
    return fields


def derive_status(record: TrialRecord) -> TrialRecord:
    """A ``running`` record whose process is gone on this host reads as interrupted."""
    if record.status is Status.RUNNING and record.host == HOST and record.pid:
        try:
            os.kill(record.pid, 0)
        except ProcessLookupError:
            return record.replace(status=Status.INTERRUPTED,
                                  description=record.description or
                                  "Interrupted: the process running this trial stopped")
        except PermissionError:
            pass
    return record

