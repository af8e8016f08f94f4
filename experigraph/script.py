"""Script mode: ``python my_experiment.py a=1 b=2 --seed 7`` runs one trial.

A file that declares an experiment and calls its ``@ex.result`` step (the
notebook code, unchanged) becomes a command when it is run as a program:

.. code-block:: text

    python my_experiment.py a=1 b=2 --seed 7      # one trial, exit code 0 or 1
    python my_experiment.py --help                # the declared parameters

How it works, and the rules it keeps:

* ``register`` is called whenever an ``@ex.result`` step is called. It does
  something only when that call comes from the code of a non-interactive
  ``__main__`` module (``python file.py``, ``python -m module``, or
  ``experigraph run``). Importing the file from a notebook, a test or another
  module, running it in IPython or Jupyter (``%run`` included), or
  re-importing it in a ``multiprocessing`` child (``__mp_main__``) runs nothing.
* The command line is checked when the first result is registered (a bad flag
  exits with code 2 before the rest of the script runs), but the parameters
  are applied only *after the whole script body has run*, so declarations and
  ``ex.set_parameters`` calls after the result call are honoured; the command
  line wins over values set in the script.
* Exactly one trial runs, of the latest ``Result`` the script built. If the
  script computed a trial itself (``s.compute()``, ``ex.compute()``,
  ``ex.sweep()``), no further trial runs and the script's own outcome stands
  (a failure it caught is not turned into an exit code). If the script body
  raised, nothing more runs (Python has already reported the error). A script
  that calls ``sys.exit()`` cannot be told apart from one that ends normally:
  its trial still runs.
* Run directly by Python, the trial runs when the main module has finished,
  from a ``threading`` shutdown hook: it runs before ``concurrent.futures``
  stops accepting work (an ``atexit`` hook would be too late for dask's thread
  pool). The process exits with 0 when the trial succeeded, 1 when it failed
  (the failed trial is recorded; its one-line description goes to stderr) and
  2 for bad command-line input (nothing is recorded). To set a non-zero code
  from a shutdown hook, the remaining ``atexit`` handlers are run first and the
  process then ends with ``os._exit``.
* ``experigraph run`` and ``experigraph rerun`` use :func:`run_script`, which
  runs the file with :mod:`runpy` as ``__main__`` and the trial right after it,
  in the same process, with no shutdown hook.
* The backend of a script's experiment is what the script passes to
  ``Experiment``; with the default, ``$EXPERIGRAPH_BACKEND`` picks it (which is
  what ``experigraph run --backend`` sets).

Each trial run this way records ``script={"path", "argv", "source_hash"}``:
the absolute path, the arguments after it, and the hash of the script's text
stored as a ``source`` blob, which is what ``experigraph rerun`` re-executes
and compares.

The parameter syntax is ``name=value``; the value is a Python literal
(``1``, ``0.5``, ``True``, ``None``, ``[1, 2]``, ``'text'``) or else a plain
string (``model=rf``). :func:`parse_assignments` is the one place that reads
it, so a sweep syntax (``a=1,2,3`` or ``--sweep``) can be added there later.
"""
from __future__ import annotations

import ast
import contextlib
import contextvars
import dataclasses
import logging
import os
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import events
from .errors import ExperigraphError, ScriptError, ScriptUsageError
from ._compat import is_interactive
from .records import MAX_SEED

if TYPE_CHECKING:
    from types import FrameType

    from .experiment import Experiment
    from .graph import Result
    from .records import TrialRecord

logger = logging.getLogger(__name__)

SYNTAX = "name=value (a Python literal such as 1, 0.5, True, None, [1, 2] or 'text'; " \
         "anything else is taken as a string, e.g. model=rf)"


# -- parsing ------------------------------------------------------------------------
def parse_value(text: str) -> Any:
    """``text`` as a Python literal, or ``text`` itself when it is not one.

    Examples
    --------
    >>> parse_value("1"), parse_value("[1, 2]"), parse_value("rf"), parse_value("'1'")
    (1, [1, 2], 'rf', '1')
    """
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return text


def parse_assignments(args: Sequence[str]) -> dict[str, Any]:
    """``["a=1", "model=rf"]`` -> ``{"a": 1, "model": "rf"}``.

    The one reader of the ``name=value`` syntax (see :data:`SYNTAX`).

    Raises
    ------
    ScriptUsageError
        An argument is not ``name=value`` with a Python identifier as name and a
        non-empty value (``a==1`` included), or a name is given twice; the message
        quotes it and shows the accepted form.

    Examples
    --------
    >>> parse_assignments(["a=1", "b=0.5", "model=rf", "xs=[1, 2]"])
    {'a': 1, 'b': 0.5, 'model': 'rf', 'xs': [1, 2]}
    """
    out: dict[str, Any] = {}
    for arg in args:
        name, eq, value = arg.partition("=")
        name = name.strip()
        if not eq:
            raise ScriptUsageError(f"Not a parameter assignment: {arg!r}; expected {SYNTAX}.")
        if not name:
            raise ScriptUsageError(f"Missing parameter name in {arg!r}: expected {SYNTAX}.")
        if not name.isidentifier():
            raise ScriptUsageError(f"Parameter name {name!r} in {arg!r} is not a Python "
                                   f"identifier: expected {SYNTAX}.")
        if not value.strip():
            raise ScriptUsageError(f"Missing value in {arg!r}: expected {SYNTAX}; for an "
                                   f"empty string write {name}=''.")
        if value.lstrip().startswith("="):
            raise ScriptUsageError(f"Malformed assignment {arg!r}: write {name}=VALUE with "
                                   f"one '=' (for a string that starts with '=', quote it: "
                                   f"{name}='{value}').")
        if name in out:
            raise ScriptUsageError(f"Parameter {name!r} is given twice ({name}="
                                   f"{out[name]!r} and {arg!r}); give each parameter once.")
        out[name] = parse_value(value)
    return out


def parse_seed(text: str) -> int:
    """A seed given on the command line: an int from 0 to 2**32 - 1."""
    try:
        seed = int(text)
    except ValueError:
        seed = -1
    if not 0 <= seed <= MAX_SEED:
        raise ScriptUsageError(f"--seed takes an integer from 0 to {MAX_SEED}, got {text!r}.")
    return seed


@dataclasses.dataclass
class ScriptArgs:
    """What a script's command line asks for."""

    parameters: dict[str, Any]
    seed: int | None = None
    help: bool = False


def parse_script_argv(argv: Sequence[str]) -> ScriptArgs:
    """Parse ``[name=value ...] [--seed N] [--help]`` (the arguments after the script).

    Raises
    ------
    ScriptUsageError
        An unknown flag, a bad seed or a bad assignment.
    """
    assignments: list[str] = []
    seed: int | None = None
    wants_help = False
    it = iter(argv)
    for arg in it:
        if arg in ("-h", "--help"):
            wants_help = True
        elif arg == "--seed" or arg.startswith("--seed="):
            if arg == "--seed":
                value = next(it, None)
                if value is None:
                    raise ScriptUsageError(f"--seed needs a value: an integer from 0 to "
                                           f"{MAX_SEED}.")
            else:
                value = arg.partition("=")[2]
            seed = parse_seed(value)
        elif arg.startswith("-") and "=" not in arg:
            raise ScriptUsageError(f"Unknown option {arg!r}: a script takes {SYNTAX} "
                                   "arguments and --seed N (the backend comes from "
                                   "$EXPERIGRAPH_BACKEND or `experigraph run --backend`).")
        else:
            assignments.append(arg)
    return ScriptArgs(parse_assignments(assignments), seed, wants_help)


def format_assignments(parameters: Mapping[str, Any]) -> list[str]:
    """The ``name=value`` arguments that :func:`parse_assignments` reads back as ``parameters``."""
    out = []
    for name, value in parameters.items():
        text = repr(value)
        if parse_value(text) != value:
            raise ScriptUsageError(f"Parameter {name!r} = {text} cannot be written as a "
                                   "Python literal on the command line; give it explicitly "
                                   f"as {name}=VALUE.")
        out.append(f"{name}={text}")
    return out


# -- the session of one script run ----------------------------------------------------
@dataclasses.dataclass(eq=False)
class ScriptSession:
    """One run of a script as ``__main__``: what it asked for and what it declared."""

    path: Path
    argv: list[str]
    source: str
    args: ScriptArgs
    main_globals: dict[str, Any] | None = None
    rerun_of: int | None = None
    base_parameters: dict[str, Any] = dataclasses.field(default_factory=dict)
    started: float = dataclasses.field(default_factory=time.time)
    experiment: Experiment | None = None
    result: Result | None = None
    #: the script started a compute itself (successful or not, recorded or not)
    computed: bool = False
    #: script mode is running its own trial (after the script body)
    finishing: bool = False
    #: the trials computed during the run, in order: (experiment, trial id)
    ran: list[tuple[Experiment, int]] = dataclasses.field(default_factory=list)
    #: the command line did not parse: an error only if script mode runs the trial (a
    #: script that computes by itself may have arguments of its own)
    usage_error: ScriptUsageError | None = None

    def add(self, experiment: Experiment, result: Result) -> None:
        self.experiment, self.result = experiment, result

    def trials_run_here(self) -> list[TrialRecord]:
        """The records of the trials computed during the run (unreadable ones left out)."""
        from .errors import CorruptRecordError, TrialIDNotFoundError

        found = []
        for experiment, trial_id in self.ran:
            try:
                found.append(experiment.get_trial(trial_id))
            except (TrialIDNotFoundError, CorruptRecordError):
                continue
        return found


_session: contextvars.ContextVar[ScriptSession | None] = contextvars.ContextVar(
    "experigraph_script", default=None)


def current_session() -> ScriptSession | None:
    """The script-mode session running in this context (None outside script mode)."""
    return _session.get()


def read_script(path: str | os.PathLike[str]) -> str:
    """A script's text with ``"\\n"`` line endings (what its ``source_hash`` is of)."""
    with open(path, encoding="utf-8", newline=None) as f:
        return f.read()


def _caller_frame() -> FrameType | None:
    """The innermost frame outside the experigraph package (the code calling the step)."""
    frame: FrameType | None = sys._getframe(1)
    while frame is not None:
        name = frame.f_globals.get("__name__", "")
        if name != "experigraph" and not name.startswith("experigraph."):
            return frame
        frame = frame.f_back
    return None


def _called_from_main(main_globals: dict[str, Any] | None = None) -> bool:
    frame = _caller_frame()
    if frame is None or frame.f_globals.get("__name__") != "__main__":
        return False
    main = sys.modules.get("__main__")
    expected = main_globals if main_globals is not None else getattr(main, "__dict__", None)
    return frame.f_globals is expected


def _main_file() -> str | None:
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    return path if path and os.path.isfile(path) else None


def note_compute() -> None:
    """Called when a compute starts: a script that computes by itself gets no extra trial."""
    session = _session.get()
    if session is not None and not session.finishing:
        session.computed = True


def note_trial(experiment: Experiment, trial_id: int) -> None:
    """Called for every trial computed in this process (script mode keeps its own)."""
    session = _session.get()
    if session is not None:
        session.ran.append((experiment, trial_id))


class _Watcher:
    """Script mode's view of the experiment's events (see :mod:`experigraph.events`)."""

    def result_built(self, experiment: Experiment, result: Result) -> None:
        register(experiment, result)

    def computing(self) -> None:
        note_compute()

    def ran(self, experiment: Experiment, trial_id: int) -> None:
        note_trial(experiment, trial_id)


def register(experiment: Experiment, result: Result) -> None:
    """Arrange for one trial of ``result`` when running as a script with parameter flags.

    Called by every ``@ex.result`` step call; a no-op unless the call comes from
    a non-interactive ``__main__`` module (see the module docstring).
    """
    session = _session.get()
    if session is not None:  # experigraph run/rerun, or an earlier result of this script
        if _called_from_main(session.main_globals):
            session.add(experiment, result)
        return
    if is_interactive() or not _called_from_main():
        return
    path = _main_file()
    if path is None:
        return
    argv = list(sys.argv[1:])
    usage_error = None
    try:
        args = parse_script_argv(argv)
    except ScriptUsageError as exc:
        args, usage_error = ScriptArgs(parameters={}), exc
    session = ScriptSession(path=Path(path).resolve(), argv=argv, source=read_script(path),
                            args=args, main_globals=sys.modules["__main__"].__dict__,
                            usage_error=usage_error)
    session.add(experiment, result)
    _session.set(session)
    _install_shutdown_hook(session)


def _install_shutdown_hook(session: ScriptSession) -> None:
    # dask's threaded scheduler needs concurrent.futures, which refuses work once its own
    # threading-shutdown hook has run; hooks run last-registered first, so import the
    # executors before registering ours.
    import concurrent.futures.process  # noqa: F401
    import concurrent.futures.thread  # noqa: F401
    import threading

    register_hook = getattr(threading, "_register_atexit", None)
    if register_hook is not None:
        register_hook(_at_shutdown, session)
    else:  # pragma: no cover - every supported Python has it
        import atexit

        atexit.register(_at_shutdown, session)


def _script_raised() -> bool:
    """Whether the main module ended with an uncaught exception (already printed)."""
    return getattr(sys, "last_exc", None) is not None or \
        getattr(sys, "last_value", None) is not None


def _at_shutdown(session: ScriptSession) -> None:
    """The main module has finished: run the trial and end with its exit code."""
    if _script_raised():
        return
    try:
        code = finish(session)
    except KeyboardInterrupt:
        code = 130
    except ScriptUsageError as exc:
        _print_error(f"{exc} Usage: {_usage_line(str(session.path))}")
        code = 2
    except ExperigraphError as exc:  # a failed trial, or e.g. a store it cannot write
        _print_error(str(exc))
        code = 1
    except Exception:  # a bug of ours: show it in full
        import traceback

        traceback.print_exc()
        code = 1
    if code:
        _exit_now(code)


def _exit_now(code: int) -> None:
    """End the process with ``code`` from a shutdown hook, after the ``atexit`` handlers."""
    import atexit

    run_exitfuncs = getattr(atexit, "_run_exitfuncs", None)
    if run_exitfuncs is not None:
        run_exitfuncs()
    else:  # pragma: no cover
        logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)


def _print_error(message: str) -> None:
    print(f"error: {message}", file=sys.stderr, flush=True)


def _usage_line(path: str) -> str:
    return f"python {os.path.basename(path)} [name=value ...] [--seed N]"


def usage(session: ScriptSession) -> str:
    """Help text for a script: the syntax and the parameters its experiment declares."""
    lines = [f"usage: {_usage_line(str(session.path))}", "",
             "Runs one trial of the experiment this script defines and records it.", "",
             f"  name=value   set a parameter: {SYNTAX}",
             "  --seed N     the trial's seed (an integer from 0 to 4294967295)",
             "The backend is the one the script gives, else $EXPERIGRAPH_BACKEND, else "
             "./experigraph_cache/."]
    experiment = session.experiment
    if experiment is not None:
        from .graph import NOTHING

        lines += ["", f"Parameters of experiment {experiment.id!r}:"]
        for name, param in sorted(experiment.parameters.items()):
            default = "required" if param.default is NOTHING else f"default {param.default!r}"
            lines.append(f"  {name} ({default})")
    return "\n".join(lines)


# -- running the trial ------------------------------------------------------------------
def finish(session: ScriptSession) -> int:
    """After the script body: run its one trial; 0 on success.

    Raises
    ------
    ScriptUsageError
        An undeclared or missing parameter (nothing recorded).
    ScriptError
        No result was built, or the trial failed (it is recorded).
    """
    if session.args.help:
        print(usage(session))
        return 0
    if session.computed:  # the script computed by itself and handled what happened
        if session.args.parameters or session.args.seed is not None:
            ids = ", ".join(str(i) for _, i in session.ran) or "none recorded"
            logger.warning("The script computed by itself (trials: %s), so the command-line "
                           "parameters and seed were not applied.", ids)
        return 0
    if session.usage_error is not None:
        raise session.usage_error
    experiment, result = session.experiment, session.result
    if experiment is None or result is None:
        raise ScriptError(
            f"{session.path} did not build an experiment result: it must call a function "
            "decorated with @ex.result at module level, e.g. "
            "s = calculate_score(prepare_data(a, b)).")
    parameters, argv = _parameters_for(session, experiment, result)
    script = {"path": str(session.path), "argv": argv, "source": session.source}
    session.finishing = True
    try:
        experiment.set_parameters(**parameters)
        outcome = experiment.run(result, seed=session.args.seed, rerun_of=session.rerun_of,
                                 script=script, raise_errors=False)
    except Exception as exc:
        raise ScriptError(f"The trial of experiment {experiment.id!r} did not complete: "
                          f"{type(exc).__name__}: {exc}") from exc
    if outcome.exception is not None:
        raise ScriptError(_failure_message(outcome.record), trial_ids=[outcome.trial_id]
                          ) from outcome.exception
    return 0


def _parameters_for(session: ScriptSession, experiment: Experiment, result: Result
                    ) -> tuple[dict[str, Any], list[str]]:
    """The parameter values for the trial and its argv to record, checked before anything is
    recorded."""
    from .graph import node_of, parameters_read, walk

    declared = experiment.parameters
    given = session.args.parameters
    undeclared = sorted(set(given) - set(declared))
    if undeclared:
        raise ScriptUsageError(
            f"Parameter(s) {', '.join(map(repr, undeclared))} not declared by experiment "
            f"{experiment.id!r} (declared: {', '.join(sorted(declared)) or 'none'}).")
    values: dict[str, Any] = {}
    for name, value in session.base_parameters.items():
        if name in given:
            continue
        if name in declared:
            values[name] = value
        else:
            logger.warning("Parameter %r of trial %s is no longer declared by the script; "
                           "it is left out.", name, session.rerun_of)
    argv = format_assignments(values) + list(session.argv)
    values.update(given)
    for name, value in values.items():  # a declared type= must accept the value
        try:
            values[name] = node_of(declared[name]).convert(value)
        except ValueError as exc:
            raise ScriptUsageError(str(exc)) from exc
    current = experiment.get_parameters()
    missing = [n for n in parameters_read(walk(node_of(result)))
               if n not in values and n not in current]
    if missing:
        raise ScriptUsageError(
            f"Parameter(s) {', '.join(map(repr, missing))} of experiment {experiment.id!r} "
            f"have no value: give them as {' '.join(f'{n}=VALUE' for n in missing)}.")
    return values, argv


def _failure_message(record: TrialRecord) -> str:
    return (f"Trial {record.trial_id} of experiment {record.experiment_id!r} "
            f"{record.status.value}: {record.description or 'no description'} (see "
            f"`experigraph show {record.experiment_id} {record.trial_id}` for the traceback).")


# -- experigraph run / rerun --------------------------------------------------------------
@dataclasses.dataclass
class ScriptOutcome:
    """What :func:`run_script` did: the trials it ran (normally one)."""

    experiment: Experiment | None
    trials: list[TrialRecord]
    help_text: str | None = None


@contextlib.contextmanager
def _as_main(path: Path, argv: Sequence[str], env: Mapping[str, str]) -> Iterator[None]:
    saved_argv, saved_env = sys.argv, {k: os.environ.get(k) for k in env}
    folder = str(path.parent)
    added = folder not in sys.path
    sys.argv = [str(path), *argv]
    os.environ.update(env)
    if added:
        sys.path.insert(0, folder)
    try:
        yield
    finally:
        sys.argv = saved_argv
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        if added:
            with contextlib.suppress(ValueError):
                sys.path.remove(folder)


def run_script(path: str | os.PathLike[str], argv: Sequence[str], *,
               env: Mapping[str, str] | None = None, base_parameters: Mapping[str, Any] | None
               = None, rerun_of: int | None = None, experiment_id: str | None = None,
               ) -> ScriptOutcome:
    """Run ``path`` as ``__main__`` with ``argv`` and then its one trial, in this process.

    Parameters
    ----------
    path : path-like
        The script.
    argv : sequence of str
        The arguments after it, as a user would type them (recorded with the trial).
    env : mapping, optional
        Environment variables set while it runs (``EXPERIGRAPH_BACKEND``).
    base_parameters : mapping, optional
        Values applied before those of ``argv`` (a rerun's recorded parameters).
    rerun_of : int, optional
        The trial this one re-runs (recorded as ``rerun_of``).
    experiment_id : str, optional
        The experiment the script must define (for a rerun).

    Raises
    ------
    ScriptUsageError
        Bad arguments or an undeclared parameter: nothing was recorded.
    ScriptError
        The script failed, built no result, or its trial failed (recorded).
    """
    import linecache
    import runpy

    script_path = Path(path).resolve()
    if not script_path.is_file():
        raise ScriptError(f"Script {str(path)!r} does not exist or is not a file.")
    args = parse_script_argv(argv)
    linecache.checkcache(str(script_path))
    session = ScriptSession(path=script_path, argv=list(argv), source=read_script(script_path),
                            args=args, rerun_of=rerun_of,
                            base_parameters=dict(base_parameters or {}))
    token = _session.set(session)
    try:
        with _as_main(script_path, argv, env or {}):
            try:
                runpy.run_path(str(script_path), run_name="__main__")
            except SystemExit as exc:
                if exc.code not in (None, 0):
                    raise ScriptError(f"{script_path.name} exited with {exc.code!r} before "
                                      "its trial ran.") from None
            except ExperigraphError:
                raise
            except Exception as exc:
                ran = session.trials_run_here()
                if ran and not ran[-1].succeeded:
                    raise ScriptError(_failure_message(ran[-1]),
                                      trial_ids=[r.trial_id for r in ran]) from exc
                raise ScriptError(f"{script_path.name} raised {type(exc).__name__}: {exc}"
                                  f"{_where(exc, script_path)}") from exc
            if experiment_id is not None and session.experiment is not None and \
                    session.experiment.id != experiment_id:
                raise ScriptError(f"{script_path} now defines experiment "
                                  f"{session.experiment.id!r}, not {experiment_id!r}.")
            if args.help:
                return ScriptOutcome(session.experiment, [], usage(session))
            finish(session)
    finally:
        _session.reset(token)
    return ScriptOutcome(session.experiment, session.trials_run_here())


def _where(exc: BaseException, path: Path) -> str:
    tb, line = exc.__traceback__, None
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == str(path):
            line = tb.tb_lineno
        tb = tb.tb_next
    return f" (line {line})" if line is not None else ""


def source_changes(experiment: Experiment, record: TrialRecord) -> list[str]:
    """Unified diff of a trial's recorded script and the file as it is now (empty: same).

    Raises
    ------
    ScriptError
        The trial has no recorded script, or the file is gone.
    """
    import difflib

    script = record.script
    if not script or not script.get("path"):
        raise ScriptError(
            f"Trial {record.trial_id} of experiment {record.experiment_id!r} has no recorded "
            "script (it was computed from Python, not run as `python script.py` or "
            "`experigraph run`), so it cannot be re-run from the command line; use "
            "ex.reproduce() or run the script with `experigraph run`.")
    path = Path(script["path"])
    if not path.is_file():
        raise ScriptError(f"The script of trial {record.trial_id}, {path}, no longer exists.")
    now = read_script(path)
    then = experiment.get_script(record.trial_id)
    if then is None:
        logger.warning("The source of %s recorded with trial %d is not in the backend; "
                       "cannot tell whether it changed.", path, record.trial_id)
        return []
    if then == now:
        return []
    return list(difflib.unified_diff(then.splitlines(), now.splitlines(),
                                     fromfile=f"{path.name} (trial {record.trial_id})",
                                     tofile=f"{path.name} (now)", lineterm=""))


def rerun(experiment: Experiment, trial_id: int, overrides: Sequence[str], *,
          seed: int | None = None, env: Mapping[str, str] | None = None) -> ScriptOutcome:
    """Re-execute the script recorded for ``trial_id`` with its parameters and seed.

    ``overrides`` (``name=value`` strings) and ``seed`` replace recorded values.
    A WARNING with the unified diff is logged when the script changed since.

    Raises
    ------
    TrialIDNotFoundError, ScriptUsageError, ScriptError
    """
    record = experiment.get_trial(trial_id)
    changed = source_changes(experiment, record)
    parse_assignments(overrides)  # bad input fails before any warning
    if changed:
        logger.warning("Script source has changed since trial %d: %s", trial_id,
                       record.script["path"])  # type: ignore[index]
        for line in changed:
            logger.warning("%s", line)
    argv = list(overrides) + ["--seed", str(record.seed if seed is None else seed)]
    return run_script(record.script["path"], argv, env=env,  # type: ignore[index]
                      base_parameters=record.parameters, rerun_of=trial_id,
                      experiment_id=experiment.id)


_WATCHER = _Watcher()
events.watch(_WATCHER)  # script mode hears of every result built and compute run
