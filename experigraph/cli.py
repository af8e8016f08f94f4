"""The ``experigraph`` command (filled in by the command-line issue)."""
from __future__ import annotations

import click


@click.group()
def main() -> None:
    """Reproducible experiments as dask graphs: run, rerun and inspect trials."""
