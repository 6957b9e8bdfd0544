"""Delivery reports: the parser on every sample of tests/corpus/reports (and on the real
corpus, where it must never raise), then the `reports.link` stage through the real Storer
on SQLite and PostgreSQL: either arrival order, one row per recipient, idempotent, broken
reports kept with their problems."""

from __future__ import annotations

import base64
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select

from casella.blobs import BlobStore
from casella.messages import detail
from casella.models import Message, MessageEvent, MessageReport, QuarantineEntry
from casella.models.outbound import OutboundMessage
from casella.pipeline import StoredMessage, build_stages
from ingest.accounts import add_account
from ingest.parse import parse_message
from ingest.store import Incoming, Storer
from mailserver.report_stage import (
    ReportLinkStage,
    delivery_report_json,
    describe,
    list_reports,
    pick_target,
    recipient_reports,
    reports_for,
)
from mailserver.reports import is_report, parse_report, recipient_state

CORPUS = Path(__file__).resolve().parent.parent / "corpus"
REPORTS = CORPUS / "reports"
ORIGINAL = "176389293800.12345.2026112310153800@ufficio.example.it"
SAMPLES = ("postfix-dsn.eml", "exchange-ndr.eml", "delayed-dsn.eml", "thunderbird-mdn.eml", "outlook-mdn.eml",
           "malformed-dsn.eml")


def sample(name: str) -> bytes:
    return (REPORTS / name).read_bytes()


def sent_copy(msgid: str = ORIGINAL, to: str = "nessuno@cliente.example.com") -> bytes:
    return (f"From: info@ufficio.example.it\r\nTo: {to}\r\nSubject: Offerta 2026\r\n"
            f"Date: Mon, 23 Nov 2026 10:15:38 +0100\r\nMessage-ID: <{msgid}>\r\nMIME-Version: 1.0\r\n"
            "Content-Type: text/plain; charset=utf-8\r\n\r\nBuongiorno,\r\nin allegato l'offerta.\r\n").encode()


# ---------------------------------------------------------------- the parser, sample by sample
@pytest.mark.unit
def test_postfix_dsn_two_failed_recipients_from_rfc822_headers() -> None:
    rep = parse_report(sample("postfix-dsn.eml"))
    assert rep is not None and rep.kind == "dsn" and rep.refers_to_msgid == ORIGINAL and rep.problems == ()
    assert rep.reporter == "mx.ufficio.example.it"
    first, second = rep.recipients
    assert (first.recipient, first.action, first.status, first.state) == (
        "nessuno@cliente.example.com", "failed", "5.1.1", "bounced")
    # The folded Diagnostic-Code is one line, without its "smtp;" type.
    assert first.diagnostic == ("550 5.1.1 <nessuno@cliente.example.com>: Recipient address rejected: "
                                "User unknown in virtual mailbox table")
    assert first.original_recipient == "nessuno@cliente.example.com"
    assert first.at == datetime(2026, 11, 23, 9, 15, 40, tzinfo=UTC)  # Arrival-Date: no Last-Attempt-Date
    assert (second.recipient, second.status, second.diagnostic) == (
        "pieno@cliente.example.com", "5.2.2", "552 5.2.2 <pieno@cliente.example.com>: Mailbox full")


@pytest.mark.unit
def test_exchange_ndr_with_attached_message_and_long_status() -> None:
    rep = parse_report(sample("exchange-ndr.eml"))
    assert rep is not None and rep.kind == "dsn" and rep.refers_to_msgid == ORIGINAL and rep.problems == ()
    [r] = rep.recipients
    assert (r.recipient, r.action, r.status) == ("mario.rossi@cliente.example.com", "failed", "5.1.10")
    assert r.diagnostic == ("550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address "
                            "lookup")
    assert r.at == datetime(2026, 11, 23, 9, 20, 3, tzinfo=UTC)


@pytest.mark.unit
def test_delayed_dsn_is_transient_with_last_attempt_date() -> None:
    rep = parse_report(sample("delayed-dsn.eml"))
    assert rep is not None and rep.refers_to_msgid == ORIGINAL and rep.problems == ()
    [r] = rep.recipients
    assert (r.recipient, r.action, r.status, r.state) == ("lento@lontano.example.net", "delayed", "4.4.1", "delayed")
    assert r.diagnostic == "connect to mx.lontano.example.net[203.0.113.9]:25: Connection timed out"
    assert r.at == datetime(2026, 11, 23, 13, 15, 58, tzinfo=UTC)


@pytest.mark.unit
@pytest.mark.parametrize("name, who, at", [
    ("thunderbird-mdn.eml", "anna.verdi@cliente.example.com", datetime(2026, 11, 23, 10, 2, 15, tzinfo=UTC)),
    ("outlook-mdn.eml", "giulia.bianchi@cliente.example.com", datetime(2026, 11, 23, 10, 40, tzinfo=UTC)),
])
def test_mdn_displayed_is_read(name: str, who: str, at: datetime) -> None:
    rep = parse_report(sample(name))
    assert rep is not None and rep.kind == "mdn" and rep.refers_to_msgid == ORIGINAL and rep.problems == ()
    [r] = rep.recipients
    assert (r.recipient, r.action, r.state, r.status, r.at) == (who, "displayed", "read", None, at)
    assert rep.disposition is not None and rep.disposition.endswith("; displayed")
    assert describe("mdn", r.action, r.recipient, r.status, r.diagnostic, r.at) == (
        f"read by {who} at {at:%Y-%m-%d %H:%M} UTC")


@pytest.mark.unit
def test_malformed_report_has_a_problem_and_no_recipient() -> None:
    rep = parse_report(sample("malformed-dsn.eml"))
    assert rep is not None and rep.kind == "dsn" and rep.recipients == ()
    assert rep.refers_to_msgid == ORIGINAL  # the headers are there, who failed is not
    assert any("without a message/delivery-status part" in p for p in rep.problems)


@pytest.mark.unit
def test_mdn_falls_back_to_attached_headers_then_in_reply_to() -> None:
    raw = sample("thunderbird-mdn.eml")
    without_field = re.sub(rb"Original-Message-ID: <[^>]+>\n", b"", raw)
    assert without_field != raw
    rep = parse_report(without_field)
    assert rep is not None and rep.refers_to_msgid == ORIGINAL  # from the text/rfc822-headers part
    # No field, no attached headers (the part renamed away), only In-Reply-To/References.
    other = "99.other@ufficio.example.it"
    bare = without_field.replace(b"Message-ID: <" + ORIGINAL.encode() + b">\nDisposition-Notification-To",
                                 b"X-Nothing: here\nDisposition-Notification-To")
    bare = bare.replace(b"In-Reply-To: <" + ORIGINAL.encode(), b"In-Reply-To: <" + other.encode())
    rep = parse_report(bare)
    assert rep is not None and rep.refers_to_msgid == other
    no_in_reply = bare.replace(b"In-Reply-To: <" + other.encode() + b">\n", b"")
    rep = parse_report(no_in_reply)
    assert rep is not None and rep.refers_to_msgid == ORIGINAL  # the last of References


@pytest.mark.unit
def test_base64_encoded_delivery_status_and_missing_action() -> None:
    raw = sample("postfix-dsn.eml").decode()
    start = raw.index("Reporting-MTA:")
    end = raw.index("--4F2A1C0E9B", start)
    body = raw[start:end].replace("Action: failed\n", "", 1)
    encoded = base64.encodebytes(body.encode()).decode()
    raw = raw[:start].replace("Content-Type: message/delivery-status\n",
                              "Content-Type: message/delivery-status\nContent-Transfer-Encoding: base64\n") \
        + encoded + "\n" + raw[end:]
    rep = parse_report(raw.encode())
    assert rep is not None
    assert [(r.recipient, r.action, r.status) for r in rep.recipients] == [
        ("nessuno@cliente.example.com", "failed", "5.1.1"), ("pieno@cliente.example.com", "failed", "5.2.2")]
    assert any("without an Action field; read as failed from Status 5.1.1" in p for p in rep.problems)


@pytest.mark.unit
@pytest.mark.parametrize("raw", [
    b"", b"\x00\xff garbage \r\n\r\n\x80", b"Subject: hi\r\n\r\nplain text\r\n",
    b"Content-Type: multipart/report; report-type=delivery-status\r\n\r\nno boundary at all\r\n",
    (b"Content-Type: multipart/report; report-type=disposition-notification; boundary=x\r\n\r\n--x\r\n"
     b"Content-Type: message/disposition-notification\r\n\r\n\r\n--x--\r\n"),
    (b"Content-Type: multipart/report; boundary=x\r\n\r\n--x\r\nContent-Type: message/delivery-status\r\n\r\n"
     b"Final-Recipient: rfc822;\r\nStatus: 9.9\r\nLast-Attempt-Date: not a date\r\n--x--\r\n"),
])
def test_garbage_never_raises(raw: bytes) -> None:
    rep = parse_report(raw)
    assert rep is None or isinstance(rep.problems, tuple)


@pytest.mark.unit
def test_other_report_types_are_not_delivery_reports() -> None:
    raw = (CORPUS / "real" / "mimekit" / "messages" / "feedback-report.txt").read_bytes()
    assert is_report(parse_message(raw).headers)
    assert parse_report(raw) is None  # an abuse feedback report says nothing about delivery


@pytest.mark.unit
def test_the_real_corpus_never_raises_and_its_reports_are_read() -> None:
    found = {}
    for path in sorted((CORPUS / "real").rglob("*")):
        if path.is_file():
            rep = parse_report(path.read_bytes())
            if rep is not None:
                found[path.name] = rep
    bounce = found["bounce.txt"]  # Postfix behind Proofpoint: recipient blocks base64-encoded
    assert [(r.recipient, r.status) for r in bounce.recipients] == [("netec.test@netecgc.com", "5.1.1")]
    assert found["disposition-notification.txt"].recipients[0].action == "displayed"
    assert found["report_422.eml"].recipients[0].state == "delayed"
    assert len(found["multi_address_bounce1.eml"].recipients) == 5
    # Two delivery-status parts, the first of them prose: the second one is read.
    assert found["multipart_report_multiple_status.eml"].recipients[0].recipient == "u@ci.com"


@pytest.mark.unit
def test_states_and_targets() -> None:
    assert [recipient_state(a) for a in ("failed", "delayed", "delivered", "displayed", "deleted", "weird", "")] == [
        "bounced", "delayed", "delivered", "read", "deleted", "weird", "unknown"]
    assert pick_target([(5, "in", 1), (7, "out", 2), (9, "out", 1)], 1) == 9
    assert pick_target([(7, "out", 2), (8, "out", 2)], 1) == 7
    assert pick_target([(5, "in", 1)], 1) is None  # a received copy is never the sent message


# ---------------------------------------------------------------- the stage, on both databases
def make_storer(settings, database) -> tuple[Storer, int]:
    with database.session() as s:
        account_id = add_account(s, settings, name="ufficio", imap_host=None, imap_port=None, username=None,
                                 password=None, security="none", is_pec=False, folders=["INBOX"],
                                 sent_folders=["Sent"]).id
    return Storer(database, BlobStore(settings.blob_dir), build_stages(settings)), account_id


def store(storer: Storer, account_id: int, folder: str, *raws: bytes) -> list[int]:
    return storer.store_batch(account_id, [Incoming(raw=r, folder=folder) for r in raws]).message_ids


def events(session, message_id: int, actor: str = "reports") -> list[MessageEvent]:
    return list(session.scalars(select(MessageEvent).where(MessageEvent.message_id == message_id,
                                                           MessageEvent.actor == actor).order_by(MessageEvent.id)))


EXPECTED_STATES = {"nessuno@cliente.example.com": ("bounced", "5.1.1"), "pieno@cliente.example.com": ("bounced", "5.2.2"),
                   "mario.rossi@cliente.example.com": ("bounced", "5.1.10"),
                   "lento@lontano.example.net": ("delayed", "4.4.1"),
                   "anna.verdi@cliente.example.com": ("read", None), "giulia.bianchi@cliente.example.com": ("read", None)}


@pytest.mark.integration
def test_sent_first_then_reports_are_linked_one_row_per_recipient(settings, database) -> None:
    storer, account_id = make_storer(settings, database)
    [sent] = store(storer, account_id, "Sent", sent_copy())
    ids = dict(zip(SAMPLES, store(storer, account_id, "INBOX", *(sample(n) for n in SAMPLES)), strict=True))
    with database.session() as s:
        assert s.scalar(select(func.count(QuarantineEntry.id))) == 0
        rows = s.scalars(select(MessageReport).order_by(MessageReport.id)).all()
        assert len(rows) == 6 and {r.refers_to_id for r in rows} == {sent}
        assert {r.message_id for r in rows} == {ids[n] for n in SAMPLES[:5]}
        assert [r.recipient for r in rows if r.message_id == ids["postfix-dsn.eml"]] == [
            "nessuno@cliente.example.com", "pieno@cliente.example.com"]
        got = {r["recipient"]: (r["state"], r["status"]) for r in reports_for(s, sent)}
        assert got == EXPECTED_STATES
        actions = sorted(e.action for e in events(s, sent))
        assert actions == ["bounced", "bounced", "bounced", "delayed", "read", "read"]
        read = [e.detail for e in events(s, sent) if e.action == "read"]
        assert any(d["text"] == "read by anna.verdi@cliente.example.com at 2026-11-23 10:02 UTC" for d in read)
        # The message detail of `casella message show --json`.
        data = detail(s, s.get(Message, sent), settings)
        assert len(data["reports"]) == 6 and data["delivery_report"] is None
        assert {"kind", "recipient", "action", "status", "diagnostic", "at", "report_message"} <= set(data["reports"][0])
        mdn = detail(s, s.get(Message, ids["outlook-mdn.eml"]), settings)
        assert mdn["reports"] == [] and mdn["delivery_report"]["refers_to"] == sent
        # The malformed report: kept, not linked, its problem recorded on itself.
        bad = s.get(Message, ids["malformed-dsn.eml"])
        assert bad is not None and bad.subject == "Delivery failure: Offerta 2026"
        [problem] = events(s, bad.id)
        assert problem.action == "report-problem"
        assert "without a message/delivery-status part" in problem.detail["problems"][0]
        info = delivery_report_json(s, bad.id)
        assert info is not None and info["refers_to"] is None and info["recipients"] == [] and info["problems"]
        assert [r["message"] for r in list_reports(s) if r["id"] is None] == [bad.id]
        best = recipient_reports(s, [sent])[sent]
        assert {k: recipient_state(v.action) for k, v in best.items()} == {
            k: v[0] for k, v in EXPECTED_STATES.items()}


@pytest.mark.integration
def test_reports_first_are_orphans_then_the_sent_copy_adopts_them(settings, database) -> None:
    storer, account_id = make_storer(settings, database)
    ids = dict(zip(SAMPLES, store(storer, account_id, "INBOX", *(sample(n) for n in SAMPLES)), strict=True))
    with database.session() as s:
        assert s.scalar(select(func.count(MessageReport.id)).where(MessageReport.refers_to_id.is_not(None))) == 0
        orphans = list_reports(s, orphans=True)
        assert len([o for o in orphans if o["id"] is not None]) == 6
        assert all(o["refers_to_msgid"] == ORIGINAL for o in orphans if o["id"] is not None)
    # A received copy of the original (someone forwarded it to us) is not the sent message.
    store(storer, account_id, "INBOX", sent_copy().replace(b"Subject: Offerta", b"Subject: Fwd: Offerta"))
    with database.session() as s:
        assert s.scalar(select(func.count(MessageReport.id)).where(MessageReport.refers_to_id.is_not(None))) == 0
    [sent] = store(storer, account_id, "Sent", sent_copy())
    with database.session() as s:
        assert {r["recipient"]: (r["state"], r["status"]) for r in reports_for(s, sent)} == EXPECTED_STATES
        assert [o for o in list_reports(s, orphans=True) if o["id"] is not None] == []
        assert len(events(s, sent)) == 6
        assert delivery_report_json(s, ids["malformed-dsn.eml"])["refers_to"] is None
    # A second copy of the same report (another folder) and a new pass change nothing.
    store(storer, account_id, "Archive", sample("postfix-dsn.eml"))
    store(storer, account_id, "Sent", sent_copy())
    with database.session() as s:
        assert s.scalar(select(func.count(MessageReport.id))) == 6
        assert len(events(s, sent)) == 6


@pytest.mark.integration
def test_same_batch_stage_rerun_and_unreadable_blob(settings, database, tmp_path) -> None:
    storer, account_id = make_storer(settings, database)
    other = "same.batch@ufficio.example.it"
    dsn = sample("delayed-dsn.eml").replace(ORIGINAL.encode(), other.encode())
    # Report and sent copy in one batch (an import of a whole mailbox): linked.
    storer.store_batch(account_id, [Incoming(raw=dsn, folder="INBOX"), Incoming(raw=sent_copy(other), folder="Sent")])
    stage = ReportLinkStage(settings)
    with database.session() as s:
        [row] = s.scalars(select(MessageReport)).all()
        sent = s.scalar(select(Message.id).where(Message.message_id == other, Message.direction == "out"))
        assert row.refers_to_id == sent and row.action == "delayed"
        # The stage run again over the same stored report writes nothing more.
        report = s.get(Message, row.message_id)
        item = StoredMessage(row=report, parsed=parse_message(dsn), account=_account(s, report))
        stage.process([item], s)
        assert s.scalar(select(func.count(MessageReport.id))) == 1
        assert len(events(s, sent)) == 1
    # A report whose blob cannot be read: recorded, not raised, the message stays.
    [bad_id] = store(storer, account_id, "INBOX", sample("outlook-mdn.eml").replace(ORIGINAL.encode(), b"x@y"))
    stage.blobs = BlobStore(tmp_path / "empty-blob-store")
    with database.session() as s:
        s.execute(MessageReport.__table__.delete().where(MessageReport.message_id == bad_id))
        bad = s.get(Message, bad_id)
        stage.process([StoredMessage(row=bad, parsed=parse_message(sample("outlook-mdn.eml")),
                                     account=_account(s, bad))], s)
        [problem] = events(s, bad_id)
        assert problem.action == "report-problem" and "could not read the report" in problem.detail["problems"][0]


@pytest.mark.integration
def test_a_report_in_the_sent_folder_is_not_read_as_one(settings, database) -> None:
    storer, account_id = make_storer(settings, database)
    store(storer, account_id, "Sent", sent_copy())
    store(storer, account_id, "Sent", sample("thunderbird-mdn.eml"))  # an MDN somebody here sent
    with database.session() as s:
        assert s.scalar(select(func.count(MessageReport.id))) == 0


@pytest.mark.integration
def test_a_read_receipt_request_is_never_answered(settings, database) -> None:
    storer, account_id = make_storer(settings, database)
    asked = sent_copy("asks.for.mdn@cliente.example.com").replace(
        b"MIME-Version", b"Disposition-Notification-To: nessuno@cliente.example.com\r\nMIME-Version")
    store(storer, account_id, "INBOX", asked)
    with database.session() as s:
        assert s.scalar(select(func.count(OutboundMessage.id))) == 0
        assert s.scalar(select(func.count(Message.id))) == 1


def _account(session, message: Message):
    from casella.models import Account

    return session.get(Account, message.account_id)
