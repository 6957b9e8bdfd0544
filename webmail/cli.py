"""`casella webmail`: serve the webmail alone (`casella serve` runs it with everything else)."""

from __future__ import annotations

import threading

import click

from casella.db import Database
from casella.errors import CasellaError
from casella.settings import get_settings


@click.command("webmail")
def webmail_cmd() -> None:
    """Serve the webmail (CASELLA_WEB_LISTEN, default 127.0.0.1:8025) until Ctrl-C."""
    import signal

    from webmail.server import WebServer

    settings = get_settings()
    try:
        server = WebServer(settings, Database.from_settings(settings)).start()
    except CasellaError as exc:
        raise click.ClickException(str(exc)) from None
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    click.echo(f"webmail on {server.url}; Ctrl-C stops it.")
    stop.wait()
    server.stop()


COMMANDS = [webmail_cmd]
