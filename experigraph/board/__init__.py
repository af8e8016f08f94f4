"""The Bokeh dashboard of an experiment's trials (read only).

``ex.start_dashboard()`` and ``experigraph board EXPERIMENT`` call
:func:`start_dashboard`. The server runs on its own thread and event loop, so
the dashboard keeps refreshing while a notebook cell or a script runs trials;
``blocking`` only decides whether the call waits for it to be stopped.

It binds to 127.0.0.1 unless ``address`` says otherwise, and Bokeh's websocket
origin check stays on: only pages served from the address and port it listens
on may open a session.

Pages: ``/`` is the experiment's board (``/?experiment=ID``: another experiment
of the same store); ``/?view=experiments`` lists the store's experiments
(:mod:`experigraph.board.overview`), and is ``/`` when started without an
experiment (``experigraph board`` with no id). Each experiment's trials are read
once per server (:class:`~experigraph.board.app.BoardState`): the first
``FIRST_READ`` before serving (another experiment's: at its first page), the
rest in chunks between requests, from when a page shows its table.
"""
from __future__ import annotations

import asyncio
import html
import logging
import socket
import sys
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .._compat import import_optional, is_interactive

if TYPE_CHECKING:
    from ..experiment import Store
    from ..experiment import Experiment
    from .app import BoardState

logger = logging.getLogger(__name__)

#: seconds after an experiment's first records are read before the rest of a long history
#: is read, unless a page shows its table sooner (then at once)
READ_ON_AFTER_S = 1.0

#: the port a dashboard serves on unless told otherwise
DEFAULT_PORT = 5000

#: where a board links to the overview of its store's experiments
OVERVIEW_URL = "/?view=experiments"
LOOPBACK = {"127.0.0.1", "localhost", "::1"}
ALL_INTERFACES = {"0.0.0.0", "::", ""}

#: what Bokeh logs for each message it could not send to a page that was just closed
CLOSED_PAGE_WARNING = "Failed sending message as connection was closed"


class _ClosedPageFilter(logging.Filter):
    """Drop Bokeh's warning for a message sent to a page closed a moment before.

    The server learns of the close only between callbacks, so a refresh running
    then sends its dozens of messages to the closed page, each logged as a warning
    (49 lines for one tab closed while a 10,000-trial board loads). Nothing is
    lost: the page is gone, and Bokeh drops the session once it sees the close.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() != CLOSED_PAGE_WARNING


def _quiet_closed_pages() -> None:
    ws_logger = logging.getLogger("bokeh.server.views.ws")
    if not any(isinstance(f, _ClosedPageFilter) for f in ws_logger.filters):
        ws_logger.addFilter(_ClosedPageFilter())


class Dashboard:
    """A running dashboard server; :meth:`stop` stops it.

    Attributes
    ----------
    url : str
        Where to open it, e.g. ``http://127.0.0.1:5000/``.
    address, port :
        What the server listens on.
    """

    def __init__(self, experiment: Experiment | None, *, port: int, address: str,
                 refresh_ms: int, server_kwargs: dict[str, Any], store: Store | None = None,
                 archived: bool = False, sockets: Sequence[socket.socket] | None = None) -> None:
        self.experiment = experiment
        self._sockets = sockets
        self._archived = archived
        self.store = store if store is not None else experiment.store  # type: ignore
        self._states: dict[str, BoardState] = {}
        self.address = address
        self.port = port
        self._refresh_ms = refresh_ms
        self._server_kwargs = server_kwargs
        self._server: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ioloop: Any = None  # Tornado's loop of the server thread
        self._states_lock = threading.RLock()
        self._ready = threading.Event()
        self._stopped = threading.Event()
        self._error: BaseException | None = None
        self._store_overview: Any = None
        self._thread = threading.Thread(target=self._run, name=f"experigraph-board-{port}",
                                        daemon=True)

    @property
    def url(self) -> str:
        return url_of(self.address, self.port)

    @property
    def is_running(self) -> bool:
        return self._ready.is_set() and not self._stopped.is_set() and self._error is None

    @property
    def _what(self) -> str:
        return repr(self.experiment.id) if self.experiment is not None else \
            f"the experiments in {self.store.uri}"

    def __repr__(self) -> str:
        state = "running" if self.is_running else "stopped"
        return f"<experigraph Dashboard of {self._what} at {self.url} ({state})>"

    def _repr_html_(self) -> str:
        return (f"experigraph dashboard of <b>{html.escape(self._what)}</b>: "
                f"<a href='{self.url}' target='_blank'>{self.url}</a>")

    # -- what each page shows ---------------------------------------------------------
    def state(self, experiment_id: str) -> BoardState:
        """The shared state of one experiment's board, made (and its reading started) once.

        Any thread may ask; the rest of a long history is read on the server's loop.
        """
        with self._states_lock:
            return self._state(experiment_id)

    def _state(self, experiment_id: str) -> BoardState:
        state = self._states.get(experiment_id)
        if state is None:
            from .app import FIRST_READ, BoardState

            if self.experiment is not None and experiment_id == self.experiment.id:
                ex = self.experiment
            else:
                ex = self.store.open(experiment_id, must_exist=False)
            state = self._states[experiment_id] = BoardState(
                ex, refresh_ms=self._refresh_ms, overview_url=OVERVIEW_URL,
                archived=self._archived)
            state.refresh(force=True, limit=FIRST_READ)  # enough for the first page
            if state.table.is_behind:
                state.loading = True
                self._read_on(state)
        return state

    def _read_on(self, state: BoardState) -> None:
        """Read the rest of a long history in chunks, serving pages in between (on the
        server's loop, whichever thread made the state; ``add_callback`` is the one
        thread-safe call of Tornado's loop)."""
        loop = self._ioloop
        if loop is None:  # no server loop yet: the sessions' own refreshes read on
            state.loading = False
            return
        started = False

        def step() -> None:
            if state.load_in_chunks():
                loop.add_callback(step)

        def start() -> None:
            nonlocal started
            if not started:
                started = True
                step()

        # the first page is served from what is read already: reading the rest starts
        # once a page shows its table (or a moment later without one), so that the first
        # page is not held up between chunks
        state.on_page_ready = lambda: loop.add_callback(start)
        loop.add_callback(lambda: loop.call_later(READ_ON_AFTER_S, start))

    def _overview(self) -> Any:
        from .overview import StoreOverview

        if self._store_overview is None:
            self._store_overview = StoreOverview(self.store.experiment_ids, self.state,
                                                 self.store.uri, refresh_ms=self._refresh_ms)
        return self._store_overview

    def _make_document(self, doc: Any) -> None:
        """``/``: the experiment's board (``?experiment=ID``: another's); the store's
        experiments at ``?view=experiments``, or at ``/`` when started without one."""
        context = doc.session_context
        args = getattr(getattr(context, "request", None), "arguments", None) or {}
        wanted = _argument(args, "experiment")
        if _argument(args, "view") == "experiments" or (wanted is None and
                                                          self.experiment is None):
            self._overview().make_document(doc)
            return
        experiment_id = wanted or self.experiment.id  # type: ignore[union-attr]
        if experiment_id not in self._states and experiment_id not in \
                self.store.experiment_ids():
            self._overview().make_document(doc, note=f"No experiment {experiment_id!r} in "
                                                     f"{self.store.uri}.")
            return
        try:
            self.state(experiment_id).make_document(doc)
        except Exception as exc:  # the page says why, instead of an HTTP error
            from bokeh.models.widgets import Div

            logger.warning("The dashboard page of %r failed: %s", experiment_id, exc,
                           exc_info=True)
            doc.clear()
            doc.add_root(Div(text=f"<b>The board of {html.escape(experiment_id)} failed:</b> "
                                  f"{html.escape(str(exc))}", css_classes=["eg-failed"]))

    # -- life cycle ---------------------------------------------------------------
    def _start(self) -> Dashboard:
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            raise self._error
        return self

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        try:
            from bokeh.application import Application
            from bokeh.application.handlers.function import FunctionHandler
            from bokeh.server.server import Server
            from tornado.ioloop import IOLoop

            self._ioloop = IOLoop.current()
            if self.experiment is not None:
                self.state(self.experiment.id)  # the first records, before the first page
            kwargs = dict(self._server_kwargs)
            kwargs.setdefault("allow_websocket_origin", websocket_origins(self.address,
                                                                          self.port))
            app = Application(FunctionHandler(self._make_document))
            if self._sockets is not None:
                self._server = _server_on(self._sockets, app, address=self.address,
                                          port=self.port, **kwargs)
            else:
                self._server = Server({"/": app}, io_loop=IOLoop.current(), port=self.port,
                                      address=self.address, **kwargs)
            _trim_bundles(self._server)
            _quiet_closed_pages()
            self._server.start()
            self._loop = loop
        except BaseException as exc:  # reported to the caller of start_dashboard
            self._error = exc
            for sock in self._sockets or ():  # a page waiting on them is refused, not left
                sock.close()                  # hanging
            self._ready.set()
            loop.close()
            return
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()
            self._stopped.set()

    async def _shutdown(self) -> None:
        server = self._server
        server.stop(wait=False)  # sessions, callbacks and the listening sockets
        try:
            await asyncio.wait_for(server._http.close_all_connections(), timeout=2)
        except (asyncio.TimeoutError, AttributeError):
            pass
        asyncio.get_running_loop().stop()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop serving and free the port (idempotent)."""
        loop = self._loop
        if loop is None or self._stopped.is_set():
            return
        try:
            asyncio.run_coroutine_threadsafe(self._shutdown(), loop)
        except RuntimeError:  # the loop is already closed
            return
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout)
            if self._thread.is_alive():  # a callback still running: it stops after it
                logger.warning("The dashboard of %s at %s did not stop within %g s: its "
                               "server is still busy in a callback, and stops once that "
                               "returns", self._what, self.url, timeout)
                return
        logger.info("Stopped the dashboard of %s at %s", self._what, self.url)

    def wait(self) -> None:
        """Block until the dashboard is stopped (Ctrl-C stops it)."""
        try:
            while not self._stopped.wait(0.5):
                pass
        except KeyboardInterrupt:
            self.stop()

    def __enter__(self) -> Dashboard:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def start_dashboard(experiment: Experiment | None, port: int | None = None,
                    blocking: bool | None = None, address: str = "127.0.0.1", *,
                    refresh_ms: int = 1000, show: bool = False, store: Store | None = None,
                    archived: bool = False, sockets: Sequence[socket.socket] | None = None,
                    **server_kwargs: Any) -> Dashboard:
    """Serve the dashboard of ``experiment`` (read only), or of every experiment in ``store``.

    Parameters
    ----------
    experiment : Experiment or None
        What to show at ``/``; read through its public query methods only. The
        page ``/?view=experiments`` lists every experiment of its store, each
        opening its board (``/?experiment=ID``). ``None``: that list is at ``/``.
    port : int, optional
        TCP port; 0 picks a free one (see ``Dashboard.port``). Default: 5000, or the
        port of ``sockets``.
    blocking : bool, optional
        Wait until stopped (Ctrl-C). ``None``: wait when run from a script, return
        at once in Jupyter, IPython, an interactive interpreter or a running event loop.
    address : str
        Where to listen: ``127.0.0.1`` (this machine only) unless told otherwise,
        e.g. ``"0.0.0.0"`` for every interface.
    refresh_ms : int
        How often an open page looks for new or finished trials.
    show : bool
        Open the page in a web browser.
    **server_kwargs
        Passed to ``bokeh.server.server.Server`` (e.g. ``allow_websocket_origin``
        when the page is reached through another host name).
    store : Store, optional
        The store whose experiments are listed when ``experiment`` is None.
    archived : bool
        Show archived trials (``ex.archive``) too; by default they are hidden.
    sockets : sequence of socket.socket, optional
        Sockets already listening, from :func:`listen`: the dashboard serves them
        (``port`` must then be 0 or theirs, ``address`` the one they were bound to),
        and a page opened before it started is served once it has. With them,
        ``allow_websocket_origin`` is the one ``server_kwargs`` accepted. The
        caller keeps them; they are closed if the dashboard fails to start, and
        when it stops.

    Returns
    -------
    Dashboard
        ``.url``, ``.stop()``; once stopped when ``blocking``.
    """
    import_optional("bokeh", needed_for="The experigraph dashboard")
    if port is None:
        port = 0 if sockets is not None else DEFAULT_PORT
    check_port(port)
    if not isinstance(refresh_ms, int) or refresh_ms < 100:
        raise ValueError(f"refresh_ms must be an int of at least 100, got {refresh_ms!r}")
    if experiment is None and store is None:
        raise ValueError("start_dashboard needs an experiment, or a store for the overview")
    if sockets is not None:
        sockets = list(sockets)
        if not sockets:
            raise ValueError("sockets is empty: pass those listen() returned, or none")
        bound = int(sockets[0].getsockname()[1])
        if port not in (0, bound):
            raise ValueError(f"port {port} is not the port of the sockets given ({bound}): "
                             f"pass port=0 or port={bound}")
        port = bound
        host = str(sockets[0].getsockname()[0])
        if (host in ALL_INTERFACES) != (address in ALL_INTERFACES):
            raise ValueError(f"address {address!r} is not where the sockets given listen "
                             f"({host!r}): pass the address given to listen()")
        other = sorted(set(server_kwargs) - {"allow_websocket_origin"})
        if other:
            raise ValueError(f"with sockets=, the only server option accepted is "
                             f"allow_websocket_origin (got {', '.join(map(repr, other))}): "
                             f"they configure how Bokeh binds; pass them without sockets=")
    elif port == 0:
        port = free_port(address)
    dashboard = Dashboard(experiment, port=port, address=address, refresh_ms=refresh_ms,
                          server_kwargs=server_kwargs, store=store, archived=archived,
                          sockets=sockets)._start()
    logger.info("Dashboard of %s at %s", dashboard._what, dashboard.url)
    if show:
        import webbrowser

        webbrowser.open(dashboard.url)
    if blocking is None:
        blocking = not is_interactive(event_loop=True)
    if blocking:
        print(f"experigraph dashboard of {dashboard._what} at {dashboard.url} "
              "(Ctrl-C to stop)", flush=True)
        dashboard.wait()
    return dashboard


#: BokehJS bundles the board never uses (no TeX labels, no WebGL): 2 MB less to parse
UNUSED_BUNDLES = ("bokeh-mathjax", "bokeh-gl")


def _trim_bundles(server: Any) -> None:
    """Serve pages without the BokehJS bundles the board does not use.

    Bokeh's server loads every bundle because it cannot know in advance what a
    document will use; the board does (see UNUSED_BUNDLES).
    """
    app = getattr(server, "_tornado", None)
    resources = getattr(app, "resources", None)
    if app is None or resources is None:  # another Bokeh: keep its defaults
        return

    def trimmed(*args: Any, **kwargs: Any) -> Any:
        res = resources(*args, **kwargs)
        return res.clone(components=[c for c in res.components if c not in UNUSED_BUNDLES])

    app.resources = trimmed


def _argument(args: Any, name: str) -> str | None:
    """The first value of a page's query argument (Bokeh gives lists of bytes)."""
    values = args.get(name) or []
    if not values:
        return None
    value = values[0]
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)




def url_of(address: str, port: int) -> str:
    """Where to open a dashboard listening on ``address`` and ``port``."""
    host = "127.0.0.1" if address in ALL_INTERFACES else address
    host = f"[{host}]" if ":" in host else host
    return f"http://{host}:{port}/"


def check_port(port: Any) -> None:
    """Raise ValueError unless ``port`` is a TCP port number or 0 (any free port)."""
    if not isinstance(port, int) or isinstance(port, bool) or not 0 <= port < 65536:
        raise ValueError(f"port must be an int from 0 to 65535 (0: any free port), got {port!r}")


def listen(port: int = 5000, address: str = "127.0.0.1") -> list[socket.socket]:
    """Bind the dashboard's listening sockets now, before the dashboard is built.

    A page opened meanwhile waits, its connection queued by the kernel, and is
    served once :func:`start_dashboard` is given the sockets. ``experigraph
    board`` prints its URL this way before it imports Bokeh and reads the first
    trials, so that a browser opening the page does its own start meanwhile.

    Parameters
    ----------
    port : int
        TCP port; 0 picks a free one (``sockets[0].getsockname()[1]``).
    address : str
        Where to listen, as for :func:`start_dashboard`.

    Returns
    -------
    list of socket.socket
        One per address family bound; pass them to ``start_dashboard(sockets=...)``.

    Raises
    ------
    OSError
        The port is taken, or the address is not this machine's.
    """
    check_port(port)
    from tornado.netutil import bind_sockets

    return bind_sockets(port, address)


def _server_on(sockets: Sequence[socket.socket], app: Any, *, address: str, port: int,
               allow_websocket_origin: str | Sequence[str] | None = None) -> Any:
    """A Bokeh server on sockets already listening, as ``bokeh.server.server.Server``
    would build it on the sockets it binds (Bokeh's ``BaseServer``, for this case)."""
    from bokeh.resources import server_url
    from bokeh.server.server import BaseServer
    from bokeh.server.tornado import BokehTornado
    from bokeh.server.util import create_hosts_allowlist
    from tornado.httpserver import HTTPServer
    from tornado.ioloop import IOLoop

    origins = [allow_websocket_origin] if isinstance(allow_websocket_origin, str) else \
        list(allow_websocket_origin or ())
    tornado_app = BokehTornado({"/": app}, absolute_url=server_url(address, port),
                               extra_websocket_origins=create_hosts_allowlist(origins, port))
    http_server = HTTPServer(tornado_app, xheaders=False)
    http_server.add_sockets(sockets)
    return BaseServer(IOLoop.current(), tornado_app, http_server)


def import_bokeh_to_serve() -> None:
    """Import Bokeh's server and models for a process that only serves dashboards.

    When ``bokeh.models`` is imported, Bokeh builds a call signature for each of
    its ~450 model classes (``inspect.signature``, for help and editors), about
    40% of the import. ``experigraph board`` serves the board and runs no code of
    its user's, so nothing in it asks for those signatures: it imports Bokeh
    with that step skipped (its model classes then have the signature
    ``(**kwargs)``), and puts Bokeh's method back at once. Bokeh is imported as it
    is when it is already imported, or when it is not the Bokeh this expects.
    ``start_dashboard`` in a user's own process never calls this.
    """
    if "bokeh.models" in sys.modules:
        return
    try:
        from bokeh.model import model as bokeh_model

        saved = bokeh_model.Model.__dict__["parameters"]
    except (ImportError, AttributeError, KeyError):  # another Bokeh: import it as it is
        return
    import inspect

    any_keywords = [(inspect.Parameter("kwargs", inspect.Parameter.VAR_KEYWORD), "", "")]
    bokeh_model.Model.parameters = classmethod(  # type: ignore[assignment]
        lambda cls: any_keywords)
    try:
        import bokeh.document  # noqa: F401  (it imports bokeh.models)
        import bokeh.models  # noqa: F401
        import bokeh.server.server  # noqa: F401
    finally:
        bokeh_model.Model.parameters = saved  # type: ignore[method-assign]


def free_port(address: str = "127.0.0.1") -> int:
    """A TCP port that is free on ``address`` right now."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind((address if address not in ALL_INTERFACES else "", 0))
        return int(s.getsockname()[1])


def websocket_origins(address: str, port: int) -> list[str]:
    """The ``host:port`` origins a page may come from: the served address only.

    For ``0.0.0.0`` (every interface) these are the host's name and addresses;
    pass ``allow_websocket_origin=[...]`` to name others (e.g. behind a proxy).
    """
    if address in LOOPBACK:
        hosts: Sequence[str] = ["localhost", "127.0.0.1"]
    elif address in ALL_INTERFACES:
        names = {"localhost", "127.0.0.1", socket.gethostname(), socket.getfqdn()}
        try:
            names.update(str(info[4][0]) for info in socket.getaddrinfo(socket.gethostname(),
                                                                         None, socket.AF_INET))
        except OSError:
            pass
        names.add(_primary_address())
        hosts = sorted(n for n in names if n)
    else:
        hosts = [address]
    return [f"{h}:{port}" for h in hosts]


def _primary_address() -> str:
    """This machine's address on its default route ('' if none); sends nothing."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("10.255.255.255", 1))
            return str(s.getsockname()[0])
        except OSError:
            return ""


__all__ = ["Dashboard", "listen", "start_dashboard"]
