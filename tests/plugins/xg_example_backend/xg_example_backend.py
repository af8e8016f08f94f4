"""An example third-party backend: ``examplefs:///path`` stores trials in a directory.

It is a package of its own that experigraph finds through its
``experigraph.backends`` entry point (see ``entry_points.txt``); the tests install
it by laying it out as an installed distribution on a temporary ``sys.path``
entry. It reuses the file backend's storage, so it passes the contract suite.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from experigraph.backends.file import FileBackend


class ExampleBackend(FileBackend):
    """Trials under ``<path>/<experiment id>/``, named by an ``examplefs://`` URI."""

    scheme = "examplefs"

    @classmethod
    def from_uri(cls, uri: str, experiment_id: str) -> ExampleBackend:
        return cls(Path(unquote(urlsplit(uri).path)), experiment_id)

    @property
    def uri(self) -> str:
        return "examplefs://" + str(self.root.absolute())

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (str(self.root.absolute()), self.experiment_id))
