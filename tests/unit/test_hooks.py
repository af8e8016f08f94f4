"""The step wrapper's randomness check: did a step draw from the seeded generators?

``seed_globals(seed, watch=True)`` seeds ``random`` and NumPy's global generator and
returns a watch; ``drew_since(mark)`` must say True after any draw (never a false "did not draw", which
could turn a seed-dependent step into a reported impurity) and False when nothing drew.
"""
from __future__ import annotations

import logging
import random
import threading

import numpy as np
import pytest

from experigraph import hooks


def test_no_draw_is_seen_as_no_draw():
    mark = hooks.seed_globals(7, watch=True)
    sum(range(100))
    assert hooks.drew_since(mark) is False


@pytest.mark.parametrize("draw", [
    lambda: random.random(),
    lambda: random.randrange(10),
    lambda: [random.random() for _ in range(312)],     # exactly 624 words: same position
    lambda: random.shuffle([1, 2, 3]),
    lambda: np.random.rand(),
    lambda: np.random.standard_normal(),
    lambda: np.random.randint(0, 2**32, size=624, dtype=np.uint64),
    lambda: np.random.randint(0, 2**31, size=624, dtype=np.uint32),  # 624 words again
    lambda: np.random.permutation(5),
], ids=["random", "randrange", "random-624-words", "shuffle", "np-rand", "np-normal",
        "np-624-words-64", "np-624-words-32", "np-permutation"])
def test_any_draw_from_the_seeded_generators_is_seen(draw):
    mark = hooks.seed_globals(7, watch=True)
    draw()
    assert hooks.drew_since(mark) is True


@pytest.mark.parametrize("draw", [
    lambda: np.random.default_rng().random(),
    lambda: random.Random().random(),
    lambda: np.random.RandomState().rand(),
], ids=["default_rng", "Random()", "RandomState()"])
def test_own_unseeded_generators_are_not_the_trials_randomness(draw):
    mark = hooks.seed_globals(7, watch=True)
    draw()
    assert hooks.drew_since(mark) is False


def test_a_reseeding_by_another_step_is_not_a_draw():
    """Two steps side by side that draw nothing: neither is taken to have drawn."""
    mark = hooks.seed_globals(7, watch=True)
    other = []
    thread = threading.Thread(target=lambda: other.append(hooks.seed_globals(8, watch=True)))
    thread.start()
    thread.join()
    sum(range(100))
    assert hooks.drew_since(other[0]) is False
    assert hooks.drew_since(mark) is False


def test_a_draw_by_a_step_running_beside_marks_every_running_step():
    """Which running step drew cannot be told: each is taken to have (errs towards True)."""
    mark = hooks.seed_globals(7, watch=True)
    drawer = []

    def draw():
        drawer.append(hooks.seed_globals(8, watch=True))
        random.random()
        drawer.append(hooks.drew_since(drawer[0]))

    thread = threading.Thread(target=draw)
    thread.start()
    thread.join()
    assert drawer[1] is True
    assert hooks.drew_since(mark) is True
    after = hooks.seed_globals(9, watch=True)  # a step after both: the draw is not its
    assert hooks.drew_since(after) is False


def test_a_draw_before_another_step_reseeds_is_still_seen():
    mark = hooks.seed_globals(7, watch=True)
    random.random()
    other = hooks.seed_globals(8, watch=True)  # resets the state the draw moved
    assert hooks.drew_since(other) is False
    assert hooks.drew_since(mark) is True


def test_a_failed_step_ends_its_watch(make_experiment):
    ex = make_experiment()
    a = ex.parameter("a")

    @ex.result
    def boom(a):
        raise ValueError("no")

    boom(a)
    before = set(hooks.GLOBAL_GENERATORS.running)
    with pytest.raises(ValueError):
        ex.set_parameters(a=1).compute()
    assert hooks.GLOBAL_GENERATORS.running == before


def test_a_step_using_ex_rng_ends_its_watch(make_experiment):
    ex = make_experiment()
    a = ex.parameter("a")

    @ex.result
    def draw(a):
        return float(ex.rng().random())

    draw(a)
    before = set(hooks.GLOBAL_GENERATORS.running)
    ex.set_parameters(a=1).compute()
    assert hooks.GLOBAL_GENERATORS.running == before


def test_state_is_read_in_place_and_agrees_with_the_full_state():
    mark = hooks.seed_globals(11, watch=True)
    random_view = hooks.GLOBAL_GENERATORS.random_view()
    numpy_view = hooks.GLOBAL_GENERATORS.numpy_view(np)
    # CPython and NumPy >= 1.17 on this machine: the cheap path is in use
    assert random_view.view is not None and numpy_view.view is not None
    index, first, second = random_view.read()
    state = random.getstate()[1]
    assert (index, first, second) == (state[-1], state[0], state[1]) == (624, *state[:2])
    pos = np.random.get_state(legacy=False)["state"]
    assert numpy_view.read() == (pos["pos"], pos["key"][0], pos["key"][1])
    slow = hooks.StateView(None, None, (0, 0, 0), numpy_view.full)
    assert slow.read() == numpy_view.read()
    assert hooks.drew_since(mark) is False


def test_a_step_seeds_the_globals_per_call(make_experiment):
    ex = make_experiment()
    a = ex.parameter("a")

    @ex
    def uses_numpy(a):
        return float(np.random.rand())

    @ex
    def uses_rng(a):
        return float(ex.rng().random())

    @ex
    def no_randomness(a):
        return a * 2

    @ex.result
    def total(x, y, z):
        return x + y + z

    total(uses_numpy(a), uses_rng(a), no_randomness(a))
    ex.set_parameters(a=1).compute(seed=3, scheduler="sync")
    used = {s.step: s.used_seed for s in ex.get_trial(1).steps}
    assert used == {"uses_numpy": True, "uses_rng": True, "no_randomness": False,
                    "total": False}


def test_parallel_threads_never_invent_an_impurity(make_experiment, caplog):
    """Four steps draw from the global generators while a pure step runs beside them,
    on threads, under a new seed each trial: nothing is impure, whatever each step is
    taken to have used."""
    ex = make_experiment()
    a = ex.parameter("a")
    drawers = []
    for i in range(4):
        def draw(a):
            return a + sum(float(np.random.rand()) for _ in range(200))
        draw.__name__ = draw.__qualname__ = f"draw{i}"
        drawers.append(ex(draw))

    @ex
    def pure(a):
        return sum(range(20000)) + a

    @ex.result
    def total(*xs):
        return sum(xs)

    total(pure(a), *(d(a) for d in drawers))
    ex.set_parameters(a=1)
    with caplog.at_level(logging.INFO, logger="experigraph"):
        for _ in range(5):
            ex.compute(scheduler="threads", num_workers=4)
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
    steps = {s.step: s for t in range(1, 6) for s in ex.get_trial(t).steps}
    assert all(steps[f"draw{i}"].used_seed for i in range(4))
    kinds = {d.kind for t in range(2, 6) for d in ex.get_trial(t).drift}
    assert kinds == {"seed"}


def test_a_failed_step_leaves_a_record_and_its_exception(make_experiment):
    ex = make_experiment()
    a = ex.parameter("a")

    @ex
    def boom(a):
        np.random.rand()
        raise ValueError(f"bad {a}")

    @ex.result
    def out(x):
        return x

    out(boom(a))
    with pytest.raises(ValueError, match="bad 1"):
        ex.set_parameters(a=1).compute(seed=1)
    (rec,) = ex.get_trial(1).steps
    assert rec.step == "boom" and not rec.succeeded and rec.error == "ValueError: bad 1"
    assert rec.output_hash is None and ex.get_trial(1).drift == ()
