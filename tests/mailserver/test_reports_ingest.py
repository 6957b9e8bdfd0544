"""Bounces and read receipts end to end, on SQLite and PostgreSQL: a message sent through
Casella's own submission server (or read from the Sent folder), the reports of
tests/corpus/reports delivered into a real Dovecot INBOX, `casella ingest --once`, and what
the real `casella` command then shows (`message show --json`, `outbox list --json`,
`reports list --json`), in either arrival order."""

from __future__ import annotations

import smtplib
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest

from casella.db import Database
from casella.secrets import SecretBox
from casella.settings import Settings
from casella.users import add_user, grant_mailbox
from mailserver.identities import add_identity
from mailserver.relay import RelayWorker
from mailserver.server import SubmissionServer
from mailserver.upstream import set_upstream
from tests.conftest import Cli, crlf
from tests.servers.smtp import SmtpSink

pytestmark = pytest.mark.e2e

REPORTS = Path(__file__).resolve().parent.parent / "corpus" / "reports"
ORIGINAL = "176389293800.12345.2026112310153800@ufficio.example.it"
OFFICE = "info@ufficio.example.it"
SAMPLES = ("postfix-dsn.eml", "exchange-ndr.eml", "delayed-dsn.eml", "thunderbird-mdn.eml", "outlook-mdn.eml",
           "malformed-dsn.eml")
RECIPIENTS = ("nessuno@cliente.example.com", "pieno@cliente.example.com", "mario.rossi@cliente.example.com",
              "lento@lontano.example.net", "anna.verdi@cliente.example.com", "giulia.bianchi@cliente.example.com",
              "zitto@cliente.example.com")
EXPECTED = {  # what each recipient's entry says once every report is in
    "nessuno@cliente.example.com": ("bounced", "5.1.1"), "pieno@cliente.example.com": ("bounced", "5.2.2"),
    "mario.rossi@cliente.example.com": ("bounced", "5.1.10"), "lento@lontano.example.net": ("delayed", "4.4.1"),
    "anna.verdi@cliente.example.com": ("read", None), "giulia.bianchi@cliente.example.com": ("read", None),
}


def add_account(cli: Cli, dovecot: Any, folders: str = "INBOX") -> None:
    cli("account", "add", "ufficio", "--imap-host", dovecot.host, "--imap-port", str(dovecot.port),
        "--username", "alice", "--password-env", "IMAP_PW", "--security", "none", "--folders", folders,
        "--sent-folders", "Sent", extra_env={"IMAP_PW": dovecot.users["alice"]})


def deliver_reports(dovecot: Any) -> None:
    dovecot.append_many("alice", [crlf((REPORTS / name).read_bytes()) for name in SAMPLES])


def by_subject(cli: Cli) -> dict[str, dict[str, Any]]:
    return {m["subject"]: m for m in cli("message", "list", "--json").json()}


def check_linked(cli: Cli, sent_id: int, ids: dict[str, int]) -> None:
    sent = cli("message", "show", str(sent_id), "--json").json()
    assert sent["direction"] == "out"
    assert {r["recipient"]: (r["action"], r["status"]) for r in sent["reports"]} == {
        "nessuno@cliente.example.com": ("failed", "5.1.1"), "pieno@cliente.example.com": ("failed", "5.2.2"),
        "mario.rossi@cliente.example.com": ("failed", "5.1.10"), "lento@lontano.example.net": ("delayed", "4.4.1"),
        "anna.verdi@cliente.example.com": ("displayed", None), "giulia.bianchi@cliente.example.com": ("displayed", None)}
    for r in sent["reports"]:
        assert set(r) >= {"kind", "recipient", "action", "status", "diagnostic", "at", "report_message"}
        assert r["report_message"] in ids.values() and r["at"] is not None
    [anna] = [r for r in sent["reports"] if r["recipient"] == "anna.verdi@cliente.example.com"]
    assert anna["kind"] == "mdn" and anna["report_message"] == ids["thunderbird-mdn.eml"]
    assert anna["text"] == "read by anna.verdi@cliente.example.com at 2026-11-23 10:02 UTC"
    [mario] = [r for r in sent["reports"] if r["recipient"] == "mario.rossi@cliente.example.com"]
    assert mario["kind"] == "dsn" and "RecipientNotFound" in mario["diagnostic"]
    history = sorted(h["action"] for h in sent["history"] if h["actor"] == "reports")
    assert history == ["bounced", "bounced", "bounced", "delayed", "read", "read"]
    # The malformed report: stored, shown, not linked, its problem recorded.
    bad = cli("message", "show", str(ids["malformed-dsn.eml"]), "--json").json()
    assert bad["subject"] == "Delivery failure: Offerta 2026" and bad["reports"] == []
    info = bad["delivery_report"]
    assert info["refers_to"] is None and info["recipients"] == []
    assert "without a message/delivery-status part" in info["problems"][0]
    assert [h["action"] for h in bad["history"] if h["actor"] == "reports"] == ["report-problem"]
    listed = cli("reports", "list", "--json").json()
    assert len([r for r in listed if r["refers_to"] == sent_id]) == 6
    assert [r["message"] for r in cli("reports", "list", "--orphans", "--json").json()] == [ids["malformed-dsn.eml"]]


def test_submitted_message_then_bounces_and_receipts_from_dovecot(cli: Cli, dovecot: Any, env: dict[str, str]) -> None:
    add_account(cli, dovecot)
    sink = SmtpSink().start()
    settings = Settings.load({**env, "CASELLA_SMTP_LISTEN": "127.0.0.1:0", "CASELLA_RELAY_TIMEOUT_SECONDS": "5"})
    db = Database.from_settings(settings)
    try:
        with db.session() as s:
            add_user(s, "anna", "operator", password="anna-pw")
            grant_mailbox(s, "ufficio", user="anna", level="write")
            add_identity(s, "anna", OFFICE, "ufficio")
            set_upstream(s, SecretBox(settings.secret_key_file), "ufficio", host="127.0.0.1", port=sink.port,
                         security="none", username=None, password=None)
        server = SubmissionServer(settings, db).start()
        try:
            msg = EmailMessage()
            msg["From"], msg["To"], msg["Subject"] = OFFICE, ", ".join(RECIPIENTS), "Offerta 2026"
            msg["Message-ID"] = f"<{ORIGINAL}>"
            msg["Disposition-Notification-To"] = OFFICE
            msg.set_content("Buongiorno,\nin allegato l'offerta.\n")
            with smtplib.SMTP("127.0.0.1", server.port, timeout=10) as client:
                client.login("anna", "anna-pw")
                client.send_message(msg, from_addr=OFFICE, to_addrs=list(RECIPIENTS))
        finally:
            server.stop()
        assert RelayWorker(settings, db).run_pending() == 1
        assert len(sink.messages) == 1  # the message itself: Casella sent no MDN nor anything else
    finally:
        sink.stop()
        db.dispose()
    [queued] = cli("outbox", "list", "--json").json()
    assert queued["state"] == "sent"
    assert {r["address"]: r["state"] for r in queued["recipients"]} == {a: "sent" for a in RECIPIENTS}
    deliver_reports(dovecot)
    cli("ingest", "--once")
    stored = by_subject(cli)
    ids = {name: stored[s]["id"] for name, s in zip(SAMPLES, (
        "Undelivered Mail Returned to Sender", "Non recapitabile: Offerta 2026", "Delayed Mail (still being retried)",
        "Ricevuta di ritorno (visualizzato) - Offerta 2026", "Letto: Offerta 2026",
        "Delivery failure: Offerta 2026"), strict=True)}
    check_linked(cli, queued["message"], ids)
    # Every existing field is still there, with one entry per recipient added.
    [entry] = cli("outbox", "list", "--json").json()
    assert {k: v for k, v in entry.items() if k != "recipients"} == {
        k: v for k, v in queued.items() if k != "recipients"}
    got = {r["address"]: (r["state"], r["status"]) for r in entry["recipients"]}
    assert got == {**EXPECTED, "zitto@cliente.example.com": ("sent", None)}
    [bounced] = [r for r in entry["recipients"] if r["address"] == "nessuno@cliente.example.com"]
    assert bounced["diagnostic"].startswith("550 5.1.1") and bounced["at"].startswith("2026-11-23T09:15:40")
    assert bounced["report_message"] == ids["postfix-dsn.eml"]
    cli("ingest", "--once")  # a second pass changes nothing
    assert len(cli("reports", "list", "--json").json()) == 7


def test_reports_before_the_sent_copy_are_linked_when_it_arrives(cli: Cli, dovecot: Any) -> None:
    add_account(cli, dovecot, folders="INBOX,Sent")
    with dovecot.client("alice") as client:
        client.create_folder("Sent")
    deliver_reports(dovecot)
    cli("ingest", "--once")
    orphans = cli("reports", "list", "--orphans", "--json").json()
    assert len(orphans) == 7  # six recipients, and the malformed report
    assert {o["refers_to_msgid"] for o in orphans if o["id"] is not None} == {ORIGINAL}
    assert all(o["refers_to"] is None for o in orphans)
    stored = by_subject(cli)
    assert all(not cli("message", "show", str(m["id"]), "--json").json()["reports"] for m in stored.values())
    sent = (f"From: {OFFICE}\r\nTo: {', '.join(RECIPIENTS)}\r\nSubject: Offerta 2026\r\n"
            f"Date: Mon, 23 Nov 2026 10:15:38 +0100\r\nMessage-ID: <{ORIGINAL}>\r\nMIME-Version: 1.0\r\n"
            "Content-Type: text/plain; charset=utf-8\r\n\r\nBuongiorno,\r\n").encode()
    dovecot.append_many("alice", [sent], folder="Sent")
    cli("ingest", "--once")
    stored = by_subject(cli)
    [sent_item] = [m for m in cli("message", "list", "--json").json() if m["direction"] == "out"]
    ids = {name: stored[s]["id"] for name, s in zip(SAMPLES, (
        "Undelivered Mail Returned to Sender", "Non recapitabile: Offerta 2026", "Delayed Mail (still being retried)",
        "Ricevuta di ritorno (visualizzato) - Offerta 2026", "Letto: Offerta 2026",
        "Delivery failure: Offerta 2026"), strict=True)}
    check_linked(cli, sent_item["id"], ids)
