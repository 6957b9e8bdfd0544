"""Submission and relay end to end on real sockets: smtplib → Casella's submission server →
store + queue → relay worker → a real aiosmtpd upstream (tests/servers/smtp.py)."""

from __future__ import annotations

import json
import smtplib
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.parser import BytesHeaderParser

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from casella.blobs import BlobStore
from casella.db import Database
from casella.models import Account, Message, MessageEvent, Registration, utcnow
from casella.models.outbound import OutboundMessage
from casella.secrets import SecretBox
from casella.settings import Settings, get_settings
from casella.users import add_user, grant_mailbox
from mailserver.cli import COMMANDS
from mailserver.identities import add_identity
from mailserver.relay import RelayWorker
from mailserver.server import SubmissionServer
from mailserver.upstream import set_upstream
from tests.servers.smtp import SmtpSink, free_port

pytestmark = pytest.mark.e2e
MAX_SIZE = 100_000
OFFICE = "info@ufficio.example.it"
SALES = "vendite@ufficio.example.it"


@dataclass
class Clock:
    now: datetime = field(default_factory=lambda: utcnow() + timedelta(seconds=30))  # after the submissions

    def __call__(self) -> datetime:
        return self.now


@dataclass
class World:
    env: dict[str, str]
    settings: Settings
    db: Database
    server: SubmissionServer
    sink: SmtpSink
    clock: Clock

    def worker(self) -> RelayWorker:
        return RelayWorker(self.settings, self.db, clock=self.clock)

    def outbound(self) -> list[OutboundMessage]:
        with self.db.reading() as s:
            return list(s.scalars(select(OutboundMessage).order_by(OutboundMessage.id)))


@pytest.fixture
def world(env: dict[str, str]) -> Iterator[World]:
    sink = SmtpSink().start()
    env = {**env, "CASELLA_SMTP_LISTEN": "127.0.0.1:0", "CASELLA_SMTP_MAX_SIZE": str(MAX_SIZE),
           "CASELLA_RELAY_TIMEOUT_SECONDS": "5", "CASELLA_RELAY_GIVE_UP_SECONDS": "7200"}
    settings = Settings.load(env)
    db = Database.from_settings(settings)
    with db.session() as s:
        add_user(s, "alice", "operator", password="alice-pw")
        add_user(s, "bob", "operator", password="bob-pw")
        s.add_all([Account(name="ufficio", username=OFFICE), Account(name="vendite", username=SALES)])
        s.flush()
        grant_mailbox(s, "ufficio", user="alice", level="write")
        grant_mailbox(s, "vendite", user="bob", level="write")
        add_identity(s, "alice", "alice@ufficio.example.it", "ufficio")
        set_upstream(s, SecretBox(settings.secret_key_file), "ufficio", host="127.0.0.1", port=sink.port,
                     security="none", username=None, password=None)
    server = SubmissionServer(settings, db).start()
    yield World(env, settings, db, server, sink, Clock())
    server.stop()
    sink.stop()
    db.dispose()


def make_message(sender: str = OFFICE, to: tuple[str, ...] = ("cliente@example.com",), body: str = "Buongiorno,\n",
                 subject: str = "Offerta 2026") -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = ", ".join(to)
    msg["Subject"] = subject
    msg.set_content(body)
    return msg


def submit(world: World, msg: EmailMessage | None = None, *, user: str = "alice", password: str = "alice-pw",
           sender: str = OFFICE, to: tuple[str, ...] = ("cliente@example.com",)) -> None:
    msg = msg or make_message(sender, to)
    with smtplib.SMTP("127.0.0.1", world.server.port, timeout=10) as client:
        client.login(user, password)
        client.send_message(msg, from_addr=sender, to_addrs=list(to))


def test_authenticated_submission_is_stored_in_sent_numbered_and_queued(world: World) -> None:
    submit(world)
    with world.db.reading() as s:
        message = s.scalar(select(Message))
        assert message is not None
        account = s.get(Account, message.account_id)
        assert account is not None and account.name == "ufficio"
        assert (message.folder, message.direction, message.subject) == ("Sent", "out", "Offerta 2026")
        registration = s.scalar(select(Registration).where(Registration.message_id == message.id))
        assert registration is not None and registration.direction == "out"
        actions = set(s.scalars(select(MessageEvent.action).where(MessageEvent.message_id == message.id)))
        assert "submitted" in actions
    [row] = world.outbound()
    assert (row.state, row.attempts, row.mail_from, row.rcpt_tos) == ("queued", 0, OFFICE, ["cliente@example.com"])
    raw = BlobStore(world.settings.blob_dir).get(message.sha256)
    headers = BytesHeaderParser().parsebytes(raw)
    assert headers["Message-ID"] == row.smtp_message_id and row.smtp_message_id.startswith("<")
    assert "with ESMTPSA" in headers["Received"]


def test_identity_address_may_send(world: World) -> None:
    submit(world, sender="alice@ufficio.example.it")
    [row] = world.outbound()
    assert row.mail_from == "alice@ufficio.example.it" and row.state == "queued"


def test_mail_without_auth_is_refused_530(world: World) -> None:
    with smtplib.SMTP("127.0.0.1", world.server.port, timeout=10) as client:
        client.ehlo()
        code, _ = client.mail(OFFICE)
        assert code == 530
        code, _ = client.rcpt("cliente@example.com")
        assert code in (503, 530)
    assert world.outbound() == []


def test_wrong_password_is_refused_535(world: World) -> None:
    with smtplib.SMTP("127.0.0.1", world.server.port, timeout=10) as client:
        with pytest.raises(smtplib.SMTPAuthenticationError) as info:
            client.login("alice", "wrong")
        assert info.value.smtp_code == 535
        with pytest.raises(smtplib.SMTPAuthenticationError):
            client.login("nobody", "alice-pw")


def test_sending_as_an_address_not_granted_is_refused(world: World) -> None:
    with pytest.raises(smtplib.SMTPSenderRefused) as info:
        submit(world, user="bob", password="bob-pw", sender=OFFICE)  # bob may write vendite, not ufficio
    assert info.value.smtp_code == 553
    # Envelope allowed, From: header forged: refused at DATA.
    with pytest.raises(smtplib.SMTPDataError) as data_info:
        submit(world, make_message(sender="direttore@ufficio.example.it"), sender=OFFICE)
    assert data_info.value.smtp_code == 550
    assert world.outbound() == []


def test_size_limit_552(world: World) -> None:
    with pytest.raises((smtplib.SMTPSenderRefused, smtplib.SMTPDataError)) as info:
        submit(world, make_message(body="x" * 70 + "\n" * 1 + ("y" * 70 + "\n") * 2000))
    assert info.value.smtp_code == 552
    assert world.outbound() == []


def test_external_recipient_without_upstream_is_refused(world: World) -> None:
    with pytest.raises(smtplib.SMTPRecipientsRefused) as info:
        submit(world, user="bob", password="bob-pw", sender=SALES, to=("cliente@example.com",))
    [(code, _)] = info.value.recipients.values()
    assert code == 550


def test_relay_accepted_upstream_is_sent_byte_exact(world: World) -> None:
    submit(world)
    assert world.worker().run_pending() == 1
    [row] = world.outbound()
    assert (row.state, row.attempts, row.last_error) == ("sent", 1, None) and row.sent_at is not None
    [got] = world.sink.messages
    with world.db.reading() as s:
        message = s.get(Message, row.message_id)
        assert message is not None
        assert got.data == BlobStore(world.settings.blob_dir).get(message.sha256)
    assert got.mail_from == OFFICE and got.rcpt_tos == ["cliente@example.com"]


def test_upstream_4xx_defers_with_backoff_then_sends(world: World) -> None:
    world.sink.set_mode("defer")
    submit(world)
    worker = world.worker()
    assert worker.run_pending() == 1
    [row] = world.outbound()
    assert row.state == "deferred" and row.attempts == 1 and "451" in (row.last_error or "")
    assert row.next_attempt_at == world.clock.now + timedelta(minutes=1)
    assert worker.run_pending() == 0  # not due yet
    world.clock.now += timedelta(seconds=61)
    assert worker.run_pending() == 1
    [row] = world.outbound()
    assert row.attempts == 2 and row.next_attempt_at == world.clock.now + timedelta(minutes=2)
    world.sink.set_mode("accept")
    world.clock.now += timedelta(minutes=2)
    assert worker.run_pending() == 1
    [row] = world.outbound()
    assert (row.state, row.attempts) == ("sent", 3)
    assert len(world.sink.messages) == 1


def test_upstream_5xx_fails_with_the_reply(world: World) -> None:
    world.sink.set_mode("refuse")
    submit(world)
    world.worker().run_pending()
    [row] = world.outbound()
    assert row.state == "failed" and row.next_attempt_at is None
    assert "550" in (row.last_error or "") and "Refused by the test sink" in (row.last_error or "")
    with world.db.reading() as s:
        assert "relay-failed" in set(s.scalars(select(MessageEvent.action)
                                               .where(MessageEvent.message_id == row.message_id)))


def test_connection_refused_defers_and_gives_up_after_the_period(world: World) -> None:
    with world.db.session() as s:
        set_upstream(s, SecretBox(world.settings.secret_key_file), "ufficio", host="127.0.0.1", port=free_port(),
                     security="none", username=None, password=None)
    submit(world)
    worker = world.worker()
    worker.run_pending()
    [row] = world.outbound()
    assert row.state == "deferred" and "ConnectionRefusedError" in (row.last_error or "")
    world.clock.now += timedelta(hours=3)  # past CASELLA_RELAY_GIVE_UP_SECONDS=7200
    worker.run_pending()
    [row] = world.outbound()
    assert row.state == "failed" and (row.last_error or "").startswith("gave up after 2 attempt(s)")


def test_internal_delivery_needs_no_smtp(world: World) -> None:
    submit(world, to=(SALES,))
    world.worker().run_pending()
    [row] = world.outbound()
    assert row.state == "sent"
    assert world.sink.connections == 0 and world.sink.messages == []
    with world.db.reading() as s:
        sales = s.scalar(select(Account.id).where(Account.name == "vendite"))
        [copy] = s.scalars(select(Message).where(Message.account_id == sales))
        assert (copy.folder, copy.direction, copy.subject) == ("INBOX", "in", "Offerta 2026")
        sent = s.get(Message, row.message_id)
        assert sent is not None and sent.direction == "out" and copy.sha256 == sent.sha256


def test_outbox_list_json_shows_every_state(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    submit(world)  # → sent
    world.worker().run_pending()
    world.sink.set_mode("defer")
    submit(world, make_message(subject="Secondo"))  # → deferred
    world.worker().run_pending()
    world.sink.set_mode("refuse")
    world.clock.now += timedelta(hours=1)
    submit(world, make_message(subject="Terzo"))  # → failed (the deferred one fails too? no: 5xx only here)
    with world.db.session() as s:  # only the third is due: push the second's next attempt away
        s.execute(OutboundMessage.__table__.update().where(OutboundMessage.state == "deferred")
                  .values(next_attempt_at=world.clock.now + timedelta(hours=1)))
    world.worker().run_pending()
    submit(world, make_message(subject="Quarto"))  # → queued
    for key, value in world.env.items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    try:
        outbox = next(c for c in COMMANDS if c.name == "outbox")
        result = CliRunner().invoke(outbox, ["list", "--json"])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    rows = {r["subject"]: r for r in json.loads(result.output)}
    assert rows["Offerta 2026"]["state"] == "sent" and rows["Offerta 2026"]["sent_at"]
    assert rows["Secondo"]["state"] == "deferred" and rows["Secondo"]["next_attempt_at"]
    assert rows["Terzo"]["state"] == "failed" and "550" in rows["Terzo"]["last_error"]
    assert rows["Quarto"]["state"] == "queued" and rows["Quarto"]["protocol"]
