"""Per-step cost of experigraph's step hooks, before and after a change, against plain dask.

The 5-step chain of trivial steps of ``bench_trials.py`` (``x + 1`` five times), timed
in a fresh interpreter per source tree (``--before``: a git ref, by default where this
branch left ``main``, extracted with ``git archive``; after: this checkout), each
measuring in the same process:

* ``direct call``: the five step functions called in a row (the work itself);
* ``hooks (run_step)``: the five tasks of one trial's graph run through
  ``hooks.run_step`` in a row, as a scheduler would call them, without dask: input
  hash, seeding, the randomness check, output hash, step record;
* ``dask (sync)``: plain ``dask.delayed`` chain, computed with the synchronous
  scheduler (the reference);
* ``experigraph trial (sync)``: ``Result.compute(scheduler="sync")``: a whole
  recorded trial, hooks included.

Per-step figures are per-chain figures divided by 5; each figure is the best of
``--rounds`` fresh processes per tree, run alternately (the machine may be shared). Also, for the tree that has
it, the randomness check alone (``seed_globals`` + ``drew_since``) against copying
the generators' state. Prints a table and writes JSON.

    python benchmarks/bench_hooks.py          # before = merge-base with main, after = this tree
    python benchmarks/bench_hooks.py --before HEAD~3 --repeat 5000
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STEPS = 5

CHILD = r'''
import json, pathlib, random, statistics, sys, time, logging
import dask
import numpy as np
import experigraph as xg
from experigraph import hooks
from experigraph import graph
from experigraph.graph import TrialPlan, build_trial_graph, walk
node_of = getattr(graph, "node_of", lambda r: r._node)  # older trees: the private attribute

logging.getLogger("experigraph").setLevel(logging.WARNING)
STEPS, repeat, store = int(sys.argv[1]), int(sys.argv[2]), pathlib.Path(sys.argv[3])

def best(fn, number, rounds=7):
    """Best per-call time over rounds (the least disturbed by the other users)."""
    times = []
    for _ in range(rounds):
        t = time.perf_counter()
        for _ in range(number):
            fn()
        times.append((time.perf_counter() - t) / number)
    return min(times)

def inc(x):
    return x + 1

# plain dask, synchronous scheduler
chain = dask.delayed(inc)(0)
for _ in range(STEPS - 1):
    chain = dask.delayed(inc)(chain)
dask_sync = best(lambda: chain.compute(scheduler="sync"), max(repeat // 10, 50))

# experigraph: the same chain
ex = xg.Experiment(id="hooks", backend=store, seed=1)
a = ex.parameter("a")
steps = []
for i in range(STEPS - 1):
    def step(x):
        return x + 1
    step.__name__ = step.__qualname__ = f"step{i}"
    steps.append(ex(step))

@ex.result
def last(x):
    return x + 1

d = a
for s in steps:
    d = s(d)
result = last(d)
ex.set_parameters(a=1)
result.compute(scheduler="sync")
trial_sync = best(lambda: result.compute(scheduler="sync"), max(repeat // 50, 20), rounds=5)

# the hooks alone: one trial's tasks through run_step, in order, no scheduler
order = walk(node_of(result))
sink = hooks.RecordSink(ex.backend)
dsk, keys = build_trial_graph(order, [TrialPlan(10**6, {"a": 1}, 1)],
                              lambda group, plan: hooks.TrialContext(
                                  ex.id, group, plan.seed, ex.backend, sink))
tasks = [(k, v) for k, v in dsk.items() if isinstance(v, tuple) and v[0] is hooks.run_step]

def run_hooks():
    values = {}
    for key, (fn, call, ctx, info, deps) in tasks:
        values[key] = fn(call, ctx, info, [values[k] for k in deps])
    sink.records.clear()
    return values

assert list(run_hooks().values())[-1] == 6
funcs = [n.call.spec.func for n in order]

def direct():
    x = 1
    for f in funcs:
        x = f(x)
    return x

out = {"dask_sync_chain_s": dask_sync, "trial_sync_s": trial_sync,
       "hooks_chain_s": best(run_hooks, repeat), "direct_chain_s": best(direct, repeat * 10)}

if hasattr(hooks, "drew_since"):  # the randomness check, and what it replaces
    try:  # a step's watch: seeding, then the check at its end
        hooks.drew_since(hooks.seed_globals(7, watch=True))
        out["seed_globals_s"] = best(lambda: hooks.seed_globals(7), repeat * 10)
        pair = best(lambda: hooks.drew_since(hooks.seed_globals(7, watch=True)), repeat * 10)
        out["drew_since_s"] = pair - out["seed_globals_s"]
    except TypeError:  # the first version: seed_globals returned the mark itself
        out["seed_globals_s"] = best(lambda: hooks.seed_globals(7), repeat * 10)
        mark = hooks.seed_globals(7)
        out["drew_since_s"] = best(lambda: hooks.drew_since(mark), repeat * 10)
    out["copy_numpy_state_s"] = best(lambda: np.random.get_state(legacy=False), repeat * 10)
    out["copy_random_state_s"] = best(random.getstate, repeat * 10)
print(json.dumps(out))
'''


def extract(ref: str, dest: Path) -> Path:
    """The ``experigraph`` package of git ref ``ref``, unpacked under ``dest``."""
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", ref, "experigraph"],
                             check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    return dest


def measure(tree: Path, repeat: int, store: Path) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": str(tree), "EXPERIGRAPH_LOG_LEVEL": "WARNING",
           "PYTHONDONTWRITEBYTECODE": "1"}
    out = subprocess.run([sys.executable, "-c", CHILD, str(STEPS), str(repeat), str(store)],
                         check=True, capture_output=True, text=True, env=env, cwd=store.parent)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--before", default=None, help="git ref of the 'before' tree "
                        "(default: where this branch left main, git merge-base HEAD main)")
    parser.add_argument("--repeat", type=int, default=2000, help="hook chains per round")
    parser.add_argument("--rounds", type=int, default=3,
                        help="fresh processes per tree, alternating before and after")
    parser.add_argument("--output", default=str(ROOT / "benchmarks" / "results" /
                                                "bench_hooks.json"))
    args = parser.parse_args()
    if args.before is None:
        args.before = subprocess.run(["git", "-C", str(ROOT), "merge-base", "HEAD", "main"],
                                     check=True, capture_output=True,
                                     text=True).stdout.strip()[:12]
    with tempfile.TemporaryDirectory(prefix="xg-bench-hooks-") as tmp:
        tmp_path = Path(tmp)
        (tmp_path / "before").mkdir()
        before_tree = extract(args.before, tmp_path / "before")
        figures: dict[str, dict[str, float]] = {"before": {}, "after": {}}
        for round_ in range(args.rounds):  # alternate, keep the best: the machine is shared
            for name, tree in (("before", before_tree), ("after", ROOT)):
                store = tmp_path / f"store-{name}-{round_}"
                store.mkdir()
                for key, value in measure(tree, args.repeat, store).items():
                    figures[name][key] = min(value, figures[name].get(key, value))
    us = 1e6
    print(f"{STEPS}-step chain of trivial steps; per step, best of {args.rounds} processes "
          f"x 7 rounds (before = {args.before}, after = this tree)")
    print(f"{'':30}{'before':>12}{'after':>12}")
    rows = [("direct call", "direct_chain_s"), ("hooks (run_step)", "hooks_chain_s"),
            ("dask (sync), reference", "dask_sync_chain_s"),
            ("experigraph trial (sync)", "trial_sync_s")]
    for label, key in rows:
        b, a = figures["before"][key] / STEPS * us, figures["after"][key] / STEPS * us
        print(f"{label:30}{b:>10.2f}us{a:>10.2f}us")
    for name in ("before", "after"):
        f = figures[name]
        f["hook_cost_per_step_us"] = (f["hooks_chain_s"] - f["direct_chain_s"]) / STEPS * us
        f["dask_sync_per_step_us"] = f["dask_sync_chain_s"] / STEPS * us
    print(f"{'hook cost per step':30}{figures['before']['hook_cost_per_step_us']:>10.2f}us"
          f"{figures['after']['hook_cost_per_step_us']:>10.2f}us")
    after = figures["after"]
    if "drew_since_s" in after:
        print("randomness check (after): "
              f"seed_globals {after['seed_globals_s'] * us:.2f}us, "
              f"drew_since {after['drew_since_s'] * us:.2f}us; copying the state instead: "
              f"np.random.get_state {after['copy_numpy_state_s'] * us:.2f}us, "
              f"random.getstate {after['copy_random_state_s'] * us:.2f}us")
    result = {"steps": STEPS, "before_ref": args.before, "repeat": args.repeat,
              "rounds": args.rounds,
              "python": platform.python_version(), "cpus": os.cpu_count(), **figures}
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
