"""How the dashboard starts serving: ``experigraph board`` binds its port and prints its
URL first, then imports Bokeh and reads the first trials; a page opened meanwhile is
served once the board is up. No browser: the page is fetched over HTTP."""
from __future__ import annotations

import re
import signal
import socket
import subprocess
import sys
import textwrap
import time
import urllib.request

import pytest
from click.testing import CliRunner

import experigraph.board
from experigraph.board import listen, start_dashboard
from experigraph.cli import OWN_PROCESS, main
from xg_testing import python_env

pytest.importorskip("bokeh")
pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def recorded(quickstart):
    """The quickstart experiment with one trial."""
    ex = quickstart[0]
    ex.set_parameters(a=1, b=2).compute()
    return ex


def ask_for_page(port: int) -> socket.socket:
    """A connection to ``port`` that has sent ``GET /`` (the answer is read later)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=60)
    sock.sendall(f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
                 .encode())
    return sock


def answer(sock: socket.socket) -> str:
    """Everything the server sends back on ``sock``, until it closes the connection."""
    with sock:
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks).decode("utf-8", "replace")


def test_a_page_requested_before_the_dashboard_started_is_served_once_it_has(recorded):
    sockets = listen(0)
    port = sockets[0].getsockname()[1]
    early = ask_for_page(port)  # its connection is queued by the kernel
    board = start_dashboard(recorded, port=0, blocking=False, sockets=sockets)
    try:
        assert board.port == port and board.url == f"http://127.0.0.1:{port}/"
        page = answer(early)
        assert page.startswith("HTTP/1.1 200"), page[:200]
        assert f"experigraph \u00b7 {recorded.id}" in page  # the board's page title
        assert "bokeh-tables" in page and "bokeh-mathjax" not in page  # trimmed bundles
        assert answer(ask_for_page(port)).startswith("HTTP/1.1 200")  # later pages as usual
    finally:
        early.close()
        board.stop()
    with pytest.raises(OSError):  # stopped: nothing listens there any more
        socket.create_connection(("127.0.0.1", port), timeout=5).close()


@pytest.mark.parametrize("kwargs, message", [
    (dict(port=1), r"port 1 is not the port of the sockets given \(\d+\): pass port=0 or"),
    (dict(port=0, num_procs=2), r"only server option accepted is allow_websocket_origin "
                        r"\(got 'num_procs'\)"),
])
def test_start_dashboard_on_sockets_refuses_what_it_cannot_honour(recorded, kwargs, message):
    sockets = listen(0)
    port = sockets[0].getsockname()[1]
    try:
        with pytest.raises(ValueError, match=message):
            start_dashboard(recorded, blocking=False, sockets=sockets, **kwargs)
        with pytest.raises(ValueError, match="sockets is empty"):
            start_dashboard(recorded, blocking=False, sockets=[])
        # nothing was started: the port is still only the caller's
        probe = socket.create_connection(("127.0.0.1", port), timeout=5)  # backlog only
        probe.close()
    finally:
        for sock in sockets:
            sock.close()


def test_board_command_prints_its_url_then_serves_a_page_opened_at_once(recorded,
                                                                       backend_root):
    proc = subprocess.Popen(
        [sys.executable, "-m", "experigraph.cli", "board", recorded.id, "--port", "0",
         "--backend", str(backend_root)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=dict(python_env(), EXPERIGRAPH_LOG_LEVEL="WARNING"))
    try:
        line = proc.stdout.readline()
        found = re.search(r"of '(.+)' at http://127\.0\.0\.1:(\d+)/ \(Ctrl-C to stop\)", line)
        assert found, f"no URL in {line!r}"
        assert found.group(1) == recorded.id
        with urllib.request.urlopen(f"http://127.0.0.1:{found.group(2)}/", timeout=60) as r:
            page = r.read().decode()
        assert f"experigraph \u00b7 {recorded.id}" in page
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "Traceback" not in err


def test_board_command_on_a_taken_port_says_so_and_prints_no_url(recorded, backend_root):
    taken = listen(0)
    port = taken[0].getsockname()[1]
    try:
        result = CliRunner().invoke(main, ["board", recorded.id, "--port", str(port),
                                           "--backend", str(backend_root)])
    finally:
        for sock in taken:
            sock.close()
    assert result.exit_code == 1
    assert f"Cannot serve the dashboard on 127.0.0.1:{port}" in result.output
    assert "http://" not in result.output and "Traceback" not in result.output


BOKEH_SIGNATURES = textwrap.dedent("""
    import inspect, sys
    if sys.argv[1] == "to-serve":
        from experigraph.board import import_bokeh_to_serve
        import_bokeh_to_serve()
    import bokeh.models
    from bokeh.document import Document
    from bokeh.model import model
    print(str(inspect.signature(bokeh.models.DataTable.__init__)).replace(" ", ""))
    print(model.Model.__dict__["parameters"].__func__.__qualname__)
    class Later(bokeh.models.Div):  # defined afterwards: Bokeh's own step runs again
        pass
    print(model.Model.parameters.__func__ is model.Model.__dict__["parameters"].__func__)
    doc = Document()
    doc.add_root(bokeh.models.DataTable(source=bokeh.models.ColumnDataSource({"a": [1]}),
                 columns=[bokeh.models.TableColumn(field="a")]))
    print(len(doc.to_json().content["roots"]))  # the models still serialize
""")


def test_bokeh_imported_to_serve_skips_model_signatures_and_restores_bokeh():
    def run(mode: str) -> list[str]:
        done = subprocess.run([sys.executable, "-c", BOKEH_SIGNATURES, mode],
                              capture_output=True, text=True, env=python_env(), timeout=60)
        assert done.returncode == 0, done.stderr
        return done.stdout.split()

    as_is, to_serve = run("as-is"), run("to-serve")
    assert "source=" in as_is[0] and "columns=" in as_is[0]  # Bokeh's own import builds them
    assert to_serve[0] == "(**kwargs)"  # the board's process skips them
    for out in (as_is, to_serve):
        assert out[1:] == ["Model.parameters", "True", "1"]  # Bokeh's method is back


def test_only_the_programs_own_process_imports_bokeh_to_serve(recorded, backend_root,
                                                              monkeypatch):
    calls = []
    monkeypatch.setattr(experigraph.board, "import_bokeh_to_serve", lambda: calls.append(1))

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt  # Ctrl-C as soon as the board would start

    monkeypatch.setattr(experigraph.board, "start_dashboard", interrupted)
    args = ["board", recorded.id, "--port", "0", "--backend", str(backend_root)]
    inside = CliRunner().invoke(main, args)  # main inside another program (a notebook)
    assert inside.exit_code == 0 and "Dashboard stopped." in inside.output
    assert calls == []
    own = CliRunner().invoke(main, args, obj={OWN_PROCESS: True})  # as console_main runs it
    assert own.exit_code == 0 and calls == [1]


def test_a_long_history_asked_for_from_another_thread_is_read_on(recorded, make_experiment,
                                                                 monkeypatch):
    from experigraph.board import app

    other = make_experiment(id=f"{recorded.id}_other")
    x = other.parameter("x")

    @other.result
    def triple(x):
        return 3 * x

    triple(x)
    other.sweep(x=list(range(12)), progress=False, scheduler="sync")
    monkeypatch.setattr(app, "FIRST_READ", 2)
    monkeypatch.setattr(app, "READ_CHUNK", 4)
    monkeypatch.setattr(experigraph.board, "READ_ON_AFTER_S", 0.1)  # no page opens
    board = start_dashboard(recorded, port=0, blocking=False)
    try:
        state = board.state(other.id)  # this thread, not the server's
        assert state.table.is_behind  # 2 of 12 read so far
        deadline = time.monotonic() + 30
        while state.table.is_behind or state.loading:
            assert time.monotonic() < deadline, "the rest was never read"
            time.sleep(0.05)
        assert len(state.table) == 12
    finally:
        board.stop()
