"""Importing experigraph stays light, and a missing optional package says how to fix it."""
from __future__ import annotations

import json

import pytest

from experigraph._compat import import_optional
from experigraph.errors import MissingDependencyError


def test_import_loads_no_optional_package(run_python):
    out = run_python("import sys, json, experigraph\n"
                     "print(json.dumps(sorted(m for m in ('redis', 'pymongo', 'bokeh', 'cpuinfo', 'dask', 'pandas', "
                     "'git', 'mongomock') if m in sys.modules)))").stdout
    assert json.loads(out) == []


def test_missing_optional_package_says_what_to_install():
    with pytest.raises(MissingDependencyError,
                       match=r"needs the 'no_such_pkg_xg' package.*pip install no_such_pkg_xg"):
        import_optional("no_such_pkg_xg", needed_for="Testing")


def test_log_handler_in_daskperiment_format(run_python):
    proc = run_python(
        "import experigraph as xg, logging\n"
        "logging.getLogger('experigraph.test').info('hello %s', 'there')\n")
    line = proc.stderr.strip().splitlines()[-1]
    assert line.endswith("[experigraph.test] [INFO] hello there")


def test_log_level_from_environment(run_python):
    proc = run_python(
        "import os\nos.environ['EXPERIGRAPH_LOG_LEVEL'] = 'WARNING'\n"
        "import experigraph, logging\n"
        "logging.getLogger('experigraph.test').info('quiet')\n"
        "logging.getLogger('experigraph.test').warning('loud')\n")
    assert "quiet" not in proc.stderr and "loud" in proc.stderr
