"""Per-trial overhead of experigraph against plain dask on the same graph.

A 5-step chain of trivial steps, run as N trials:

* ``dask (build+compute)``: what a user writes without experigraph: build the
  ``dask.delayed`` chain for the trial's parameter and compute it;
* ``dask (compute only)``: the chain built once, computed N times;
* ``experigraph``: ``Result.compute()`` of the same chain, one recorded trial each.

Environment capture is on (it always is). It also times one more trial once the history holds 10 trials and once it holds
``--history`` trials (5,000 by default), to show that recording a trial costs the
same however long the history is, and the first trial of a fresh process (which
must not wait for py-cpuinfo). Prints a table and writes JSON.

    python benchmarks/bench_trials.py                    # 200 trials, history 5,000
    python benchmarks/bench_trials.py --trials 50 --history 500 --scheduler sync
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import dask

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import experigraph as xg  # noqa: E402

STEPS = 5


def inc(x):
    return x + 1


def plain_dask(n_trials: int, scheduler: str) -> tuple[float, float]:
    def build(value):
        d = dask.delayed(inc)(value)
        for _ in range(STEPS - 1):
            d = dask.delayed(inc)(d)
        return d

    build(0).compute(scheduler=scheduler)  # warm up pools and caches
    t = time.perf_counter()
    for i in range(n_trials):
        build(i).compute(scheduler=scheduler)
    build_compute = (time.perf_counter() - t) / n_trials
    chain = build(0)
    t = time.perf_counter()
    for _ in range(n_trials):
        chain.compute(scheduler=scheduler)
    compute_only = (time.perf_counter() - t) / n_trials
    return build_compute, compute_only


def make_experiment(root: Path, name: str):
    ex = xg.Experiment(id=name, backend=root, seed=1)
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
    return ex, last(d)


def time_trials(ex, result, values, scheduler: str) -> list[float]:
    times = []
    for v in values:
        ex.set_parameters(a=v)
        t = time.perf_counter()
        result.compute(scheduler=scheduler)
        times.append(time.perf_counter() - t)
    return times


FIRST_TRIAL = """
import pathlib, sys, time
t0 = time.perf_counter()
import experigraph as xg
ex = xg.Experiment(id="first", backend=pathlib.Path(sys.argv[1]), seed=1)
a = ex.parameter("a", default=1)
@ex.result
def one(a):
    return a
one(a)
t1 = time.perf_counter()
ex.compute()
t2 = time.perf_counter()
print(t1 - t0, t2 - t1, "cpu" in ex.get_environment_snapshot(1))
"""


def first_trial(root: Path) -> tuple[float, float, bool]:
    """Import + declare, and the first trial, in a fresh interpreter (env capture on)."""
    import subprocess

    out = subprocess.run([sys.executable, "-c", FIRST_TRIAL, str(root)], check=True,
                         capture_output=True, text=True,
                         env={**os.environ, "EXPERIGRAPH_LOG_LEVEL": "WARNING",
                              "PYTHONPATH": str(Path(__file__).resolve().parent.parent)})
    setup, first, has_cpu = out.stdout.split()
    return float(setup), float(first), has_cpu == "True"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--history", type=int, default=5000)
    parser.add_argument("--scheduler", default="threads")
    parser.add_argument("--root", default=".", help="directory for the benchmark's store "
                        "(default: here, as a user's ./experigraph_cache)")
    parser.add_argument("--output", default=str(Path(__file__).parent / "results" /
                                                "bench_trials.json"))
    args = parser.parse_args()
    logging.getLogger("experigraph").setLevel(logging.WARNING)

    dask_bc, dask_c = plain_dask(args.trials, args.scheduler)
    with tempfile.TemporaryDirectory(dir=args.root, prefix=".bench-") as tmp:
        root = Path(tmp)
        ex, result = make_experiment(root, "bench")
        time_trials(ex, result, [0], args.scheduler)  # first trial: imports, pools
        xg_times = time_trials(ex, result, range(1, args.trials + 1), args.scheduler)
        xg_per_trial = statistics.mean(xg_times)

        ex2, result2 = make_experiment(root, "history")
        time_trials(ex2, result2, range(10), args.scheduler)
        after_10 = statistics.median(time_trials(ex2, result2, range(50), args.scheduler))
        time_trials(ex2, result2, range(args.history - ex2.trial_id), args.scheduler)
        after_n = statistics.median(time_trials(ex2, result2, range(50), args.scheduler))
        history_t = time.perf_counter()
        rows = len(ex2.get_history())
        history_read = time.perf_counter() - history_t
        setup_s, first_s, first_has_cpu = first_trial(root / "fresh")

    figures = {
        "scheduler": args.scheduler, "steps": STEPS, "trials": args.trials,
        "dask_build_compute_ms": dask_bc * 1e3, "dask_compute_only_ms": dask_c * 1e3,
        "experigraph_ms": xg_per_trial * 1e3,
        "ratio_to_dask_build_compute": xg_per_trial / dask_bc,
        "ratio_to_dask_compute_only": xg_per_trial / dask_c,
        "trial_after_10_ms": after_10 * 1e3,
        f"trial_after_{args.history}_ms": after_n * 1e3,
        "history_rows": rows, "get_history_s": history_read,
        "fresh_process_import_and_declare_s": setup_s, "fresh_process_first_trial_s": first_s,
        "first_trial_waited_for_cpuinfo": first_has_cpu,
        "python": platform.python_version(), "dask": dask.__version__,
        "cpus": os.cpu_count(),
    }
    print(f"{STEPS}-step chain, {args.trials} trials, scheduler={args.scheduler}")
    print(f"{'':34}{'per trial':>12}{'ratio':>10}")
    print(f"{'dask (build+compute)':34}{dask_bc * 1e3:>10.3f}ms{'1.00':>10}")
    print(f"{'dask (compute only)':34}{dask_c * 1e3:>10.3f}ms{dask_c / dask_bc:>10.2f}")
    print(f"{'experigraph (recorded trial)':34}{xg_per_trial * 1e3:>10.3f}ms"
          f"{xg_per_trial / dask_bc:>10.2f}")
    print(f"{'experigraph, history of 10':34}{after_10 * 1e3:>10.3f}ms")
    print(f"{f'experigraph, history of {args.history}':34}{after_n * 1e3:>10.3f}ms"
          f"{after_n / after_10:>10.2f}")
    print(f"{f'get_history() of {rows} trials':34}{history_read * 1e3:>10.1f}ms")
    print(f"{'fresh process: first trial':34}{first_s * 1e3:>10.1f}ms  (cpu info in it: "
          f"{first_has_cpu}; import+declare {setup_s * 1e3:.0f} ms)")
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(figures, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
