"""Building the dask graph: parameters, steps, results, and the graph of a trial.

What the user holds are ``dask.delayed.Delayed`` objects (``Parameter``,
``StepDelayed``, ``Result``) built through dask's public API, so
``visualize()``, ``dask.compute`` and composition work as on any Delayed (such a
plain compute runs the steps untracked, with the current parameter values).
Each also carries a node of experigraph's own small DAG, from which a trial's
graph is generated at compute time:

* a step call's key is named from the step, its code hash, the trial seed, the
  values of the parameters it reads and the keys of the calls it depends on, so
  identical calls shared by a sweep's trials get one key and run once;
* every task is ``(run_step, call, ctx, info, [dependency keys])``: the trial
  context travels as data in the task, and is kept out of the key.

Plain dask pieces mixed into the graph (``a + 1`` on a parameter,
``dask.delayed(f)(step_output) * 2`` feeding a step) are untracked calls: each
such dask object becomes one node that runs its own small graph (synchronously,
inside the trial's task) with the values of the parameters and steps it was
built from; its value then flows into the tracked steps, whose input hashes
cover it, and the parameters it reads are the trial's.
"""
from __future__ import annotations

import functools
import numbers
import operator
import re
import uuid
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol, TypeVar, overload

import dask
from dask.base import is_dask_collection
from dask.delayed import Delayed

from .code import StepCode, file_of, capture, follow
from .errors import InvalidParameterValueError, ParameterUndefinedError, StepDefinitionError
from .hashing import call_key_token, loose_hash
from .hooks import TaskInfo, TrialContext, run_step

class _Nothing:
    """Marks a parameter declared without a default."""

    _instance: _Nothing | None = None

    def __new__(cls) -> _Nothing:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "NOTHING"

    def __reduce__(self) -> str:
        return "NOTHING"


NOTHING = _Nothing()
_D = TypeVar("_D", bound="StepDelayed")
_STATIC_KEY = re.compile(r"-xg[0-9a-f]{32}$")


def _static_key(name: str) -> str:
    return f"{name}-xg{uuid.uuid4().hex}"


# -- template markers: where a task's values go into a call's arguments -----------
class _Dep:
    __slots__ = ("index",)

    def __init__(self, index: int) -> None:
        self.index = index

    def __dask_tokenize__(self) -> Any:
        return ("experigraph-dep", self.index)


class _Param:
    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __dask_tokenize__(self) -> Any:
        return ("experigraph-param", self.name)


def _fill(obj: Any, deps: list[Any], params: Mapping[str, Any]) -> Any:
    if isinstance(obj, _Dep):
        return deps[obj.index]
    if isinstance(obj, _Param):
        return params[obj.name]
    if isinstance(obj, _Container):
        return obj.build(deps, params)
    return obj


class _Container:
    """A list/tuple/set/dict literal that holds markers somewhere inside."""

    __slots__ = ("kind", "items")

    def __init__(self, kind: type, items: list[Any]) -> None:
        self.kind, self.items = kind, items

    def build(self, deps: list[Any], params: Mapping[str, Any]) -> Any:
        if self.kind is dict:
            return {_fill(k, deps, params): _fill(v, deps, params) for k, v in self.items}
        return self.kind(_fill(v, deps, params) for v in self.items)

    def __dask_tokenize__(self) -> Any:
        return ("experigraph-container", self.kind.__name__, self.items)


# -- nodes ------------------------------------------------------------------------
class ParameterSpace:
    """The declared parameters of one experiment and their current values."""

    def __init__(self) -> None:
        self.declared: dict[str, Parameter] = {}
        self.values: dict[str, Any] = {}

    def value(self, name: str) -> Any:
        """The current value of one parameter (ParameterUndefinedError if it has none)."""
        return self.resolve([name])[name]

    def declare(self, name: str, default: Any = NOTHING, type: Any = None) -> Parameter:
        """Declare a parameter; re-declaring updates its default and type and returns it."""
        existing = self.declared.get(name)
        if existing is not None:
            existing._node.default = default
            existing._node.type = type
            return existing
        param = self.declared[name] = Parameter(name, default, self, type)
        return param

    def convert(self, name: str, value: Any) -> Any:
        """``value`` as parameter ``name`` takes it (converted to its ``type``)."""
        return self.declared[name]._node.convert(value)

    def has_value(self, name: str) -> bool:
        """Whether ``name`` has a value set or a default."""
        return name in self.values or self.declared[name]._node.default is not NOTHING

    def current(self) -> dict[str, Any]:
        """The parameters that have a value, set or default, in declaration order."""
        return {name: self.values.get(name, param._node.default)
                for name, param in self.declared.items() if self.has_value(name)}

    def resolve(self, names: Iterable[str], overrides: Mapping[str, Any] | None = None
                ) -> dict[str, Any]:
        """Values of ``names``; ParameterUndefinedError names every missing one."""
        overrides = overrides or {}
        out, missing = {}, []
        for name in names:
            if name in overrides:
                out[name] = self.declared[name]._node.convert(overrides[name])
            elif name in self.values:
                out[name] = self.values[name]
            elif self.declared[name]._node.default is not NOTHING:
                out[name] = self.declared[name]._node.default
            else:
                missing.append(name)
        if missing:
            raise ParameterUndefinedError(missing)
        return out


class ParamNode:
    __slots__ = ("name", "default", "key", "type")

    def __init__(self, name: str, default: Any, key: str, type: Any = None) -> None:
        self.name, self.default, self.key, self.type = name, default, key, type

    def convert(self, value: Any) -> Any:
        """``value`` as the declared type (unchanged when no type was declared).

        Conversions never lose information: ``bool`` takes True/False or one of
        true/false/yes/no/on/off/1/0, ``int`` a whole number, ``str`` a scalar.
        """
        kind = self.type
        if kind is None or value is None or (isinstance(value, kind)
                                             and not (kind is int and isinstance(value, bool))):
            return value
        if _is_bool(value) and kind is not bool and isinstance(kind, type) \
                and issubclass(kind, numbers.Number):
            return self._refuse(value, "a bool is not a number; give a number such as 1 or 0")
        if kind is bool:
            text = str(value).strip().lower() if isinstance(value, (str, int)) else None
            if text in _TRUE:
                return True
            if text in _FALSE:
                return False
            return self._refuse(value, "use True/False, or one of "
                                       "true/false/yes/no/on/off/1/0")
        if kind is int and isinstance(value, (float, str)):
            try:
                number = float(value)
            except ValueError:
                return self._refuse(value, "not a number")
            if not number.is_integer():
                return self._refuse(value, "not a whole number")
            return int(number)
        if kind is str and not isinstance(value, (int, float)):
            return self._refuse(value, "give text, or a number")
        try:
            return kind(value)
        except (TypeError, ValueError) as exc:
            return self._refuse(value, str(exc))

    def _refuse(self, value: Any, why: str) -> Any:
        raise InvalidParameterValueError(self.name, getattr(self.type, "__name__", self.type),
                                         value, why)


def _is_bool(value: Any) -> bool:
    """A Python or NumPy bool (NumPy's is not an int subclass, so checked by type name)."""
    return isinstance(value, bool) or (type(value).__name__ in ("bool", "bool_")
                                       and type(value).__module__ == "numpy")


_TRUE = frozenset({"true", "yes", "on", "1"})
_FALSE = frozenset({"false", "no", "off", "0"})


class StepSpec:
    """A declared step: the user's function, its code, and how it is recorded."""

    __slots__ = ("name", "func", "code", "kind", "cache", "token", "tracked", "_watch")

    def __init__(self, func: Callable[..., Any], kind: str = "step", cache: bool = False,
                 name: str | None = None) -> None:
        self.func = func
        self.name: str = name or getattr(func, "__name__", None) or "step"
        self.kind = kind
        self.cache = cache
        self.tracked = True
        self._capture()

    def _capture(self) -> None:
        followed = follow(self.func)
        self.code: StepCode = capture(self.func, self.name, followed)
        # what to watch: each helper's binding and code object. A helper's file is not
        # watched: editing it changes nothing that runs until the module is reloaded
        # (which rebinds the helper) or its code is replaced in place (IPython's
        # autoreload), and both of those are seen here.
        self._watch = tuple((f.namespace, f.attr, f.obj, getattr(f.obj, "__code__", None))
                            for f in followed)
        self.token = loose_hash(self.name, self.code.code_hash, self.kind)

    def __getstate__(self) -> dict[str, Any]:  # tasks carry the spec; not what it watches
        return {k: getattr(self, k) for k in self.__slots__ if k != "_watch"}

    def __setstate__(self, state: dict[str, Any]) -> None:
        for k, v in state.items():
            setattr(self, k, v)
        self._watch = ()

    def refresh_code(self) -> None:
        """Capture the code again if a helper was redefined (a re-run cell, a reload, code
        replaced in place)."""
        if any(ns.get(attr) is not obj or getattr(obj, "__code__", None) is not code
               for ns, attr, obj, code in self._watch):
            self._capture()

    def __repr__(self) -> str:
        return f"<{self.kind} {self.name}>"


class OpSpec:
    """A built-in operation on step outputs (``x[0]``, ``x.attr``, ``x + 1``), untracked."""

    __slots__ = ("name", "func", "token", "tracked", "kind")

    def __init__(self, func: Callable[..., Any], name: str) -> None:
        self.func, self.name = func, name
        self.token = loose_hash("experigraph-op", name)
        self.tracked = False
        self.kind = "op"


class CallSpec:
    """What a task runs: a step (or op) and its argument templates. Pickled into tasks."""

    __slots__ = ("spec", "args", "kwargs", "params", "token")

    def __init__(self, spec: StepSpec | OpSpec, args: tuple[Any, ...], kwargs: dict[str, Any],
                 params: tuple[str, ...]) -> None:
        self.spec, self.args, self.kwargs, self.params = spec, args, kwargs, params
        self.token = loose_hash(spec.token, args, kwargs)

    def __dask_tokenize__(self) -> Any:
        return ("experigraph-call", self.token)

    def fill(self, deps: list[Any], params: Mapping[str, Any]
             ) -> tuple[tuple[Any, ...], dict[str, Any]]:
        args = tuple(_fill(a, deps, params) for a in self.args)
        kwargs = {k: _fill(v, deps, params) for k, v in self.kwargs.items()}
        return args, kwargs


class CallNode:
    """One call of a step (or an op) as declared: its arguments and what it depends on."""

    __slots__ = ("key", "call", "deps", "static_token")

    def __init__(self, spec: StepSpec | OpSpec, args: tuple[Any, ...],
                 kwargs: Mapping[str, Any]) -> None:
        self.key = _static_key(spec.name)
        self.deps: list[Any] = []  # CallNode | foreign dask collection, in _Dep order
        params: list[str] = []
        targs = tuple(self._template(a, spec, params) for a in args)
        tkwargs = {k: self._template(v, spec, params) for k, v in kwargs.items()}
        self.call = CallSpec(spec, targs, tkwargs, tuple(params))
        self.static_token = self.call.token

    @property
    def spec(self) -> StepSpec | OpSpec:
        return self.call.spec

    def _template(self, value: Any, spec: StepSpec | OpSpec, params: list[str]) -> Any:
        if isinstance(value, Parameter):
            name = value._node.name
            if name not in params:
                params.append(name)
            return _Param(name)
        if isinstance(value, StepDelayed):
            return self._dep(value._node)
        if is_dask_collection(value) and not isinstance(value, Delayed):
            value = dask.delayed(value)  # e.g. a dask array: computed whole, then passed
        if isinstance(value, Delayed):
            graph = dict(value.__dask_graph__())
            if any(_STATIC_KEY.search(str(k)) for k in graph):
                target = _embedded(value.key, graph)
                if isinstance(target, _Param):
                    if target.name not in params:
                        params.append(target.name)
                    return target
                return self._dep(target)
            return self._dep(value)
        kind = type(value)
        if kind in (list, tuple, set, frozenset):
            items = [self._template(v, spec, params) for v in value]
            if any(isinstance(i, (_Dep, _Param, _Container)) for i in items):
                return _Container(kind, items)
            return value
        if kind is dict:
            pairs = [(self._template(k, spec, params), self._template(v, spec, params))
                     for k, v in value.items()]
            if any(isinstance(x, (_Dep, _Param, _Container)) for kv in pairs for x in kv):
                return _Container(dict, pairs)
            return value
        return value

    @classmethod
    def untracked(cls, spec: OpSpec, args: tuple[Any, ...]) -> CallNode:
        """A node from argument templates that are already markers (``_Param``, nodes)."""
        node = cls.__new__(cls)
        node.key = _static_key(spec.name)
        node.deps = []
        params: list[str] = []
        targs: list[Any] = []
        for a in args:
            if isinstance(a, _Param):
                if a.name not in params:
                    params.append(a.name)
                targs.append(a)
            elif isinstance(a, CallNode):
                targs.append(node._dep(a))
            else:
                targs.append(a)
        node.call = CallSpec(spec, tuple(targs), {}, tuple(params))
        node.static_token = node.call.token
        return node

    def _dep(self, target: Any) -> _Dep:
        for i, existing in enumerate(self.deps):
            if existing is target:
                return _Dep(i)
        self.deps.append(target)
        return _Dep(len(self.deps) - 1)


@overload
def make_call(spec: StepSpec | OpSpec, args: tuple[Any, ...], kwargs: Mapping[str, Any]
              ) -> StepDelayed: ...
@overload
def make_call(spec: StepSpec | OpSpec, args: tuple[Any, ...], kwargs: Mapping[str, Any],
              cls: type[_D]) -> _D: ...
def make_call(spec: StepSpec | OpSpec, args: tuple[Any, ...], kwargs: Mapping[str, Any],
              cls: type[Any] | None = None) -> Any:
    """A call of ``spec``: a Delayed (built by ``dask.delayed``) carrying its node."""
    node = CallNode(spec, args, kwargs)
    d = dask.delayed(_NodeCall(node), pure=False)(*args, dask_key_name=node.key, **kwargs)
    obj = (cls or StepDelayed)(d.key, d.dask)
    obj._node = node
    return obj


def _run_untracked(spec: StepSpec | OpSpec, *args: Any, **kwargs: Any) -> Any:
    return spec.func(*args, **kwargs)


class _NodeCall:
    """The function of a step call's task in its user-visible Delayed: runs the step
    untracked (a plain ``dask.compute``), and lets a plain dask object built on top of
    it find the call's node again (:func:`_embedded`). Pickles as the step alone."""

    __slots__ = ("node",)

    def __init__(self, node: CallNode) -> None:
        self.node = node

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.node.call.spec.func(*args, **kwargs)

    def __reduce__(self) -> tuple[Any, ...]:
        return (functools.partial, (_run_untracked, self.node.call.spec))


class _Foreign:
    """A plain dask graph built on experiment parameters and steps, run inside one task.

    ``graph`` holds the plain tasks only; ``refs`` are the keys of the parameters and
    step calls it reads, whose values the trial passes in, in that order.
    """

    __slots__ = ("graph", "key", "refs")

    def __init__(self, graph: dict[Any, Any], key: Any, refs: tuple[Any, ...]) -> None:
        self.graph, self.key, self.refs = graph, key, refs

    def __dask_tokenize__(self) -> Any:
        return ("experigraph-foreign", str(self.key), tuple(map(str, self.refs)))


class _Const:
    """A task that returns a value as it is (never read as a task itself)."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def __call__(self) -> Any:
        return self.value


def _run_foreign(foreign: _Foreign, *values: Any) -> Any:
    from dask.local import get_sync

    dsk = dict(foreign.graph)
    dsk.update({k: (_Const(v),) for k, v in zip(foreign.refs, values)})
    return get_sync(dsk, foreign.key)


def _task_function(task: Any) -> Any:
    if isinstance(task, tuple) and task and callable(task[0]):
        return task[0]
    return getattr(task, "func", None)


def _embedded(key: Any, graph: Mapping[Any, Any]) -> _Param | CallNode:
    """The marker or node that stands for ``graph[key]`` in experigraph's own DAG.

    ``key`` is a parameter (its ``_Param``), a step call (its node), or a plain dask
    task built on them (a new untracked node running that plain part).
    """
    from dask.core import get_dependencies

    def target(k: Any) -> _Param | CallNode | None:
        if not _STATIC_KEY.search(str(k)):
            return None
        func = _task_function(graph[k])
        if isinstance(func, _NodeCall):
            return func.node
        if func is _parameter_value:
            return _Param(str(k).rsplit("-xg", 1)[0])
        raise StepDefinitionError(
            f"The dask object {key!r} is built on {k!r}, which looks like an experiment "
            "parameter or step but is not one experigraph can find again. Build the graph "
            "from the Parameter and step objects of one Experiment.")

    direct = target(key)
    if direct is not None:
        return direct
    plain = {k: v for k, v in graph.items() if not _STATIC_KEY.search(str(k))}
    refs: dict[Any, None] = {}
    for k in plain:
        for dep in sorted(get_dependencies(graph, k), key=str):
            if _STATIC_KEY.search(str(dep)):
                refs.setdefault(dep)
    markers = [target(k) for k in refs]
    return CallNode.untracked(_FOREIGN_SPEC, (_Foreign(plain, key, tuple(refs)), *markers))


def _parameter_value(space: ParameterSpace, name: str) -> Any:
    return space.value(name)


# -- what the user holds ----------------------------------------------------------
class Parameter(Delayed):
    """A declared parameter: a dask Delayed leaf whose value is set per trial."""

    __slots__ = ("_node", "_space")
    _node: ParamNode

    def __init__(self, name: str, default: Any, space: ParameterSpace, type: Any = None
                 ) -> None:
        key = f"{name}-xg{uuid.uuid4().hex}"
        super().__init__(key, {key: (_parameter_value, space, name)})
        self._node = ParamNode(name, default, key, type)
        self._space = space

    @property
    def name(self) -> str:
        return self._node.name

    @property
    def default(self) -> Any:
        return self._node.default

    def _current_value(self) -> Any:
        """The current value (set, else the default), or ``NOTHING``. (Not a property:
        ``param.value`` is dask's lazy attribute access, as on any Delayed.)"""
        return self._space.values.get(self._node.name, self._node.default)

    def __repr__(self) -> str:
        """As daskperiment showed it: ``Parameter(a: 1<class 'int'>)``, or
        ``Parameter(a: Undefined)`` while it has no value."""
        value = self._current_value()
        if value is NOTHING:
            return f"Parameter({self._node.name}: Undefined)"
        return f"Parameter({self._node.name}: {value}{type(value)})"

    __getattr__ = Delayed.__getattr__


class StepDelayed(Delayed):
    """The output of a step call: a dask Delayed that experigraph can track."""

    __slots__ = ("_node",)
    _node: CallNode

    # operations on a step's output stay inside experigraph's graph
    @classmethod
    def _get_binary_operator(cls, op: Any, inv: Any = False) -> Any:
        name = op.__name__.strip("_")
        spec = OpSpec((lambda a, b: op(b, a)) if inv else op, f"r{name}" if inv else name)
        return lambda self, other: make_call(spec, (self, other), {})

    @classmethod
    def _get_unary_operator(cls, op: Any) -> Any:  # type: ignore[override]
        spec = OpSpec(op, op.__name__.strip("_"))
        return lambda self: make_call(spec, (self,), {})

    def __getattr__(self, attr: str) -> StepDelayed:
        if attr.startswith("_") or attr in _NOT_OPERATIONS:
            raise AttributeError(f"Attribute {attr} not found")
        return make_call(_GETATTR, (self, attr), {})

    def __call__(self, *args: Any, **kwargs: Any) -> StepDelayed:
        return make_call(_CALL, (self, args, kwargs), {})

    def __repr__(self) -> str:
        return f"Delayed({self.key!r})"


def _call(func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    return func(*args, **kwargs)


_GETATTR = OpSpec(getattr, "getattr")
_FOREIGN_SPEC = OpSpec(_run_foreign, "delayed")
#: attribute names that dask and other libraries probe on collections: never step outputs
_NOT_OPERATIONS = frozenset({"expr", "visualise"})
_CALL = OpSpec(_call, "call")

for _op in [operator.abs, operator.neg, operator.pos, operator.invert, operator.add,
            operator.sub, operator.mul, operator.floordiv, operator.truediv, operator.mod,
            operator.pow, operator.and_, operator.or_, operator.xor, operator.lshift,
            operator.rshift, operator.eq, operator.ge, operator.gt, operator.ne, operator.le,
            operator.lt, operator.getitem, operator.matmul]:
    StepDelayed._bind_operator(_op)


class Runs(Protocol):
    """What runs a :class:`Result` (an ``Experiment``: graph.py sits below it)."""

    def run(self, result: Any, *, seed: int | None = None, **dask_kwargs: Any) -> Any: ...


class Result(StepDelayed):
    """The output of the ``@ex.result`` step: ``compute()`` runs and records one trial.

    Built by :func:`make_result` with what runs it, and immutable from then on, like
    dask's ``Delayed``.
    """

    __slots__ = ("_runner",)
    _runner: Runs

    def __setattr__(self, name: str, value: Any) -> None:
        if name in ("_node", "_runner") and hasattr(self, name):
            raise AttributeError(f"A Result is immutable: {name} cannot be replaced. Call the "
                                 "@ex.result step again to build another one.")
        super().__setattr__(name, value)

    def compute(self, seed: int | None = None, **dask_kwargs: Any) -> Any:  # type: ignore[override]
        """Run one trial and return its result.

        Parameters
        ----------
        seed : int, optional
            The trial's seed; default: the experiment's, else a generated one.
        **dask_kwargs
            Passed to dask (``scheduler=``, ``num_workers=``, ``client=``...).
        """
        return self._runner.run(self, seed=seed, **dask_kwargs).value

    def __repr__(self) -> str:
        return f"Result({self.key!r})"


def make_result(spec: StepSpec, args: tuple[Any, ...], kwargs: Mapping[str, Any],
                runner: Runs) -> Result:
    """A call of the ``@ex.result`` step ``spec``, computed by ``runner``."""
    result = make_call(spec, args, kwargs, cls=Result)
    result._runner = runner
    return result


# -- the graph of one or many trials ------------------------------------------------
class TrialPlan:
    """What one trial of a compute runs with."""

    __slots__ = ("trial_id", "parameters", "seed")

    def __init__(self, trial_id: int, parameters: Mapping[str, Any], seed: int) -> None:
        self.trial_id, self.parameters, self.seed = trial_id, parameters, seed


def node_of(obj: StepDelayed | Parameter) -> Any:
    """The graph node behind a step's output or a parameter (its ``CallNode`` or
    ``ParamNode``)."""
    return obj._node


def walk(result: CallNode) -> list[CallNode]:
    """The step calls ``result`` depends on (itself included), dependencies first."""
    order: list[CallNode] = []
    seen: set[int] = set()
    stack: list[tuple[CallNode, bool]] = [(result, False)]
    while stack:
        node, expanded = stack.pop()
        if expanded:
            order.append(node)
            continue
        if id(node) in seen:
            continue
        seen.add(id(node))
        stack.append((node, True))
        for dep in reversed(node.deps):
            if isinstance(dep, CallNode) and id(dep) not in seen:
                stack.append((dep, False))
    return order


def parameters_read(order: Iterable[CallNode]) -> list[str]:
    """Names of the parameters read by these calls, in order of first use."""
    names: dict[str, None] = {}
    for node in order:
        for name in node.call.params:
            names.setdefault(name)
    return list(names)


def build_trial_graph(order: list[CallNode], plans: list[TrialPlan],
                      make_context: Callable[[tuple[int, ...], TrialPlan], TrialContext],
                      ) -> tuple[dict[Any, Any], list[str]]:
    """A dask graph computing every plan's result, sharing identical step calls.

    Returns the graph and, per plan, the key of its result.
    """
    tasks: dict[str, tuple[CallNode, list[Any], list[TrialPlan], tuple[Any, ...],
                           tuple[str, ...]]] = {}
    foreign: dict[Any, Any] = {}
    result_keys = []
    seed_names: dict[int, str] = {}  # name, name#2, name#3...: each call its own stream
    calls: dict[str, int] = {}
    for node in order:
        n = calls[node.call.spec.name] = calls.get(node.call.spec.name, 0) + 1
        seed_names[id(node)] = node.call.spec.name if n == 1 else f"{node.call.spec.name}#{n}"
    for plan in plans:
        keys: dict[int, str] = {}
        # what each call stands for in provenance: tracked upstream keys and parameters,
        # seen through untracked operations such as x[0] or x + 1
        lineage: dict[int, tuple[tuple[Any, ...], tuple[str, ...]]] = {}
        for node in order:
            dep_keys: list[Any] = []
            upstream: dict[Any, None] = {}
            params: dict[str, None] = dict.fromkeys(node.call.params)
            for dep in node.deps:
                if isinstance(dep, CallNode):
                    dep_keys.append(keys[id(dep)])
                    if dep.call.spec.tracked:
                        upstream[keys[id(dep)]] = None
                    else:
                        through_keys, through_params = lineage[id(dep)]
                        upstream.update(dict.fromkeys(through_keys))
                        params.update(dict.fromkeys(through_params))
                else:
                    dep_keys.append(dep.key)
                    upstream[dep.key] = None
                    if dep.key not in foreign:
                        foreign.update(dict(dep.__dask_graph__()))
            derived = (tuple(str(k) for k in upstream), tuple(params))
            lineage[id(node)] = derived
            values = [plan.parameters[name] for name in node.call.params]
            key = (f"{node.call.spec.name}-"
                   f"{call_key_token(node.static_token, plan.seed, values, dep_keys)}")
            keys[id(node)] = key
            entry = tasks.get(key)
            if entry is None:
                tasks[key] = (node, dep_keys, [plan], *derived)
            elif entry[2][-1] is not plan:
                entry[2].append(plan)
        result_keys.append(keys[id(order[-1])])

    contexts: dict[tuple[int, ...], TrialContext] = {}
    dsk: dict[Any, Any] = dict(foreign)
    for key, (node, dep_keys, sharing, upstream_keys, read) in tasks.items():
        group = tuple(p.trial_id for p in sharing)
        ctx = contexts.get(group)
        if ctx is None:
            ctx = contexts[group] = make_context(group, sharing[0])
        reads = {name: sharing[0].parameters[name] for name in node.call.params}
        info = TaskInfo(key, reads, seed_names[id(node)], upstream_keys, read)
        dsk[key] = (run_step, node.call, ctx, info, dep_keys)
    return dsk, result_keys
