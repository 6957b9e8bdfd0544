"""`casella webmail`: serve the webmail alone (`casella serve` runs it with everything else)."""

from __future__ import annotations

import threading

import click

from casella.db import Database
from casella.errors import CasellaError
from casella.settings import get_settings


@click.command("webmail")
@click.option("--workers", type=click.IntRange(1, 64), default=1, show_default=True,
              help="Processes serving requests (e.g. one per core); 1 serves from this process.")
def webmail_cmd(workers: int) -> None:
    """Serve the webmail (CASELLA_WEB_LISTEN, default 127.0.0.1:8025) until Ctrl-C."""
    import signal

    from webmail.server import WebServer, serve_workers

    settings = get_settings()
    if workers > 1:
        click.echo(f"webmail on http://{settings.web_listen} with {workers} worker processes; Ctrl-C stops it.")
        serve_workers(settings, workers)
        return
    try:
        server = WebServer(settings, Database.from_settings(settings)).start(settle_heap=True)
    except CasellaError as exc:
        raise click.ClickException(str(exc)) from None
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    click.echo(f"webmail on {server.url}; Ctrl-C stops it.")
    stop.wait()
    server.stop()


COMMANDS = [webmail_cmd]
