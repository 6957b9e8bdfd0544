"""Serving the webmail: uvicorn in a thread of `casella serve`, or alone (`casella webmail`)."""

from __future__ import annotations

import gc
import logging
import threading
import time
from typing import Any

import uvicorn

from casella.db import Database
from casella.errors import CasellaError
from casella.settings import Settings, get_settings
from webmail.app import create_app

log = logging.getLogger(__name__)


class WebmailError(CasellaError):
    """The webmail could not start (address in use, bad CASELLA_WEB_LISTEN)."""


def split_listen(listen: str) -> tuple[str, int]:
    host, _, port = listen.rpartition(":")
    if not host or not port.isdigit():
        raise WebmailError(f"CASELLA_WEB_LISTEN must be HOST:PORT, got {listen!r}")
    return host.strip("[]"), int(port)


def settle(app: Any) -> None:
    """Before serving: compile every template, then move all that start-up made (modules,
    models, templates, caches) out of the garbage collector's sight. Its full collections
    then walk the objects of the requests only, instead of pausing a request for ~100 ms
    every couple of seconds (measured with bench/webmail.py)."""
    templates = app.state.casella.templates
    for name in templates.list_templates(extensions=["html"]):
        templates.get_template(name)
    gc.collect()
    gc.freeze()


def make_app() -> Any:
    """The application of one worker process of `casella webmail --workers N` (uvicorn
    imports this factory in each process; settings come from the environment)."""
    settings = get_settings()
    app = create_app(settings, Database.from_settings(settings, migrate=False))
    settle(app)
    return app


def serve_workers(settings: Settings, workers: int) -> None:
    """Run the webmail in `workers` processes sharing one socket, until SIGINT/SIGTERM.
    Each process has its own folder-count cache; presence is shared (webmail/presence.py)."""
    host, port = split_listen(settings.web_listen)
    Database.from_settings(settings).dispose()  # migrations once, before the workers start
    uvicorn.run("webmail.server:make_app", factory=True, host=host, port=port, workers=workers,
                log_level="warning", access_log=False, proxy_headers=False, lifespan="off")


class _Server(uvicorn.Server):
    def install_signal_handlers(self) -> None:  # the caller owns the signals
        pass


class WebServer:
    def __init__(self, settings: Settings, db: Database) -> None:
        self.host, self.port = split_listen(settings.web_listen)
        app = create_app(settings, db)
        config = uvicorn.Config(app, host=self.host, port=self.port, log_level="warning",
                                access_log=False, proxy_headers=False, lifespan="off")
        self.server = _Server(config)
        self.app = app
        self.thread = threading.Thread(target=self.server.run, name="webmail", daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 20.0, *, settle_heap: bool = False) -> WebServer:
        """Serve in a thread; `settle_heap` for a long-running server (see `settle`)."""
        if settle_heap:
            settle(self.app)
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self.thread.is_alive():
                raise WebmailError(f"the webmail could not listen on {self.host}:{self.port} "
                                   "(in use? set CASELLA_WEB_LISTEN)")
            if time.monotonic() > deadline:
                raise WebmailError(f"the webmail did not start within {timeout:.0f} s")
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
