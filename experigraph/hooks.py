"""The step wrapper: pre and post hooks around every step of a trial.

A task of a trial's graph is ``(run_step, call, ctx, info, dependency values)``.
``run_step`` is the wrapper:

* **pre**: fill the call's arguments, hash them (the input hash), seed ``random``
  and NumPy's global generator for this step, and make ``ctx`` the current
  trial context (a ``ContextVar``, set per task, so concurrent trials in threads
  stay apart and ``ex.current_trial_id`` works on any worker);
* **post**: hash the output, save it if the step persists, and hand a
  ``StepRecord`` to the context's sink. A failed step leaves a record too, and
  its exception propagates unchanged; a failure of the hook itself is logged
  and never masks the step's exception.

The context travels with the task as data. Its sink keeps records in memory
when the task runs in the process that started the trial (threaded and
synchronous schedulers); pickled to another process (``processes`` scheduler,
dask.distributed workers), it becomes a ``RemoteSink`` that appends records to
the backend, where the trial collects them when it finishes. Impurity checks
happen then, in the trial's own process, so their warnings reach the user.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import socket
import sys
import threading
import time
import traceback
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from . import signing
from .hashing import path_hash, value_hash
from .records import StepRecord, now, type_name

if TYPE_CHECKING:
    from .backends.base import Backend

logger = logging.getLogger(__name__)

HOST = socket.gethostname()


class RecordSink:
    """Collects the step records of a compute, in the process that started it."""

    __slots__ = ("backend", "records", "_lock")

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.records: list[StepRecord] = []
        self._lock = threading.Lock()

    def add(self, record: StepRecord) -> None:
        with self._lock:
            self.records.append(record)

    def __reduce__(self) -> tuple[Any, ...]:
        return (RemoteSink, (self.backend,))


class RemoteSink:
    """A sink in another process: records go to the backend, per trial."""

    __slots__ = ("backend",)

    def __init__(self, backend: Backend) -> None:
        self.backend = backend

    def add(self, record: StepRecord) -> None:
        for trial_id in record.trial_ids:
            self.backend.append_step_records(trial_id, [record])

    def __reduce__(self) -> tuple[Any, ...]:
        return (RemoteSink, (self.backend,))


class TrialContext:
    """What a task knows of the trial(s) it runs for. Travels inside the task."""

    __slots__ = ("experiment_id", "trial_ids", "seed", "backend", "sink", "isolate")

    def __init__(self, experiment_id: str, trial_ids: tuple[int, ...], seed: int,
                 backend: Backend, sink: RecordSink | RemoteSink, isolate: bool = False) -> None:
        self.experiment_id = experiment_id
        self.trial_ids = trial_ids
        self.seed = seed
        self.backend = backend
        self.sink = sink
        self.isolate = isolate  # sweeps: a failed step fails its trials, not the compute

    @property
    def trial_id(self) -> int:
        return self.trial_ids[0]

    def __dask_tokenize__(self) -> Any:
        return ("experigraph-context", self.experiment_id, self.trial_ids, self.seed)

    def __getstate__(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__slots__}

    def __setstate__(self, state: dict[str, Any]) -> None:
        for k, v in state.items():
            setattr(self, k, v)


class TaskInfo:
    """What one task needs besides its inputs: its key, the values of the parameters its
    call reads (only those travel with it), the name its seed derives from, and the step
    keys and parameters it derives from (provenance)."""

    __slots__ = ("key", "values", "seed_name", "dependencies", "parameters")

    def __init__(self, key: str, values: dict[str, Any], seed_name: str,
                 dependencies: tuple[str, ...] = (), parameters: tuple[str, ...] = ()) -> None:
        self.key, self.values, self.seed_name = key, values, seed_name
        self.dependencies, self.parameters = dependencies, parameters

    def __dask_tokenize__(self) -> Any:
        return ("experigraph-task", self.key)

    def __getstate__(self) -> tuple[Any, ...]:
        return (self.key, self.values, self.seed_name, self.dependencies, self.parameters)

    def __setstate__(self, state: tuple[Any, ...]) -> None:
        self.key, self.values, self.seed_name, self.dependencies, self.parameters = state


class StepScope:
    """The step being run, as seen from ``ex.*`` calls inside it."""

    __slots__ = ("ctx", "step", "step_seed", "rng", "metrics", "labels", "inputs", "outputs",
                 "description")

    def __init__(self, ctx: TrialContext, step: Any, step_seed: int) -> None:
        self.ctx, self.step, self.step_seed = ctx, step, step_seed
        self.rng: Any = None
        self.metrics: dict[str, Any] = {}
        self.labels: dict[str, Any] = {}
        self.inputs: list[dict[str, Any]] = []
        self.outputs: list[dict[str, Any]] = []
        self.description: str | None = None


_current: ContextVar[StepScope | None] = ContextVar("experigraph_step", default=None)


def current_scope() -> StepScope | None:
    """The step running in this task, or None outside a trial."""
    return _current.get()


class StepFailure:
    """Stands in for the output of a failed step in a sweep, so only its trials fail."""

    __slots__ = ("exception", "traceback", "step")

    def __init__(self, exception: BaseException, tb: str, step: str) -> None:
        self.exception, self.traceback, self.step = exception, tb, step

    def __reduce__(self) -> tuple[Any, ...]:
        return (StepFailure, (self.exception, self.traceback, self.step))


def step_seed(trial_seed: int, seed_name: str) -> int:
    """The seed of one step call of a trial: stable across processes and schedulers.

    ``seed_name`` is the step's name for its first call in the graph and
    ``name#2``, ``name#3``... for the next ones, so two calls draw different numbers.
    """
    digest = hashlib.blake2b(f"{trial_seed}:{seed_name}".encode(), digest_size=4).digest()
    return int.from_bytes(digest, "little")


def seed_globals(seed: int) -> None:
    """Seed ``random`` and, when NumPy is loaded, NumPy's global generator."""
    random.seed(seed)
    np = sys.modules.get("numpy")
    if np is not None:
        np.random.seed(seed)


def run_step(call: Any, ctx: TrialContext, info: TaskInfo, deps: list[Any]) -> Any:
    """Run one step call of a trial inside the pre/post hooks (the task function)."""
    spec = call.spec
    if ctx.isolate:
        for dep in deps:
            if type(dep) is StepFailure:
                return dep
    args, kwargs = call.fill(deps, info.values)
    if not spec.tracked:
        try:
            return spec.func(*args, **kwargs)
        except Exception as exc:
            if ctx.isolate:
                return StepFailure(exc, traceback.format_exc(), spec.name)
            raise
    # -- pre
    input_hash = value_hash(args, kwargs)
    seed = step_seed(ctx.seed, info.seed_name)
    scope = StepScope(ctx, spec, seed)
    cache_key = None
    if spec.cache and input_hash is not None:
        cache_key = f"cache:{spec.name}:{spec.code.code_hash}:{input_hash}"
        started = now()
        hit = _cached(ctx.backend, cache_key, spec.name)
        if hit is not None:
            blob, value, inputs = hit
            scope.inputs = inputs
            ctx.sink.add(_record(call, ctx, info, scope, input_hash, value_hash(value), started,
                                 0.0, persisted=blob, output_type=type_name(value),
                                 cached=True))
            return value
    seed_globals(seed)
    token = _current.set(scope)
    started = now()
    t0 = time.perf_counter()
    try:
        value = spec.func(*args, **kwargs)
    except BaseException as exc:
        duration = time.perf_counter() - t0
        _current.reset(token)
        try:
            ctx.sink.add(_record(call, ctx, info, scope, input_hash, None, started, duration,
                                 error=f"{type(exc).__name__}: {exc}"))
        except Exception:  # the hook's own failure must not mask the step's exception
            logger.exception("Could not record the failure of step %s", spec.name)
        if ctx.isolate and isinstance(exc, Exception):
            return StepFailure(exc, traceback.format_exc(), spec.name)
        raise
    duration = time.perf_counter() - t0
    _current.reset(token)
    # -- post
    for out in scope.outputs:
        try:
            out.update(path_hash(out["path"]))
            out.pop("files", None)
        except OSError as exc:
            out["error"] = f"{type(exc).__name__}: {exc}"
    output_hash = value_hash(value)
    persisted = None
    if spec.kind == "persist" or cache_key is not None:
        try:
            payload = signing.dumps(value)
        except Exception as exc:  # not picklable: the step fails, naming itself and why
            from .errors import PersistError

            error = PersistError(spec.name, spec.kind, type_name(value), exc)
            ctx.sink.add(_record(call, ctx, info, scope, input_hash, output_hash, started,
                                 duration, error=f"PersistError: {error}"))
            if ctx.isolate:
                return StepFailure(error, traceback.format_exc(), spec.name)
            raise error from exc
        persisted = ctx.backend.put_blob("pickle", payload)
        if cache_key is not None:  # the entry names the output and the files it read
            entry = json.dumps({"output": persisted, "inputs": scope.inputs}, sort_keys=True)
            ctx.backend.swap_output_hashes(
                {cache_key: ctx.backend.put_blob("cache", entry.encode("utf-8"))})
    ctx.sink.add(_record(call, ctx, info, scope, input_hash, output_hash, started, duration,
                         persisted=persisted, output_type=type_name(value)))
    return value


def _cached(backend: Backend, cache_key: str, step: str
            ) -> tuple[str, Any, list[dict[str, Any]]] | None:
    """The saved output of a ``cache=True`` step for these inputs (with the files it read
    with ``ex.input``, all unchanged since), or None."""
    from .errors import SignatureError

    entry_hash = backend.read_output_hashes([cache_key])[cache_key]
    if entry_hash is None:
        return None
    try:
        entry = json.loads(backend.get_blob("cache", entry_hash))
        for item in entry["inputs"]:
            if path_hash(item["path"])["hash"] != item.get("hash"):
                logger.info("Cached output of step %s not used: %s changed", step,
                            item["path"])
                return None
        value = signing.loads(backend.get_blob("pickle", entry["output"]),
                              what=f"cached output of step {step!r}")
    except (KeyError, OSError, ValueError) as exc:
        if isinstance(exc, SignatureError):
            logger.warning("Not using the cached output of step %s: %s", step, exc)
        return None
    return entry["output"], value, entry["inputs"]


def _record(call: Any, ctx: TrialContext, info: TaskInfo, scope: StepScope,
            input_hash: str | None, output_hash: str | None, started: Any, duration: float,
            *, error: str | None = None, persisted: str | None = None,
            output_type: str = "", cached: bool = False) -> StepRecord:
    spec = call.spec
    return StepRecord(
        step=spec.name, key=info.key, trial_ids=ctx.trial_ids, code_hash=spec.code.code_hash,
        input_hash=input_hash, output_hash=output_hash, started=started, duration=duration,
        succeeded=error is None, error=error, dependencies=info.dependencies,
        parameters=info.parameters, persisted=persisted, cached=cached,
        host=HOST, pid=os.getpid(), output_type=output_type, metrics=scope.metrics,
        labels=scope.labels, inputs=tuple(scope.inputs), outputs=tuple(scope.outputs),
        description=scope.description,
    )
