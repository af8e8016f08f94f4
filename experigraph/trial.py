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

import dataclasses
import datetime as _dt
import logging
import os
import random
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

import dask
import dask.local
import dask.threaded

from . import drift as drift_checks
from . import signing
from .backends.base import Backend
from .errors import BackendError, CorruptRecordError, InvalidArgumentError, TrialIDNotFoundError
from .graph import CallNode, StepSpec, TrialPlan, build_trial_graph
from .hashing import value_hash
from .present import parameters_text, short
from .hooks import (HOST, RecordSink, StepFailure, StepHook, TrialContext, call_hooks,
                    seed_globals)
from .sweep import progress
from .records import (MAX_SEED, DriftEvent, Status, StepRecord, TrialRecord, TrialSummary,
                      is_json_exact, merge_steps, now, type_name)

logger = logging.getLogger(__name__)


__all__ = ["TrialRecord", "StepRecord", "DriftEvent", "Status", "Outcome", "TrialRunner", "RunOptions",
           "new_seed", "trial_times", "derive_status"]


def new_seed() -> int:
    """A fresh seed for a trial that was given none."""
    return random.SystemRandom().randrange(MAX_SEED + 1)


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
        what = f"value={short(self.value)}" if self.exception is None else \
            f"exception={_describe(self.exception)}"
        return f"Outcome(trial_id={self.trial_id}, {what})"


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}({exc})"


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


@dataclasses.dataclass(frozen=True)
class RunOptions:
    """How a compute's trials run, and what they record besides their parameters."""

    dask_kwargs: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    isolate: bool = False  # a sweep: a failed step fails its trials, not the compute
    sweep_id: str | None = None
    rerun_of: int | None = None
    script: Mapping[str, Any] | None = None
    show_progress: bool = False


def _start_trials(backend: Backend, experiment_id: str, parameter_sets: Sequence[Mapping[str, Any]],
                  seeds: Sequence[int], base: Mapping[str, Any],
                  hooks: Sequence[StepHook]) -> list[TrialRecord]:
    """Claim an id and write the running record of each trial (``base``: the fields they
    share: code, environment, drift, sweep, rerun, script)."""
    records = []
    for parameters, seed in zip(parameter_sets, seeds):
        def make_record(trial_id: int) -> TrialRecord:
            return TrialRecord(
                experiment_id=experiment_id, trial_id=trial_id, status=Status.RUNNING,
                parameters=dict(parameters), seed=seed, started=now(), host=HOST,
                pid=os.getpid(), claim=uuid.uuid4().hex, **base)

        record = backend.start_trial(make_record)
        records.append(record)
        logger.info("Started trial %d (seed=%d): %s", record.trial_id, seed,
                    parameters_text(parameters))
        if hooks:
            call_hooks(hooks, "before_trial", experiment_id=experiment_id,
                       trial_id=record.trial_id, parameters=record.parameters, seed=seed)
    return records


class _HeldLogs(logging.Filter):
    """Holds what this thread logs about drift (``experigraph.drift``) from now until
    :meth:`stop`, to be logged (:meth:`release`) once the trial compared with is known to
    be the right one, or forgotten (:meth:`drop`) with the warnings it marked as said."""

    def __init__(self, environment: drift_checks.EnvironmentDrift) -> None:
        super().__init__()
        self.logger = logging.getLogger(drift_checks.__name__)
        self.thread = threading.get_ident()
        self.records: list[logging.LogRecord] = []
        self.environment = environment
        self.warned = set(environment.warned)
        self.logger.addFilter(self)

    def filter(self, record: logging.LogRecord) -> bool:
        if record.thread != self.thread:
            return True
        self.records.append(record)
        return False

    def stop(self) -> None:
        self.logger.removeFilter(self)

    def release(self) -> None:
        for record in self.records:
            self.logger.handle(record)
        self.records = []

    def drop(self) -> None:
        self.records = []
        self.environment.warned.intersection_update(self.warned)


def _failed_compute(backend: Backend, records: Sequence[TrialRecord], sink: RecordSink,
                    exc: BaseException, elapsed: float, isolate: bool) -> list[Outcome]:
    """Every trial of a compute that raised, recorded as failed (or interrupted)."""
    status = Status.FAILED if isinstance(exc, Exception) else Status.INTERRUPTED
    tb = traceback.format_exc()
    by_trial = _by_trial(sink.records)
    outcomes = []
    for record in records:
        final = record
        try:
            final = _finish(backend, record, by_trial.get(record.trial_id, []),
                            shipped=sink.shipped,
                            status=status, elapsed=elapsed, own_span=isolate,
                            exception=exc, tb=tb)
        except Exception:  # recording must never mask the step's own exception
            logger.exception("Could not record the failure of trial %d in %s",
                             record.trial_id, backend.uri)
        outcomes.append(Outcome(record.trial_id, None, exc, final))
    return outcomes


def _finished_compute(backend: Backend, records: Sequence[TrialRecord], values: Sequence[Any],
                      sink: RecordSink, elapsed: float, isolate: bool
                      ) -> tuple[list[Outcome], list[PendingTrial], Exception | None]:
    """Record every trial of a compute that returned: their outcomes, the trials the
    backend could not take (kept to record later) and the backend's first error."""
    outcomes, pending, failure = [], [], None
    by_trial = _by_trial(sink.records)
    for record, value in zip(records, values):
        local = by_trial.get(record.trial_id, [])
        failed = type(value) is StepFailure
        how: dict[str, Any] = (
            dict(status=Status.FAILED, exception=value.exception, tb=value.traceback)
            if failed else dict(status=Status.SUCCEEDED, value=value))
        try:
            final = _finish(backend, record, local, elapsed=elapsed, own_span=isolate,
                            shipped=sink.shipped, **how)
        except Exception as exc:  # computed, but the backend failed: keep it for later
            final = _unrecorded(record, local, elapsed=elapsed, own_span=isolate, **how)
            pending.append(PendingTrial(final, None if failed else value))
            failure = failure or exc
            logger.error("Trial %d was computed but could not be recorded in %s: %s",
                         record.trial_id, backend.uri, exc)
        outcomes.append(Outcome(final.trial_id, None if failed else value,
                                value.exception if failed else None, final))
    return outcomes, pending, failure


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
            exception: BaseException | None = None, tb: str | None = None,
            shipped: bool = True) -> TrialRecord:
    """Record a trial's outcome (``shipped``: some of its tasks went to other processes,
    whose step records are in the backend)."""
    trial_id = record.trial_id
    try:
        remote = backend.read_step_records(trial_id) if shipped else []
    except Exception as exc:  # the trial's own outcome matters more than late step records
        logger.warning("Could not read the step records of trial %d from %s (%s: %s); it is "
                       "recorded with the steps this process ran", trial_id, backend.uri,
                       type(exc).__name__, exc)
        remote = []
    steps = merge_steps(local, remote)
    metrics: dict[str, Any] = {}
    labels: dict[str, Any] = {}
    description = ""
    for step in steps:
        metrics.update(step.metrics)
        labels.update(step.labels)
        if step.description:
            description = step.description
    changes: dict[str, Any] = dict(
        status=status, steps=steps, metrics=metrics, labels=labels,
        description=description, **trial_times(record, steps, elapsed, own_span))
    if exception is not None:
        changes.update(_error_fields(exception, tb))
    elif status is Status.SUCCEEDED:
        changes.update(_result_fields(backend, value))
    candidate = record.replace(**changes)
    check = drift_checks.output_check(steps, seed=record.seed)
    if check is None:
        final = backend.finish_trial(candidate)  # may move to a new id (WARNING)
    else:
        # The outputs' references swapped in the key index and, when none replaced
        # another, the final record stored with them (one round trip on a server);
        # else the record is stored once the change is known (impurity, seed, data).
        stored, swapped = backend.finish_trial_unless_changed(candidate, check.index)
        events = drift_checks.output_events(backend, check, swapped, seed=record.seed,
                                            trial_id=trial_id, parameters=record.parameters)
        final = stored or candidate
        if stored is None or events:
            final = backend.finish_trial(final.replace(drift=final.drift + tuple(events)))
    trial_id = final.trial_id
    if status is Status.SUCCEEDED:
        logger.info("Finished trial %d: result %s (%.3f s)", trial_id,
                    short(value), final.process_time)
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


_Rec = TypeVar("_Rec", TrialRecord, TrialSummary)


def derive_status(record: _Rec) -> _Rec:
    """A ``running`` record (or summary) whose process is gone on this host reads as
    interrupted."""
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



class TrialRunner:
    """Runs an experiment's trials and keeps what that needs between them.

    It owns the trial lifecycle (:meth:`run`), the code snapshots already
    stored, environment drift (:class:`~experigraph.drift.EnvironmentDrift`), the
    queue of trials computed while the backend was unreachable, the records that
    can no longer change (read once), and which trial this process (per thread) ran
    last. :class:`~experigraph.Experiment` is a facade over it.
    """

    def __init__(self, experiment_id: str, backend: Backend, *,
                 hooks: Sequence[StepHook] = (), collectors: Sequence[Any] = ()) -> None:
        self.experiment_id = experiment_id
        self.backend = backend
        self.hooks: tuple[StepHook, ...] = tuple(hooks)
        self.environment = drift_checks.EnvironmentDrift(backend, collectors)
        self.stored_sources: set[str] = set()
        self.finished: dict[int, TrialRecord] = {}  # records that can no longer change
        self.written: dict[int, TrialRecord] = {}  # the newest finished here (see note_ran)
        self.pending: list[PendingTrial] = []  # computed, not yet recorded (backend down)
        self.last_ran = threading.local()  # .trial_id: this thread's last computed trial
        self.last_ran_any: int | None = None  # the last trial computed in this process

    # -- running -------------------------------------------------------------------
    def run(self, order: list[CallNode], parameter_sets: Sequence[Mapping[str, Any]],
            seeds: Sequence[int], options: RunOptions = RunOptions()) -> list[Outcome]:
        """Start, compute and finish one trial per parameter set as one dask graph (see
        the module docstring). A failed trial is returned (``Outcome.exception``), not
        raised, except a ``KeyboardInterrupt`` (recorded as interrupted, then raised).

        Raises
        ------
        BackendError
            Trials were computed but the backend could not record them: they are kept
            in :attr:`pending` (``save_pending`` records them later), and the error
            carries their values (``err.result``, ``err.results``).
        """
        backend = self.backend
        kwargs = dict(options.dask_kwargs)
        get = _scheduler_get(kwargs)  # a bad scheduler= fails here, before anything is recorded
        # The trial this process wrote last is the newest one unless another process
        # claimed ids since: compare with it (no query of the store), and check that
        # with the id this trial gets (below).
        # (Its WARNINGs wait for that check: they name the trial compared with.)
        assumed = next(iter(self.written.values()), None)
        previous = assumed if assumed is not None else self.previous_trial()
        code = snapshot_code(backend, order, self.stored_sources)
        files = source_files(order)
        held = _HeldLogs(self.environment) if assumed is not None else None
        try:
            drift = code_drift(backend, previous, code)
            environment_hash, env_drift = self.environment.check(previous, files)
        finally:
            if held is not None:
                held.stop()
        drift.extend(env_drift)
        started_at = time.perf_counter()
        try:
            records = _start_trials(backend, self.experiment_id, parameter_sets, seeds, dict(
                code=code, environment_hash=environment_hash, drift=tuple(drift),
                rerun_of=options.rerun_of, sweep_id=options.sweep_id, script=options.script),
                self.hooks)
        except BaseException:
            if held is not None:
                held.release()
            raise
        if assumed is not None and held is not None:
            newest = assumed if records[0].trial_id == assumed.trial_id + 1 else \
                self.previous_trial(below=records[0].trial_id)
            if newest is None or newest.trial_id == assumed.trial_id:
                held.release()
            else:  # another process's trial came in between: compare with it
                held.drop()
                records = self._compare_again(records, newest, code, files)
        plans = [TrialPlan(r.trial_id, r.parameters, r.seed) for r in records]
        cache_environment = _cache_environment(order)
        sink = RecordSink(backend)

        def make_context(group: tuple[int, ...], plan: TrialPlan) -> TrialContext:
            return TrialContext(self.experiment_id, group, plan.seed, backend, sink,
                                options.isolate, cache_environment, self.hooks)

        if len(plans) == 1:
            seed_globals(plans[0].seed)  # as daskperiment did, for code around the steps
        try:
            dsk, result_keys = build_trial_graph(order, plans, make_context)
            values = _compute(get, dsk, result_keys, kwargs, options.show_progress, len(plans))
        except BaseException as exc:
            outcomes = _failed_compute(backend, records, sink, exc,
                                       time.perf_counter() - started_at, options.isolate)
            self._done(outcomes)
            if not isinstance(exc, Exception):
                raise
            return outcomes
        outcomes, pending, failure = _finished_compute(
            backend, records, values, sink, time.perf_counter() - started_at, options.isolate)
        self._done(outcomes, unrecorded={p.record.trial_id for p in pending})
        if pending:
            self.pending.extend(pending)
            ids = ", ".join(str(p.record.trial_id) for p in pending)
            raise BackendError(
                f"Trial(s) {ids} computed their result but could not be recorded in "
                f"{backend.uri}: {failure}. Nothing is lost: the result is in err.result "
                "(err.results maps every trial id to its value); once the backend is "
                "reachable again, call ex.save_pending() to record them.",
                result=outcomes[0].value if len(outcomes) == 1 else None, has_result=True,
                results={o.trial_id: o.value for o in outcomes},
                pending_ids=[p.record.trial_id for p in pending]) from failure
        return outcomes

    def _compare_again(self, records: list[TrialRecord], previous: TrialRecord,
                       code: Mapping[str, Any], files: Sequence[str]) -> list[TrialRecord]:
        """Compare these trials with ``previous``, the newest trial before them (another
        process's, written after the one this process compared them with), and rewrite
        their running records with that drift."""
        drift = code_drift(self.backend, previous, code)
        drift.extend(self.environment.check(previous, files)[1])
        records = [r.replace(drift=tuple(drift)) for r in records]
        for record in records:
            self.backend.write_trial(record)
        return records

    def _done(self, outcomes: Sequence[Outcome], unrecorded: set[int] = set()) -> None:
        """Note the trials of a compute as this process's (with the records written: not
        those of ``unrecorded`` trials), then call ``after_trial``."""
        for outcome in outcomes:
            written = outcome.trial_id not in unrecorded
            self.note_ran(outcome.trial_id, outcome.record if written else None)
        _after_trials(self.hooks, outcomes)

    def note_ran(self, trial_id: int, record: TrialRecord | None = None) -> None:
        """Note a trial this process computed (its final ``record``, kept for reads; none
        for a trial whose recording failed)."""
        if record is not None and record.status is not Status.RUNNING:
            # the newest record written here, live: the next trial compares with it, and
            # it is read back through JSON only if someone asks for it (older ones are
            # read from the store, so no live result is held for long)
            self.written = {trial_id: record}
        self.last_ran.trial_id = self.last_ran_any = trial_id

    def trial_id(self) -> int | None:
        """The trial this thread (else this process) computed last; None before any."""
        mine = getattr(self.last_ran, "trial_id", None)
        return mine if mine is not None else self.last_ran_any

    def save_pending(self) -> list[int]:
        """Record the pending trials (see ``Experiment.save_pending``); their ids."""
        saved = []
        while self.pending:
            record = self.pending[0].save(self.backend)
            self.written = {record.trial_id: record}
            if self.last_ran_any == self.pending[0].record.trial_id != record.trial_id:
                self.last_ran.trial_id = self.last_ran_any = record.trial_id
            self.pending.pop(0)
            saved.append(record.trial_id)
        return saved

    # -- reading -------------------------------------------------------------------
    def read(self, trial_id: int) -> TrialRecord:
        """One trial's record (a running one whose process is gone reads as interrupted)."""
        cached = self.finished.get(trial_id)
        if cached is not None:
            return cached
        # not ``self.written``: its result is the live object the caller got back (and may
        # have changed since); a reader gets the record as stored
        record = derive_status(self.backend.read_trial(trial_id))
        if record.status is not Status.RUNNING:
            self.finished[trial_id] = record
        return record

    def read_many(self, trial_ids: Sequence[int]) -> list[TrialRecord]:
        """The readable records of ``trial_ids``, by id: those kept here, the others in
        one batch from the backend (missing and unreadable ones left out)."""
        wanted = sorted(set(trial_ids))
        found: dict[int, TrialRecord] = {}
        for trial_id in wanted:
            kept = self.finished.get(trial_id)
            if kept is None and trial_id in self.written:
                kept = self.read(trial_id)
            if kept is not None:
                found[trial_id] = kept
        missing = [i for i in wanted if i not in found]
        for record in self.backend.read_trials(missing) if missing else ():
            record = derive_status(record)
            if record.status is not Status.RUNNING:
                self.finished[record.trial_id] = record
            found[record.trial_id] = record
        return [found[i] for i in wanted if i in found]

    def records(self) -> list[TrialRecord]:
        """Every readable trial record, by id (unreadable ones are skipped, named once)."""
        ids = self.backend.trial_ids()
        missing = [i for i in ids if i not in self.finished]
        fresh = {r.trial_id: derive_status(r) for r in self.backend.read_trials(missing)}
        for trial_id, record in fresh.items():
            if record.status is not Status.RUNNING:
                self.finished[trial_id] = record
        return [self.finished.get(i) or fresh[i] for i in ids
                if i in self.finished or i in fresh]

    def summaries(self) -> list[TrialSummary]:
        """What the history shows of every readable trial, by id (``Backend.read_summaries``;
        a running trial whose process is gone reads as interrupted)."""
        return [derive_status(s) if s.status is Status.RUNNING else s
                for s in self.backend.read_summaries()]

    def previous_trial(self, below: int | None = None) -> TrialRecord | None:
        """The newest readable trial (of the last 50 ids; ``below``: of those before that
        id), what a new trial compares with."""
        last = self.backend.last_trial_id() if below is None else below - 1
        for trial_id in range(last, max(last - 50, 0), -1):
            written = self.written.get(trial_id)
            if written is not None:  # written here: its code and environment are as read
                return written
            try:
                return self.read(trial_id)
            except (TrialIDNotFoundError, CorruptRecordError):
                continue  # an unreadable one is named by the backend (one WARNING)
        return None


def read_back(record: TrialRecord) -> TrialRecord:
    """The record as any reader sees it: through JSON, holding no live objects."""
    return TrialRecord.from_json(record.to_json())


def source_files(order: Sequence[CallNode]) -> list[str]:
    """The files the steps of ``order`` (and their helpers) are defined in."""
    files: set[str] = set()
    for node in order:
        code = getattr(node.call.spec, "code", None)
        if code is not None:
            files.update((code.filename or "", *code.helper_files))
    return sorted(f for f in files if f and os.path.exists(f))
