"""Per-trial time of the same 5-step chain on the file backend and on Redis.

Reuses ``bench_trials.py``'s chain (``make_experiment``, ``time_trials``,
``plain_dask``). For each backend: the mean time of ``--trials`` recorded trials,
its ratio to plain dask (build + compute of the same chain), and the median
time of a trial once the history holds 10 and ``--history`` trials (recording
must not grow with the history). Redis runs in a ``redis-server`` this script
starts on a free port of 127.0.0.1 (no persistence, so the figures are the
backend's, not the disk's) and stops at the end. Prints a table and writes JSON.

    python benchmarks/bench_backends.py
    python benchmarks/bench_backends.py --trials 100 --history 500 --scheduler sync
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import dask  # noqa: E402
import redis  # noqa: E402

from bench_trials import make_experiment, plain_dask, time_trials  # noqa: E402


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def redis_server(directory: Path) -> Iterator[str]:
    """A redis-server on a free port for the benchmark; yields its URI."""
    exe = shutil.which("redis-server")
    if exe is None:
        raise SystemExit("redis-server is not installed (apt-get install redis-server)")
    port = _free_port()
    proc = subprocess.Popen([exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no", "--dir", str(directory)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    client = redis.Redis(host="127.0.0.1", port=port, socket_connect_timeout=0.5)
    deadline = time.monotonic() + 15
    try:
        while True:
            try:
                client.ping()
                break
            except redis.exceptions.ConnectionError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise SystemExit(f"redis-server did not start on port {port}") from None
                time.sleep(0.05)
        client.close()
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(10)


def measure(location, name: str, n_trials: int, history: int, scheduler: str) -> dict[str, float]:
    ex, result = make_experiment(location, name)
    time_trials(ex, result, [0], scheduler)  # first trial: imports, pools, environment
    per_trial = statistics.mean(time_trials(ex, result, range(1, n_trials + 1), scheduler))
    ex2, result2 = make_experiment(location, f"{name}-history")
    time_trials(ex2, result2, range(10), scheduler)
    after_10 = statistics.median(time_trials(ex2, result2, range(50), scheduler))
    time_trials(ex2, result2, range(history - ex2.trial_id), scheduler)
    after_n = statistics.median(time_trials(ex2, result2, range(50), scheduler))
    import pandas  # noqa: F401  a one-time import, not the history's cost (run.py's start row)

    t = time.perf_counter()
    rows = len(ex2.get_history())
    history_read = time.perf_counter() - t
    return {"per_trial_ms": per_trial * 1e3, "trial_after_10_ms": after_10 * 1e3,
            "trial_after_history_ms": after_n * 1e3, "history_rows": rows,
            "get_history_s": history_read}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--history", type=int, default=1000)
    parser.add_argument("--scheduler", default="threads")
    parser.add_argument("--output", default=str(Path(__file__).parent / "results" /
                                                "bench_backends.json"))
    args = parser.parse_args()
    logging.getLogger("experigraph").setLevel(logging.WARNING)

    dask_bc, dask_c = plain_dask(args.trials, args.scheduler)
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-backends-") as tmp:
        tmp_path = Path(tmp)
        results["file"] = measure(tmp_path / "store", "bench", args.trials, args.history,
                                  args.scheduler)
        (tmp_path / "redis").mkdir()
        with redis_server(tmp_path / "redis") as uri:
            results["redis"] = measure(uri, "bench", args.trials, args.history, args.scheduler)

    for figures in results.values():
        figures["ratio_to_dask_build_compute"] = figures["per_trial_ms"] / (dask_bc * 1e3)
        figures["ratio_to_dask_compute_only"] = figures["per_trial_ms"] / (dask_c * 1e3)
    out = {
        "scheduler": args.scheduler, "steps": 5, "trials": args.trials,
        "history": args.history, "dask_build_compute_ms": dask_bc * 1e3,
        "dask_compute_only_ms": dask_c * 1e3, "backends": results,
        "python": platform.python_version(), "dask": dask.__version__,
        "redis_py": redis.__version__, "cpus": os.cpu_count(),
    }
    print(f"5-step chain, {args.trials} trials, scheduler={args.scheduler}")
    print(f"{'':30}{'per trial':>12}{'ratio':>8}{'history 10':>13}"
          f"{f'history {args.history}':>15}{'get_history':>13}")
    print(f"{'dask (build+compute)':30}{dask_bc * 1e3:>10.3f}ms{1.0:>8.2f}")
    print(f"{'dask (compute only)':30}{dask_c * 1e3:>10.3f}ms{dask_c / dask_bc:>8.2f}")
    for name, f in results.items():
        print(f"{f'experigraph, {name} backend':30}{f['per_trial_ms']:>10.3f}ms"
              f"{f['ratio_to_dask_build_compute']:>8.2f}{f['trial_after_10_ms']:>11.3f}ms"
              f"{f['trial_after_history_ms']:>13.3f}ms{f['get_history_s'] * 1e3:>11.1f}ms")
    path = Path(args.output)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
