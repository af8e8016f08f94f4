"""``experigraph board`` of an experiment with no trials yet is an empty board, which then
shows trials as they are recorded, with a readable process time (issue 11)."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import experigraph as xg
from fixtures_backends import free_port
from pagetools import header_titles, poll, table_rows
from xg_testing import python_env

pytestmark = pytest.mark.browser

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
PAGE_TIMEOUT_MS = 30_000


def test_board_of_an_experiment_without_trials_opens_empty_then_fills(browser, backend_root,
                                                                      experiment_id):
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "experigraph.cli", "board", experiment_id, "--port", str(port),
         "--backend", str(backend_root)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=dict(python_env(), EXPERIGRAPH_LOG_LEVEL="WARNING"))
    context = None
    try:
        line = proc.stdout.readline()
        url = re.search(r"http://127\.0\.0\.1:\d+/", line)
        assert url, f"no URL in {line!r}; stderr: {proc.stderr.read() if proc.poll() else ''}"
        context = browser.new_context(viewport={"width": 1400, "height": 900})
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.set_default_timeout(PAGE_TIMEOUT_MS)
        page.goto(url.group(0))
        page.wait_for_selector(".eg-trials .slick-header-column")
        assert "Trial ID" in header_titles(page)
        time.sleep(1.0)  # a few refreshes: still no rows, no errors
        assert table_rows(page) == {}

        ex = xg.Experiment(id=experiment_id, backend=backend_root)
        a = ex.parameter("a")

        @ex.result
        def slow(a):
            time.sleep(0.05)
            return a * 2

        slow(a)
        ex.set_parameters(a=21).compute()
        def shown():
            # the row may first show the trial running, and the table gains the new
            # parameter's column when the first trial arrives: read both until they agree
            titles, rows = header_titles(page), table_rows(page)
            if 1 not in rows or len(rows[1]) != len(titles):
                return None
            cells = dict(zip(titles, rows[1]))
            return cells if cells.get("Result") == "42" else None

        cells = poll(shown, "trial 1 with its result", timeout=30)
        process_time = cells["Process Time (s)"]
        assert re.fullmatch(r"\d+(\.\d+)?", process_time), process_time  # seconds, no "days"
        assert float(process_time) >= 0.05
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "empty_board_then_one_trial.png"), full_page=True)
        assert not errors, errors
    finally:
        if context is not None:
            context.close()
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
    assert proc.returncode in (0, -signal.SIGINT), proc.stderr.read()
    assert os.path.isdir(backend_root)
