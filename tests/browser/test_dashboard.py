"""The dashboard as a person uses it: a real Bokeh server, a real headless Chromium."""
from __future__ import annotations

import ipaddress
import logging
import math
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"

from conftest import watch_console
from pagetools import (
    click_row, div_text, header_titles, open_tab, poll, source_data, table_rows)

pytestmark = pytest.mark.browser

def test_table_shows_one_row_per_trial_with_its_values(page, board_experiment):
    ex, _ = board_experiment
    history = ex.get_history(verbose=True)
    titles = header_titles(page)
    for title in ("Trial ID", "a", "b", "Result", "Success", "Status", "Finished",
                  "Process Time (s)", "Description", "Seed", "Drift", "accuracy", "group"):
        assert title in titles
    rows = poll(lambda: (r := table_rows(page)) and len(r) == 4 and r, "four rows")
    assert sorted(rows) == list(history.index) == [1, 2, 3, 4]
    col = {t: i for i, t in enumerate(titles)}
    for trial_id, cells in rows.items():
        expected = history.loc[trial_id]
        assert cells[col["a"]] == str(expected["a"])
        assert cells[col["b"]] == str(expected["b"])
        assert cells[col["Status"]] == expected["Status"]
        assert cells[col["Seed"]] == str(expected["Seed"])
        if expected["Success"]:
            assert float(cells[col["Result"]]) == pytest.approx(expected["Result"], abs=1e-6)
        else:
            assert cells[col["Result"]] == ""
    assert rows[3][col["Status"]] == "failed"
    assert "ZeroDivisionError" in rows[3][col["Description"]]
    assert rows[3][col["Success"]] == "False"
    assert rows[1][col["group"]] == "small" and rows[2][col["group"]] == "large"
    # the failed trial is marked: its id and status are red
    failed_cell = page.locator(".eg-trials .slick-row", has=page.locator(
        ".slick-cell.l0", has_text="3")).locator(".slick-cell").nth(col["Status"])
    color = failed_cell.locator("div").first.evaluate("e => getComputedStyle(e).color")
    assert color == "rgb(198, 40, 40)"
    assert "4 trials \u00b7 1 failed" in div_text(page, "eg-header")


def test_text_filter_keeps_matching_rows(page):
    page.locator(".eg-filter input").fill("failed")
    poll(lambda: sorted(table_rows(page)) == [3], "only trial 3 after filtering 'failed'")
    page.locator(".eg-filter input").fill("group=small")
    poll(lambda: sorted(table_rows(page)) == [1, 3, 4], "trials 1, 3, 4 for 'group=small'")
    page.locator(".eg-filter input").fill("")
    poll(lambda: sorted(table_rows(page)) == [1, 2, 3, 4], "every trial again")


PLOT_TRIALS_JS = """name => {
    const doc = Bokeh.documents[0];
    const renderer = doc.get_model_by_name(name);
    if (renderer === null || renderer.view.indices === undefined) return null;
    const ids = doc.get_model_by_name("trials").data;
    const column = ids instanceof Map ? ids.get("trial_id") : ids.trial_id;
    return [...renderer.view.indices.ones()].map(i => column[i]);
}"""


def plot_trials(page, renderer: str) -> list[int] | None:
    """The trials a plot's renderer draws (its view of the trials), None before it is built."""
    return page.evaluate(PLOT_TRIALS_JS, renderer)


def test_filter_in_the_browser_keeps_the_rows_the_table_rule_matches(page, board_experiment):
    from experigraph.board.table import TrialTable

    ex, compute = board_experiment
    table = TrialTable(ex)
    box = page.locator(".eg-filter input")

    def shows(query: str, expected: list[int]) -> None:
        table.refresh()
        assert [table.trial_ids[i] for i in table.matching(query)] == expected  # the rule
        box.fill(query)
        poll(lambda: sorted(table_rows(page)) == expected, f"trials {expected} for {query!r}")

    poll(lambda: plot_trials(page, "result_points") == [1, 2, 3, 4], "the Results plots")
    shows("group=small", [1, 3, 4])  # a word with '=' matches a whole cell, any case
    shows("GROUP=SMAL", [])
    shows("smal", [1, 3, 4])  # any other word, a part of one
    shows("small  succeeded", [1, 4])  # every word
    # the plots follow the table (a moment later)
    poll(lambda: plot_trials(page, "result_points") == [1, 4], "the plots follow")
    assert plot_trials(page, "time_points") == [1, 4]
    # a trial recorded after the page opened is filtered as it arrives (running, then
    # patched to succeeded), and so is one that does not match
    compute(0)
    compute(5)
    poll(lambda: len(source_data(page, "trials").get("trial_id", [])) == 6, "trials 5 and 6")
    poll(lambda: sorted(table_rows(page)) == [1, 4, 5], "trial 5, small and succeeded")
    shows("small  succeeded", [1, 4, 5])
    poll(lambda: plot_trials(page, "result_points") == [1, 4, 5], "the plots, with trial 5")
    shows("a=5", [6])
    poll(lambda: plot_trials(page, "result_points") == [6], "the plots, trial 6")
    # while the plots' tab is hidden they are left as they were, and follow when it opens
    open_tab(page, "Drift")
    shows("status=failed", [3])
    time.sleep(0.5)  # longer than the plots' delay
    assert plot_trials(page, "result_points") == [6]
    open_tab(page, "Results")
    poll(lambda: plot_trials(page, "result_points") == [3], "the plots, once shown")
    shows("", [1, 2, 3, 4, 5, 6])  # cleared: every trial
    poll(lambda: plot_trials(page, "result_points") == [1, 2, 3, 4, 5, 6], "every point")


def test_table_sorts_by_a_column(page):
    page.locator(".eg-trials .slick-header-column", has_text="Result").first.click()
    page.locator(".eg-trials .slick-header-column", has_text="Result").first.click()

    def order() -> list[int]:
        rows = page.locator(".eg-trials .slick-row").all()
        tops = [(r.evaluate("e => e.offsetTop"), int(r.locator(".slick-cell").first
                                                       .inner_text())) for r in rows]
        return [t for _, t in sorted(tops)]

    # descending results: trial 4 (20/3), 1 (10/3), 2 (10/4); the failed trial has none
    poll(lambda: [t for t in order() if t != 3] == [4, 1, 2],
         "rows sorted by result, descending")


def test_selecting_two_trials_shows_their_comparison(page, board_experiment):
    ex, _ = board_experiment

    def shows(first: int, second: int) -> bool:
        text = div_text(page, "eg-compare")
        diff = ex.compare(first, second)
        expected = [str(first), str(second), *diff.parameters,
                    *(repr(v) for pair in diff.parameters.values() for v in pair),
                    *diff.code]
        return all(e in text for e in expected)

    click_row(page, 1)
    click_row(page, 2, modifiers=["Control"])
    open_tab(page, "Compare")
    page.locator(".eg-compare").wait_for()
    poll(lambda: shows(1, 2), "the comparison of trials 1 and 2")
    click_row(page, 4, modifiers=["Control"])  # three selected: asks for two
    poll(lambda: "Select two trials" in div_text(page, "eg-compare"), "a hint with three selected")
    click_row(page, 2, modifiers=["Control"])  # unselect 2: trials 1 and 4, code changed
    poll(lambda: shows(1, 4), "the comparison of trials 1 and 4")
    assert "calculate_score" in div_text(page, "eg-compare")


def _check_loss_curves(page, ex) -> None:
    def curves() -> dict[str, list[Any]]:
        data = source_data(page, "metric_curves")
        return data if sorted(data.get("trial_id", [])) == [1, 2] else {}

    data = poll(curves, "the loss curves of trials 1 and 2")
    expected = ex.load_metric("loss", [1, 2])
    for trial_id, xs, ys in zip(data["trial_id"], data["xs"], data["ys"]):
        assert xs == list(expected.index)
        assert ys == pytest.approx(list(expected[trial_id]))
    assert page.locator(".eg-metric-plot canvas").count() >= 1


def test_choosing_a_metric_draws_the_curves_of_the_selected_trials(page, board_experiment):
    ex, _ = board_experiment
    click_row(page, 1)
    click_row(page, 2, modifiers=["Control"])
    open_tab(page, "Metrics")
    select = page.locator(".eg-metric-select select")
    select.wait_for()
    poll(lambda: select.locator("option").all_inner_texts() == ["loss"], "the metric list")
    select.select_option("loss")
    _check_loss_curves(page, ex)


def test_new_trial_appears_without_reloading(page, board_experiment):
    _, compute = board_experiment
    page.evaluate("window.__not_reloaded = true")
    compute(5)
    titles = header_titles(page)
    # a refresh may have caught it running: the row is then updated in place
    rows = poll(lambda: (r := table_rows(page)) and 5 in r and
                r[5][titles.index("Status")] == "succeeded" and r, "trial 5, succeeded")
    assert rows[5][titles.index("a")] == "5"
    assert float(rows[5][titles.index("Result")]) == pytest.approx(20 / 7, abs=1e-6)
    poll(lambda: "5 trials" in div_text(page, "eg-header"), "the header count")
    assert page.evaluate("window.__not_reloaded === true")
    data = source_data(page, "trials")
    assert data["trial_id"] == [1, 2, 3, 4, 5]


def test_trial_graph_shows_steps_with_time_and_hashes(page, board_experiment):
    ex, _ = board_experiment
    click_row(page, 1)
    open_tab(page, "Trial graph")
    record = ex.get_trial(1)
    steps = poll(lambda: (d := source_data(page, "steps_source")).get("step") and d,
                 "the steps of trial 1")
    assert steps["step"] == [s.step for s in record.steps]
    assert steps["output_hash"] == [s.output_hash for s in record.steps]
    assert steps["duration"] == pytest.approx([s.duration for s in record.steps])
    nodes = source_data(page, "provenance_nodes")
    kinds = {label.split(" \u00b7 ")[0]: kind for label, kind in zip(nodes["label"],
                                                                    nodes["kind"])}
    step_labels = [label for label, kind in zip(nodes["label"], nodes["kind"])
                   if kind == "step"]
    assert all(label.endswith("s") and " \u00b7 " in label for label in step_labels)
    assert kinds["prepare_data"] == kinds["calculate_score"] == "step"
    assert kinds["a"] == kinds["b"] == "parameter"
    assert "file" in kinds.values()
    assert len(source_data(page, "provenance_edges")["xs"]) >= 4


def test_drift_events_are_listed_per_trial(page, board_experiment):
    ex, _ = board_experiment
    open_tab(page, "Drift")
    recorded = [(t, e.kind, e.subject) for t in ex.get_history().index
                for e in ex.get_trial(int(t)).drift]
    kinds = {k for _, k, _ in recorded}
    assert {"code", "data"} <= kinds
    data = poll(lambda: (d := source_data(page, "drift_source")).get("trial_id") and d,
                "the drift table")
    assert list(zip(data["trial_id"], data["kind"], data["subject"])) == recorded
    titles = header_titles(page)
    drift_cell = table_rows(page)[4][titles.index("Drift")]
    assert "code" in drift_cell and "data" in drift_cell
    page.locator(".eg-drift .slick-row").first.locator(".slick-cell").nth(1).click()
    poll(lambda: "Trial 4" in div_text(page, "eg-drift-detail"),
         "the diff of the clicked event")


def test_result_against_a_parameter_offers_the_varying_ones(page):
    # b is 2 in every trial: no axis for it, but said once
    select = page.locator(".eg-x-select select")
    poll(lambda: select.locator("option").all_inner_texts() == ["a"], "only a to choose")
    poll(lambda: page.evaluate("""() => Bokeh.documents[0].get_model_by_name(
        'scatter_points').glyph.x.field""") == "p:a", "the scatter's x to be a")
    assert div_text(page, "eg-fixed") == "fixed: b=2"
    tooltip = page.evaluate("""() => Bokeh.documents[0].get_model_by_name('scatter_plot')
        .toolbar.tools.filter(t => t.type === 'HoverTool' || t.tooltips)[0].tooltips""")
    assert ["trial", "@trial_id"] in tooltip


def test_page_screenshot_is_saved(page):
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / "dashboard.png"
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 10_000


def _non_loopback_ipv4() -> str | None:
    try:
        out = subprocess.run(["ip", "-4", "-o", "addr"], capture_output=True, text=True,
                             timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        out = ""
    candidates = [line.split()[3].split("/")[0] for line in out.splitlines()
                  if len(line.split()) > 3]
    try:
        candidates += [info[4][0] for info in socket.getaddrinfo(socket.gethostname(), None,
                                                                 socket.AF_INET)]
    except OSError:
        pass
    for address in candidates:
        if not ipaddress.ip_address(address).is_loopback:
            return address
    return None


def _listening(port):
    """The local addresses listening on TCP ``port`` on this machine (from /proc/net)."""
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = open(table, encoding="ascii").read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            local, state = line.split()[1], line.split()[3]
            address, _, hex_port = local.partition(":")
            if state == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
                if len(address) == 8:  # IPv4, little-endian
                    found.append(str(ipaddress.IPv4Address(bytes.fromhex(address)[::-1])))
                else:
                    found.append(address)
    return found


def test_not_served_on_a_non_loopback_address_by_default(dashboard):
    assert dashboard.address == "127.0.0.1"
    sockets = _listening(dashboard.port)
    assert sockets and all(address == "127.0.0.1" for address in sockets)
    with socket.create_connection(("127.0.0.1", dashboard.port), timeout=5):
        pass
    address = _non_loopback_ipv4()
    if address is None:
        return  # no other address on this machine: the bound address above is the check
    with pytest.raises(OSError):
        socket.create_connection((address, dashboard.port), timeout=5).close()


def test_refresh_reads_only_new_and_running_trials(board_experiment, monkeypatch):
    from experigraph.board.table import TrialTable

    ex, compute = board_experiment
    table = TrialTable(ex)
    assert table.refresh() and len(table) == 4
    reads: list[list[int]] = []
    get_trials = ex.get_trials
    monkeypatch.setattr(ex, "get_trials", lambda ids: reads.append(list(ids)) or get_trials(ids))
    assert not table.refresh()
    assert reads == []
    compute(7)
    assert table.refresh()
    assert reads == [[5]] and table.trial_ids == [1, 2, 3, 4, 5]
    assert table.rows_since(4)["trial_id"] == [5]
    assert math.isclose(table.rows_since(4)["result"][0], 20 / 9)


def test_websocket_origin_check_stays_on(dashboard):
    def handshake(origin: str) -> int:
        """The HTTP status of a websocket upgrade request from a page at ``origin``."""
        request = (f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{dashboard.port}\r\n"
                   "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                   "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                   "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: bokeh\r\n"
                   f"Origin: {origin}\r\n\r\n")
        with socket.create_connection(("127.0.0.1", dashboard.port), timeout=10) as conn:
            conn.sendall(request.encode("ascii"))
            status_line = conn.makefile("rb").readline().decode("ascii")
        return int(status_line.split()[1])

    assert handshake(f"http://evil.example:{dashboard.port}") == 403
    assert handshake(f"http://127.0.0.1:{dashboard.port + 1}") == 403
    # the served origin passes the check (the session itself then needs its token)
    assert handshake(f"http://127.0.0.1:{dashboard.port}") == 101


SCRIPT = """
import pathlib, sys
import experigraph as xg

ex = xg.Experiment(id=sys.argv[1], backend=pathlib.Path(sys.argv[2]))
board = ex.start_dashboard(port=0)  # from a script: blocks until Ctrl-C
print("returned", board.is_running, flush=True)
"""


def test_from_a_script_it_blocks_until_interrupted(board_experiment, tmp_path):
    import os
    import re
    import signal
    import sys
    import urllib.request

    ex, _ = board_experiment
    script = tmp_path / "serve.py"
    script.write_text(SCRIPT, encoding="utf-8")
    proc = subprocess.Popen([sys.executable, str(script), ex.id,
                             str(ex.backend.uri.removeprefix("file://"))],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "EXPERIGRAPH_LOG_LEVEL": "WARNING"})
    try:
        line = proc.stdout.readline()
        url = re.search(r"http://127\.0\.0\.1:\d+/", line)
        assert url, f"no URL in {line!r}; stderr: {proc.stderr.read() if proc.poll() else ''}"
        with urllib.request.urlopen(url.group(0), timeout=30) as response:
            assert response.status == 200
        time.sleep(0.5)
        assert proc.poll() is None  # still serving
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "returned False" in out


def test_inside_a_running_event_loop_it_returns_at_once(board_experiment):
    import asyncio
    import concurrent.futures

    ex, _ = board_experiment

    async def start():
        return ex.start_dashboard(port=0)  # blocking=None: an event loop is running

    # on a thread of its own: Playwright's sync API may hold this thread's event loop
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        board = pool.submit(asyncio.run, start()).result(timeout=60)
    try:
        assert board.is_running
        with socket.create_connection(("127.0.0.1", board.port), timeout=5):
            pass
    finally:
        board.stop()
    assert not board.is_running
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", board.port), timeout=5).close()


def test_a_stop_that_times_out_says_so_and_the_server_stops_after(board_experiment, caplog,
                                                                  monkeypatch):
    import threading
    import urllib.request

    from experigraph.board import app

    ex, _ = board_experiment
    building = threading.Event()
    build = app.BoardSession.__init__

    def slow_build(self, *args, **kwargs):  # a page's document that takes its time
        building.set()
        time.sleep(1.5)
        build(self, *args, **kwargs)

    monkeypatch.setattr(app.BoardSession, "__init__", slow_build)
    board = ex.start_dashboard(port=0, blocking=False)
    opener = threading.Thread(target=lambda: urllib.request.urlopen(board.url, timeout=30)
                              .close(), daemon=True)
    try:
        opener.start()
        assert building.wait(30)
        with caplog.at_level(logging.WARNING, logger="experigraph.board"):
            board.stop(timeout=0.2)
        assert any("did not stop within 0.2 s" in r.getMessage() for r in caplog.records)
        deadline = time.monotonic() + 30
        while board.is_running and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not board.is_running
    finally:
        board.stop()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", board.port), timeout=5).close()


def test_a_closed_page_is_no_longer_refreshed(browser, board_experiment, monkeypatch):
    """Bokeh keeps a session for a while after its tab is closed: the board stops
    refreshing it (on a long history each refresh of a closed tab took up to 0.1 s)."""
    from experigraph.board import app

    ex, compute = board_experiment
    syncs: list[float] = []
    sync = app.BoardSession.sync

    def counted_sync(self):
        syncs.append(time.monotonic())
        return sync(self)

    monkeypatch.setattr(app.BoardSession, "sync", counted_sync)
    board = ex.start_dashboard(port=0, blocking=False, refresh_ms=100)
    try:
        pg = browser.new_page()
        pg.goto(board.url)
        pg.wait_for_selector(".eg-trials .slick-row", timeout=30_000)
        time.sleep(0.5)
        assert syncs, "an open tab is refreshed"
        pg.close()
        deadline = time.monotonic() + 10  # until Bokeh sees the close: no refresh for 0.5 s
        while time.monotonic() < deadline and syncs[-1] > time.monotonic() - 0.5:
            time.sleep(0.1)
        closed_at = time.monotonic()
        for a in range(20, 24):  # new trials: a refresh would have rows to send
            compute(a)
        time.sleep(1.0)
        assert board.is_running
    finally:
        board.stop()
    assert [t for t in syncs if t > closed_at] == []


def test_bokeh_s_warning_for_a_closed_page_is_dropped(dashboard):
    """Each message Bokeh could not send to a tab closed a moment before is a warning
    (dozens for one tab closed while a long history loads); nothing is lost."""
    records: list[logging.LogRecord] = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = records.append  # type: ignore[method-assign]
    ws_logger = logging.getLogger("bokeh.server.views.ws")
    ws_logger.addHandler(handler)
    try:
        ws_logger.warning("Failed sending message as connection was closed")
        ws_logger.warning("another warning")
    finally:
        ws_logger.removeHandler(handler)
    assert [r.getMessage() for r in records] == ["another warning"]


def _files(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_the_dashboard_only_reads(browser, board_experiment, backend_root):
    ex, _ = board_experiment
    before = _files(backend_root)
    board = ex.start_dashboard(port=0, blocking=False, refresh_ms=200)
    try:
        pg = browser.new_page(viewport={"width": 1400, "height": 1000})
        problems = watch_console(pg)
        pg.goto(board.url)
        pg.wait_for_selector(".eg-trials .slick-row")
        click_row(pg, 1)
        click_row(pg, 4, modifiers=["Control"])
        for title in ("Parameters", "Metrics", "Compare", "Trial graph", "Drift", "Results"):
            open_tab(pg, title)
        poll(lambda: source_data(pg, "drift_source").get("trial_id"), "every tab built")
        time.sleep(0.5)  # a few refreshes
        pg.close()
    finally:
        board.stop()
    assert _files(backend_root) == before
    assert problems == []


def test_table_columns_follow_the_values(board_experiment):
    import datetime as dt

    from experigraph.board.table import TrialTable
    from experigraph.records import Status, TrialRecord

    ex, _ = board_experiment
    table = TrialTable(ex)
    table.refresh()

    def record(trial_id: int, **parameters: Any) -> TrialRecord:
        return TrialRecord(experiment_id=ex.id, trial_id=trial_id, status=Status.SUCCEEDED,
                           parameters={"a": 1, "b": 2, **parameters}, seed=1,
                           started=dt.datetime.now(dt.timezone.utc), result=1.0,
                           metrics={"accuracy": 0.5})

    schema = table.schema_revision
    table.apply([record(5)])
    assert table.schema_revision == schema  # same columns: sessions stream the new row
    table.apply([record(6, model="rf"), record(7, model="gbm")])
    assert table.schema_revision > schema  # a new parameter: sessions rebuild
    model = next(c for c in table.parameter_columns if c.field == "p:model")
    assert not model.numeric
    data = table.data()
    assert data["p:model"][-3:] == ["", "rf", "gbm"]
    codes = table.categories["p:model"]
    assert data["x:p:model"][-2:] == [codes["rf"], codes["gbm"]]
    schema = table.schema_revision
    table.apply([record(8, a="auto")])  # numbers, then a text value: shown as text
    assert table.schema_revision > schema
    assert next(c for c in table.parameter_columns if c.field == "p:a").numeric is False
    assert table.data()["p:a"][-1] == "auto"
    assert [table.trial_ids[i] for i in table.matching("model=rf")] == [6]
    assert [table.trial_ids[i] for i in table.matching("FAILED")] == [3]
