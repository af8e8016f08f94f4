"""What a third party needs to test a plugin: the backend contract suite.

``from experigraph.testing import backend_contract``, then subclass
``backend_contract.BackendContract`` in a test module (see
:mod:`experigraph.testing.backend_contract`). Importing this package imports
pytest; ``import experigraph`` never does.
"""
from __future__ import annotations

from . import backend_contract
from .backend_contract import BackendContract

__all__ = ["BackendContract", "backend_contract"]
