"""The demo account `casella serve` creates on an empty installation, and its generator."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func
from sqlalchemy import select as sql_select

from casella.db import Database
from casella.demo import (DEMO_ACCOUNT, DEMO_CONTACTS, DEMO_COUNT, anagrafica_csv, company_rows, contact_rows,
                          demo_messages, demo_start, ensure_demo, folder_of)
from casella.demo.corpus import OWN_DOMAIN, generate, generate_messages, make_people, write_maildir
from casella.models import Account, Company, CompanyDomain, Contact, Message, Registration
from casella.settings import Settings
from tests.conftest import CASELLA

GEN_CORPUS = Path("/work/shared/tools/gen_corpus.py")
FREEMAIL_SAMPLE = ("gmail.com", "libero.it", "tiscali.it", "virgilio.it", "alice.it", "outlook.com", "yahoo.co.uk")


@pytest.fixture
def demo_settings(tmp_path: Path) -> Settings:
    return Settings.load({"CASELLA_DATA_DIR": str(tmp_path / "data")})


@pytest.fixture
def demo_db(demo_settings: Settings) -> Iterator[Database]:
    database = Database.from_settings(demo_settings)
    yield database
    database.dispose()


# ---------------------------------------------------------------- generator


@pytest.mark.unit
def test_generator_is_deterministic() -> None:
    first = list(generate(30, seed=3, start="2024-05-06"))
    assert first == list(generate(30, seed=3, start="2024-05-06"))
    assert first != list(generate(30, seed=4, start="2024-05-06"))
    assert len({name for name, _ in first}) == 30


@pytest.mark.unit
def test_generator_structure_does_not_depend_on_the_start_date() -> None:
    """Only dates move with the start: the demo is the same mail on every day."""
    a = [(m.sender.addr, m.recipient.addr) for m in generate_messages(100, 1, "2023-01-02")]
    b = [(m.sender.addr, m.recipient.addr) for m in generate_messages(100, 1, "2031-07-19")]
    assert a == b


@pytest.mark.integration
@pytest.mark.skipif(not GEN_CORPUS.is_file(), reason="the origin tool gen_corpus.py is not on this machine")
def test_generator_is_byte_identical_to_gen_corpus(tmp_path: Path) -> None:
    subprocess.run([sys.executable, str(GEN_CORPUS), "--count", "50", "--out", str(tmp_path / "tool"), "--seed", "1"],
                   check=True, capture_output=True)
    tool = {p.name: p.read_bytes() for p in (tmp_path / "tool" / "cur").iterdir()}
    ours = dict(generate(50))
    assert len(tool) == 50
    assert ours == tool
    write_maildir(50, tmp_path / "ours")
    assert {p.name: p.read_bytes() for p in (tmp_path / "ours" / "cur").iterdir()} == tool
    assert (tmp_path / "ours" / "new").is_dir() and (tmp_path / "ours" / "tmp").is_dir()


@pytest.mark.unit
def test_demo_dates_are_recent() -> None:
    today = dt.date(2026, 3, 10)
    messages = demo_messages(today)
    first = int(messages[0].name.split(".")[0])
    last = int(messages[-1].name.split(".")[0])
    midnight = dt.datetime(2026, 3, 10, tzinfo=dt.timezone.utc).timestamp()
    assert demo_start(today) == "2026-02-04"
    assert midnight - 40 * 86400 < first < last < midnight  # nothing from the future
    assert last > midnight - 86400  # the newest mail is from yesterday


# ---------------------------------------------------------------- anagrafica


@pytest.mark.unit
def test_shipped_companies_match_the_generator() -> None:
    import casella.demo.corpus as corpus

    rows = company_rows()
    names = {r["company_name"] for r in rows}
    assert set(corpus.COMPANIES_IT + corpus.COMPANIES_EN) <= names
    domains = {r["company_domain"] for r in rows}
    generator_domains = set(corpus.DOMAINS_IT + corpus.DOMAINS_EN)
    assert generator_domains - domains == set(FREEMAIL_SAMPLE)  # every company domain is someone's
    for r in rows:
        assert r["lifecycle"] in ("suspect", "lead", "prospect", "customer")
        assert not r["agent"] or r["agent"].startswith("agente.")
        vat = r["vat_number"]
        if r["company_domain"].endswith(".it"):
            assert len(vat) == 11 and vat.isdigit() and _partita_iva_ok(vat), r


def _partita_iva_ok(vat: str) -> bool:
    total = 0
    for i, ch in enumerate(vat[:10]):
        d = int(ch) * (2 if i % 2 else 1)
        total += d - 9 if d > 9 else d
    return (10 - total % 10) % 10 == int(vat[10])


@pytest.mark.unit
def test_contacts_are_generated_people_at_company_domains() -> None:
    import random

    known, _ = make_people(random.Random(1))
    people = {p.addr for p in known}
    companies = company_rows()
    rows = contact_rows(demo_messages(), companies)
    assert len(rows) == DEMO_CONTACTS
    assert len({r["email"] for r in rows}) == DEMO_CONTACTS
    for r in rows:
        assert r["email"] in people
        assert r["email"].split("@")[1] not in FREEMAIL_SAMPLE
        assert r["company_name"] in {c["company_name"] for c in companies}
    assert anagrafica_csv(demo_messages()).startswith(
        "company_name,company_domain,contact_name,email,vat_number,fiscal_code,lifecycle,agent,category\n")


# ---------------------------------------------------------------- ensure_demo


@pytest.mark.integration
def test_ensure_demo_fills_an_empty_installation(demo_settings: Settings, demo_db: Database) -> None:
    lines: list[str] = []
    started = time.monotonic()
    assert ensure_demo(demo_settings, demo_db, echo=lines.append) is True
    elapsed = time.monotonic() - started
    assert 1 <= len(lines) <= 2 and "demo" in lines[0]
    assert elapsed < 30, f"the demo took {elapsed:.1f} s"

    expected = demo_messages()
    expected_sent = sum(1 for m in expected if folder_of(m) == "Sent")
    with demo_db.session() as session:
        account = session.scalar(sql_select(Account))
        assert account is not None and account.name == DEMO_ACCOUNT and account.imap_host is None
        assert account.folders == ["INBOX", "Sent"] and account.sent_folders == ["Sent"]
        messages = session.scalars(sql_select(Message).order_by(Message.id)).all()
        assert len(messages) == DEMO_COUNT
        assert {m.account_id for m in messages} == {account.id}

        registered = set(session.scalars(sql_select(Registration.message_id)))
        assert registered == {m.id for m in messages}, "every message has a protocol registration"

        folders = Counter(m.folder for m in messages)
        assert folders == {"INBOX": DEMO_COUNT - expected_sent, "Sent": expected_sent}
        assert 0 < expected_sent < DEMO_COUNT
        for m in messages:
            assert m.direction == ("out" if m.folder == "Sent" else "in"), m.id
            assert (m.folder == "Sent") == m.from_addr.endswith("@" + OWN_DOMAIN), m.id

        links = Counter(m.link_kind for m in messages)
        assert links["contact"] > 0 and links["company"] > 0 and links["unknown"] > 0, links
        assert links["contact"] + links["company"] > DEMO_COUNT / 2, links
        for m in messages:
            correspondent = m.to[0]["addr"] if m.direction == "out" else m.from_addr
            if correspondent.split("@")[1] in FREEMAIL_SAMPLE:
                assert m.link_kind == "unknown", (m.id, correspondent)
            if m.link_kind == "contact":
                assert m.contact_id is not None and m.company_id is not None
            if m.link_kind == "company":
                assert m.company_id is not None and m.contact_id is None

        assert session.scalar(sql_select(func.count(Contact.id))) == DEMO_CONTACTS
        assert session.scalar(sql_select(func.count(Company.id))) == len(company_rows())
        assert session.scalar(sql_select(func.count(CompanyDomain.id))) == len(company_rows())
        assert session.scalar(sql_select(func.count(Company.id)).where(Company.agent.is_not(None))) > 0
        assert {c for c in session.scalars(sql_select(Company.lifecycle))} == {"suspect", "lead", "prospect",
                                                                               "customer"}
        assert sum(1 for m in messages if m.thread_id is not None) == DEMO_COUNT
        assert len({m.thread_id for m in messages}) < DEMO_COUNT  # replies joined threads

        newest = max(m.date for m in messages if m.date is not None)
        now = dt.datetime.now(dt.timezone.utc)
        assert now - dt.timedelta(days=2) < newest <= now


@pytest.mark.integration
def test_ensure_demo_twice_does_nothing_the_second_time(demo_settings: Settings, demo_db: Database) -> None:
    assert ensure_demo(demo_settings, demo_db, echo=lambda _: None) is True
    lines: list[str] = []
    assert ensure_demo(demo_settings, demo_db, echo=lines.append) is False
    assert lines == []
    with demo_db.session() as session:
        assert session.scalar(sql_select(func.count(Account.id))) == 1
        assert session.scalar(sql_select(func.count(Message.id))) == DEMO_COUNT
        assert session.scalar(sql_select(func.count(Contact.id))) == DEMO_CONTACTS


@pytest.mark.integration
def test_ensure_demo_leaves_an_installation_with_accounts_alone(demo_settings: Settings, demo_db: Database) -> None:
    from ingest.accounts import add_account

    with demo_db.session() as session:
        add_account(session, demo_settings, name="office", imap_host=None, imap_port=None, username=None,
                    password=None, security="none", is_pec=False, folders=["INBOX"], sent_folders=None)
    assert ensure_demo(demo_settings, demo_db, echo=lambda _: None) is False
    with demo_db.session() as session:
        assert session.scalar(sql_select(func.count(Account.id))) == 1
        assert session.scalar(sql_select(func.count(Message.id))) == 0
        assert session.scalar(sql_select(func.count(Company.id))) == 0


# ---------------------------------------------------------------- the real command


@pytest.mark.e2e
def test_casella_serve_creates_the_demo(tmp_path: Path) -> None:
    from tests.servers.dovecot import free_port

    web_port = free_port()
    env = {**os.environ, "CASELLA_DATA_DIR": str(tmp_path / "data"), "CASELLA_SMTP_LISTEN": f"127.0.0.1:{free_port()}",
           "CASELLA_WEB_LISTEN": f"127.0.0.1:{web_port}"}
    for key in ("CASELLA_DEMO", "CASELLA_DATABASE_URL", "CASELLA_ENV_FILE"):
        env.pop(key, None)
    log = tmp_path / "serve.log"
    # Output to a file, not a pipe: a helper process (the parse pool) that outlived the
    # server would hold a pipe open and hang the test instead of failing it. Its own
    # session, so that whatever it started can be cleaned up if the test fails.
    with log.open("w") as out:
        proc = subprocess.Popen([CASELLA, "serve"], env=env, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while "Casella is running" not in log.read_text() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        output = log.read_text()
        assert "Casella is running" in output, output
        assert "demo: created the account 'demo'" in output, output
        assert "submission server (SMTP, authenticated) on 127.0.0.1:" in output, output
        assert f"webmail: http://127.0.0.1:{web_port}/" in output, output
        logins = dict(re.findall(r"demo login \((\w+)\): (\S+ / \S+)", output))
        assert set(logins) == {"admin", "manager", "operator", "agent", "marketing"}, output
        # The printed operator login opens the demo inbox in the webmail.
        from tests.webmail.conftest import WebClient

        username, password = logins["operator"].split(" / ")
        client = WebClient(f"http://127.0.0.1:{web_port}")
        assert client.login(username, password) == 303
        status, _, html = client.get("/mail")
        assert status == 200 and html.count('<tr class="msg') == 50
        status, _, html = client.get("/compose")
        assert status == 200 and "info@studioferrari.it" in html  # the demo users may write as the office
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
        output = log.read_text()
        assert proc.returncode == 0, output
        assert "stopping..." in output, output
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # anything of the server's still running
        except ProcessLookupError:
            pass

    listed = subprocess.run([CASELLA, "message", "list", "--json"], env=env, capture_output=True, text=True,
                            timeout=120)
    assert listed.returncode == 0, listed.stderr
    items = json.loads(listed.stdout)
    assert len(items) == DEMO_COUNT
    for item in items:
        for key in ("id", "account", "folder", "message_id", "subject", "from", "date", "sha256", "thread_id",
                    "protocol", "link"):
            assert key in item, (key, item)
        assert item["account"] == DEMO_ACCOUNT
        assert item["protocol"] is not None
        assert item["folder"] in ("INBOX", "Sent")
    kinds = Counter(item["link"]["kind"] for item in items)
    assert set(kinds) == {"contact", "company", "unknown"}, kinds
    assert all(item["direction"] == "out" for item in items if item["folder"] == "Sent")

    # The demo is the only account.
    again = subprocess.run([CASELLA, "account", "list", "--json"], env=env, capture_output=True, text=True, timeout=60)
    assert [a["name"] for a in json.loads(again.stdout)] == [DEMO_ACCOUNT]
