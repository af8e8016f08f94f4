"""The step wrapper: pre and post hooks around every step of a trial.

A task of a trial's graph is ``(run_step, call, ctx, info, dependency values)``.
``run_step`` is the wrapper:

* **pre**: fill the call's arguments, hash them (the input hash), seed ``random``
  and NumPy's global generator for this step, and make ``ctx`` the current
  trial context (a ``ContextVar``, set per task, so concurrent trials in threads
  stay apart and ``ex.current_trial_id`` works on any worker);
* **post**: say whether the step used the trial's randomness (``ex.rng()``, or
  a draw from the seeded global generators: see "did a step draw" below), hash
  the output, save it if the step persists or caches, and hand a ``StepRecord``
  to the context's sink. A failed step leaves a record too, and its exception
  propagates unchanged; a failure of the hook itself is logged and never masks
  the step's exception.

A ``cache=True`` step looks for a saved output first (``_cached``): it is used
only if the step was never seen impure, the output did not draw from another
seed's randomness, the files it read are unchanged and the Python and packages
are the same; otherwise the reason is logged and kept in ``StepRecord.cache_miss``.

The context travels with the task as data. Its sink keeps records in memory
when the task runs in the process that started the trial (threaded and
synchronous schedulers); pickled to another process (``processes`` scheduler,
dask.distributed workers), it becomes a ``RemoteSink`` that appends records to
the backend, where the trial collects them when it finishes. Impurity checks
happen then, in the trial's own process, so their warnings reach the user.
"""
from __future__ import annotations

import ctypes
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
from collections.abc import Callable, Mapping, Sequence
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, Literal, overload

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


class StepHook:
    """Base class of the hooks a user adds to an experiment: override what you need.

    Every method is a no-op that takes keyword-only arguments and ``**kwargs``, so
    a hook written today keeps working when experigraph passes more. A hook is
    registered with ``Experiment(..., hooks=[...])`` or ``ex.add_hook(hook)``.

    * ``before_trial`` / ``after_trial`` run in the process that computes, once per
      trial (after its id is claimed; after its record is written);
    * ``before_step`` / ``after_step`` run around every call of a tracked step,
      wherever the step runs (threads, processes, ``dask.distributed`` workers: the
      hooks travel with the task, so they must pickle), inside the step's scope:
      ``ex.metric()``, ``ex.label()`` and ``ex.current_trial_id`` work in them.
      ``before_step`` runs before the step's seeding, so a hook's draws never
      change the step's numbers. A call served from the cache
      (``@ex.step(cache=True)``) gets both with ``cached=True``.

    A hook's own exception is logged and never changes the step's or the trial's
    outcome.

    Examples
    --------
    >>> class Timings(StepHook):
    ...     def __init__(self):
    ...         self.seen = []
    ...     def after_step(self, *, step, duration, **kwargs):
    ...         self.seen.append((step, round(duration, 1)))
    """

    def before_trial(self, *, experiment_id: str, trial_id: int,
                     parameters: Mapping[str, Any], seed: int, **kwargs: Any) -> None:
        """A trial is about to run (its running record is written)."""

    def after_trial(self, *, experiment_id: str, trial_id: int, status: str, value: Any,
                    error: BaseException | None, duration: float | None,
                    **kwargs: Any) -> None:
        """A trial has finished and its record is written (``status``: succeeded, failed,
        interrupted)."""

    def before_step(self, *, experiment_id: str, step: str, trial: int,
                    trial_ids: tuple[int, ...], inputs: tuple[tuple[Any, ...], dict[str, Any]],
                    **kwargs: Any) -> None:
        """A step call is about to run; ``inputs`` is ``(args, kwargs)``; ``trial`` is its
        trial's id (the first of ``trial_ids`` for a call a sweep's trials share)."""

    def after_step(self, *, experiment_id: str, step: str, trial: int,
                   trial_ids: tuple[int, ...], value: Any, error: BaseException | None,
                   duration: float, **kwargs: Any) -> None:
        """A step call has ended, with ``value`` or ``error``, after ``duration`` seconds."""


def call_hooks(hooks: Sequence[StepHook], method: str, **kwargs: Any) -> None:
    """Call ``method`` of every hook; a hook's failure is logged and goes no further."""
    for hook in hooks:
        try:
            getattr(hook, method)(**kwargs)
        except Exception:
            logger.exception("Hook %s.%s failed (ignored: the step and trial go on as if it "
                             "had not been called)", type(hook).__name__, method)


class TrialContext:
    """What a task knows of the trial(s) it runs for. Travels inside the task."""

    __slots__ = ("experiment_id", "trial_ids", "seed", "backend", "sink", "isolate",
                 "environment", "hooks")

    def __init__(self, experiment_id: str, trial_ids: tuple[int, ...], seed: int,
                 backend: Backend, sink: RecordSink | RemoteSink, isolate: bool = False,
                 environment: str | None = None, hooks: tuple[StepHook, ...] = ()) -> None:
        self.hooks = hooks  # the user's step hooks (pickled with the task)
        self.experiment_id = experiment_id
        self.trial_ids = trial_ids
        self.seed = seed
        self.backend = backend
        self.sink = sink
        self.isolate = isolate  # sweeps: a failed step fails its trials, not the compute
        self.environment = environment  # what cache=True outputs depend on (python, packages)

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


# -- did a step draw from the seeded global generators? ------------------------------
#
# The rule (README, "Impurity and seed-dependence"): a step *used the trial's
# randomness* when it called ``ex.rng()`` or when the state of ``random``'s or
# NumPy's global generator is not, when the step ends, the state experigraph seeded
# it to just before the step. Copying a generator's whole state costs 7 us
# (``random.getstate()``) and 22 us (``np.random.get_state()``) per call, so the
# state is *read in place* instead: the Mersenne Twister's position and its first
# two state words, from the C struct of ``random``'s instance and of NumPy's
# global MT19937 (about 0.1 us). Any draw moves the position or, after exactly
# 624 words, regenerates the words. The layout is checked against
# ``getstate()``/``.state`` once per process; if it does not match (another Python
# or NumPy), the full state is compared instead: slower, as exact.
#
# Steps in parallel threads share the global generators. The process keeps a
# *checkpoint* of their state and the set of steps running between a seeding and
# their end. Whenever a step is seeded or ends, the state is compared with the
# checkpoint (under a lock): if it moved, some running step drew, and every step
# running at that moment is taken to have used the randomness; the checkpoint then
# moves on. A step that runs beside others that draw nothing (two loaders side by
# side) is not marked: re-seeding is not drawing. The errors go one way only: a
# step running beside one that drew is taken to have used the randomness too,
# which keeps the seed in its impurity key and can hide an impurity, but never
# reports one.
class _StateView:
    """Reads a few words of a Mersenne Twister's state without copying it."""

    __slots__ = ("owner", "view", "indices", "full", "read")

    def __init__(self, owner: Any, view: Any, indices: tuple[int, int, int],
                 full: Callable[[], Any]) -> None:
        self.owner, self.view, self.indices, self.full = owner, view, indices, full
        if view is None:
            self.read: Callable[[], Any] = full
        else:
            i, j, k = indices
            self.read = lambda: (view[i], view[j], view[k])


def _random_view() -> _StateView:
    """``random``'s instance: ``struct {PyObject_HEAD; int index; uint32_t state[624];}``."""
    import _random

    inst = random._inst
    head = object.__basicsize__
    view = None
    if _random.Random.__basicsize__ >= head + 4 * 625:
        candidate = (ctypes.c_uint32 * 3).from_address(id(inst) + head)
        saved = inst.getstate()
        try:
            ok = True
            for draw in (False, True):
                if draw:
                    inst.random()
                state = inst.getstate()[1]
                ok = ok and (candidate[0], candidate[1], candidate[2]) == (
                    state[-1] & 0xFFFFFFFF, state[0], state[1])
            view = candidate if ok else None
        finally:
            inst.setstate(saved)
    return _StateView(inst, view, (0, 1, 2), inst.getstate)


def _numpy_view(bit_generator: Any) -> _StateView:
    """NumPy's global MT19937: ``struct {uint32_t key[624]; int pos;}``."""
    def full() -> Any:
        state = bit_generator.state["state"]
        return (int(state["pos"]), int(state["key"][0]), int(state["key"][1]))

    view = None
    try:
        if type(bit_generator).__name__ == "MT19937":
            candidate = (ctypes.c_uint32 * 625).from_address(
                bit_generator.ctypes.state_address)
            saved = bit_generator.state
            try:
                ok = True
                for draw in (False, True):
                    if draw:
                        bit_generator.random_raw()
                    ok = ok and (candidate[624], candidate[0], candidate[1]) == full()
                view = candidate if ok else None
            finally:
                bit_generator.state = saved
    except Exception:  # no ctypes interface: compare the copied state
        view = None
    return _StateView(bit_generator, view, (624, 0, 1), full)


class _Watch:
    """A step between its seeding and its end: whether a draw may have been its."""

    __slots__ = ("drew", "numpy_seeded")

    def __init__(self, numpy_seeded: bool) -> None:
        self.drew = False
        self.numpy_seeded = numpy_seeded


class _GlobalGenerators:
    """Per process: how to read the global generators' state, its last checkpoint, and
    the steps running since their seeding."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.random: _StateView | None = None
        self.numpy: _StateView | None = None
        self.checkpoint: tuple[Any, Any] | None = None
        self.running: set[_Watch] = set()

    def numpy_view(self, np: Any) -> _StateView:
        bit_generator = np.random.mtrand._rand._bit_generator
        view = self.numpy
        if view is None or view.owner is not bit_generator:
            view = self.numpy = _numpy_view(bit_generator)
        return view

    def random_view(self) -> _StateView:
        view = self.random
        if view is None or view.owner is not random._inst:
            view = self.random = _random_view()
        return view

    def state(self) -> tuple[Any, Any]:
        np = sys.modules.get("numpy")
        return (self.random_view().read(),
                None if np is None else self.numpy_view(np).read())

    def settle(self) -> None:
        """With the lock held: a move since the checkpoint is a draw by a running step."""
        current = self.state()
        if current != self.checkpoint:
            for watch in self.running:
                watch.drew = True
        self.checkpoint = current


_GLOBALS = _GlobalGenerators()  # the process's global generators (module-level by nature)


@overload
def seed_globals(seed: int) -> None: ...
@overload
def seed_globals(seed: int, *, watch: Literal[True]) -> _Watch: ...
def seed_globals(seed: int, *, watch: bool = False) -> _Watch | None:
    """Seed ``random`` and, when NumPy is loaded, NumPy's global generator.

    With ``watch``, the caller is a step about to run: the returned watch goes to
    :func:`drew_since` when the step ends.
    """
    g = _GLOBALS
    np = sys.modules.get("numpy")
    with g.lock:
        if g.running:
            g.settle()  # draws of the running steps, before this seeding resets the state
        random.seed(seed)
        if np is not None:
            np.random.seed(seed)
        g.checkpoint = g.state()
        if not watch:
            return None
        mark = _Watch(numpy_seeded=np is not None)
        g.running.add(mark)
        return mark


def drew_since(mark: _Watch) -> bool:
    """Whether the global generators may have been drawn from while the step that got
    ``mark`` from :func:`seed_globals` ran (ends its watch); errs only towards True."""
    g = _GLOBALS
    with g.lock:
        g.settle()
        g.running.discard(mark)
    if not mark.numpy_seeded and "numpy" in sys.modules:
        return True  # NumPy was imported by the step: its generator was not seeded
    return mark.drew


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
    cache_key = cache_miss = None
    if spec.cache:
        started = now()
        if input_hash is None:
            cache_miss = "its inputs have no deterministic hash"
            logger.info("Cached output of step %s not used: %s", spec.name, cache_miss)
        else:
            cache_key = f"{spec.name}:{spec.code.code_hash}:{input_hash}"
            hit = _cached(ctx, cache_key, spec)
            if isinstance(hit, str):
                cache_miss = hit
            else:
                blob, value, inputs, used = hit
                scope.inputs = inputs
                if ctx.hooks:  # in the step's scope, as for a call that runs
                    token = _current.set(scope)
                    _step_hooks(ctx, spec, "before_step", cached=True, inputs=(args, kwargs))
                    _step_hooks(ctx, spec, "after_step", cached=True, value=value,
                                error=None, duration=0.0)
                    _current.reset(token)
                ctx.sink.add(_record(call, ctx, info, scope, input_hash, value_hash(value),
                                     started, 0.0, persisted=blob,
                                     output_type=type_name(value), cached=True,
                                     used_seed=used))
                return value
    token = _current.set(scope)
    if ctx.hooks:  # before seeding: a hook's draws never change the step's numbers
        _step_hooks(ctx, spec, "before_step", cached=False, inputs=(args, kwargs))
    mark = seed_globals(seed, watch=True)
    started = now()
    t0 = time.perf_counter()
    try:
        value = spec.func(*args, **kwargs)
    except BaseException as exc:
        duration = time.perf_counter() - t0
        drew_since(mark)  # ends the watch
        if ctx.hooks:
            _step_hooks(ctx, spec, "after_step", cached=False, value=None, error=exc,
                        duration=duration)
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
    drew = drew_since(mark)  # always: it also ends the watch
    if ctx.hooks:  # inside the step's scope: ex.metric() and ex.label() work in a hook
        _step_hooks(ctx, spec, "after_step", cached=False, value=value, error=None,
                    duration=duration)
    _current.reset(token)
    # -- post
    used_seed = scope.rng is not None or drew
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
                                 duration, error=f"PersistError: {error}",
                                 used_seed=used_seed, cache_miss=cache_miss))
            if ctx.isolate:
                return StepFailure(error, traceback.format_exc(), spec.name)
            raise error from exc
        persisted = ctx.backend.put_blob("pickle", payload)
        if cache_key is not None:  # the entry names the output, the files it read, the
            entry = json.dumps({  # seed (if it drew from it) and the environment
                "output": persisted, "inputs": scope.inputs, "environment": ctx.environment,
                "seed": ctx.seed if used_seed else None}, sort_keys=True)
            ctx.backend.index_swap_many({  # the index namespaces of base.INDEX_NAMESPACES
                "cache": {cache_key: ctx.backend.put_blob("cache", entry.encode("utf-8"))},
                "cache-code": {f"{spec.name}:{input_hash}": spec.code.code_hash},
                "cache-step": {spec.name: spec.code.code_hash}})
    ctx.sink.add(_record(call, ctx, info, scope, input_hash, output_hash, started, duration,
                         persisted=persisted, output_type=type_name(value),
                         used_seed=used_seed, cache_miss=cache_miss))
    return value


def _step_hooks(ctx: TrialContext, spec: Any, method: str, **kwargs: Any) -> None:
    call_hooks(ctx.hooks, method, experiment_id=ctx.experiment_id, step=spec.name,
               trial=ctx.trial_id, trial_ids=ctx.trial_ids, **kwargs)


def _cached(ctx: TrialContext, cache_key: str, spec: Any
            ) -> tuple[str, Any, list[dict[str, Any]], bool] | str:
    """The saved output of a ``cache=True`` step for these inputs, as (pickle hash, value,
    files read with ``ex.input``, used the seed), or why there is none to use (logged).

    Not used: a step ever seen impure (same code); an output computed with the
    trial's randomness under another seed; a file it read changed; another
    Python or set of installed packages; a payload whose signature does not match.
    """
    from .drift import taint_key
    from .errors import SignatureError

    backend, step = ctx.backend, spec.name
    code_key = f"{step}:{cache_key.rsplit(':', 1)[1]}"
    tkey = taint_key(step, spec.code.code_hash)
    found = backend.index_read_many({"cache": [cache_key], "taint": [tkey],
                                     "cache-code": [code_key], "cache-step": [step]})
    why = None
    entry_hash, taint = found["cache"][cache_key], found["taint"][tkey]
    if taint is not None:
        why = f"the step was seen impure ({taint}), so its output cannot be reused"
    elif entry_hash is None:
        saved_code = found["cache-code"][code_key]
        if saved_code is not None and saved_code != spec.code.code_hash:
            why = "its code changed since its output for these inputs was saved"
        elif found["cache-step"][step] is None:
            why = "no output of it is saved yet"
        else:
            why = "no output is saved for these inputs"
    else:
        try:
            entry = json.loads(backend.get_blob("cache", entry_hash))
            saved_seed = entry.get("seed")
            changed = [i["path"] for i in entry["inputs"]
                       if path_hash(i["path"])["hash"] != i.get("hash")]
            if saved_seed is not None and saved_seed != ctx.seed:
                why = (f"its saved output used the trial's randomness under seed {saved_seed} "
                       f"(this trial's seed is {ctx.seed})")
            elif changed:
                why = f"{', '.join(changed)} changed"
            elif entry.get("environment") != ctx.environment:
                why = "the environment (Python or installed packages) changed"
            else:
                value = signing.loads(backend.get_blob("pickle", entry["output"]),
                                      what=f"cached output of step {step!r}")
                return entry["output"], value, entry["inputs"], saved_seed is not None
        except (KeyError, OSError, ValueError) as exc:
            if isinstance(exc, SignatureError):
                logger.warning("Not using the cached output of step %s: %s", step, exc)
            why = f"its saved output cannot be read ({type(exc).__name__}: {exc})"
    logger.info("Cached output of step %s not used: %s", step, why)
    return why


def _record(call: Any, ctx: TrialContext, info: TaskInfo, scope: StepScope,
            input_hash: str | None, output_hash: str | None, started: Any, duration: float,
            *, error: str | None = None, persisted: str | None = None,
            output_type: str = "", cached: bool = False, used_seed: bool = False,
            cache_miss: str | None = None) -> StepRecord:
    spec = call.spec
    return StepRecord(
        step=spec.name, key=info.key, trial_ids=ctx.trial_ids, code_hash=spec.code.code_hash,
        input_hash=input_hash, output_hash=output_hash, started=started, duration=duration,
        succeeded=error is None, error=error, dependencies=info.dependencies,
        parameters=info.parameters, persisted=persisted, cached=cached,
        host=HOST, pid=os.getpid(), output_type=output_type, metrics=scope.metrics,
        labels=scope.labels, inputs=tuple(scope.inputs), outputs=tuple(scope.outputs),
        description=scope.description, used_seed=used_seed, cache_miss=cache_miss,
    )
