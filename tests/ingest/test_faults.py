"""Faults: a killed ingester, a connection dropped mid-fetch, a changed UIDVALIDITY.
Afterwards every message is stored exactly once and the protocol numbers have no gap."""

from __future__ import annotations

import random
import signal
import time

import pytest
from sqlalchemy import func, select

from casella.models import Message, MessageLocation, Registration
from tests.conftest import Cli
from tests.ingest.test_imap_ingest import add_account
from tests.servers.proxy import FlakyProxy

pytestmark = pytest.mark.integration


def generated(n: int, tag: str) -> list[bytes]:
    """n distinct small messages (real shape, unique bytes)."""
    out = []
    for i in range(n):
        out.append((f"From: Mario Rossi <mario.rossi@edilnord.it>\r\nTo: info@studioferrari.it\r\n"
                    f"Subject: Preventivo {tag} {i}\r\nMessage-ID: <{tag}-{i}@edilnord.it>\r\n"
                    f"Date: Mon, 2 Nov 2026 10:{i % 60:02d}:00 +0100\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
                    f"Buongiorno, in allegato il preventivo n. {i}.\r\n" + "x" * 2000 + "\r\n").encode())
    return out


def assert_exactly_once(database, expected: int) -> None:
    with database.session() as s:
        assert s.scalar(select(func.count(Message.id))) == expected
        assert s.scalar(select(func.count(func.distinct(Message.sha256)))) == expected
        numbers = sorted(s.scalars(select(Registration.number)))
        assert numbers == list(range(1, expected + 1))
        per_message = s.execute(select(MessageLocation.message_id, func.count()).group_by(MessageLocation.message_id)).all()
        assert len(per_message) == expected


def test_killed_mid_batch_then_restarted(dovecot, cli: Cli, database) -> None:
    dovecot.append_many("alice", generated(400, "kill"))
    add_account(cli, dovecot, "ufficio")
    rng = random.Random(42)
    kills = 0
    for _ in range(6):
        proc = cli.popen("ingest", "--once", stdout=open("/dev/null", "w"), stderr=open("/dev/null", "w"))
        time.sleep(rng.uniform(0.3, 1.5))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait(30)
    cli("ingest", "--once", timeout=300)
    assert kills >= 1
    assert_exactly_once(database, 400)


def test_connection_dropped_mid_fetch(dovecot, cli: Cli, database) -> None:
    dovecot.append_many("alice", generated(150, "drop"))
    with FlakyProxy(dovecot.host, dovecot.port, cut_after_bytes=60_000) as proxy:
        add_account(cli, dovecot, "ufficio", port=proxy.port)
        runs = 0
        while runs < 30:
            runs += 1
            if cli("ingest", "--once", check=False, extra_env={"CASELLA_INGEST_BATCH_SIZE": "10"}).returncode == 0:
                break
        assert proxy.cuts >= 1, "the proxy never cut a connection: the test proves nothing"
    assert_exactly_once(database, 150)


def test_uidvalidity_change_reads_folder_again_without_duplicates(dovecot, cli: Cli, database) -> None:
    dovecot.append_many("alice", generated(30, "uv"))
    add_account(cli, dovecot, "ufficio")
    cli("ingest", "--once")
    old = dovecot.uidvalidity("alice")
    new = dovecot.reset_uidvalidity("alice")
    assert new != old
    dovecot.append_many("alice", generated(5, "uv-after"))
    cli("ingest", "--once")
    assert_exactly_once(database, 35)
    status = cli("account", "list", "--json").json()[0]
    assert status["folder_status"][0]["uidvalidity"] == new


def test_same_message_id_different_bytes_are_two_messages(dovecot, cli: Cli, database) -> None:
    a, b = generated(2, "dup")
    b = b.replace(b"<dup-1@", b"<dup-0@")  # same Message-ID as a, different content
    dovecot.append_many("alice", [a, b, a])  # and the very same bytes twice
    add_account(cli, dovecot, "ufficio")
    cli("ingest", "--once")
    listed = cli("message", "list", "--json").json()
    assert len(listed) == 2
    assert {m["message_id"] for m in listed} == {"dup-0@edilnord.it"}


def test_daemon_idles_and_picks_up_new_mail(dovecot, cli: Cli) -> None:
    dovecot.append_many("alice", generated(3, "idle"))
    add_account(cli, dovecot, "ufficio")
    cli.env["CASELLA_INGEST_POLL_SECONDS"] = "600"  # only IDLE can make it fast
    proc = cli.popen("ingest", stdout=open("/dev/null", "w"), stderr=open("/dev/null", "w"))
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and len(cli("message", "list", "--json").json()) < 3:
            time.sleep(0.5)
        assert len(cli("message", "list", "--json").json()) == 3
        dovecot.deliver("alice", generated(1, "idle-new")[0])
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and len(cli("message", "list", "--json").json()) < 4:
            time.sleep(0.5)
        assert len(cli("message", "list", "--json").json()) == 4
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
