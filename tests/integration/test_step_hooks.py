"""Step hooks, the public extension point around trials and steps (``experigraph.StepHook``).

A recording hook checks what each method receives and in which order; a hook that
writes to a file shows that hooks travel to other processes and cluster workers.
"""
from __future__ import annotations

import json
import logging
import threading

import pytest

import experigraph as xg
from experigraph.errors import InvalidArgumentError

pytestmark = pytest.mark.timeout(240)


class Recorder(xg.StepHook):
    """Keeps every call: (method, step or trial id, what it got)."""

    def __init__(self):
        self.calls = []
        self.lock = threading.Lock()

    def _keep(self, *item):
        with self.lock:
            self.calls.append(item)

    def before_trial(self, *, trial_id, parameters, seed, **kwargs):
        self._keep("before_trial", trial_id, dict(parameters), seed)

    def after_trial(self, *, trial_id, status, value, error, duration, **kwargs):
        self._keep("after_trial", trial_id, status, value, type(error).__name__
                   if error else None, duration is not None and duration >= 0)

    def before_step(self, *, step, trial, trial_ids, inputs, cached, **kwargs):
        self._keep("before_step", step, trial, trial_ids, inputs, cached)

    def after_step(self, *, step, trial, value, error, duration, cached, **kwargs):
        self._keep("after_step", step, trial, value, type(error).__name__ if error else None,
                   duration >= 0, cached)


def chain(ex):
    a = ex.parameter("a")

    @ex
    def prepare(a):
        return a + 1

    @ex.result
    def score(x):
        return 10 / x

    return score(prepare(a))


def test_a_recording_hook_sees_every_trial_and_step_in_order(make_experiment):
    hook = Recorder()
    ex = make_experiment(hooks=[hook])
    assert ex.hooks == (hook,)
    r = chain(ex)
    assert ex.set_parameters(a=1).compute(seed=5) == 5.0
    assert hook.calls == [
        ("before_trial", 1, {"a": 1}, 5),
        ("before_step", "prepare", 1, (1,), ((1,), {}), False),
        ("after_step", "prepare", 1, 2, None, True, False),
        ("before_step", "score", 1, (1,), ((2,), {}), False),
        ("after_step", "score", 1, 5.0, None, True, False),
        ("after_trial", 1, "succeeded", 5.0, None, True),
    ]
    assert r.compute() == 5.0  # the same hook again
    assert [c[0] for c in hook.calls[6:]] == [c[0] for c in hook.calls[:6]]


def test_a_failed_step_reaches_after_step_and_after_trial(make_experiment):
    hook = Recorder()
    ex = make_experiment()
    assert ex.add_hook(hook) is hook
    chain(ex)
    with pytest.raises(ZeroDivisionError):
        ex.set_parameters(a=-1).compute()
    assert hook.calls[-2][:5] == ("after_step", "score", 1, None, "ZeroDivisionError")
    assert hook.calls[-1] == ("after_trial", 1, "failed", None, "ZeroDivisionError", True)
    assert not ex.get_history().loc[1, "Success"]


class Broken(xg.StepHook):
    def before_step(self, **kwargs):
        raise RuntimeError("hook bug")

    def after_trial(self, **kwargs):
        raise RuntimeError("hook bug too")


def test_a_failing_hook_is_logged_and_changes_nothing(make_experiment, caplog):
    after = Recorder()
    ex = make_experiment(hooks=[Broken(), after])
    chain(ex)
    with caplog.at_level(logging.ERROR, logger="experigraph"):
        assert ex.set_parameters(a=1).compute() == 5.0
    failures = [r.getMessage() for r in caplog.records if "Hook Broken" in r.getMessage()]
    assert failures == ["Hook Broken.before_step failed (ignored: the step and trial go on as "
                        "if it had not been called)"] * 2 + [
                        "Hook Broken.after_trial failed (ignored: the step and trial go on as "
                        "if it had not been called)"]
    assert ex.get_history().loc[1, "Success"]
    assert [c[0] for c in after.calls].count("after_step") == 2  # the next hook still runs


class StepMetrics(xg.StepHook):
    """Records each step's duration as a trial metric (ex.metric works inside a hook)."""

    def __init__(self, ex):
        self.ex = ex

    def after_step(self, *, step, duration, **kwargs):
        self.ex.metric(f"{step}_seconds", duration)


def test_a_hook_can_record_metrics_into_the_trial(make_experiment):
    ex = make_experiment()
    ex.add_hook(StepMetrics(ex))
    chain(ex)
    ex.set_parameters(a=1).compute()
    history = ex.get_history()
    assert history.loc[1, "prepare_seconds"] >= 0 and history.loc[1, "score_seconds"] >= 0


class Draws(xg.StepHook):
    def before_step(self, **kwargs):
        import random

        random.random()


def test_a_hook_that_draws_does_not_change_the_steps_numbers(make_experiment):
    import random

    plain = make_experiment(id="plain")
    hooked = make_experiment(id="hooked", hooks=[Draws()])
    for ex in (plain, hooked):
        a = ex.parameter("a")

        @ex.result
        def draw(a):
            return random.random()

        draw(a)
    assert plain.set_parameters(a=1).compute(seed=3) == \
        hooked.set_parameters(a=1).compute(seed=3)


def test_a_shared_step_of_a_sweep_is_hooked_once_with_its_trials(make_experiment):
    hook = Recorder()
    ex = make_experiment(hooks=[hook])
    a, b = ex.parameter("a"), ex.parameter("b")

    @ex
    def shared(a):
        return a * 10

    @ex.result
    def add(x, b):
        return x + b

    add(shared(a), b)
    ex.sweep(a=[1], b=[1, 2], seed=1, progress=False)
    shared_calls = [c for c in hook.calls if c[0] == "before_step" and c[1] == "shared"]
    assert [c[3] for c in shared_calls] == [(1, 2)]
    assert sorted(c[1] for c in hook.calls if c[0] == "after_trial") == [1, 2]


def test_a_cached_call_is_hooked_with_cached_true(make_experiment):
    hook = Recorder()
    ex = make_experiment(hooks=[hook])
    a = ex.parameter("a")

    @ex.step(cache=True)
    def slow(a):
        return a * 2

    @ex.result
    def out(x):
        return x

    out(slow(a))
    ex.set_parameters(a=3).compute()
    ex.compute()
    cached = [c for c in hook.calls if c[0] == "after_step" and c[1] == "slow"]
    assert [c[-1] for c in cached] == [False, True]
    assert cached[1][3] == 6


class ToFile(xg.StepHook):
    """Appends one JSON line per call to a file: works from any process."""

    def __init__(self, path):
        self.path = str(path)

    def after_step(self, *, step, trial, duration, **kwargs):
        import os

        with open(self.path, "a") as f:
            f.write(json.dumps({"step": step, "trial": trial, "pid": os.getpid()}) + "\n")


@pytest.mark.parametrize("where", ["processes", "cluster"])
def test_hooks_travel_to_other_processes(make_experiment, tmp_path, where, request):
    log = tmp_path / "hook.jsonl"
    ex = make_experiment(hooks=[ToFile(log)])
    chain(ex)
    ex.set_parameters(a=1)
    if where == "processes":
        assert ex.compute(scheduler="processes") == 5.0
    else:
        client = request.getfixturevalue("client")
        assert ex.compute(client=client) == 5.0
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert sorted((line["step"], line["trial"]) for line in lines) == [("prepare", 1),
                                                                      ("score", 1)]
    import os

    assert all(line["pid"] != os.getpid() for line in lines)


def test_only_step_hooks_are_accepted(make_experiment):
    with pytest.raises(InvalidArgumentError, match="subclass of experigraph.StepHook"):
        make_experiment(hooks=[print])
    ex = make_experiment()
    with pytest.raises(InvalidArgumentError, match="subclass of experigraph.StepHook"):
        ex.add_hook(lambda **kw: None)
    assert ex.hooks == ()


class Named(xg.StepHook):
    def __init__(self, name, seen):
        self.name, self.seen = name, seen

    def before_step(self, *, step, scope, **kwargs):
        # the built-in hooks outside this one have run: the input hash is known, the step
        # is not seeded yet (seeding is innermost)
        self.seen.append(("before", self.name, step, scope.input_hash is not None,
                          scope.watch is None))

    def after_step(self, *, step, scope, **kwargs):
        # seeding (inside) has judged the randomness; persisting and recording (outside)
        # have not run yet
        self.seen.append(("after", self.name, step, scope.watch is not None,
                          scope.persisted is None))


def test_hooks_nest_around_the_built_in_ones(make_experiment):
    """Built-in recording, caching, persisting and seeding are hooks on the same chain:
    user hooks sit between them; after_step runs in the reverse order of before_step."""
    from experigraph.hooks import CACHING, PERSISTING, RECORDING, SEEDING, hook_chain

    seen = []
    first, second = Named("first", seen), Named("second", seen)
    assert hook_chain([first, second]) == (RECORDING, CACHING, PERSISTING, first, second,
                                           SEEDING)
    ex = make_experiment(hooks=[first, second])

    @ex.persist
    def train():
        return 3

    ex.run(train())
    assert seen == [("before", "first", "train", True, True),
                    ("before", "second", "train", True, True),
                    ("after", "second", "train", True, True),
                    ("after", "first", "train", True, True)]
    assert ex.get_persisted("train", 1) == 3  # persisted after the user's hooks ran
