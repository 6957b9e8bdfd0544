"""The webmail's compose API (mailserver/compose.py) end to end: permission checks, MIME with
attachments, reply threading from the stored original, read receipt, signature, then the
same store-and-queue path as SMTP and a real upstream (tests/servers/smtp.py)."""

from __future__ import annotations

from email import policy
from email.message import EmailMessage
from email.parser import BytesParser

import pytest
from sqlalchemy import func, select

from casella.blobs import BlobStore
from casella.models import Account, Message, User
from casella.models.outbound import OutboundMessage
from casella.pipeline import build_stages
from ingest.store import Incoming, Storer
from mailserver.compose import Compose, ComposeAttachment, submit
from mailserver.errors import ComposeError, RecipientUnreachable, SenderNotAllowed
from mailserver.relay import RelayWorker
from mailserver.signatures import add_signature
from tests.mailserver.test_mailserver_flow import OFFICE, SALES, World
from tests.mailserver.test_mailserver_flow import world as flow_world  # noqa: F401 - the fixture used below

pytestmark = pytest.mark.e2e


@pytest.fixture
def world(flow_world: World) -> World:  # noqa: F811
    """Casella with alice (ufficio, with an upstream SMTP sink) and bob (vendite, none)."""
    return flow_world
PDF = b"%PDF-1.7\n" + bytes(range(256)) * 40 + b"\n%%EOF\n"
ORIGINAL = (b"From: Cliente <cliente@example.com>\r\nTo: info@ufficio.example.it\r\nSubject: Richiesta\r\n"
            b"Message-ID: <richiesta-2@example.com>\r\nIn-Reply-To: <primo@ufficio.example.it>\r\n"
            b"References: <primo@ufficio.example.it>\r\nDate: Mon, 23 Nov 2026 09:00:00 +0100\r\n\r\n"
            b"Potete mandarci il listino?\r\n")


def user(world: World, name: str) -> User:
    with world.db.reading() as s:
        found = s.scalar(select(User).where(User.username == name))
        assert found is not None
        s.expunge(found)
        return found


def account_id(world: World, name: str) -> int:
    with world.db.reading() as s:
        found = s.scalar(select(Account.id).where(Account.name == name))
        assert found is not None
        return found


def store_original(world: World) -> int:
    storer = Storer(world.db, BlobStore(world.settings.blob_dir), build_stages(world.settings), workers=1)
    result = storer.store_batch(account_id(world, "ufficio"), [Incoming(raw=ORIGINAL, folder="INBOX")])
    return result.message_ids[0]


def parse(raw: bytes) -> EmailMessage:
    msg = BytesParser(policy=policy.default).parsebytes(raw)
    assert isinstance(msg, EmailMessage)
    return msg


def test_compose_reply_with_attachments_and_receipt_reaches_the_upstream(world: World) -> None:
    original = store_original(world)
    with world.db.session() as s:
        s.execute(User.__table__.update().where(User.username == "alice").values(display_name="Alice Bianchi"))
        add_signature(s, "alice", account_name=None, username="alice", text="{name}\n{email}",
                      html_body="<b>{name}</b>", default=False)
    compose = Compose(
        account_id=account_id(world, "ufficio"), from_address="alice@ufficio.example.it", from_name="Alice Bianchi",
        to=("Cliente <cliente@example.com>",), cc=("ufficio.tecnico@example.com",), subject="Re: Richiesta",
        text="Buongiorno,\nin allegato il listino.", html="<html><body><p>Buongiorno</p></body></html>",
        attachments=(ComposeAttachment("listino 2026.pdf", "application/pdf", PDF),
                     ComposeAttachment("note.txt", "", "Perché sì\n".encode("latin-1"))),
        in_reply_to=original, request_read_receipt=True)
    queued = submit(world.settings, world.db, user(world, "alice"), compose)
    assert RelayWorker(world.settings, world.db, clock=world.clock).run_pending() == 1
    [got] = world.sink.messages
    assert got.mail_from == "alice@ufficio.example.it"
    assert sorted(got.rcpt_tos) == ["cliente@example.com", "ufficio.tecnico@example.com"]
    with world.db.reading() as s:
        sent = s.get(Message, queued.message_id)
        row = s.get(OutboundMessage, queued.outbound_id)
        assert sent is not None and row is not None and row.state == "sent"
        assert (sent.folder, sent.direction, sent.subject) == ("Sent", "out", "Re: Richiesta")
        assert sent.in_reply_to == "richiesta-2@example.com"
        replied = s.get(Message, original)
        assert replied is not None and sent.thread_id == replied.thread_id is not None  # one conversation
        assert got.data == BlobStore(world.settings.blob_dir).get(sent.sha256)  # no Bcc here: the same bytes
    msg = parse(got.data)
    assert msg["From"] == "Alice Bianchi <alice@ufficio.example.it>"
    assert msg["In-Reply-To"] == "<richiesta-2@example.com>"
    assert msg["References"] == "<primo@ufficio.example.it> <richiesta-2@example.com>"
    assert msg["Disposition-Notification-To"] == "alice@ufficio.example.it"
    assert msg["Message-ID"] == queued.smtp_message_id and "with HTTP" in msg["Received"]
    text = msg.get_body(("plain",))
    html = msg.get_body(("html",))
    assert text is not None and html is not None
    assert text.get_content().replace("\r\n", "\n") == \
        "Buongiorno,\nin allegato il listino.\n-- \nAlice Bianchi\nalice@ufficio.example.it\n"
    assert "<b>Alice Bianchi</b></div>" in html.get_content()
    attachments = {a.get_filename(): (a.get_content_type(), a.get_payload(decode=True))
                   for a in msg.iter_attachments()}
    assert attachments == {"listino 2026.pdf": ("application/pdf", PDF),
                           "note.txt": ("text/plain", "Perché sì\n".encode("latin-1"))}


def test_no_signature_when_not_asked_and_internal_only_needs_no_upstream(world: World) -> None:
    with world.db.session() as s:
        add_signature(s, "alice", account_name=None, username="alice", text="{name}", html_body="", default=False)
    bob = user(world, "bob")
    queued = submit(world.settings, world.db, bob, Compose(
        account_id=account_id(world, "vendite"), from_address=SALES, to=(OFFICE,), subject="Interno",
        text="Ciao", signature=False))
    RelayWorker(world.settings, world.db, clock=world.clock).run_pending()
    assert world.sink.messages == []
    with world.db.reading() as s:
        copy = s.scalar(select(Message).where(Message.account_id == account_id(world, "ufficio")))
        assert copy is not None and copy.subject == "Interno" and copy.body_text.strip() == "Ciao"
        assert s.get(OutboundMessage, queued.outbound_id).state == "sent"  # type: ignore[union-attr]


def test_not_allowed_and_impossible_messages_are_clear_errors_and_store_nothing(world: World) -> None:
    alice, bob = user(world, "alice"), user(world, "bob")
    ufficio, vendite = account_id(world, "ufficio"), account_id(world, "vendite")
    base = {"to": ("cliente@example.com",), "subject": "x", "text": "y"}
    with pytest.raises(SenderNotAllowed) as info:
        submit(world.settings, world.db, bob, Compose(account_id=ufficio, from_address=OFFICE, **base))  # type: ignore[arg-type]
    assert "bob may not send as info@ufficio.example.it through account ufficio" in str(info.value)
    assert "casella account grant ufficio --user bob --level write" in str(info.value)
    with pytest.raises(SenderNotAllowed, match="sends through account"):
        submit(world.settings, world.db, alice, Compose(account_id=vendite, from_address=OFFICE, **base))  # type: ignore[arg-type]
    with pytest.raises(RecipientUnreachable, match="casella smtp-upstream vendite"):
        submit(world.settings, world.db, bob, Compose(account_id=vendite, from_address=SALES, **base))  # type: ignore[arg-type]
    with pytest.raises(ComposeError, match="no recipient"):
        submit(world.settings, world.db, alice, Compose(account_id=ufficio, from_address=OFFICE, to=(), subject="x",
                                                        text="y"))
    with pytest.raises(ComposeError, match="'cliente' is not an e-mail address"):
        submit(world.settings, world.db, alice, Compose(account_id=ufficio, from_address=OFFICE, to=("cliente",),
                                                        subject="x", text="y"))
    with pytest.raises(ComposeError, match=r"more than the 0.1 MB allowed \(CASELLA_SMTP_MAX_SIZE\)"):
        submit(world.settings, world.db, alice, Compose(
            account_id=ufficio, from_address=OFFICE, to=("cliente@example.com",), subject="x", text="y",
            attachments=(ComposeAttachment("grande.bin", "", bytes(120_000)),)))
    original = store_original(world)  # in ufficio: bob may not read it
    with world.db.session() as s:
        s.add(Account(name="bob-personale", username="bob@ufficio.example.it",
                      owner_user_id=bob.id))
    with pytest.raises(ComposeError, match=f"message {original} does not exist or bob may not read it"):
        submit(world.settings, world.db, bob, Compose(account_id=account_id(world, "bob-personale"),
                                                      from_address="bob@ufficio.example.it", to=(SALES,),
                                                      subject="Re", text="y", in_reply_to=original))
    with world.db.reading() as s:
        assert s.scalar(select(func.count(OutboundMessage.id))) == 0
        assert s.scalar(select(func.count(Message.id)).where(Message.direction == "out")) == 0
