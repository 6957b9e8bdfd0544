"""The copy in the server's Sent folder (account.imap_append_sent), against a real Dovecot:
appended after the relay, byte-exact and \\Seen, never twice, retried when the server was
down, and not stored a second time when the poller reads the Sent folder."""

from __future__ import annotations

import smtplib
from datetime import timedelta

import pytest
from click.testing import CliRunner
from sqlalchemy import delete, func, select

from casella.blobs import BlobStore
from casella.models import Account, FolderState, Message, MessageEvent, MessageLocation
from casella.models.outbound import OutboundMessage
from casella.pipeline import build_stages
from casella.secrets import SecretBox
from casella.settings import get_settings
from ingest.imap import ImapPoller
from ingest.store import Storer
from mailserver.cli import COMMANDS
from mailserver.identities import add_identity
from mailserver.relay import APPEND_PENDING, RelayWorker
from tests.mailserver.test_mailserver_flow import OFFICE, World, make_message
from tests.mailserver.test_mailserver_flow import world as flow_world  # noqa: F401 - the fixture it builds on
from tests.servers.dovecot import DovecotServer
from tests.servers.smtp import free_port

pytestmark = pytest.mark.integration


@pytest.fixture
def world(flow_world: World, dovecot: DovecotServer) -> World:  # noqa: F811
    """ufficio reads alice's Dovecot mailbox (INBOX and Sent) and copies sent mail there."""
    box = SecretBox(flow_world.settings.secret_key_file)
    with flow_world.db.session() as s:
        account = s.scalar(select(Account).where(Account.name == "ufficio"))
        assert account is not None
        account.imap_host, account.imap_port, account.security = dovecot.host, dovecot.port, "none"
        account.username, account.password_encrypted = "alice", box.encrypt(dovecot.users["alice"])
        account.folders, account.imap_append_sent = ["INBOX", "Sent"], True
        add_identity(s, "alice", OFFICE, "ufficio")  # the login is no longer the address
    return flow_world


def send(world: World, subject: str = "Offerta 2026") -> None:
    with smtplib.SMTP("127.0.0.1", world.server.port, timeout=10) as client:
        client.login("alice", "alice-pw")
        client.send_message(make_message(subject=subject), from_addr=OFFICE, to_addrs=["cliente@example.com"])


def server_sent(dovecot: DovecotServer, folder: str = "Sent") -> list[tuple[bytes, tuple[bytes, ...]]]:
    with dovecot.client("alice") as c:
        if not c.folder_exists(folder):
            return []
        c.select_folder(folder, readonly=True)
        data = c.fetch(c.search(["ALL"]), [b"BODY.PEEK[]", b"FLAGS"])
    return [(bytes(d[b"BODY[]"]), tuple(d[b"FLAGS"])) for _, d in sorted(data.items())]


def poll(world: World) -> tuple[int, int]:
    storer = Storer(world.db, BlobStore(world.settings.blob_dir), build_stages(world.settings), workers=1)
    poller = ImapPoller(storer, SecretBox(world.settings.secret_key_file), batch_size=50, timeout=10)
    with world.db.reading() as s:
        account_id = s.scalar(select(Account.id).where(Account.name == "ufficio"))
    result = poller.run_once(account_id)  # type: ignore[arg-type]
    return result.stored, result.duplicates


def messages(world: World) -> int:
    with world.db.reading() as s:
        return s.scalar(select(func.count(Message.id))) or 0


def test_sent_mail_is_appended_byte_exact_once_and_the_poller_stores_no_duplicate(
        world: World, dovecot: DovecotServer) -> None:
    send(world)
    worker = RelayWorker(world.settings, world.db, clock=world.clock)
    assert worker.run_pending() == 1
    [row] = world.outbound()
    assert row.state == "sent" and row.imap_appended_at is not None and row.imap_append_error is None
    with world.db.reading() as s:
        message = s.get(Message, row.message_id)
        assert message is not None
        stored = BlobStore(world.settings.blob_dir).get(message.sha256)
    [(copy, flags)] = server_sent(dovecot)  # "Sent" did not exist: created
    assert copy == stored and b"\\Seen" in flags
    assert world.sink.messages[0].data == stored
    assert worker.run_pending() == 0 and len(server_sent(dovecot)) == 1  # appended once

    assert poll(world) == (0, 0)  # the recorded (folder, UIDVALIDITY, UID): skipped
    assert messages(world) == 1
    # Without that location the poller still recognises the copy: the same sha256.
    with world.db.session() as s:
        s.execute(delete(MessageLocation).where(MessageLocation.folder == "Sent"))
        s.execute(delete(FolderState).where(FolderState.name == "Sent"))
    assert poll(world) == (0, 1)
    assert messages(world) == 1


def test_an_unreachable_server_never_holds_the_mail_and_the_copy_is_retried(
        world: World, dovecot: DovecotServer) -> None:
    with world.db.session() as s:
        s.execute(Account.__table__.update().where(Account.name == "ufficio").values(imap_port=free_port()))
    send(world)
    worker = RelayWorker(world.settings, world.db, clock=world.clock)
    worker.run_pending()
    [row] = world.outbound()
    assert row.state == "sent" and len(world.sink.messages) == 1  # sent all the same
    assert row.imap_appended_at is None and "cannot connect" in (row.imap_append_error or "")
    with world.db.session() as s:
        s.execute(Account.__table__.update().where(Account.name == "ufficio").values(imap_port=dovecot.port))
    worker.run_pending()
    assert server_sent(dovecot) == []  # not due yet: 1 minute after the failure
    world.clock.now += timedelta(seconds=61)
    worker.run_pending()
    [row] = world.outbound()
    assert row.imap_appended_at is not None and row.imap_append_error is None
    assert len(server_sent(dovecot)) == 1


def test_an_existing_copy_is_not_appended_again_and_the_named_folder_is_used(
        world: World, dovecot: DovecotServer) -> None:
    dovecot.create_folder("alice", "Posta inviata")
    with world.db.session() as s:
        s.execute(Account.__table__.update().where(Account.name == "ufficio")
                  .values(sent_folders=["Posta inviata", "Sent"], folders=["INBOX", "Posta inviata"]))
    send(world)
    worker = RelayWorker(world.settings, world.db, clock=world.clock)
    worker.run_pending()
    assert len(server_sent(dovecot, "Posta inviata")) == 1 and server_sent(dovecot, "Sent") == []
    # As if the worker died after the server took the copy but before it was recorded.
    with world.db.session() as s:
        s.execute(OutboundMessage.__table__.update().values(imap_appended_at=None, imap_append_error=APPEND_PENDING))
    worker.run_pending()
    [row] = world.outbound()
    assert row.imap_appended_at is not None and len(server_sent(dovecot, "Posta inviata")) == 1
    with world.db.reading() as s:
        found = [e.detail["found"] for e in s.scalars(select(MessageEvent).where(MessageEvent.action == "imap-appended")
                                                      .order_by(MessageEvent.id))]
    assert found == [False, True]
    assert poll(world) == (0, 0) and messages(world) == 1


def test_nothing_is_appended_unless_the_account_asks(world: World, dovecot: DovecotServer) -> None:
    with world.db.session() as s:
        s.execute(Account.__table__.update().where(Account.name == "ufficio").values(imap_append_sent=False))
    send(world)
    RelayWorker(world.settings, world.db, clock=world.clock).run_pending()
    [row] = world.outbound()
    assert row.state == "sent" and row.imap_appended_at is None and row.imap_append_error is None
    assert server_sent(dovecot) == []


def test_sent_copy_command(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in world.env.items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    try:
        command = next(c for c in COMMANDS if c.name == "sent-copy")
        off = CliRunner().invoke(command, ["ufficio", "--off"])
        assert off.exit_code == 0 and "no longer copied" in off.output
        impossible = CliRunner().invoke(command, ["vendite", "--on"])
        assert impossible.exit_code != 0 and "vendite has no IMAP server" in impossible.output
        with world.db.reading() as s:
            assert s.scalar(select(Account.imap_append_sent).where(Account.name == "ufficio")) is False
        on = CliRunner().invoke(command, ["ufficio", "--on"])
        assert on.exit_code == 0, on.output
    finally:
        get_settings.cache_clear()
    with world.db.reading() as s:
        assert s.scalar(select(Account.imap_append_sent).where(Account.name == "ufficio")) is True
