"""`SmtpSink`: a real SMTP server (aiosmtpd Controller on 127.0.0.1, a free port) that the
tests tell to accept, defer (451), refuse (550) or hang in DATA until released.

Only messages it answered 250 to are in `messages`; `connections` counts EHLO/HELO."""

from __future__ import annotations

import asyncio
import socket
import threading
from dataclasses import dataclass, field

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

MODES = ("accept", "defer", "refuse", "hang")


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes


@dataclass
class SinkHandler:
    mode: str = "accept"
    messages: list[Received] = field(default_factory=list)
    connections: int = 0
    in_data: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)

    async def handle_EHLO(self, server: SMTP, session: Session, envelope: Envelope, hostname: str,
                          responses: list[str]) -> list[str]:
        self.connections += 1
        session.host_name = hostname
        return responses

    async def handle_HELO(self, server: SMTP, session: Session, envelope: Envelope, hostname: str) -> str:
        self.connections += 1
        session.host_name = hostname
        return f"250 {server.hostname}"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.mode == "defer":
            return "451 4.3.0 Try again later (test sink)"
        if self.mode == "refuse":
            return "550 5.7.1 Refused by the test sink"
        if self.mode == "hang":
            self.in_data.set()
            while not self.release.is_set():
                await asyncio.sleep(0.05)
            return "451 4.3.0 Aborted (test sink)"
        self.messages.append(Received(envelope.mail_from or "", list(envelope.rcpt_tos),
                                      envelope.original_content or b""))
        return "250 2.0.0 OK (test sink)"


class SmtpSink:
    def __init__(self, mode: str = "accept") -> None:
        assert mode in MODES
        self.handler = SinkHandler(mode=mode)
        self.port = free_port()
        self.controller = Controller(self.handler, hostname="127.0.0.1", port=self.port, decode_data=False)

    @property
    def messages(self) -> list[Received]:
        return self.handler.messages

    @property
    def connections(self) -> int:
        return self.handler.connections

    def set_mode(self, mode: str) -> None:
        assert mode in MODES
        self.handler.mode = mode

    def start(self) -> SmtpSink:
        self.controller.start()
        return self

    def stop(self) -> None:
        self.handler.release.set()
        self.controller.stop()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
