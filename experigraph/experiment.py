"""``Experiment``: the facade for declaring, running and querying trials.

It holds what the user declared in this process (parameters, steps, the latest
result) and a backend; everything recorded lives in the backend and is read
back from it, so two ``Experiment("demo")`` objects on one backend see one
history, and re-running a notebook cell loses and duplicates nothing.
"""
from __future__ import annotations

import contextlib
import functools
import itertools
import json
import operator
import os
import logging
import re
import threading
import time
import types
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, overload


from . import drift as drift_checks
from . import environment
from . import events
from . import signing
from .backends import resolve_backend
from .backends.base import Backend, MetricColumns
from .errors import (
    ExperimentNotFoundError,
    ArgumentNameError, BackendError, CorruptRecordError, InvalidExperimentIdError,
    NotInTrialError, ParameterUndeclaredError,
    InvalidArgumentError, NotRecordedError, ReproductionError, StepDefinitionError,
    SweepDefinitionError,
    TrialIDNotFoundError)
from .graph import (
    NOTHING, Parameter, ParameterSpace, Result, StepSpec, make_call, make_result, node_of,
    parameters_read, walk)
from .compare import Reproduction, TrialDiff, compare_records
from .environment._common import is_failure
from .environment.collector import (
    Collector,
    drift_message,
    extra_collectors,
    find_collector,
    text_lines,
    validate_collectors,
)
from .hooks import StepHook, current_scope
from .history_cache import history_table
from .records import (ROW_RUNNING, DriftEvent, Status, TrialRecord, Unrepresentable,
                      check_seed, gc_paused, row_of)
from .present import history_frame, result_type, rows_frame
from .trial import (Outcome, RunOptions, TrialRunner, derive_status, new_seed, read_source,
                    source_files)
from .lineage import note_persisted_read
from .versioning import (Versioning, declare_file, read_annotations, resolve_artifacts,
                         with_annotations)

if TYPE_CHECKING:
    import pandas as pd

logger = logging.getLogger(__name__)

_ID_RULE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$")


def validate_experiment_id(experiment_id: Any) -> str:
    """Return ``experiment_id`` if it follows the naming rule, else raise."""
    if not isinstance(experiment_id, str) or not _ID_RULE.match(experiment_id):
        raise InvalidExperimentIdError(experiment_id)
    return experiment_id


class Step:
    """A declared step: call it with values or dask objects to build the graph."""

    def __init__(self, experiment: Experiment, spec: StepSpec) -> None:
        self._experiment = experiment
        self.spec = spec
        functools.update_wrapper(self, spec.func)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self.spec.kind == "result":
            result = make_result(self.spec, args, kwargs, self._experiment)
            self._experiment._use_result(result)
            return result
        return make_call(self.spec, args, kwargs)

    def __repr__(self) -> str:
        return f"<experigraph {self.spec.kind} {self.spec.name!r} of {self._experiment.id!r}>"


class Experiment(Versioning):
    """An experiment: parameters and steps whose every compute is a recorded trial.

    Parameters
    ----------
    id : str
        Letters, digits, ``_``, ``-`` and ``.``; no path separators.
    backend : None, str, pathlib.Path or Backend, optional
        Where trials are recorded (see README, "Backends"). Default: the file
        backend in ``./experigraph_cache/<id>/`` (or ``$EXPERIGRAPH_BACKEND``).
    seed : int, optional
        The default seed of every trial; without it each trial gets a generated
        seed, which is recorded.
    hooks : sequence of StepHook, optional
        Hooks called around every trial and step (see :class:`StepHook` and
        :meth:`add_hook`).
    collectors : sequence of Collector, optional
        Extra environment collectors for this experiment's trials (instances of
        :class:`experigraph.environment.collector.Collector` subclasses), besides
        the built-in categories and those registered in the
        ``experigraph.collectors`` entry-point group (see README, "Extending
        experigraph"). Their categories are recorded and checked for drift
        like the built-in ones.
    artifacts : str or path, optional
        Where files declared with ``ex.output`` (and ``ex.input(path, keep=True)``)
        and models are kept: a directory or an ``fsspec`` URL (``s3://bucket/prefix``,
        ``memory://name``...); the experiment uses its ``<id>`` sub-directory.
        Default: the file backend's directory; Redis and MongoDB keep no files
        without it (see README, "Artifacts and models").
    report_drift : bool
        When an experiment with trials is opened, compare this process's
        environment with its last trial's and log a WARNING per change (the
        default). ``Store.open(quiet=True)``, used by the command line and the
        dashboard, which run no trial, turns it off.

    Examples
    --------
    >>> ex = Experiment(id="doc", backend=tmp_path)        # doctest: +SKIP
    >>> a = ex.parameter("a")                              # doctest: +SKIP
    """

    def __init__(self, id: str, backend: Any = None, seed: int | None = None,
                 hooks: Sequence[StepHook] = (),
                 collectors: Sequence[Collector] | None = None, artifacts: Any = None,
                 report_drift: bool = True) -> None:
        self.id = validate_experiment_id(id)
        self._collectors = validate_collectors(collectors)
        if seed is not None:
            check_seed(seed)
        for hook in hooks:
            self._check_hook(hook)
        self._backend: Backend = resolve_backend(backend, self.id)
        self._artifacts = resolve_artifacts(self._backend, artifacts, self.id)
        self.seed = seed
        self._space = ParameterSpace()
        self._steps: dict[str, Step] = {}
        self._result: Result | None = None
        self._walked: tuple[Result, list[Any], list[str]] | None = None
        self._runner = TrialRunner(self.id, self._backend, hooks=hooks,
                                   collectors=self._collectors)
        environment.start_background_collection()
        last = self._backend.last_trial_id()
        if last:
            logger.info("Loaded experiment %s from %s (last trial id %d)", self.id,
                        self._backend.uri, last)
            previous = self._runner.previous_trial()  # names a torn latest record
            if previous is not None and report_drift:
                self._runner.environment.on_open(previous)

    @property
    def experiment_id(self) -> str:
        return self.id

    @property
    def backend(self) -> Backend:
        return self._backend

    @property
    def store(self) -> Store:
        """The store this experiment records in, with its other experiments."""
        return Store(self._backend)

    @property
    def hooks(self) -> tuple[StepHook, ...]:
        """The hooks called around every trial and step, in the order they were added."""
        return self._runner.hooks

    def add_hook(self, hook: StepHook) -> StepHook:
        """Call ``hook`` (a :class:`~experigraph.StepHook`) around every later trial and step.

        Returns the hook. A hook's own exception is logged and never changes a step's
        or trial's outcome; hooks travel with the tasks, so they must pickle.
        """
        self._check_hook(hook)
        self._runner.hooks = (*self._runner.hooks, hook)
        return hook

    @staticmethod
    def _check_hook(hook: Any) -> None:
        if not isinstance(hook, StepHook):
            raise InvalidArgumentError(
                f"A hook is an instance of a subclass of experigraph.StepHook, got {hook!r}. "
                "Subclass StepHook and override before_step/after_step (or before_trial/"
                "after_trial).")

    @property
    def parameters(self) -> Mapping[str, Parameter]:
        """The declared parameters, by name (read only)."""
        return types.MappingProxyType(self._space.declared)

    def __repr__(self) -> str:
        try:
            trial_id: Any = self._backend.last_trial_id()
        except Exception:  # a repr must not raise: the backend may be unreachable
            trial_id = "?"
        return f"Experiment(id: {self.id}, trial_id: {trial_id}, backend: {self._backend.uri})"

    def __reduce__(self) -> tuple[Any, ...]:
        # A step that refers to ``ex`` carries it to workers: send the configuration only.
        return (_restore_experiment, (self.id, self._backend, self.seed, self._artifacts))

    # -- declaring ----------------------------------------------------------------
    def parameter(self, name: str, default: Any = NOTHING, type: Any = None) -> Parameter:
        """Declare a parameter (a dask Delayed leaf); re-declaring returns the same one.

        Re-declaring with another default (or type) updates it. With ``type``
        (e.g. ``float``), values given by ``set_parameters``, the command line
        or a sweep are converted to it (``lr=1`` becomes ``1.0``).
        """
        if not isinstance(name, str) or not name.isidentifier():
            raise InvalidArgumentError(f"A parameter name must be a Python identifier, got {name!r}.")
        if type is not None and not callable(type):
            raise InvalidArgumentError(f"type= takes a type such as int, float or str, got {type!r}.")
        return self._space.declare(name, default, type)

    def _declare(self, func: Callable[..., Any] | None, kind: str, cache: bool = False) -> Any:
        def decorate(f: Callable[..., Any]) -> Step:
            if not callable(f):
                raise StepDefinitionError(f"@ex.{kind} decorates a function, got {f!r}.")
            step = Step(self, StepSpec(f, kind=kind, cache=cache))
            self._steps[step.spec.name] = step
            return step
        return decorate if func is None else decorate(func)

    def __call__(self, func: Callable[..., Any] | None = None, /) -> Any:
        """``@ex``: declare a step."""
        return self._declare(func, "step")

    def step(self, func: Callable[..., Any] | None = None, /, *, cache: bool = False) -> Any:
        """``@ex.step`` or ``@ex.step(cache=True)``: declare a step.

        ``cache=True`` declares the step deterministic in its inputs: its output
        is saved (a signed pickle), and a later call with the same code and the
        same input values, in any trial and with any seed, reuses it instead of
        running the step again (``StepRecord.cached``).
        """
        return self._declare(func, "step", cache=cache)

    def persist(self, func: Callable[..., Any] | None = None, /) -> Any:
        """``@ex.persist``: a step whose output is saved with each trial (``get_persisted``)."""
        return self._declare(func, "persist")

    def result(self, func: Callable[..., Any] | None = None, /) -> Any:
        """``@ex.result``: the final step; calling it returns a :class:`Result`."""
        return self._declare(func, "result")

    # -- running ------------------------------------------------------------------
    def _use_result(self, result: Result) -> None:
        """Make ``result`` the one ``compute()`` runs (an ``@ex.result`` call does this)."""
        self._result = result
        events.result_built(self, result)

    def set_parameters(self, **values: Any) -> Experiment:
        """Set parameter values for the next trials; returns the experiment (chainable).

        Raises
        ------
        ParameterUndeclaredError
            A name is not declared; nothing is set.
        """
        for name in values:
            if name not in self._space.declared:
                raise ParameterUndeclaredError(name, self._space.declared)
        converted = {n: self._space.convert(n, v) for n, v in values.items()}
        self._space.values.update(converted)
        return self

    def compute(self, seed: int | None = None, **dask_kwargs: Any) -> Any:
        """Run one trial of the latest :class:`Result` and return its value."""
        return self.run(seed=seed, **dask_kwargs).value

    @overload
    def run(self, result: Result | None = None, *,
            parameters: Mapping[str, Any] | None = None, seed: int | None = None,
            raise_errors: bool = True, rerun_of: int | None = None,
            script: Mapping[str, Any] | None = None, progress: bool = False,
            **dask_kwargs: Any) -> Outcome: ...
    @overload
    def run(self, result: Result | None = None, *,
            parameters: Sequence[Mapping[str, Any]],
            seed: int | Sequence[int] | None = None, raise_errors: bool = True,
            rerun_of: int | None = None, script: Mapping[str, Any] | None = None,
            progress: bool = False, **dask_kwargs: Any) -> list[Outcome]: ...
    def run(self, result: Result | None = None, *,
            parameters: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None = None,
            seed: int | Sequence[int] | None = None, raise_errors: bool = True,
            rerun_of: int | None = None, script: Mapping[str, Any] | None = None,
            progress: bool = False, **dask_kwargs: Any) -> Outcome | list[Outcome]:
        """Run one trial (or, given a list of parameter sets, one per set) and return its
        :class:`~experigraph.Outcome` (a list of them).

        Every way to run a trial comes here: ``compute``, ``Result.compute``, script
        mode, ``experigraph rerun``, ``reproduce`` and ``sweep``. The outcome is the
        race-free handle of the trial this call ran: its ``trial_id``, ``value``,
        ``exception`` and the final ``record``, whatever other processes or threads
        record meanwhile.

        Parameters
        ----------
        result : Result, optional
            What to compute; default: the latest ``@ex.result`` call.
        parameters : mapping, or sequence of mappings, optional
            Values for this trial only, over those of ``set_parameters``. A list runs
            one trial per mapping as one dask graph (a sweep): step calls the trials
            have in common run once, and a failing trial fails alone.
        seed : int, or sequence of ints, optional
            The trial's seed; default: the experiment's, else a generated one. With a
            list of parameter sets, one seed for all or one per set.
        raise_errors : bool
            With False, a failed trial is returned (``outcome.exception``) instead
            of raising its exception; either way it is recorded as failed. With a
            list of parameter sets, the first failure is raised once all are recorded.
        rerun_of, script
            Recorded with the trial (the command line uses them); a ``script``'s
            ``source`` text is stored once as a blob (``source_hash``), read back
            by :meth:`get_script`.
        progress : bool
            Show a progress bar (dask.distributed's own on a cluster).
        **dask_kwargs
            Passed to dask (``scheduler=``, ``num_workers=``, ``client=``...).
        """
        result = result if result is not None else self._result
        if result is None:
            raise StepDefinitionError(
                "There is no result to compute: call a function decorated with @ex.result "
                "first, e.g. s = calculate_score(prepare_data(a, b)).")
        many = parameters is not None and not isinstance(parameters, Mapping)
        parameter_sets: list[Any] = list(parameters) if many else [  # type: ignore[arg-type]
            parameters or {}]
        for ps in parameter_sets:
            if not isinstance(ps, Mapping):
                raise InvalidArgumentError(
                    f"parameters= takes a mapping (one trial) or a list of mappings (one "
                    f"trial each), got {ps!r}.")
            for name in ps:
                if name not in self._space.declared:
                    raise ParameterUndeclaredError(name, self._space.declared)
        if script is not None and "source" in script:
            script = dict(script)
            script["source_hash"] = self._backend.put_blob(
                "source", str(script.pop("source")).encode("utf-8"))
        events.computing()  # the caller computes (script mode leaves it alone from here)
        order = self._order(result)
        resolved = [self._trial_parameters(order, ps) for ps in parameter_sets]
        if isinstance(seed, (list, tuple)):
            if not many or len(seed) != len(resolved):
                raise InvalidArgumentError(
                    f"got {len(seed)} seeds for {len(resolved)} trial(s); give one seed, or "
                    "one per parameter set.")
            seeds = [self._check_seed(s) for s in seed]
        else:
            seeds = [self._check_seed(seed)] * len(resolved)  # type: ignore[arg-type]
        try:
            outcomes = self._runner.run(order, resolved, seeds, RunOptions(
                dask_kwargs=dask_kwargs, isolate=many,
                sweep_id=uuid.uuid4().hex[:12] if many else None, rerun_of=rerun_of,
                script=script, show_progress=progress))
        except BackendError as exc:
            for trial_id in exc.pending_ids:
                events.ran(self, trial_id)
            raise
        for outcome in outcomes:
            events.ran(self, outcome.trial_id)
        if raise_errors:
            for outcome in outcomes:
                if outcome.exception is not None:
                    raise outcome.exception  # the step's own exception, unchanged
        return outcomes if many else outcomes[0]

    def _ran(self, trial_id: int, record: TrialRecord | None = None) -> None:
        """Note a trial this process computed: ``ex.trial_id`` names it from now on."""
        self._runner.note_ran(trial_id, record)
        events.ran(self, trial_id)

    def _order(self, result: Result) -> list[Any]:
        """The step calls ``result`` depends on, dependencies first (a Result cannot
        change, so the last one's is kept)."""
        last = self._walked
        if last is not None and last[0] is result:
            return last[1]
        order = walk(node_of(result))
        self._walked = (result, order, parameters_read(order))
        return order

    def _trial_parameters(self, order: Sequence[Any], overrides: Mapping[str, Any] | None
                          ) -> dict[str, Any]:
        """What a trial records as its parameters: those its steps read (each must have a
        value, else ParameterUndefinedError), then every other declared parameter that
        has a value, read by a step or not (daskperiment's ``user_name`` tip)."""
        overrides = overrides or {}
        last = self._walked
        needed = last[2] if last is not None and last[1] is order else parameters_read(order)
        for name in needed:  # e.g. a parameter of another experiment inside a plain dask piece
            if name not in self._space.declared:
                raise ParameterUndeclaredError(name, self._space.declared)
        values = self._space.resolve(needed, overrides)
        others = [n for n in self._space.declared if n not in values and (
            n in overrides or self._space.has_value(n))]
        values.update(self._space.resolve(others, overrides))
        rank = {name: i for i, name in enumerate(self._space.declared)}  # as declared
        return dict(sorted(values.items(), key=lambda item: rank.get(item[0], len(rank))))

    def _check_seed(self, seed: int | None) -> int:
        if seed is None:
            return self.seed if self.seed is not None else new_seed()
        return check_seed(seed)

    def sweep(self, grid: Mapping[str, Sequence[Any]] | Sequence[Mapping[str, Any]] | None = None,
              /, *, seed: int | None = None, result: Result | None = None,
              client: Any = None, scheduler: Any = None, progress: bool = True,
              **values: Sequence[Any]) -> pd.DataFrame:
        """Run many trials as one dask graph and return their history rows.

        ``ex.sweep(a=[1, 2], b=[3, 4])`` runs the grid product (4 trials);
        ``ex.sweep([{"a": 1}, {"a": 2, "b": 5}])`` runs the listed sets. Step calls
        that trials have in common (same step, code, seed and inputs) run once. A
        failing trial is recorded as failed and the others go on. Every trial of
        a sweep has the same seed unless ``seed`` is a list (one per trial).
        ``client=`` runs it on a dask.distributed cluster; ``progress`` shows a bar.
        The names ``seed``, ``result``, ``client``, ``scheduler`` and ``progress``
        are options: sweep parameters with those names through the list-of-dicts form.
        """
        parameter_sets = _expand_sweep(grid, values)
        dask_kwargs: dict[str, Any] = {}
        if client is not None:
            dask_kwargs["client"] = client
        if scheduler is not None:
            dask_kwargs["scheduler"] = scheduler
        if result is None and self._result is None:
            raise StepDefinitionError("There is no result to sweep: call an @ex.result step "
                                      "first.")
        outcomes = self.run(result, parameters=parameter_sets, seed=seed, raise_errors=False,
                            progress=progress, **dask_kwargs)
        failed = [o.trial_id for o in outcomes if o.exception is not None]
        if failed:
            logger.warning("Sweep finished with %d failed trial(s): %s", len(failed),
                           ", ".join(map(str, failed)))
        return history_frame([o.record for o in outcomes], self._space.declared)

    @property
    def pending_trial_ids(self) -> list[int]:
        """Trials computed in this process that the backend could not record yet."""
        return [p.record.trial_id for p in self._runner.pending]

    def save_pending(self) -> list[int]:
        """Record the trials that were computed while the backend was unreachable.

        Returns the ids recorded; raises BackendError (keeping the rest) if the
        backend still fails. Each trial keeps its id unless the store meanwhile gave
        that id to another record (it lost its data or its counter while the trial
        ran): then the trial is recorded under a new id, which is the one returned,
        with a WARNING naming both; no recorded trial is ever replaced.
        """
        return self._runner.save_pending()

    # -- inside a step ------------------------------------------------------------
    def _scope(self, what: str) -> Any:
        scope = current_scope()
        if scope is None:
            raise NotInTrialError(what)
        if scope.ctx.experiment_id != self.id:
            raise NotInTrialError(f"{what} of experiment {self.id!r} (the running step belongs "
                                  f"to experiment {scope.ctx.experiment_id!r})")
        return scope

    @property
    def current_trial_id(self) -> int:
        """Inside a running step: the id of its trial (the first, for a step shared by a sweep)."""
        return self._scope("ex.current_trial_id").ctx.trial_id

    def save_metric(self, key: str = NOTHING, epoch: Any = NOTHING,  # type: ignore[assignment]
                    value: Any = NOTHING, *, metric_key: str = NOTHING  # type: ignore[assignment]
                    ) -> None:
        """Inside a step: add a point ``(epoch, value)`` to the metric curve ``key``.

        ``metric_key=`` is daskperiment's name for ``key``; either may be given.
        Points are written in batches: when the step ends (failed or not), and
        while it runs every half second or 1,000 points, so a live dashboard sees
        curves grow and a killed process loses at most the last half second.
        """
        if metric_key is NOTHING and type(key) is str and key and epoch is not NOTHING \
                and value is not NOTHING:  # the usual call: no checks beyond these
            scope = current_scope()
            if scope is not None and scope.ctx.experiment_id == self.id:
                scope.save_point(key, epoch, value)
                return
        key = _either("save_metric", "key", key, "metric_key", metric_key)
        for name, given in (("epoch", epoch), ("value", value)):
            if given is NOTHING:
                raise ArgumentNameError(f"save_metric() missing required argument: {name!r}")
        if not isinstance(key, str) or not key:
            raise InvalidArgumentError(f"A metric key is a non-empty string, got {key!r}.")
        self._scope("ex.save_metric").save_point(key, epoch, value)

    def metric(self, name: str, value: Any) -> Any:
        """Inside a step: record a scalar metric of the trial (a history column); returns it."""
        self._scope("ex.metric").metrics[str(name)] = value
        return value

    def label(self, name: str, value: Any) -> None:
        """Inside a step: attach a label to the trial (a history column)."""
        self._scope("ex.label").labels[str(name)] = value

    def set_description(self, text: str) -> None:
        """Inside a step: set the trial's description (the history's Description column)."""
        self._scope("ex.set_description").description = str(text)

    def input(self, path: str | os.PathLike[str], keep: bool = False
              ) -> str | os.PathLike[str]:
        """Inside a step: declare a data file (or directory) the step reads; returns ``path``.

        Its content hash is recorded now. If it changes while the step's inputs
        (parameters and upstream values) do not, the trial reports data drift.
        With ``keep=True`` its content is kept with the trial too (see
        :meth:`output`), so ``reproduce(t, restore_inputs=True)`` can run on it.
        """
        scope = self._scope("ex.input")
        scope.inputs.append(declare_file(self._artifacts, path, "input", keep, self.id))
        return path

    def output(self, path: str | os.PathLike[str], keep: bool | None = None
               ) -> str | os.PathLike[str]:
        """Inside a step: declare a data file (or directory) the step writes; returns ``path``.

        When the step finishes, its content hash is recorded and its content is
        kept with the trial in the artifact store (content-addressed, so the same
        content is stored once; streamed; see :meth:`get_artifact`), unless
        ``keep=False``. A later trial, of this or another experiment in the same
        store, that reads it with ``ex.input`` is linked to this one.
        """
        scope = self._scope("ex.output")
        scope.outputs.append(declare_file(self._artifacts, path, "output", keep, self.id,
                                          scope))
        return path

    def rng(self) -> Any:
        """Inside a step: a ``numpy.random.Generator`` seeded from (trial seed, step).

        The same generator is returned for every call within one step execution,
        and the same stream for the same seed on any scheduler or worker.
        """
        import numpy as np

        scope = self._scope("ex.rng()")
        if scope.rng is None:
            scope.rng = np.random.default_rng(np.random.SeedSequence(
                [scope.ctx.seed, scope.step_seed]))
        return scope.rng

    # -- dashboard ------------------------------------------------------------------
    def start_dashboard(self, port: int = 5000, blocking: bool | None = None,
                        address: str = "127.0.0.1", **kwargs: Any) -> Any:
        """Serve the Bokeh dashboard of this experiment's trials (read only).

        ``blocking=None`` blocks when run from a script and returns at once in
        Jupyter or inside a running event loop; the returned handle stops it.
        It binds to 127.0.0.1 unless ``address`` says otherwise.
        """
        from .board import start_dashboard

        return start_dashboard(self, port=port, blocking=blocking, address=address, **kwargs)

    def report(self, path: str | os.PathLike[str] = "report.html",
               trials: Sequence[int] | None = None) -> Any:
        """Write one self-contained HTML report of the trials (works offline); returns its Path.

        ``trials``: whose metric curves to draw (the first two are compared);
        default the latest three. See :func:`experigraph.board.report.write_report`.
        """
        from .board.report import write_report

        return write_report(self, path, trials=trials)

    # -- querying -----------------------------------------------------------------
    @property
    def trial_id(self) -> int:
        """The id of the trial the last compute in this process ran.

        After ``compute()``, ``run()``, ``sweep()`` or ``reproduce()`` of this
        experiment object, it is the id of the trial that call ran (the last one
        of a sweep), never a trial another process or thread recorded meanwhile:
        in a thread that computed, that thread's last trial; elsewhere, the last
        trial computed by any thread of this process. Before any compute here,
        it is :attr:`latest_trial_id` (0 for an empty history). For a handle on
        one compute, use :meth:`run`, whose outcome carries its trial id.
        """
        mine = self._runner.trial_id()
        return mine if mine is not None else self._backend.last_trial_id()

    @property
    def latest_trial_id(self) -> int:
        """The newest trial id in the store, whoever recorded it (0 before any trial)."""
        return self._backend.last_trial_id()

    def _read(self, trial_id: int) -> TrialRecord:
        return self._runner.read(_trial_id(trial_id))

    def get_trial(self, trial_id: int) -> TrialRecord:
        """Everything recorded about one trial."""
        return self._read(trial_id)

    def get_trials(self, trial_ids: Iterable[int] | None = None) -> list[TrialRecord]:
        """The readable records of ``trial_ids`` (default: every trial), by id, read in
        batches; an id without a record is left out, an unreadable record is skipped and
        named once in a WARNING."""
        if trial_ids is None:
            return self._runner.records()
        return self._runner.read_many([_trial_id(i) for i in trial_ids])

    def get_history(self, verbose: bool = False, archived: bool = False) -> pd.DataFrame:
        """One row per trial, indexed by ``Trial ID``.

        Columns: each parameter, then ``Result``, ``Success``, ``Finished``,
        ``Process Time``, ``Description``; ``verbose`` adds ``Seed``,
        ``Result Type`` and ``Status``; scalar metrics, labels and tags
        (:meth:`tag`) follow. Archived trials (:meth:`archive`) are left out
        unless ``archived=True``, which adds an ``Archived`` column.
        """
        notes = read_annotations(self._backend)
        declared = list(self._space.declared)

        def build(rows: list[tuple[Any, ...]]) -> pd.DataFrame:
            shown = [row if row[ROW_RUNNING] is None  # stored as running: is it still?
                     else row_of(derive_status(row[ROW_RUNNING]), row[ROW_RUNNING])
                     for row in rows if archived or row[0] not in notes.archived]
            return with_annotations(rows_frame(shown, declared, verbose), notes, archived)

        return history_table(self._backend, notes.entries, declared, verbose, archived, build)

    def get_parameters(self, trial_id: int | None = None) -> dict[str, Any]:
        """The parameters of a trial, or (no id) the current values, defaults included."""
        if trial_id is None:
            return self._space.current()
        return dict(self._read(trial_id).parameters)

    def get_persisted(self, step_name: str = NOTHING,  # type: ignore[assignment]
                      trial_id: int = NOTHING, *,  # type: ignore[assignment]
                      trust: bool = False, step: str = NOTHING  # type: ignore[assignment]
                      ) -> Any:
        """The output of the ``@ex.persist`` step ``step_name`` in trial ``trial_id``.

        ``step=`` is daskperiment's name for ``step_name``; either may be given.

        Raises
        ------
        SignatureError
            The stored pickle's signature does not match this machine's key (share
            ``EXPERIGRAPH_SECRET_KEY``); ``trust=True`` loads it anyway.
        """
        step_name = _either("get_persisted", "step_name", step_name, "step", step)
        if trial_id is NOTHING:
            raise ArgumentNameError("get_persisted() missing required argument: 'trial_id'")
        record = self._read(trial_id)
        saved = [s for s in record.steps if s.step == step_name and s.persisted]  # also cache
        if not saved:
            persisted = sorted({s.step for s in record.steps if s.persisted})
            raise NotRecordedError(f"Trial {trial_id} has no persisted output of step {step_name!r} "
                           f"(persisted steps: {', '.join(persisted) or 'none'}). Declare the "
                           "step with @ex.persist to save its output.")
        blob = self._backend.get_blob("pickle", saved[-1].persisted)  # type: ignore[arg-type]
        note_persisted_read(self.id, record.trial_id, step_name, saved[-1].persisted,
                            self._backend.uri)
        return signing.loads(blob, what=f"persisted output of {step_name!r} (trial {trial_id})",
                             trust=trust)

    def get_result(self, trial_id: int, *, trust: bool = False) -> Any:
        """The result object of a trial (for results JSON cannot hold, loaded from its pickle)."""
        record = self._read(trial_id)
        if record.result_blob:
            blob = self._backend.get_blob("pickle", record.result_blob)
            return signing.loads(blob, what=f"result of trial {trial_id}", trust=trust)
        return record.result

    def get_script(self, trial_id: int) -> str | None:
        """The text of the script that ran ``trial_id`` (``python script.py`` or
        ``experigraph run``); None for a trial computed from Python, or whose script
        text is not in the store."""
        script = self._read(trial_id).script
        if not script or not script.get("source_hash"):
            return None
        return read_source(self._backend, script["source_hash"])

    def get_code(self, trial_id: int | None = None) -> str:
        """Source of the steps, as text: of a trial, or (no id) as declared now."""
        if trial_id is None:
            parts = [s.spec.code.source or f"# source of {name} is not available\n"
                     for name, s in self._steps.items()]
        else:
            record = self._read(trial_id)
            parts = [read_source(self._backend, entry.get("source_hash", ""))
                     or f"# source of {step} is not available\n"
                     for step, entry in record.code.items()]
        # steps separated by two blank lines, as daskperiment's code files were
        return "\n\n".join(p.rstrip("\n") + "\n" for p in parts)

    def compare(self, first: int, second: int) -> TrialDiff:
        """Say what differs between two trials.

        Parameters
        ----------
        first, second : int
            Trial ids, as in ``get_history().index``.

        Returns
        -------
        TrialDiff
            Parameters, seed, code (unified diff per step), environment (per
            category), input data, per-step output hashes (the first differing
            step first), result, and ``not_compared``: the steps (and result)
            whose outputs have no deterministic hash, with the reason.
            ``print()`` it, or show it in a notebook.
        """
        return compare_records(
            self._read(first), self._read(second),
            read_source=lambda h: read_source(self._backend, h),
            read_environment=self._runner.environment.read, collectors=self._collectors)

    def reproduce(self, trial_id: int, restore_inputs: bool = False,
                  **dask_kwargs: Any) -> Reproduction:
        """Run a new trial with the parameters and seed of ``trial_id`` and check the result.

        Uses the latest Result of this experiment. Returns a :class:`Reproduction`:
        whether the result and every step's output matched, the first step that
        differs, and the code, environment and data changes that explain it.
        Outputs without a deterministic hash (an object of a class dask cannot
        tokenize, e.g. a fitted model) are not compared: ``not_compared`` names
        them and says why, and ``matches`` is never True for a result that could
        not be compared. With ``restore_inputs=True``, the files the trial read
        with ``ex.input(path, keep=True)`` are written back to their paths as the
        trial read them for the rerun, and the current files are put back after.
        """
        original = self._read(trial_id)
        if self._result is None:
            raise StepDefinitionError("There is no result to reproduce with: call the "
                                      "@ex.result step first, as in the original experiment.")
        undeclared = [n for n in original.parameters if n not in self._space.declared]
        if undeclared:
            raise ParameterUndeclaredError(undeclared[0], self._space.declared)
        kept_by_repr = [n for n, v in original.parameters.items()
                        if isinstance(v, Unrepresentable)]
        if kept_by_repr:
            raise ReproductionError(
                f"Trial {trial_id} cannot be reproduced: parameter(s) "
                f"{', '.join(map(repr, kept_by_repr))} were recorded by their repr only (JSON "
                "cannot hold them), so their values are not known. Give such data as a file "
                "read with ex.input(path), or as parameters JSON can hold.")
        with self.restored_inputs(trial_id) if restore_inputs else contextlib.nullcontext():
            outcome = self.run(self._result, parameters=original.parameters,
                               seed=original.seed, rerun_of=trial_id, raise_errors=False,
                               **dask_kwargs)
        rerun_id = outcome.trial_id
        rerun = self._read(rerun_id)
        diff = self.compare(trial_id, rerun_id)
        # a match is claimed only for what was compared, and never for an uncompared result
        matches = (rerun.status == original.status and not diff.steps and diff.result is None
                   and "result" not in diff.not_compared)
        explain = [DriftEvent("code", step, f"Code context has been changed: {step}",
                              tuple(lines)) for step, lines in diff.code.items()]
        explain += [DriftEvent("environment", cat,
                               drift_message(cat, self._collectors)
                               if find_collector(cat, self._collectors) is not None else cat,
                               tuple(lines)) for cat, lines in diff.environment.items()]
        explain += [DriftEvent("data", path, f"Input data has been changed: {path}", (),
                               {"old_hash": a, "new_hash": b})
                    for path, (a, b) in diff.inputs.items()]
        explain += [d for d in rerun.drift if d.kind in ("impurity", "seed")]
        seeded = tuple(dict.fromkeys(s.step for s in rerun.steps if s.used_seed))
        result = Reproduction(trial_id, rerun_id, matches, diff, tuple(explain), seeded)
        log = logger.info if matches else logger.warning
        log("%s", str(result).splitlines()[0])
        return result

    def get_provenance(self, trial_id: int, upstream: bool = False) -> Any:
        """The trial's provenance graph (a ``networkx.DiGraph``): parameters, steps, files.

        See :mod:`experigraph.provenance` for the node and edge attributes. With
        ``upstream=True`` it follows the files the trial read (and the persisted
        outputs it loaded) back to the trials, of this or other experiments in
        the same store, that wrote them, and on to the first inputs (see
        :mod:`experigraph.lineage`).
        """
        from .provenance import build_provenance

        if upstream:
            from .lineage import upstream_provenance

            store = self.artifact_store
            return upstream_provenance(self._backend, self._read(trial_id),
                                       store.location if store is not None else None)

        record = self._read(trial_id)
        others = self._runner.records() if any(s.inputs for s in record.steps) else ()
        return build_provenance(record, others)

    def get_lineage(self, step: str, trial_id: int) -> dict[str, list[Any]]:
        """What contributed to ``step`` in a trial: ``{"steps", "parameters", "files", "trials"}``."""
        from .provenance import lineage

        return lineage(self.get_provenance(trial_id), step)

    def get_environment(self, trial_id: int | None = None, category: str | None = None
                        ) -> str:
        """The environment of a trial (or, without an id, of this process now) as text.

        As daskperiment returned it: without ``category``, the platform, Python and
        git lines (``Platform Information: ...``, ``Python Version: ...``,
        ``Git HEAD Commit: ...``); with one of ``platform``, ``cpu``, ``python``,
        ``numpy``, ``scipy``, ``pandas``, ``conda``, ``git``, ``requirements``, that
        category's text. The category of an extra collector (``collectors=`` or
        an entry point), or any other category a trial recorded, is rendered by
        its collector's ``text`` (``key: value`` lines when no collector knows it
        any more). The structured data behind it is :meth:`get_environment_snapshot`.

        Raises
        ------
        InvalidArgumentError
            ``category`` is not one of these (a ``ValueError``).
        """
        from .environment.text import SOURCES, TEXT_CATEGORIES, category_text, summary_text

        if category is not None and str(category).lower() not in TEXT_CATEGORIES:
            name = str(category)
            snap = self._environment_snapshot(trial_id)
            extra = self._collector_names()
            if name in environment.CATEGORIES or (name not in extra and name not in snap):
                raise InvalidArgumentError(
                    f"Unknown environment category {category!r}; choose one of "
                    f"{', '.join([*TEXT_CATEGORIES, *extra])} (or none, for the summary).")
            if name not in snap:
                self._not_recorded(trial_id, name)
            value = snap[name]
            if is_failure(value):
                return f"Unable to collect {name} information: {value['error']}"
            return "\n".join(text_lines(name, value, self._collectors))
        if category is not None:
            category = str(category).lower()
        snap = self._environment_snapshot(trial_id, wait_cpu=category == "cpu")
        if category is None:
            return summary_text(snap)
        source = SOURCES[category]
        if source not in snap:
            self._not_recorded(trial_id, source)
        return category_text(snap, category)

    def get_environment_snapshot(self, trial_id: int | None = None,
                                 category: str | None = None) -> dict[str, Any] | Any:
        """The environment of a trial (or, without an id, of this process now) as data.

        A dict of the categories ``platform``, ``cpu``, ``python``, ``packages``,
        ``numeric`` and ``git`` (see :mod:`experigraph.environment`) and those of
        extra collectors, or with ``category`` that category's value. ``compare``,
        the drift checks and the dashboard read this form; :meth:`get_environment`
        renders it as text.
        """
        snap = self._environment_snapshot(trial_id, wait_cpu=category == "cpu")
        if category is None:
            return snap
        extra = self._collector_names()
        if category not in environment.CATEGORIES and category not in extra \
                and category not in snap:
            raise InvalidArgumentError(f"Unknown environment category {category!r}; choose one of "
                             f"{', '.join([*environment.CATEGORIES, *extra])}.")
        if category not in snap:
            self._not_recorded(trial_id, category)
        return snap[category]

    def _environment_snapshot(self, trial_id: int | None, wait_cpu: bool = False
                              ) -> dict[str, Any]:
        if trial_id is None:
            if wait_cpu:  # gathered in the background: wait for it when asked for
                deadline = time.monotonic() + 30
                while environment.cpu_info() is None and time.monotonic() < deadline:
                    time.sleep(0.05)
            return dict(environment.snapshot(
                source_files(walk(node_of(self._result))) if self._result is not None else (),
                collectors=self._collectors))
        record = self._read(trial_id)
        snap = self._runner.environment.read(record.environment_hash) \
            if record.environment_hash else None
        if snap is None:
            raise NotRecordedError(f"Trial {trial_id} has no environment snapshot recorded.")
        return snap

    def _collector_names(self) -> list[str]:
        """The categories of this experiment's extra collectors (given and entry points)."""
        return [c.name for c in extra_collectors(self._collectors)]

    @staticmethod
    def _not_recorded(trial_id: int | None, category: str) -> None:
        why = (" (the CPU is gathered in the background, once per machine, and was not "
               "ready yet)" if category == "cpu" else "")
        raise NotRecordedError(f"Category {category!r} was not recorded"
                               + (f" for trial {trial_id}" if trial_id is not None else "")
                               + f"{why}.")

    def get_python_packages(self, trial_id: int | None = None) -> str:
        """Installed packages as pip-freeze lines in one string (``pandas==2.2.3``),
        as daskperiment returned them; ``.splitlines()`` gives a list."""
        return "\n".join(environment.python_packages(self._environment_snapshot(trial_id)))

    def get_metric_keys(self, trial_id: int) -> list[str]:
        """Names of the metric curves saved in a trial (``ex.save_metric``), sorted."""
        self._read(trial_id)  # an unknown id raises TrialIDNotFoundError
        return sorted(self._backend.metric_keys(trial_id))

    def load_metric(self, key: str = NOTHING,  # type: ignore[assignment]
                    trial_id: int | Sequence[int] = NOTHING, *,  # type: ignore[assignment]
                    metric_key: str = NOTHING) -> pd.DataFrame:  # type: ignore[assignment]
        """Metric curves as a DataFrame: index ``Epoch``, one column per trial.

        ``metric_key=`` is daskperiment's name for ``key``; either may be given.
        """
        key = _either("load_metric", "key", key, "metric_key", metric_key)
        if trial_id is NOTHING:
            raise ArgumentNameError("load_metric() missing required argument: 'trial_id'")
        ids = [_trial_id(trial_id)] if hasattr(trial_id, "__index__") else \
            [_trial_id(i) for i in trial_id]
        import pandas as pd

        columns = {}
        backend = self._backend
        # the curve as the base class reads it, unless a backend reads it its own way
        read = backend.metric_curve if type(backend).read_metric is Backend.read_metric \
            else backend.read_metric
        for i in ids:
            self._read(i)  # unknown ids raise TrialIDNotFoundError
            with gc_paused():  # thousands of acyclic objects: no collection of the heap
                columns[i] = _metric_series(read(i, key))
        if not any(len(c) for c in columns.values()):
            known = sorted({k for i in ids for k in self._backend.metric_keys(i)})
            raise NotRecordedError(f"No metric {key!r} was saved in trial(s) {ids} (saved metrics: "
                           f"{', '.join(known) or 'none'}).")
        frame = pd.DataFrame(columns)
        frame.index.name = "Epoch"
        frame.columns.name = "Trial ID"
        return frame


class Store:
    """Every experiment recorded in one place: a directory, a Redis or a MongoDB database.

    ``backend`` takes what ``Experiment(backend=...)`` takes. The command line and the
    dashboard reach a store only through this class and :class:`Experiment`.

    Examples
    --------
    >>> store = Store(tmp_path)                     # doctest: +SKIP
    >>> store.experiment_ids()                      # doctest: +SKIP
    ['preprocess', 'train']
    """

    #: the experiment id a store's backend is opened with to list experiments
    LISTING_ID = "experigraph-store"

    def __init__(self, backend: Any = None) -> None:
        self._backend = resolve_backend(backend, self.LISTING_ID)

    @property
    def uri(self) -> str:
        """Where the store is (any password masked)."""
        return self._backend.uri

    def experiment_ids(self) -> list[str]:
        """The ids of the experiments that have recorded something here, sorted."""
        return self._backend.experiment_ids()

    def open(self, experiment_id: str, *, must_exist: bool = True, quiet: bool = True,
             artifacts: Any = None) -> Experiment:
        """The experiment ``experiment_id`` of this store, to query (or run).

        With ``must_exist``, an id this store has no trials of raises
        ``ExperimentNotFoundError`` naming the ones it has; nothing is created.
        ``quiet`` keeps the INFO lines and environment drift of opening it out of the
        log (a query runs no trial, so they don't concern its reader; a record that
        cannot be read is still named).
        """
        validate_experiment_id(experiment_id)
        if must_exist:
            known = self.experiment_ids()
            if experiment_id not in known:
                raise ExperimentNotFoundError(experiment_id, self.uri, known)
        backend = self._backend.for_experiment(experiment_id)
        if not quiet:
            return Experiment(experiment_id, backend=backend, artifacts=artifacts)
        log, backends = logging.getLogger("experigraph"), logging.getLogger(
            "experigraph.backends")
        saved = log.level, backends.level
        if log.getEffectiveLevel() < logging.ERROR:
            log.setLevel(logging.ERROR)
            backends.setLevel(min(logging.WARNING, backends.getEffectiveLevel()))
        try:
            return Experiment(experiment_id, backend=backend, artifacts=artifacts,
                              report_drift=False)
        finally:
            log.setLevel(saved[0])
            backends.setLevel(saved[1])

    def __repr__(self) -> str:
        return f"Store({self.uri})"


def _metric_series(points: MetricColumns | Sequence[tuple[Any, Any]]) -> pd.Series:
    """A curve's points as a Series indexed by epoch (the last point of an epoch wins);
    epochs and values that are all ints or all floats go to NumPy in one pass each (the
    dtypes pandas would infer), the rest through pandas' inference."""
    import numpy as np
    import pandas as pd

    if isinstance(points, MetricColumns):  # the backend's columns, as it read them
        epochs, values = points.epochs, points.values
        kinds = (points.epoch_types, points.value_types)
    else:
        epochs = [p[0] for p in points]
        values = [p[1] for p in points]
        kinds = (frozenset(map(type, epochs)), frozenset(map(type, values)))
    if not epochs:
        return pd.Series(dtype=object)
    if all(k == {int} or k == {float} for k in kinds):
        dtypes = {int: np.int64, float: np.float64}
        try:
            index = np.array(epochs, dtype=dtypes[next(iter(kinds[0]))])
            data = np.array(values, dtype=dtypes[next(iter(kinds[1]))])
        except OverflowError:  # an int beyond 64 bits
            pass
        else:  # each epoch once (rising epochs need no set of them): a range of epochs as
            # pandas makes it of a dict's keys, a RangeIndex
            if bool((index[1:] > index[:-1]).all()) or len(set(epochs)) == len(epochs):
                return pd.Series(data, index=_sequence_to_range(index))
    return pd.Series(dict(zip(epochs, values)))


def _sequence_to_range(epochs: Any) -> Any:
    """What ``pd.Series(dict)`` makes of its keys (pandas' own function where it has one)."""
    try:
        from pandas.core.indexes.base import maybe_sequence_to_range
    except ImportError:  # an older pandas: its dict keys made a plain index
        return epochs
    return maybe_sequence_to_range(epochs) if epochs.dtype.kind == "i" else epochs


def _either(method: str, ours: str, ours_value: Any, theirs: str, theirs_value: Any) -> Any:
    """The value of an argument that has experigraph's and daskperiment's names."""
    if ours_value is NOTHING and theirs_value is NOTHING:
        raise ArgumentNameError(f"{method}() missing required argument: {ours!r} (or {theirs!r})")
    if ours_value is not NOTHING and theirs_value is not NOTHING:
        raise ArgumentNameError(f"{method}() got both {ours!r} and {theirs!r}, which name the same "
                        "argument: give one.")
    return theirs_value if ours_value is NOTHING else ours_value


def _trial_id(value: Any) -> int:
    """A trial id as an int (NumPy integers from ``get_history().index`` included)."""
    if isinstance(value, bool) or not hasattr(value, "__index__"):
        raise TrialIDNotFoundError(value, f"Trial ids are ints, got {value!r}. See "
                                   "ex.get_history() for the recorded trial ids.")
    return operator.index(value)


def _restore_experiment(experiment_id: str, backend: Backend, seed: int | None,
                        artifacts: Any = None) -> Experiment:
    """An Experiment rebuilt on a worker: it can record into running trials and query."""
    ex = Experiment.__new__(Experiment)
    ex.id, ex._backend, ex.seed, ex._artifacts = experiment_id, backend, seed, artifacts
    ex._space = ParameterSpace()
    ex._steps, ex._result, ex._collectors, ex._walked = {}, None, (), None
    ex._runner = TrialRunner(experiment_id, backend)
    return ex


def _expand_sweep(grid: Any, values: Mapping[str, Sequence[Any]]) -> list[dict[str, Any]]:
    if grid is None:
        grid = values
    elif values:
        raise SweepDefinitionError("Give the sweep either as keyword lists or as one grid/list of dicts, "
                        "not both.")
    if isinstance(grid, Mapping):
        names = list(grid)
        for name in names:
            if isinstance(grid[name], (str, bytes)) or not isinstance(grid[name], Iterable):
                raise SweepDefinitionError(f"sweep values of {name!r} must be a list, got {grid[name]!r}.")
        empty = [name for name in names if not list(grid[name])]
        if empty:
            raise SweepDefinitionError(
                f"The sweep has no trials: no values for {', '.join(map(repr, empty))}. Give "
                "at least one value for every swept parameter, e.g. "
                f"ex.sweep({empty[0]}=[1, 2]). Nothing was run or recorded.")
        if not names:
            raise SweepDefinitionError("The sweep has no trials: give parameter lists, e.g. "
                                       "ex.sweep(a=[1, 2]), or a list of dicts.")
        return [dict(zip(names, combo)) for combo in itertools.product(*(list(grid[n])
                                                                         for n in names))]
    sets = list(grid)
    if not all(isinstance(s, Mapping) for s in sets):
        raise SweepDefinitionError("ex.sweep takes keyword lists (a=[1, 2]) or a list of dicts "
                        "([{'a': 1}, {'a': 2}]).")
    if not sets:
        raise SweepDefinitionError("The sweep has no trials: the list of parameter sets is "
                                   "empty. Nothing was run or recorded.")
    return [dict(s) for s in sets]
