"""The ``experigraph`` command: run scripts, re-run past trials, inspect history.

Each command parses its arguments, calls :class:`~experigraph.Experiment` (or
:mod:`experigraph.script` to run a script) and prints. Heavy modules (pandas,
dask, the package itself) are imported inside the commands, so ``--help`` is
instant.

An expected error is one line on stderr, ``Error: ...``, with exit code 2 for
bad usage (a bad option, parameter or experiment id; nothing is recorded) and 1
for a failure (an unknown experiment or trial, a failing script or trial). The
backend of every command is ``--backend``, else ``$EXPERIGRAPH_BACKEND``, else
``./experigraph_cache``; querying never creates anything in it.
"""
from __future__ import annotations

import contextlib
import errno
import functools
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import click

from .present import short, time_text
from .records import MAX_SEED

if TYPE_CHECKING:
    from .experiment import Experiment, Store
    from .records import TrialRecord

ENV_BACKEND = "EXPERIGRAPH_BACKEND"  # as experigraph.backends.ENV_BACKEND (not imported: speed)
DEFAULT_BACKEND = "experigraph_cache"

BACKEND_HELP = ("Where trials are recorded: a directory, or a file://, redis://, rediss://, "
                "unix:// or mongodb:// URI. Default: $EXPERIGRAPH_BACKEND, else "
                "./experigraph_cache.")
ASSIGNMENT_HELP = ("Parameters are NAME=VALUE; VALUE is a Python literal (1, 0.5, True, None, "
                   "[1, 2], 'text') or else a string (model=rf).")


class _Group(click.Group):
    """A click group whose expected errors are one line on stderr, with no usage block."""

    def main(self, args: Sequence[str] | None = None, prog_name: str | None = None,
             complete_var: str | None = None, standalone_mode: bool = True,
             **extra: Any) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, False, **extra)
        try:
            code = super().main(args, prog_name, complete_var, False, **extra)
        except click.UsageError as exc:
            hint = f" (see '{exc.ctx.command_path} --help')" if exc.ctx is not None else ""
            _fail_line(f"{exc.format_message()}{hint}", exc.exit_code)
        except click.ClickException as exc:
            _fail_line(exc.format_message(), exc.exit_code)
        except (click.Abort, KeyboardInterrupt):
            _fail_line("Aborted.", 130)
        except OSError as exc:
            if exc.errno == errno.EPIPE:  # output piped into `head`: not an error
                sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - until exit
                sys.exit(1)
            raise
        sys.exit(code if isinstance(code, int) else 0)


def _fail_line(message: str, code: int) -> None:
    click.echo(f"Error: {' '.join(message.split())}", err=True)
    sys.exit(code)


class Failure(click.ClickException):
    """An expected failure: one line on stderr, exit code 1."""

    exit_code = 1


def _expected_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    """Turn experigraph's own errors into one-line CLI errors (2: usage, 1: failure)."""
    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from .errors import ExperigraphError
        from .script import ScriptUsageError

        try:
            return func(*args, **kwargs)
        except ScriptUsageError as exc:
            raise click.UsageError(str(exc), click.get_current_context()) from exc
        except ExperigraphError as exc:
            raise Failure(str(exc)) from exc
    return wrapper


# -- shared options and helpers ------------------------------------------------------------
def backend_option(func: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--backend", "backend", metavar="URI", default=None,
                        help=BACKEND_HELP)(func)


def artifacts_option(func: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--artifacts", "artifacts", metavar="URL", default=None,
                        help="Where the experiment keeps files and models: a directory or "
                             "an fsspec URL. Default: $EXPERIGRAPH_ARTIFACTS, else the file "
                             "backend's directory.")(func)


def artifacts_env(artifacts: str | None) -> dict[str, str]:
    """``EXPERIGRAPH_ARTIFACTS`` for a script run with ``--artifacts``."""
    if artifacts is None:
        return {}
    return {"EXPERIGRAPH_ARTIFACTS": artifacts if "://" in artifacts
            else os.path.abspath(artifacts)}


def backend_spec(backend: str | None) -> Any:
    """What ``--backend`` (or the environment, or the default) names, for resolve_backend."""
    from pathlib import Path

    value = backend or os.environ.get(ENV_BACKEND) or DEFAULT_BACKEND
    if value == "local":
        value = DEFAULT_BACKEND
    return value if "://" in value else Path(value)


def backend_env(backend: str | None) -> dict[str, str]:
    """``EXPERIGRAPH_BACKEND`` for a script run with ``--backend`` (absolute, for scripts)."""
    if backend is None:
        return {}
    spec = backend_spec(backend)
    return {ENV_BACKEND: spec if isinstance(spec, str) else str(spec.absolute())}


def open_store(backend: str | None) -> Store:
    """The store ``--backend`` (or the environment, or the default) names."""
    from .experiment import Store

    try:
        return Store(backend_spec(backend))
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="'--backend'") from exc


def open_experiment(experiment_id: str, backend: str | None, *, must_exist: bool = True,
                    artifacts: str | None = None) -> Experiment:
    """The recorded experiment ``experiment_id``; a Failure when the backend has none.

    Nothing is created: the backend's experiment list is checked before the
    Experiment is opened (unless ``must_exist`` is false: the dashboard of an
    experiment with no trials yet is an empty board, as daskperiment's was).
    """
    from .errors import ExperimentNotFoundError, InvalidExperimentIdError
    from .experiment import validate_experiment_id

    try:
        validate_experiment_id(experiment_id)
    except InvalidExperimentIdError as exc:
        raise click.BadParameter(str(exc), param_hint="'EXPERIMENT'") from exc
    store = open_store(backend)
    try:
        return store.open(experiment_id, must_exist=must_exist,
                          quiet="EXPERIGRAPH_LOG_LEVEL" not in os.environ, artifacts=artifacts)
    except ExperimentNotFoundError as exc:
        raise Failure(str(exc)) from exc


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Only errors from experigraph's logger while querying, unless EXPERIGRAPH_LOG_LEVEL asks.

    Opening an experiment logs INFO lines and environment drift of *this* process;
    a query runs no trial, so neither concerns its reader. What the store says
    about itself still shows: the WARNING naming a record that is skipped because
    it cannot be read (``experigraph.backends``).
    """
    import logging

    logger = logging.getLogger("experigraph")
    if "EXPERIGRAPH_LOG_LEVEL" in os.environ or logger.getEffectiveLevel() >= logging.ERROR:
        yield
        return
    backends = logging.getLogger("experigraph.backends")
    saved = logger.level, backends.level
    logger.setLevel(logging.ERROR)
    backends.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(saved[0])
        backends.setLevel(saved[1])


def read_trial(ex: Experiment, trial_id: int) -> TrialRecord:
    from .errors import TrialIDNotFoundError

    try:
        return ex.get_trial(trial_id)
    except TrialIDNotFoundError as exc:
        raise Failure(f"Trial {trial_id} is not recorded in experiment {ex.id!r} (its trials: "
                      f"{_id_ranges([r.trial_id for r in ex.get_trials()]) or 'none'}). See "
                      f"`experigraph history {ex.id}`.") from exc


def _id_ranges(ids: Sequence[int]) -> str:
    parts, start, prev = [], None, None
    for i in [*ids, None]:
        if start is not None and (i is None or i != prev + 1):  # type: ignore[operator]
            parts.append(str(start) if start == prev else f"{start}-{prev}")
            start = None
        if i is not None and start is None:
            start = i
        prev = i
    return ", ".join(parts)


def _report_trials(outcome: Any) -> None:
    for record in outcome.trials:
        what = (f"result {short(record.result, 80)}" if record.succeeded
                else record.description or record.status.value)
        rerun = f" (rerun of trial {record.rerun_of})" if record.rerun_of else ""
        click.echo(f"Trial {record.trial_id} of experiment {record.experiment_id!r} "
                   f"{record.status.value}{rerun}: {what}")


# -- the commands --------------------------------------------------------------------------
@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="experigraph", message="%(prog)s %(version)s")
def main() -> None:
    """Reproducible experiments as dask graphs: run, rerun and inspect trials.

    \b
      experigraph run my_experiment.py a=1 b=2 --seed 42
      experigraph rerun demo 7 b=5
      experigraph history demo --format csv
      experigraph diff demo 3 7
    """


@main.command()
@click.argument("script", type=click.Path(exists=True, dir_okay=False))
@click.argument("assignments", nargs=-1, metavar="[NAME=VALUE]...")
@click.option("--seed", type=click.IntRange(0, MAX_SEED), default=None,
              help="The trial's seed. Default: the experiment's, else a generated one "
                   "(recorded).")
@backend_option
@_expected_errors
def run(script: str, assignments: tuple[str, ...], seed: int | None,
        backend: str | None) -> None:
    """Run SCRIPT as `python SCRIPT NAME=VALUE... --seed N` does: one recorded trial.

    SCRIPT declares an experiment and calls its @ex.result step (nothing else is
    needed). Parameters are NAME=VALUE; VALUE is a Python literal (1, 0.5, True,
    None, [1, 2], 'text') or else a string (model=rf). --backend sets
    EXPERIGRAPH_BACKEND for the script, so an Experiment created with the default
    backend records there.
    """
    from .script import parse_assignments, run_script

    parse_assignments(assignments)  # bad input is a usage error before the script runs
    argv = list(assignments) + ([] if seed is None else ["--seed", str(seed)])
    outcome = run_script(script, argv, env=backend_env(backend))
    if outcome.help_text is not None:
        click.echo(outcome.help_text)
    _report_trials(outcome)


@main.command()
@click.argument("experiment_id", metavar="EXPERIMENT")
@click.argument("trial_id", metavar="TRIAL_ID", type=int)
@click.argument("assignments", nargs=-1, metavar="[NAME=VALUE]...")
@click.option("--seed", type=click.IntRange(0, MAX_SEED), default=None,
              help="Override the recorded seed.")
@click.option("--restore-inputs", is_flag=True,
              help="Run on the input files as the trial read them (those it kept with "
                   "ex.input(path, keep=True)); the current files are put back after.")
@backend_option
@artifacts_option
@_expected_errors
def rerun(experiment_id: str, trial_id: int, assignments: tuple[str, ...], seed: int | None,
          restore_inputs: bool, backend: str | None, artifacts: str | None) -> None:
    """Re-run trial TRIAL_ID of EXPERIMENT: its script, parameters and seed.

    NAME=VALUE and --seed override the recorded values. A WARNING with the
    unified diff is shown when the script changed since that trial. The new
    trial records which trial it re-ran. Only trials run as scripts (`python
    script.py` or `experigraph run`) can be re-run.
    """
    from .script import parse_assignments, rerun as rerun_trial

    parse_assignments(assignments)
    ex = open_experiment(experiment_id, backend, artifacts=artifacts)
    read_trial(ex, trial_id)
    with ex.restored_inputs(trial_id) if restore_inputs else contextlib.nullcontext():
        outcome = rerun_trial(ex, trial_id, assignments, seed=seed,
                              env={**backend_env(backend), **artifacts_env(artifacts)})
    _report_trials(outcome)


@main.command()
@click.argument("experiment_id", metavar="EXPERIMENT")
@backend_option
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table",
              show_default=True, help="table for people; csv and json for programs.")
@click.option("--last", type=click.IntRange(min=1), default=None, metavar="N",
              help="Only the last N trials.")
@click.option("--verbose", "-v", is_flag=True, help="Add the Seed, Result Type and Status "
              "columns.")
@click.option("--archived", is_flag=True, help="Show archived trials too (and an Archived "
              "column).")
@_expected_errors
def history(experiment_id: str, backend: str | None, fmt: str, last: int | None,
            verbose: bool, archived: bool) -> None:
    """The trials of EXPERIMENT, one row each (as ex.get_history())."""
    ex = open_experiment(experiment_id, backend)
    with _quiet():
        frame = ex.get_history(verbose=verbose, archived=archived)
    if last is not None:
        frame = frame.tail(last)
    if fmt == "csv":
        click.echo(frame.to_csv(), nl=False)
    elif fmt == "json":
        click.echo(history_json(frame))
    else:
        import pandas as pd

        if "Process Time" in frame:  # a timedelta in the DataFrame; seconds to read
            frame = frame.assign(**{"Process Time": frame["Process Time"].map(readable_duration)})
        with pd.option_context("display.max_columns", None, "display.width", 200,
                               "display.max_colwidth", 60):
            click.echo(frame.to_string())


def readable_duration(value: Any) -> str:
    """``0.045 s``, ``2:03.500`` or ``1:02:03.500`` for a duration; ``-`` for none."""
    import pandas as pd

    if value is None or pd.isna(value):
        return "-"
    seconds = pd.Timedelta(value).total_seconds()
    if seconds < 60:
        return f"{seconds:.3f} s"
    minutes, secs = divmod(seconds, 60)
    hours, minutes = divmod(int(minutes), 60)
    return f"{hours}:{minutes:02d}:{secs:06.3f}" if hours else f"{minutes}:{secs:06.3f}"


def history_json(frame: Any) -> str:
    """The history as a JSON list of objects; times in ISO 8601, durations in seconds."""
    import json
    import math

    import pandas as pd

    def plain(value: Any) -> Any:
        if value is None or isinstance(value, (bool, str, int)):
            return value
        if isinstance(value, float):
            return value if math.isfinite(value) else None
        if isinstance(value, pd.Timedelta):
            return None if pd.isna(value) else value.total_seconds()
        if isinstance(value, pd.Timestamp):
            return None if pd.isna(value) else value.isoformat()
        if value is pd.NaT:
            return None
        item = getattr(value, "item", None)
        if item is not None and getattr(value, "shape", None) == ():
            return plain(item())
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        if isinstance(value, dict):
            return {str(k): plain(v) for k, v in value.items()}
        return repr(value)

    rows = [{"Trial ID": int(trial_id), **{str(c): plain(v) for c, v in row.items()}}
            for trial_id, row in zip(frame.index, frame.to_dict("records"))]
    return json.dumps(rows, indent=2, allow_nan=False)


@main.command()
@click.argument("experiment_id", metavar="EXPERIMENT")
@click.argument("trial_id", metavar="TRIAL_ID", type=int)
@backend_option
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text",
              show_default=True, help="text for people; json is the stored record.")
@_expected_errors
def show(experiment_id: str, trial_id: int, backend: str | None, fmt: str) -> None:
    """Everything recorded about trial TRIAL_ID of EXPERIMENT."""
    ex = open_experiment(experiment_id, backend)
    record = read_trial(ex, trial_id)
    if fmt == "json":
        import json

        click.echo(json.dumps(record.to_json(), indent=2, sort_keys=True))
        return
    click.echo(format_trial(record, code=ex.get_code(trial_id)))


def format_trial(record: TrialRecord, code: str = "") -> str:
    """A readable text of a trial record."""
    def when(t: Any) -> str:
        return time_text(t, "-")

    lines = [f"Trial {record.trial_id} of experiment {record.experiment_id!r}", ""]
    fields: list[tuple[str, Any]] = [
        ("Status", record.status.value),
        ("Parameters", ", ".join(f"{k}={short(v, 80)}" for k, v in record.parameters.items())
         or "none"),
        ("Seed", record.seed),
        ("Result", f"{short(record.result, 200)} ({record.result_type})"
         if record.succeeded else "-"),
        ("Description", record.description or "-"),
        ("Started", when(record.started)),
        ("Finished", when(record.finished)),
        ("Process time", f"{record.process_time:.3f} s" if record.process_time is not None
         else "-"),
        ("Host / pid", f"{record.host} / {record.pid}"),
        ("Environment", record.environment_hash or "-"),
    ]
    if record.rerun_of is not None:
        fields.append(("Rerun of", f"trial {record.rerun_of}"))
    if record.sweep_id:
        fields.append(("Sweep", record.sweep_id))
    if record.script:
        argv = " ".join(record.script.get("argv", []))
        fields.append(("Script", f"{record.script.get('path')} {argv}".rstrip()))
        fields.append(("Script source", record.script.get("source_hash", "-")))
    for name, values in (("Metrics", record.metrics), ("Labels", record.labels)):
        if values:
            fields.append((name, ", ".join(f"{k}={short(v, 80)}" for k, v in values.items())))
    width = max(len(name) for name, _ in fields) + 2
    lines += [f"{name + ':':<{width}}{value}" for name, value in fields]
    if record.steps:
        lines += ["", "Steps:"]
        for step in record.steps:
            state = "ok" if step.succeeded else f"failed: {step.error}"
            extra = " (cached)" if step.cached else ""
            extra += " (persisted)" if step.persisted else ""
            lines.append(f"  {step.step:<24} {step.duration:9.3f} s  {state}{extra}")
    if record.drift:
        lines += ["", "Drift:"]
        for event in record.drift:
            lines.append(f"  [{event.kind}] {event.message}")
            lines += [f"    {line}" for line in event.diff]
    from .artifacts import describe

    lines += describe(record)  # files declared with ex.input/ex.output, models
    if record.code:
        lines += ["", "Code (step: code hash):"]
        lines += [f"  {step}: {entry.get('code_hash', '-')}" for step, entry in record.code.items()]
    if code.strip():
        lines += ["", "Source:"] + [f"  {line}" for line in code.rstrip("\n").splitlines()]
    if record.error and record.error.get("traceback"):
        lines += ["", "Traceback:"] + [f"  {line}" for line in
                                       str(record.error["traceback"]).rstrip().splitlines()]
    return "\n".join(lines)


@main.command()
@click.argument("experiment_id", metavar="EXPERIMENT")
@click.argument("first", metavar="T1", type=int)
@click.argument("second", metavar="T2", type=int)
@backend_option
@_expected_errors
def diff(experiment_id: str, first: int, second: int, backend: str | None) -> None:
    """What differs between trials T1 and T2 of EXPERIMENT (as ex.compare(T1, T2)).

    Parameters, seed, code (a unified diff), environment, input data, step
    outputs and result.
    """
    ex = open_experiment(experiment_id, backend)
    read_trial(ex, first)
    read_trial(ex, second)
    with _quiet():
        click.echo(str(ex.compare(first, second)))


@main.command(name="list")
@backend_option
@_expected_errors
def list_(backend: str | None) -> None:
    """The experiments recorded in a backend, with their trial counts.

    Counts the trials whose record can be read; any other is named in a WARNING.
    """
    store = open_store(backend)
    ids = store.experiment_ids()
    if not ids:
        click.echo(f"No experiments in {store.uri}.")
        return
    rows = [("Experiment", "Trials", "Last trial", "Last finished")]
    for experiment_id in ids:
        records = store.open(experiment_id, must_exist=False).get_trials()  # readable ones:
        # an unreadable one is named (WARNING)
        last = records[-1] if records else None
        finished = time_text(last.finished if last is not None else None, "-")
        rows.append((experiment_id, str(len(records)),
                     str(last.trial_id) if last is not None else "-", finished))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        click.echo("  ".join(cell.ljust(w) if i == 0 else cell.rjust(w)
                             for i, (cell, w) in enumerate(zip(row, widths))).rstrip())


#: how to install what the dashboard needs
_BOARD_EXTRA = "Install it with: pip install 'experigraph[board]'"


@main.command()
@click.argument("experiment_id", metavar="[EXPERIMENT]", required=False)
@click.option("--port", type=click.IntRange(0, 65535), default=5000, show_default=True,
              help="The port to serve on (0: any free port).")
@click.option("--address", default="127.0.0.1", show_default=True,
              help="The address to bind; 0.0.0.0 serves every interface.")
@click.option("--archived", is_flag=True, help="Show archived trials too.")
@backend_option
@_expected_errors
def board(experiment_id: str | None, port: int, address: str, archived: bool,
          backend: str | None) -> None:
    """Serve the dashboard of EXPERIMENT's trials until interrupted (Ctrl-C).

    Without EXPERIMENT: the store's experiments, each opening its board. An
    experiment with no trials yet gets an empty board, which shows its trials as
    they are recorded.
    """
    import importlib.util

    from . import board as dashboards

    # What can be wrong with the command is found before its URL is printed; then the
    # port is bound and the URL printed at once, and a browser opening the page does its
    # own start while this process imports Bokeh and reads the first trials (the page
    # waits for them, its connection queued by the kernel).
    if experiment_id is None:
        store, ex = open_store(backend), None
        what = f"the experiments in {store.uri}"
    else:
        ex = open_experiment(experiment_id, backend, must_exist=False)
        store, what = ex.store, repr(ex.id)
    if importlib.util.find_spec("bokeh") is None:
        raise Failure(f"The dashboard needs bokeh, which is not installed. {_BOARD_EXTRA}")
    try:
        sockets = dashboards.listen(port, address)
    except ImportError as exc:
        raise Failure(f"The dashboard needs bokeh and tornado: {exc}. {_BOARD_EXTRA}") from exc
    except OSError as exc:
        raise Failure(f"Cannot serve the dashboard on {address}:{port}: {exc}") from exc
    bound = int(sockets[0].getsockname()[1])
    click.echo(f"experigraph dashboard of {what} at {dashboards.url_of(address, bound)} "
               "(Ctrl-C to stop)")
    sys.stdout.flush()
    try:
        if (click.get_current_context().obj or {}).get(OWN_PROCESS):
            dashboards.import_bokeh_to_serve()
        dashboard = dashboards.start_dashboard(ex, port=bound, blocking=False,
                                               address=address, store=store,
                                               archived=archived, sockets=sockets)
        dashboard.wait()
    except KeyboardInterrupt:
        click.echo("Dashboard stopped.", err=True)
    except ImportError as exc:
        raise Failure(f"The dashboard needs bokeh: {exc}. {_BOARD_EXTRA}") from exc
    except OSError as exc:
        raise Failure(f"Cannot serve the dashboard on {address}:{bound}: {exc}") from exc
    finally:
        for sock in sockets:
            sock.close()


def _trial_list(ctx: Any, param: Any, value: str | None) -> list[int] | None:
    if value is None:
        return None
    try:
        ids = [int(part) for part in value.split(",") if part.strip()]
    except ValueError:
        raise click.BadParameter(f"expected trial ids separated by commas, e.g. 3,5,8; got "
                                 f"{value!r}") from None
    if not ids:
        raise click.BadParameter(f"expected at least one trial id, got {value!r}")
    return ids


@main.command()
@click.argument("experiment_id", metavar="EXPERIMENT")
@click.option("-o", "--output", default="report.html", show_default=True,
              type=click.Path(dir_okay=False, writable=True), help="The HTML file to write.")
@click.option("--trials", callback=_trial_list, default=None, metavar="IDS",
              help="Trials whose metric curves to draw, e.g. 3,5,8 (the first two are "
                   "compared). Default: the latest three.")
@backend_option
@_expected_errors
def report(experiment_id: str, output: str, trials: list[int] | None,
           backend: str | None) -> None:
    """Write one self-contained HTML report of EXPERIMENT (works offline, no server)."""
    ex = open_experiment(experiment_id, backend)
    with _quiet():
        path = ex.report(output, trials=trials)
    click.echo(f"Wrote {path}")


#: what console_main tells the commands (click's ``obj``): the process is the command's own
OWN_PROCESS = "own process"


def console_main() -> None:
    """The ``experigraph`` program (its console script, ``python -m experigraph.cli``).

    The process is the command's own, so ``board`` imports Bokeh for serving only
    (:func:`experigraph.board.import_bokeh_to_serve`). ``main`` called inside
    another program (click's ``CliRunner``, a notebook) imports Bokeh as it is.
    """
    main(obj={OWN_PROCESS: True})


#: for commands defined in other modules (experigraph.cli_versioning)
expected_errors: Callable[[Callable[..., Any]], Callable[..., Any]] = _expected_errors
quiet: Callable[[], contextlib.AbstractContextManager[None]] = _quiet

if __name__ != "__main__":  # artifacts, get, models, lineage, tag, note, archive, gc
    from .cli_versioning import register as _register_versioning

    _register_versioning(main)

if __name__ == "__main__":  # pragma: no cover
    from experigraph.cli import console_main as _main  # the module proper, every command

    _main()
