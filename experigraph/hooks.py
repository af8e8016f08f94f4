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
import operator
import os
import random
import socket
import sys
import threading
import time
import traceback
import weakref
from collections.abc import Callable, Mapping, Sequence
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, Literal, overload

from . import signing
from .artifacts import finish_output
from .hashing import input_hash, output_hash, path_hash
from .records import StepRecord, now, type_name

if TYPE_CHECKING:
    from .backends.base import Backend

logger = logging.getLogger(__name__)

HOST = socket.gethostname()
PID = os.getpid()  # this process's id (a step record's pid): kept current in a forked child


def _forked() -> None:
    global PID
    PID = os.getpid()


os.register_at_fork(after_in_child=_forked)


class RecordSink:
    """Collects the step records of a compute, in the process that started it."""

    __slots__ = ("backend", "records", "_lock", "_hashes", "shipped")

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.records: list[StepRecord] = []
        self._lock = threading.Lock()
        # id -> (weak reference, hash) of large outputs hashed in this compute, so the
        # steps that take them as inputs need not hash them again
        self._hashes: dict[int, tuple[Any, str]] = {}
        self.shipped = False  # pickled for another process: its records go to the backend

    def add(self, record: StepRecord) -> None:
        with self._lock:
            self.records.append(record)

    def remember(self, value: Any, token: str) -> None:
        """Note the hash of a large output (kept only while the value lives)."""
        try:
            self._hashes[id(value)] = (weakref.ref(value), token)
        except TypeError:  # not weakly referable: hashed again where it is an input
            pass

    def known(self, value: Any) -> str | None:
        """The hash noted for ``value`` (this very object), if any."""
        entry = self._hashes.get(id(value))
        if entry is not None and entry[0]() is value:
            return entry[1]
        return None

    def __reduce__(self) -> tuple[Any, ...]:
        self.shipped = True
        return (RemoteSink, (self.backend,))


class RemoteSink:
    """A sink in another process: records go to the backend, per trial."""

    __slots__ = ("backend",)

    def __init__(self, backend: Backend) -> None:
        self.backend = backend

    def remember(self, value: Any, token: str) -> None:
        """Nothing to note: values reach other processes as copies."""

    def known(self, value: Any) -> str | None:
        return None

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

    experigraph's own work around a step is done by built-in hooks on this same
    mechanism (:func:`hook_chain`): recording (outermost), caching, persisting, then
    the user's hooks, then seeding (innermost). ``before_step`` runs outermost first
    and ``after_step`` innermost first, as nested context managers would: a user's
    ``after_step`` runs after the step's randomness is judged and before its output
    is persisted and recorded; of two user hooks, the one registered first sees
    ``before_step`` first and ``after_step`` last. Every method also gets ``scope=``,
    the state the built-in hooks share (input hash, seed, saved output): read it,
    don't change it.

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
    """What a task knows of the trial(s) it runs for. Travels inside the task, with the
    user's hooks; the chain of hooks around a step (built-in and user's) and the methods
    of it that do something are worked out once per context, not per step."""

    __slots__ = ("experiment_id", "trial_ids", "seed", "backend", "sink", "isolate",
                 "environment", "hooks", "chains")

    def __init__(self, experiment_id: str, trial_ids: tuple[int, ...], seed: int,
                 backend: Backend, sink: RecordSink | RemoteSink, isolate: bool = False,
                 environment: str | None = None, hooks: tuple[StepHook, ...] = ()) -> None:
        self.experiment_id = experiment_id
        self.trial_ids = trial_ids
        self.seed = seed
        self.backend = backend
        self.sink = sink
        self.isolate = isolate  # sweeps: a failed step fails its trials, not the compute
        self.environment = environment  # what cache=True outputs depend on (python, packages)
        self.hooks = hooks  # the user's step hooks (pickled with the task)
        self._chain()

    def _chain(self) -> None:
        self.chains: dict[tuple[str, bool], tuple[Any, Any]] = {}

    def methods(self, spec: Any) -> tuple[tuple[Callable[..., None], ...],
                                          tuple[Callable[..., None], ...]]:
        """The ``before_step`` and ``after_step`` methods that do something for a step
        of ``spec``'s kind (worked out once per kind, not per call)."""
        kind = (spec.kind, spec.cache)
        found = self.chains.get(kind)
        if found is None:
            chain = [h for h in hook_chain(self.hooks)
                     if not isinstance(h, _Builtin) or h.applies(spec)]
            found = self.chains[kind] = (_overriding(chain, "before_step"),
                                         _overriding(chain[::-1], "after_step"))
        return found

    @property
    def trial_id(self) -> int:
        return self.trial_ids[0]

    def __dask_tokenize__(self) -> Any:
        return ("experigraph-context", self.experiment_id, self.trial_ids, self.seed)

    def __getstate__(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__slots__[:8]}

    def __setstate__(self, state: dict[str, Any]) -> None:
        for k, v in state.items():
            setattr(self, k, v)
        self._chain()


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
    """The step call being run, as seen from ``ex.*`` calls inside it and from the hooks
    around it (the built-in hooks keep their state here, passed to every hook as
    ``scope=``: read it, don't change it)."""

    __slots__ = ("ctx", "step", "step_seed", "rng", "metrics", "labels", "inputs", "outputs",
                 "description", "call", "info", "input_hash", "started", "duration", "served",
                 "watch", "used_seed", "persisted", "failure", "cache_key", "cache_miss",
                 "points", "lock", "backlog")

    def __init__(self, ctx: TrialContext, step: Any, step_seed: int) -> None:
        self.ctx, self.step, self.step_seed = ctx, step, step_seed
        self.rng: Any = None
        self.metrics: dict[str, Any] = {}
        self.labels: dict[str, Any] = {}
        self.inputs: list[dict[str, Any]] = []
        self.outputs: list[dict[str, Any]] = []
        self.description: str | None = None
        self.call: Any = None
        self.info: Any = None
        self.input_hash: str | None = None
        self.started: Any = None
        self.duration = 0.0
        self.served: Served | None = None  # the saved output the caching hook serves
        self.watch: Watch | None = None  # the seeding hook's watch on the generators
        self.used_seed = False
        self.persisted: str | None = None  # the output's pickle (blob hash)
        self.failure: BaseException | None = None  # a built-in hook fails the step
        self.cache_key: str | None = None
        self.cache_miss: str | None = None
        self.points: list[tuple[str, Any, Any]] = []  # metric points not written yet
        self.lock = threading.Lock()  # points and backlog: the step's and the flusher's
        self.backlog: dict[tuple[int, str], list[tuple[Any, Any]]] = {}  # not written yet

    def save_point(self, key: str, epoch: Any, value: Any) -> None:
        """Keep a metric point; they are written in batches (see :class:`MetricFlusher`)."""
        with self.lock:
            points = self.points
            points.append((key, epoch, value))
            count = len(points)
        if count == 1:
            FLUSHER.watch(self)
        elif count >= METRIC_BATCH:
            self.try_flush()

    def flush_points(self) -> None:
        """Write the kept metric points (to each of the step's trials), key by key; on a
        failure, the points not written are kept and the error is raised."""
        with self.lock:
            backlog = self.backlog
            points, self.points = self.points, []
            keys = dict.fromkeys(map(_first, points))  # in the order they were saved
            for key in keys:
                pairs = list(map(_pair, points)) if len(keys) == 1 else \
                    [(p[1], p[2]) for p in points if p[0] == key]
                for trial_id in self.ctx.trial_ids:
                    backlog.setdefault((trial_id, key), []).extend(pairs)
            backend = self.ctx.backend
            failure: Exception | None = None
            for where in list(backlog):
                try:
                    backend.append_metric_points(where[0], where[1], backlog[where])
                except Exception as exc:  # kept for the next try; the other curves go on
                    failure = failure or exc
                    continue
                del backlog[where]  # written: never written twice
            if failure is not None:
                raise failure

    def try_flush(self) -> bool:
        """:meth:`flush_points`, a failure logged (the points are kept for the next try)."""
        try:
            self.flush_points()
            return True
        except Exception as exc:
            logger.warning("Could not write metric points of step %s yet (%s: %s); they are "
                           "kept and written later", self.step.name, type(exc).__name__, exc)
            return False


class MetricFlusher:
    """Writes the metric points steps keep, half a second after the first one kept.

    One daemon thread per process, started with the first point: ``ex.save_metric``
    only appends to its step's list (about a microsecond), a running trial's curves
    still reach the store (and a live dashboard) within about half a second, and a
    killed process loses at most that. A step's last points are written when it ends.
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.watched: dict[int, tuple[float, StepScope]] = {}
        self.thread: threading.Thread | None = None

    def watch(self, scope: StepScope) -> None:
        with self.lock:
            self.watched.setdefault(id(scope), (time.monotonic(), scope))
            if self.thread is None or not self.thread.is_alive():
                self.thread = threading.Thread(target=self._run, name="experigraph-metrics",
                                               daemon=True)
                self.thread.start()

    def forget(self, scope: StepScope) -> None:
        with self.lock:
            self.watched.pop(id(scope), None)

    def _run(self) -> None:
        while True:
            time.sleep(METRIC_INTERVAL_S / 5)
            now_ = time.monotonic()
            with self.lock:
                due = [(key, scope) for key, (since, scope) in self.watched.items()
                       if now_ - since >= METRIC_INTERVAL_S]
                for key, _ in due:
                    del self.watched[key]
            for _, scope in due:
                if not scope.try_flush():
                    self.watch(scope)  # try again in half a second


_first = operator.itemgetter(0)
_pair = operator.itemgetter(1, 2)

#: metric points are written in batches of at most this many, or this often
METRIC_BATCH = 1000
METRIC_INTERVAL_S = 0.5

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
class StateView:
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


def _random_view() -> StateView:
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
    return StateView(inst, view, (0, 1, 2), inst.getstate)


def _numpy_view(bit_generator: Any) -> StateView:
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
    return StateView(bit_generator, view, (624, 0, 1), full)


class Watch:
    """A step between its seeding and its end: whether a draw may have been its."""

    __slots__ = ("drew", "numpy_seeded")

    def __init__(self, numpy_seeded: bool) -> None:
        self.drew = False
        self.numpy_seeded = numpy_seeded


class GlobalGenerators:
    """Per process: how to read the global generators' state, its last checkpoint, and
    the steps running since their seeding."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.random: StateView | None = None
        self.numpy: StateView | None = None
        self.checkpoint: tuple[Any, Any] | None = None
        self.running: set[Watch] = set()

    def numpy_view(self, np: Any) -> StateView:
        bit_generator = np.random.mtrand._rand._bit_generator
        view = self.numpy
        if view is None or view.owner is not bit_generator:
            view = self.numpy = _numpy_view(bit_generator)
        return view

    def random_view(self) -> StateView:
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


GLOBAL_GENERATORS = GlobalGenerators()  # the process's global generators (module-level by nature)


@overload
def seed_globals(seed: int) -> None: ...
@overload
def seed_globals(seed: int, *, watch: Literal[True]) -> Watch: ...
def seed_globals(seed: int, *, watch: bool = False) -> Watch | None:
    """Seed ``random`` and, when NumPy is loaded, NumPy's global generator.

    With ``watch``, the caller is a step about to run: the returned watch goes to
    :func:`drew_since` when the step ends.
    """
    g = GLOBAL_GENERATORS
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
        mark = Watch(numpy_seeded=np is not None)
        g.running.add(mark)
        return mark


def drew_since(mark: Watch) -> bool:
    """Whether the global generators may have been drawn from while the step that got
    ``mark`` from :func:`seed_globals` ran (ends its watch); errs only towards True."""
    g = GLOBAL_GENERATORS
    with g.lock:
        g.settle()
        g.running.discard(mark)
    if not mark.numpy_seeded and "numpy" in sys.modules:
        return True  # NumPy was imported by the step: its generator was not seeded
    return mark.drew


def run_step(call: Any, ctx: TrialContext, info: TaskInfo, deps: list[Any]) -> Any:
    """Run one step call of a trial inside its hooks (the task function).

    The core fills the call's arguments, hashes them (the input hash: the call's
    identity, which caching and the record share) and runs the function; all else
    is done by the hooks of ``ctx.chain``: the built-in ones (recording, caching,
    persisting, seeding) and the user's, on one mechanism. Every hook's failure is
    logged and leaves the step's outcome as it was; a built-in hook that must fail
    the step on purpose (a ``@ex.persist`` output that cannot be pickled) says so in
    ``scope.failure``.
    """
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
    scope = StepScope(ctx, spec, step_seed(ctx.seed, info.seed_name))
    scope.call, scope.info = call, info
    scope.input_hash = input_hash(args, kwargs, ctx.sink.known)
    scope.started = now()
    token = _current.set(scope)
    try:
        kw: dict[str, Any] = {
            "experiment_id": ctx.experiment_id, "step": spec.name, "trial": ctx.trial_ids[0],
            "trial_ids": ctx.trial_ids, "inputs": (args, kwargs), "cached": False,
            "scope": scope}
        befores, afters = ctx.methods(spec)
        for before in befores:
            try:
                before(**kw)
            except Exception:
                _hook_failed(before)
            if scope.served is not None:
                kw["cached"] = True
        del kw["inputs"]
        error: BaseException | None = None
        tb = ""
        if scope.served is None:
            t0 = time.perf_counter()
            try:
                value = spec.func(*args, **kwargs)
            except BaseException as exc:
                value, error = None, exc
                if ctx.isolate:
                    tb = traceback.format_exc()
            scope.duration = time.perf_counter() - t0
        else:
            value = scope.served.value
        kw.update(value=value, error=error, duration=scope.duration)
        for after in afters:
            try:
                after(**kw)
            except Exception:
                _hook_failed(after)
    finally:
        _current.reset(token)
        if scope.points or scope.backlog:
            _flush_points(scope)
    if error is None:
        error = scope.failure
        if error is None:
            return value
        tb = "".join(traceback.format_exception(error))
    if ctx.isolate and isinstance(error, Exception):
        return StepFailure(error, tb, spec.name)
    raise error


def _flush_points(scope: StepScope) -> None:
    """Write a step's last metric points; a store that fails is logged (the step keeps
    its outcome)."""
    FLUSHER.forget(scope)
    count = len(scope.points) + sum(len(v) for v in scope.backlog.values())
    try:
        scope.flush_points()
    except Exception:
        logger.exception("Could not write the last %d metric point(s) of step %s of trial(s) "
                         "%s", count, scope.step.name, scope.ctx.trial_ids)


def _hook_failed(method: Any) -> None:
    hook = getattr(method, "__self__", method)
    logger.exception("Hook %s.%s failed (ignored: the step and trial go on as if it had not "
                     "been called)", type(hook).__name__, getattr(method, "__name__", "?"))


class Served:
    """A saved output the caching hook serves instead of running the step."""

    __slots__ = ("blob", "value", "inputs", "used_seed")

    def __init__(self, blob: str, value: Any, inputs: list[dict[str, Any]],
                 used_seed: bool) -> None:
        self.blob, self.value, self.inputs, self.used_seed = blob, value, inputs, used_seed


class _Builtin(StepHook):
    def applies(self, spec: Any) -> bool:
        """Whether this hook has anything to do for steps like ``spec``."""
        return True


class Recording(_Builtin):
    """Built-in, outermost: hashes the files declared with ``ex.output`` and the output,
    and hands the step's ``StepRecord`` to the trial's sink (failed steps too)."""

    def after_step(  # type: ignore[override]
            self, *, scope: StepScope, value: Any, error: BaseException | None,
                   **kwargs: Any) -> None:
        for out in scope.outputs:  # hashed, and kept unless declared with keep=False
            finish_output(out)
        served = scope.served
        if error is not None:
            scope.ctx.sink.add(_record(scope, None, error=f"{type(error).__name__}: {error}"))
            return
        failure = scope.failure
        token = output_hash(value)
        if token is not None and token[0] == "a":  # a large array's: reused as an input's
            scope.ctx.sink.remember(value, token)
        scope.ctx.sink.add(_record(
            scope, token, persisted=scope.persisted, output_type=type_name(value),
            cached=served is not None,
            used_seed=served.used_seed if served is not None else scope.used_seed,
            error=None if failure is None else f"{type(failure).__name__}: {failure}"))

    def __reduce__(self) -> str:
        return "RECORDING"


class Caching(_Builtin):
    """Built-in, for ``@ex.step(cache=True)``: serves a saved output when it may be
    reused (see :func:`_cached`), and saves the output of a call that ran."""

    def applies(self, spec: Any) -> bool:
        return bool(spec.cache)

    def before_step(self, *, scope: StepScope, **kwargs: Any) -> None:  # type: ignore[override]
        spec = scope.step
        if scope.input_hash is None:
            scope.cache_miss = "its inputs have no deterministic hash"
            logger.info("Cached output of step %s not used: %s", spec.name, scope.cache_miss)
            return
        scope.cache_key = f"{spec.name}:{spec.code.code_hash}:{scope.input_hash}"
        hit = _cached(scope.ctx, scope.cache_key, spec)
        if isinstance(hit, str):
            scope.cache_miss = hit
        else:
            scope.served = hit
            scope.inputs = hit.inputs
            scope.persisted = hit.blob

    def after_step(  # type: ignore[override]
            self, *, scope: StepScope, error: BaseException | None,
                   **kwargs: Any) -> None:
        if scope.cache_key is None or scope.served is not None or scope.persisted is None:
            return
        ctx, spec = scope.ctx, scope.step
        entry = json.dumps({  # the entry names the output, the files it read, the seed (if
            "output": scope.persisted, "inputs": scope.inputs,  # it drew from it) and
            "environment": ctx.environment,  # the environment
            "seed": ctx.seed if scope.used_seed else None}, sort_keys=True)
        ctx.backend.index_swap_many({  # the index namespaces of base.INDEX_NAMESPACES
            "cache": {scope.cache_key: ctx.backend.put_blob("cache", entry.encode("utf-8"))},
            "cache-code": {f"{spec.name}:{scope.input_hash}": spec.code.code_hash},
            "cache-step": {spec.name: spec.code.code_hash}})

    def __reduce__(self) -> str:
        return "CACHING"


class Persisting(_Builtin):
    """Built-in: saves the output of an ``@ex.persist`` step (and of a ``cache=True``
    step that ran) as a signed pickle. An output that cannot be pickled fails the step
    on purpose (``PersistError``, naming the step); a store that cannot take the pickle
    is logged, and the step keeps its outcome."""

    def applies(self, spec: Any) -> bool:
        return spec.kind == "persist" or bool(spec.cache)

    def after_step(  # type: ignore[override]
            self, *, scope: StepScope, value: Any, error: BaseException | None,
                   **kwargs: Any) -> None:
        spec = scope.step
        if error is not None or scope.served is not None or not (
                spec.kind == "persist" or scope.cache_key is not None):
            return
        try:
            payload = signing.dumps(value)
        except Exception as exc:  # not picklable: the step fails, naming itself and why
            from .errors import PersistError

            failure = PersistError(spec.name, spec.kind, type_name(value), exc)
            failure.__cause__ = exc
            scope.failure = failure
            return
        scope.persisted = scope.ctx.backend.put_blob("pickle", payload)

    def __reduce__(self) -> str:
        return "PERSISTING"


class Seeding(_Builtin):
    """Built-in, innermost: seeds ``random`` and NumPy's global generator for the step,
    and when it ends says whether it used the trial's randomness (``ex.rng()``, or a
    draw from the seeded global generators: see above). Runs after the user's
    ``before_step`` and before their ``after_step``, so a hook's draws never change
    the step's numbers nor count as the step's."""

    def before_step(self, *, scope: StepScope, **kwargs: Any) -> None:  # type: ignore[override]
        if scope.served is None:
            scope.watch = seed_globals(scope.step_seed, watch=True)

    def after_step(self, *, scope: StepScope, **kwargs: Any) -> None:  # type: ignore[override]
        if scope.watch is not None:
            drew = drew_since(scope.watch)  # always: it also ends the watch
            scope.used_seed = scope.rng is not None or drew

    def __reduce__(self) -> str:
        return "SEEDING"


RECORDING, CACHING, PERSISTING, SEEDING = Recording(), Caching(), Persisting(), Seeding()


def hook_chain(user_hooks: Sequence[StepHook]) -> tuple[StepHook, ...]:
    """The hooks around every step, outermost first: ``before_step`` runs in this order,
    ``after_step`` in the reverse one (as nested context managers would)."""
    return (RECORDING, CACHING, PERSISTING, *user_hooks, SEEDING)


def _overriding(chain: Sequence[StepHook], method: str) -> tuple[Callable[..., None], ...]:
    base = getattr(StepHook, method)
    return tuple(getattr(h, method) for h in chain
                 if getattr(type(h), method, base) is not base)


def _cached(ctx: TrialContext, cache_key: str, spec: Any) -> Served | str:
    """The saved output of a ``cache=True`` step for these inputs, or why there is none
    to use (logged).

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
                       if i.get("kind") != "persisted"  # another trial's: never changes
                       and path_hash(i["path"])["hash"] != i.get("hash")]
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
                return Served(entry["output"], value, entry["inputs"], saved_seed is not None)
        except (KeyError, OSError, ValueError) as exc:
            if isinstance(exc, SignatureError):
                logger.warning("Not using the cached output of step %s: %s", step, exc)
            why = f"its saved output cannot be read ({type(exc).__name__}: {exc})"
    logger.info("Cached output of step %s not used: %s", step, why)
    return why


def _record(scope: StepScope, output_hash: str | None, *, error: str | None = None,
            persisted: str | None = None, output_type: str = "", cached: bool = False,
            used_seed: bool = False) -> StepRecord:
    spec, ctx, info = scope.step, scope.ctx, scope.info
    return StepRecord(
        step=spec.name, key=info.key, trial_ids=ctx.trial_ids, code_hash=spec.code.code_hash,
        input_hash=scope.input_hash, output_hash=output_hash, started=scope.started,
        duration=scope.duration, succeeded=error is None, error=error,
        dependencies=info.dependencies, parameters=info.parameters, persisted=persisted,
        cached=cached, host=HOST, pid=PID, output_type=output_type,
        metrics=scope.metrics, labels=scope.labels, inputs=tuple(scope.inputs),
        outputs=tuple(scope.outputs), description=scope.description, used_seed=used_seed,
        cache_miss=scope.cache_miss,
    )


FLUSHER = MetricFlusher()  # the process's metric writer (module-level by nature)
