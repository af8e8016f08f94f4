"""The versioning commands of ``experigraph``: artifacts, get, models, lineage, tag, note,
archive, gc. :func:`register` adds them to :func:`experigraph.cli.main`."""
from __future__ import annotations

import sys

import click

from .cli import (artifacts_option, backend_option, expected_errors, open_experiment,
                  quiet, read_trial)


def _size(n: object) -> str:
    if not isinstance(n, (int, float)):
        return "-"
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"  # pragma: no cover


@click.command()
@click.argument("experiment_id", metavar="EXPERIMENT")
@click.argument("trial_id", metavar="TRIAL_ID", type=int)
@backend_option
@artifacts_option
@expected_errors
def artifacts(experiment_id: str, trial_id: int, backend: str | None,
              artifacts: str | None) -> None:
    """The files trial TRIAL_ID of EXPERIMENT declared, and whether each is kept."""
    ex = open_experiment(experiment_id, backend, artifacts=artifacts)
    read_trial(ex, trial_id)
    frame = ex.get_artifacts(trial_id)
    if frame.empty:
        click.echo(f"Trial {trial_id} declared no files (ex.output / ex.input).")
        return
    for row in frame.to_dict("records"):
        kept = "kept" if row["kept"] else "hash only"
        click.echo(f"{row['role']:<6}  {row['step']:<20}  {_size(row['size']):>10}  "
                   f"{str(row['hash'])[:12]:<12}  {kept:<9}  {row['path']}")


@click.command()
@click.argument("experiment_id", metavar="EXPERIMENT")
@click.argument("trial_id", metavar="TRIAL_ID", type=int)
@click.argument("path", metavar="PATH")
@click.option("-o", "--output", "dest", default=None, metavar="DEST",
              help="Where to write it ('-': standard output). Default: the path it was "
                   "recorded at.")
@click.option("--overwrite", is_flag=True, help="Replace DEST if it exists with other content.")
@backend_option
@artifacts_option
@expected_errors
def get(experiment_id: str, trial_id: int, path: str, dest: str | None, overwrite: bool,
        backend: str | None, artifacts: str | None) -> None:
    """Bring back file PATH as trial TRIAL_ID of EXPERIMENT wrote (or kept) it.

    PATH is as `experigraph artifacts` lists it, or its unique ending
    (predictions.csv), or a file inside a kept directory.
    """
    ex = open_experiment(experiment_id, backend, artifacts=artifacts)
    read_trial(ex, trial_id)
    if dest == "-":
        out = sys.stdout.buffer
        with ex.open_artifact(trial_id, path) as src:
            while chunk := src.read(1 << 22):
                out.write(chunk)
        out.flush()
        return
    written = ex.get_artifact(trial_id, path, dest, overwrite=overwrite)
    click.echo(f"Wrote {written}")


@click.command()
@click.argument("experiment_id", metavar="EXPERIMENT")
@click.option("--archived", is_flag=True, help="Include models of archived trials.")
@backend_option
@expected_errors
def models(experiment_id: str, archived: bool, backend: str | None) -> None:
    """The models recorded in EXPERIMENT (as ex.list_models())."""
    import pandas as pd

    ex = open_experiment(experiment_id, backend)
    with quiet():
        frame = ex.list_models(archived=archived)
    if frame.empty:
        click.echo("No models recorded (ex.model(obj, name) inside a step records one).")
        return
    with pd.option_context("display.max_columns", None, "display.width", 200):
        click.echo(frame.to_string(index=False))


@click.command()
@click.argument("experiment_id", metavar="EXPERIMENT")
@click.argument("trial_id", metavar="TRIAL_ID", type=int)
@click.option("--format", "fmt", type=click.Choice(["tree", "dot"]), default="tree",
              show_default=True, help="tree for people; dot for graphviz (dot -Tsvg).")
@backend_option
@artifacts_option
@expected_errors
def lineage(experiment_id: str, trial_id: int, fmt: str, backend: str | None,
            artifacts: str | None) -> None:
    """Where the data of trial TRIAL_ID of EXPERIMENT came from: the trials (of any
    experiment in the store, or in another store sharing its --artifacts location) that
    wrote the files it read, back to the first inputs."""
    from .lineage import render_dot

    ex = open_experiment(experiment_id, backend, artifacts=artifacts)
    read_trial(ex, trial_id)
    with quiet():
        if fmt == "dot":
            click.echo(render_dot(ex.get_provenance(trial_id, upstream=True)), nl=False)
        else:
            click.echo(ex.lineage_tree(trial_id), nl=False)


@click.command()
@click.argument("experiment_id", metavar="EXPERIMENT")
@click.argument("trial_id", metavar="TRIAL_ID", type=int)
@click.argument("name")
@click.argument("value", required=False, default=None)
@click.option("--remove", is_flag=True, help="Remove the tag (the log keeps both entries).")
@backend_option
@expected_errors
def tag(experiment_id: str, trial_id: int, name: str, value: str | None, remove: bool,
        backend: str | None) -> None:
    """Tag trial TRIAL_ID of EXPERIMENT: NAME (=VALUE, a Python literal or text; default
    True). Recorded with the time and your user name."""
    from .script import parse_value

    ex = open_experiment(experiment_id, backend)
    read_trial(ex, trial_id)
    if remove:
        ex.untag(trial_id, name)
        click.echo(f"Removed tag {name!r} from trial {trial_id}")
        return
    parsed = True if value is None else parse_value(value)
    ex.tag(trial_id, name, parsed)
    click.echo(f"Tagged trial {trial_id}: {name}={parsed!r}")


@click.command()
@click.argument("experiment_id", metavar="EXPERIMENT")
@click.argument("trial_id", metavar="TRIAL_ID", type=int)
@click.argument("text")
@backend_option
@expected_errors
def note(experiment_id: str, trial_id: int, text: str, backend: str | None) -> None:
    """Add a note to trial TRIAL_ID of EXPERIMENT (with the time and your user name)."""
    ex = open_experiment(experiment_id, backend)
    read_trial(ex, trial_id)
    ex.note(trial_id, text)
    click.echo(f"Noted on trial {trial_id}")


@click.command()
@click.argument("experiment_id", metavar="EXPERIMENT")
@click.argument("trial_ids", metavar="TRIAL_ID...", type=int, nargs=-1, required=True)
@click.option("--undo", is_flag=True, help="Unarchive them instead.")
@backend_option
@expected_errors
def archive(experiment_id: str, trial_ids: tuple[int, ...], undo: bool,
            backend: str | None) -> None:
    """Hide trials of EXPERIMENT from the history and the dashboard (nothing is deleted;
    `experigraph history --archived` shows them)."""
    ex = open_experiment(experiment_id, backend)
    for trial_id in trial_ids:
        read_trial(ex, trial_id)
    (ex.unarchive if undo else ex.archive)(list(trial_ids))
    click.echo(f"{'Unarchived' if undo else 'Archived'} trial(s) "
               f"{', '.join(map(str, trial_ids))}")


@click.command()
@click.argument("experiment_id", metavar="EXPERIMENT")
@click.option("--dry-run", is_flag=True, help="Only say what would be removed.")
@click.option("--grace", type=click.FloatRange(min=0), default=3600.0, show_default=True,
              metavar="SECONDS", help="Keep content written less than this long ago.")
@backend_option
@artifacts_option
@expected_errors
def gc(experiment_id: str, dry_run: bool, grace: float, backend: str | None,
       artifacts: str | None) -> None:
    """Remove kept files, models and pickles of EXPERIMENT that no recorded trial
    refers to (e.g. of trials that crashed before being recorded).

    Archived trials still refer to theirs; what trials still running may refer to is
    kept; cached outputs, code and environment snapshots are never removed.
    """
    ex = open_experiment(experiment_id, backend, artifacts=artifacts)
    with quiet():
        outcome = ex.gc(dry_run=dry_run, grace=grace)
    for why in outcome["skipped"]:
        click.echo(f"not collected: {why}")
    verb = "Would remove" if dry_run else "Removed"
    for path in outcome["removed"]:
        click.echo(f"{verb.lower().split()[-1]} {path}")
    click.echo(f"{verb} {len(outcome['removed'])} item(s), {'would free' if dry_run else 'freed'} "
               f"{_size(outcome['freed'])} ({outcome['freed']} bytes) in {outcome['store']}")


def register(group: click.Group) -> None:
    """Add the versioning commands to ``group`` (the ``experigraph`` command)."""
    for command in (artifacts, get, models, lineage, tag, note, archive, gc):
        group.add_command(command)
