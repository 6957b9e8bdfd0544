"""Start and stop the submission server (aiosmtpd Controller) and the relay worker.

`casella mailserver` runs both alone; `casella serve` can run them with the ingest daemon
through `MailService(settings, db).start()` / `.stop()`.

TLS: with CASELLA_SMTP_TLS_CERT/KEY the server offers STARTTLS and refuses AUTH before it
(auth_require_tls); with CASELLA_SMTP_IMPLICIT_TLS the whole connection is TLS (port 465
style). Without a certificate AUTH is accepted in clear text: only acceptable on loopback
(the default listen address) and in tests.

aiosmtpd logs every SMTP command and reply at INFO on its `mail.log` logger: one line per
command, several per message, on the event loop. It is set to WARNING unless the process
logs at DEBUG (`casella -v`, CASELLA_LOG_LEVEL=DEBUG) or something set its level already;
Casella's own lines (queued, AUTH failed) stay at INFO.
"""

from __future__ import annotations

import logging
import socket
import ssl
import threading

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP

from casella.blobs import BlobStore
from casella.db import Database
from casella.pipeline import build_stages
from casella.settings import Settings
from mailserver.errors import MailserverConfigError
from mailserver.handler import Authenticator, SubmissionHandler, SubmissionSMTP
from mailserver.relay import RelayWorker

log = logging.getLogger(__name__)
SMTP_LOG = "mail.log"  # aiosmtpd's logger


def parse_listen(value: str) -> tuple[str, int]:
    """"127.0.0.1:8587", "[::1]:8587" or ":8587" (every address) → (host, port)."""
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise MailserverConfigError(f"CASELLA_SMTP_LISTEN must be host:port, got {value!r}")
    return host.strip("[]"), int(port)


def tls_context(settings: Settings) -> ssl.SSLContext | None:
    if settings.smtp_tls_cert is None:
        if settings.smtp_implicit_tls:
            raise MailserverConfigError("CASELLA_SMTP_IMPLICIT_TLS needs CASELLA_SMTP_TLS_CERT and CASELLA_SMTP_TLS_KEY")
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(str(settings.smtp_tls_cert),
                                str(settings.smtp_tls_key) if settings.smtp_tls_key else None)
    except (OSError, ssl.SSLError) as exc:
        raise MailserverConfigError(f"cannot load CASELLA_SMTP_TLS_CERT/KEY: {exc}") from None
    return context


class SubmissionController(Controller):
    """aiosmtpd's Controller serving `SubmissionSMTP` (AUTH checked off the event loop)."""

    def factory(self) -> SMTP:
        return SubmissionSMTP(self.handler, **self.SMTP_kwargs)


def quiet_smtp_log(settings: Settings) -> None:
    """aiosmtpd's per-command INFO lines off, unless DEBUG logging is wanted or its level was set."""
    smtp_log = logging.getLogger(SMTP_LOG)
    if smtp_log.level == logging.NOTSET and settings.log_level != "DEBUG" \
            and not logging.getLogger().isEnabledFor(logging.DEBUG):
        smtp_log.setLevel(logging.WARNING)


class SubmissionServer:
    """The SMTP submission listener; `port` is the bound port (useful with port 0)."""

    def __init__(self, settings: Settings, db: Database, *, on_queued: threading.Event | None = None) -> None:
        self.settings = settings
        host, port = parse_listen(settings.smtp_listen)
        if port == 0:  # aiosmtpd needs a concrete port: pick a free one
            with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
                s.bind((host or "127.0.0.1", 0))
                port = s.getsockname()[1]
        self.host, self.port = host, port
        context = tls_context(settings)
        implicit = settings.smtp_implicit_tls and context is not None
        handler = SubmissionHandler(db, BlobStore(settings.blob_dir), build_stages(settings),
                                    hostname=socket.getfqdn(), on_queued=on_queued.set if on_queued else None)
        quiet_smtp_log(settings)
        self.controller = SubmissionController(
            handler, hostname=host or None, port=port,
            ssl_context=context if implicit else None,
            # SMTP parameters
            authenticator=Authenticator(db), auth_required=True,
            auth_require_tls=context is not None and not implicit,
            tls_context=context if not implicit else None,
            require_starttls=False, data_size_limit=settings.smtp_max_size, decode_data=False,
            ident="Casella ESMTP submission")

    def start(self) -> SubmissionServer:
        self.controller.start()
        log.info("SMTP submission listening on %s:%d", self.host, self.port)
        return self

    def stop(self) -> None:
        self.controller.stop()


class MailService:
    """The submission server plus one relay worker thread, started and stopped together."""

    def __init__(self, settings: Settings, db: Database) -> None:
        self.wake = threading.Event()
        self.stopping = threading.Event()
        self.server = SubmissionServer(settings, db, on_queued=self.wake)
        self.worker = RelayWorker(settings, db)
        self.thread = threading.Thread(target=self.worker.run_forever, args=(self.stopping, self.wake),
                                       name="casella-relay", daemon=True)

    def start(self) -> MailService:
        self.server.start()
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.stop()
        self.stopping.set()
        self.wake.set()
        self.thread.join(timeout=self.worker.timeout + 5)
