"""Crash safety: the relay worker, a real process, is killed (SIGKILL) while the upstream
holds its DATA; the restarted worker sends the message, and the upstream has it once."""

from __future__ import annotations

import os
import smtplib
import subprocess
import sys
import time
from email.message import EmailMessage
from pathlib import Path

import pytest
from sqlalchemy import select

from casella.db import Database
from casella.models import Account
from casella.models.outbound import OutboundMessage
from casella.secrets import SecretBox
from casella.settings import Settings
from casella.users import add_user, grant_mailbox
from mailserver.relay import INTERRUPTED, RelayWorker
from mailserver.server import SubmissionServer
from mailserver.upstream import set_upstream
from tests.servers.smtp import SmtpSink

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]


def test_worker_killed_mid_send_delivers_once_after_restart(env: dict[str, str]) -> None:
    sink = SmtpSink(mode="hang").start()
    env = {**env, "CASELLA_SMTP_LISTEN": "127.0.0.1:0", "CASELLA_RELAY_TIMEOUT_SECONDS": "30"}
    settings = Settings.load(env)
    db = Database.from_settings(settings)
    server = SubmissionServer(settings, db).start()
    proc: subprocess.Popen[bytes] | None = None
    try:
        with db.session() as s:
            add_user(s, "alice", "operator", password="alice-pw")
            s.add(Account(name="ufficio", username="info@ufficio.example.it"))
            s.flush()
            grant_mailbox(s, "ufficio", user="alice", level="write")
            set_upstream(s, SecretBox(settings.secret_key_file), "ufficio", host="127.0.0.1", port=sink.port,
                         security="none", username=None, password=None)
        msg = EmailMessage()
        msg["From"], msg["To"], msg["Subject"] = "info@ufficio.example.it", "cliente@example.com", "Una volta sola"
        msg.set_content("Ciao\n")
        with smtplib.SMTP("127.0.0.1", server.port, timeout=10) as client:
            client.login("alice", "alice-pw")
            client.send_message(msg)

        proc = subprocess.Popen([sys.executable, "-m", "mailserver.relay"], cwd=ROOT,
                                env={**os.environ, **env, "PYTHONPATH": str(ROOT)},
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        assert sink.handler.in_data.wait(60), "the worker never reached DATA"
        with db.reading() as s:
            [row] = s.scalars(select(OutboundMessage))
            assert (row.state, row.attempts) == ("sending", 1)  # committed before the SMTP transaction
        proc.kill()
        proc.wait(10)
        sink.handler.release.set()  # the held DATA ends with a 451: the upstream never accepted it
        time.sleep(0.2)
        assert sink.messages == []
        sink.set_mode("accept")

        worker = RelayWorker(settings, db)
        assert worker.recover() == 1
        with db.reading() as s:
            [row] = s.scalars(select(OutboundMessage))
            assert row.state == "deferred" and row.last_error == INTERRUPTED
        assert worker.run_pending() == 1
        with db.reading() as s:
            [row] = s.scalars(select(OutboundMessage))
            assert (row.state, row.attempts) == ("sent", 2)
        assert len(sink.messages) == 1
        assert worker.run_pending() == 0 and len(sink.messages) == 1
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
        server.stop()
        sink.stop()
        db.dispose()
