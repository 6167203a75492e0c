"""`fbp-search dashboard RESULTS`: optuna-dashboard on a study's Optuna journal, read-only.

    fbp-search dashboard results/quickstart [--port 8080] [--host 127.0.0.1]
      -> optuna-dashboard of results/quickstart: http://127.0.0.1:8080/dashboard/

The dashboard reads RESULTS/optuna.journal, the file the driver writes, so it works while the
study runs and after. Each trial's user attributes lead to its rows and files: `tune_trial_id`
(the `trial_id` of its Parquet rows), `log` and `models` (search.searcher sets them).

It listens on the loopback address unless `--host` says otherwise: the dashboard has no login.
It is read-only: the journal is the study's record, which the driver alone writes (a trial told
or a study deleted from the browser would disagree with the Parquet tables, and `resume` would
follow the journal), so every request but GET and HEAD is refused. optuna-dashboard is an
optional extra (`pip install optuna-dashboard`, or `pip install -e ".[dashboard]"`).
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
from pathlib import Path
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from rich.text import Text

from fbp.errors import InputError
from search.console import command_console

LOOPBACK = "127.0.0.1"
PORT = 8080  # optuna-dashboard's own default
READS = ("GET", "HEAD")


def register(commands: argparse._SubParsersAction) -> None:
    dashboard = commands.add_parser("dashboard", help="serve optuna-dashboard on a study's Optuna journal, read-only (needs the dashboard extra)")
    dashboard.add_argument("results", type=Path, help="a study's results directory, e.g. results/quickstart")
    dashboard.add_argument("--port", type=_port, default=PORT, help="port to listen on (default %(default)s; 0: a free one)")
    dashboard.add_argument("--host", default=LOOPBACK, help="address to listen on (default %(default)s, this machine only: the dashboard has no login)")
    dashboard.set_defaults(run=dashboard_command)


def dashboard_command(args: argparse.Namespace) -> int:
    """Serve until Ctrl-C (the command line's interrupt: exit code 130)."""
    server = serve(args.results, args.host, args.port)
    try:
        command_console().print(Text(f"optuna-dashboard of {args.results}: {url(server)}  (read-only; Ctrl-C stops it)"))
        sys.stdout.flush()  # the address is what a script waiting on a pipe reads first
        server.serve_forever()
    finally:
        server.server_close()
    return 0


def _port(text: str) -> int:
    if not text.isdigit() or int(text) > 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port (0 to 65535)")
    return int(text)


def serve(results: Path, host: str = LOOPBACK, port: int = PORT) -> WSGIServer:
    """A server of optuna-dashboard on the results' journal, bound and not yet serving: the
    caller runs `serve_forever()` (in a thread, if it likes) and ends it with `shutdown()`.

    Raises:
        InputError: optuna-dashboard is not installed; `results` is no results directory or has
            no readable journal; the address cannot be listened on.
    """
    try:
        import optuna_dashboard
    except ImportError:
        raise InputError('fbp-search dashboard needs optuna-dashboard: pip install optuna-dashboard (in a checkout: pip install -e ".[dashboard]")') from None
    app = read_only(optuna_dashboard.wsgi(journal_storage(results)), loopback=host in LOCAL_NAMES)
    server_class = _ThreadingServer6 if ":" in host else _ThreadingServer
    try:
        return make_server(host, port, app, server_class=server_class, handler_class=_QuietHandler)
    except OSError as e:
        raise InputError(f"--host {host} --port {port}: cannot listen there ({e.strerror or e}); --port 0 picks a free port") from None


def journal_storage(results: Path):
    """The Optuna storage of a results directory's journal, checked to be there and whole first
    (Optuna's file backend would create a missing file, and stop at a damaged line)."""
    from search.journal import describe_damage
    from search.results import ResultsDir

    if not results.exists():
        raise InputError(f"results directory not found: {results}")
    if not results.is_dir():
        raise InputError(f"not a directory: {results} (give a study's results directory, e.g. results/<study>)")
    directory = ResultsDir(results)
    journal = directory / directory.JOURNAL
    if not journal.is_file():
        what = "a study that has not started" if (directory / directory.STUDY).is_file() else "not a results directory of fbp-search run"
        raise InputError(f"{results}: no {directory.JOURNAL} ({what}; fbp-search train writes no Optuna study)")
    try:
        damage = describe_damage(str(journal))
    except OSError as e:
        raise InputError(f"{journal}: cannot be read ({e.strerror or e})") from None
    if damage is not None:
        raise InputError(f"{damage}; fbp-search resume {results} rebuilds it from the Parquet tables")
    return directory.journal()


def read_only(app, loopback: bool = True):
    """The WSGI app, answering 405 to every method but GET and HEAD, and, served on loopback,
    403 to a request whose Host is not this machine's own name: a web page that rebinds its
    domain name to 127.0.0.1 (DNS rebinding) would otherwise read the study from the user's
    browser while the dashboard runs."""
    def guarded(environ, start_response):
        if loopback and _host_name(environ.get("HTTP_HOST", "")) not in LOCAL_NAMES:
            return _refuse(start_response, "403 Forbidden", "served on loopback: ask it as localhost or 127.0.0.1")
        if environ.get("REQUEST_METHOD", "GET") in READS:
            return app(environ, start_response)
        return _refuse(start_response, "405 Method Not Allowed", "read-only: fbp-search dashboard shows the study; its driver alone writes the journal", [("Allow", ", ".join(READS))])

    return guarded


LOCAL_NAMES = ("127.0.0.1", "localhost", "::1")
"""This machine's names: the loopback hosts it may be served on, and the Host it then answers."""


def _host_name(host: str) -> str:
    """`127.0.0.1:8080` -> `127.0.0.1`, `[::1]:8080` -> `::1`."""
    host = host.strip().lower()
    return host[1:].split("]")[0] if host.startswith("[") else host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def _refuse(start_response, status: str, reason: str, headers: list | None = None):
    body = json.dumps({"reason": reason}).encode()
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(body))), *(headers or [])])
    return [body]


def url(server: WSGIServer) -> str:
    """The dashboard's address, with the port the server got (`--port 0` asks for any free one)."""
    host, port = server.server_address[:2]
    return f"http://{f'[{host}]' if ':' in host else host}:{port}/dashboard/"


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    """One thread per request: the dashboard's page fetches several APIs at once."""

    daemon_threads = True


class _ThreadingServer6(_ThreadingServer):
    address_family = socket.AF_INET6


class _QuietHandler(WSGIRequestHandler):
    """No line on stderr for every request."""

    def log_message(self, format, *args):
        pass
