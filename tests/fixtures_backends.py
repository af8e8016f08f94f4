"""Backend fixtures (a pytest plugin loaded by tests/conftest.py)."""
from __future__ import annotations
