"""graph.py: the declared graph, the trial graph built from it, and parameter values.

``walk`` and ``build_trial_graph`` take the node a step call carries (``node_of(result)``, the
module's own structure); everything else goes through the public API.
"""
from __future__ import annotations

import pytest

from experigraph.errors import InvalidParameterValueError, ParameterUndefinedError
from experigraph.graph import TrialPlan, build_trial_graph, node_of, parameters_read, walk
from experigraph.hooks import RecordSink, TrialContext, run_step


def declare(make_experiment):
    ex = make_experiment()
    a, b = ex.parameter("a"), ex.parameter("b", default=2)

    @ex
    def load(a):
        return a * 10

    @ex
    def shift(x, b):
        return x + b

    @ex.result
    def score(x, y):
        return x + y

    loaded = load(a)
    return ex, score(loaded, shift(loaded, b))


def test_walk_lists_each_call_once_dependencies_first(make_experiment):
    ex, r = declare(make_experiment)
    order = walk(node_of(r))
    names = [n.call.spec.name for n in order]
    assert names == ["load", "shift", "score"]  # load is shared, listed once
    assert parameters_read(order) == ["a", "b"]


def contexts(ex, made):
    sink = RecordSink(ex.backend)

    def make_context(group, plan):
        ctx = TrialContext(ex.id, group, plan.seed, ex.backend, sink)
        made.append(ctx)
        return ctx

    return make_context


def run_graph(dsk, key):
    """Compute one key of a trial graph by hand, as a scheduler would."""
    values = {}

    def value(k):
        if k not in values:
            fn, call, ctx, info, deps = dsk[k]
            values[k] = fn(call, ctx, info, [value(d) for d in deps])
        return values[k]

    return value(key)


def test_trials_with_the_same_inputs_share_calls_and_keep_their_ids(make_experiment):
    ex, r = declare(make_experiment)
    order = walk(node_of(r))
    plans = [TrialPlan(1, {"a": 1, "b": 2}, 7), TrialPlan(2, {"a": 1, "b": 3}, 7),
             TrialPlan(3, {"a": 5, "b": 2}, 7)]
    made = []
    dsk, keys = build_trial_graph(order, plans, contexts(ex, made))
    tasks = {k: v for k, v in dsk.items() if isinstance(v, tuple) and v[0] is run_step}
    by_step = {}
    for key, (_, call, ctx, _info, _deps) in tasks.items():
        by_step.setdefault(call.spec.name, []).append(ctx.trial_ids)
    # load(a=1) is shared by trials 1 and 2; every other call is its trial's own
    assert sorted(by_step["load"]) == [(1, 2), (3,)]
    assert sorted(by_step["shift"]) == [(1,), (2,), (3,)]
    assert len(set(keys)) == 3
    assert [run_graph(dsk, k) for k in keys] == [10 + 12, 10 + 13, 50 + 52]


def test_a_keys_name_comes_from_step_code_seed_and_inputs_not_the_trial(make_experiment):
    ex, r = declare(make_experiment)
    order = walk(node_of(r))
    first, _ = build_trial_graph(order, [TrialPlan(1, {"a": 1, "b": 2}, 7)],
                                 contexts(ex, []))
    again, _ = build_trial_graph(order, [TrialPlan(9, {"a": 1, "b": 2}, 7)],
                                 contexts(ex, []))
    other_seed, _ = build_trial_graph(order, [TrialPlan(1, {"a": 1, "b": 2}, 8)],
                                      contexts(ex, []))
    assert set(first) == set(again)
    assert set(first) != set(other_seed)


def test_a_trial_names_every_missing_parameter_before_anything_runs(make_experiment):
    ex = make_experiment()
    a, c, b = ex.parameter("a"), ex.parameter("c"), ex.parameter("b", default=2)

    @ex.result
    def total(a, b, c):
        return a + b + c

    total(a, b, c)
    with pytest.raises(ParameterUndefinedError) as info:
        ex.compute()
    assert "'a'" in str(info.value) and "'c'" in str(info.value)
    assert ex.latest_trial_id == 0
    assert ex.run(parameters={"a": 1, "c": 3}).value == 6


@pytest.mark.parametrize("kind, given, expected", [
    (float, 1, 1.0), (float, "0.5", 0.5), (int, 3.0, 3), (int, "4", 4), (bool, "yes", True),
    (bool, 0, False), (str, 1, "1"),
])
def test_typed_parameters_convert_without_loss(make_experiment, kind, given, expected):
    ex = make_experiment()
    ex.parameter("p", type=kind)
    value = ex.set_parameters(p=given).get_parameters()["p"]
    assert value == expected and type(value) is kind


@pytest.mark.parametrize("kind, given", [
    (int, 3.5), (int, "x"), (float, True), (int, False), (bool, "maybe"), (str, [1]),
])
def test_typed_parameters_refuse_lossy_values(make_experiment, kind, given):
    ex = make_experiment()
    ex.parameter("p", type=kind)
    with pytest.raises(InvalidParameterValueError, match="'p'"):
        ex.set_parameters(p=given)
    assert ex.get_parameters() == {}
