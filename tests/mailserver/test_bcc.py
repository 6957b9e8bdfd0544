"""Bcc: the Sent copy keeps the Bcc: header, what leaves (a real upstream, internal copies)
has none, and the envelope still reaches every Bcc recipient."""

from __future__ import annotations

import smtplib
from email.parser import BytesHeaderParser

import pytest
from sqlalchemy import select

from casella.blobs import BlobStore
from casella.models import Account, Message, User
from mailserver.compose import Compose, submit
from mailserver.relay import RelayWorker
from tests.mailserver.test_mailserver_flow import OFFICE, SALES, World
from tests.mailserver.test_mailserver_flow import world as flow_world  # noqa: F401 - the fixture used below

pytestmark = pytest.mark.e2e


@pytest.fixture
def world(flow_world: World) -> World:  # noqa: F811
    """Casella with alice (ufficio, with an upstream SMTP sink) and bob (vendite, none)."""
    return flow_world


def relay(world: World) -> None:
    RelayWorker(world.settings, world.db, clock=world.clock).run_pending()


def sent_copy(world: World) -> bytes:
    with world.db.reading() as s:
        message = s.scalar(select(Message).where(Message.direction == "out"))
        assert message is not None
        return BlobStore(world.settings.blob_dir).get(message.sha256)


def test_compose_bcc_is_in_sent_only_and_still_delivered(world: World) -> None:
    with world.db.reading() as s:
        alice = s.scalar(select(User).where(User.username == "alice"))
        ufficio = s.scalar(select(Account.id).where(Account.name == "ufficio"))
        assert alice is not None and ufficio is not None
        s.expunge(alice)
    submit(world.settings, world.db, alice, Compose(
        account_id=ufficio, from_address=OFFICE, to=("cliente@example.com",), bcc=("direzione@example.com", SALES),
        subject="Offerta", text="Buongiorno"))
    relay(world)
    sent = sent_copy(world)
    assert BytesHeaderParser().parsebytes(sent)["Bcc"] == f"direzione@example.com, {SALES}"
    [got] = world.sink.messages
    assert sorted(got.rcpt_tos) == ["cliente@example.com", "direzione@example.com"]
    assert b"\nBcc:" not in got.data and b"direzione@example.com" not in got.data
    assert got.data == sent.replace(f"Bcc: direzione@example.com, {SALES}\r\n".encode(), b"")  # nothing else changed
    with world.db.reading() as s:  # the internal Bcc recipient got its copy, without the header
        vendite = s.scalar(select(Account.id).where(Account.name == "vendite"))
        copy = s.scalar(select(Message).where(Message.account_id == vendite))
        assert copy is not None and copy.subject == "Offerta"
        assert b"Bcc" not in BlobStore(world.settings.blob_dir).get(copy.sha256)


def test_smtp_submitted_bcc_header_folded_is_removed_too(world: World) -> None:
    raw = (f"From: {OFFICE}\r\nTo: cliente@example.com\r\nBCC: nascosto@example.com,\r\n altro@example.com\r\n"
           "Subject: Con Bcc\r\n\r\nTesto\r\n").encode()
    with smtplib.SMTP("127.0.0.1", world.server.port, timeout=10) as client:
        client.login("alice", "alice-pw")
        client.sendmail(OFFICE, ["cliente@example.com", "nascosto@example.com", "altro@example.com"], raw)
    relay(world)
    assert b"BCC: nascosto@example.com,\r\n altro@example.com\r\n" in sent_copy(world)
    [got] = world.sink.messages
    assert got.rcpt_tos == ["cliente@example.com", "nascosto@example.com", "altro@example.com"]
    assert b"nascosto" not in got.data and b"altro@" not in got.data
    assert got.data.endswith(b"Subject: Con Bcc\r\n\r\nTesto\r\n")
