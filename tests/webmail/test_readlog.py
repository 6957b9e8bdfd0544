"""The read log pages: who opened what, per user and per message; admin and manager only;
the CSV export is itself audited. Openings are made the real way: GET /mail/{id}."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from sqlalchemy import select

from casella.models import Account, AuditLog, Message, ReadLog
from tests.webmail.conftest import Office, login, personal_mailbox

F118 = "f118@edilnord.it"
OFFER = "off1@tecnoservizi.com"


def test_only_admin_and_manager_see_the_read_log(office: Office) -> None:
    for username in ("olga", "rossi", "mara"):
        status, _, _ = office.http(username).get("/readlog?user=olga")
        assert status == 403, username
        assert office.http(username).get("/readlog")[0] == 403
    assert office.http("admin").get("/readlog")[0] == 200
    assert office.http("direttore").get("/readlog")[0] == 200
    assert office.http().get("/readlog")[0] == 303  # signed out: to the login page


def test_manager_sees_what_olga_opened_and_who_opened_a_message(office: Office) -> None:
    f118, offer = office.ids[F118], office.ids[OFFER]
    olga = office.http("olga")
    assert olga.get(f"/mail/{f118}")[0] == 200
    assert olga.get(f"/mail/{offer}")[0] == 200
    assert office.http("rossi").get(f"/mail/{f118}")[0] == 200
    boss = office.http("direttore")
    status, _, html = boss.get("/readlog?user=olga")
    assert status == 200
    table = html.split('id="readlog-rows"')[1].split("</table>")[0]
    # Newest first, with links to the messages.
    assert table.index(f'href="/mail/{offer}"') < table.index(f'href="/mail/{f118}"')
    assert "Fattura 2026/118 cantiere Monza" in table and "Offerta manutenzione impianti" in table
    status, _, html = boss.get(f"/readlog?message={f118}")
    table = html.split('id="readlog-rows"')[1].split("</table>")[0]
    assert "Olga Operatrice" in table and "Mario Rossi" in table and 'href="/readlog?user=olga"' in table
    assert boss.get("/readlog?user=nobody-at-all")[0] == 404
    assert boss.get("/readlog?message=999999")[0] == 404


def test_csv_export_is_complete_and_audited(office: Office) -> None:
    f118 = office.ids[F118]
    olga = office.http("olga")
    for _ in range(3):
        olga.get(f"/mail/{f118}")
    boss = office.http("direttore")
    status, headers, body = boss.get("/readlog?user=olga&format=csv")
    assert status == 200 and headers["content-type"].startswith("text/csv")
    assert 'filename="readlog-user-olga.csv"' in headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(body)))
    assert len(rows) == 3
    assert {(r["username"], r["message_id"], r["subject"]) for r in rows} == \
        {("olga", str(f118), "Fattura 2026/118 cantiere Monza")}
    status, _, body = boss.get(f"/readlog?message={f118}&format=csv")
    assert status == 200 and len(list(csv.DictReader(io.StringIO(body)))) == 3
    with office.db.reading() as s:
        exports = list(s.scalars(select(AuditLog).where(AuditLog.action == "readlog:export").order_by(AuditLog.id)))
    assert [(a.actor, a.target) for a in exports] == [("direttore", "user:olga"), ("direttore", f"message:{f118}")]
    assert office.http("olga").get("/readlog?user=olga&format=csv")[0] == 403


def test_hostile_subjects_are_inert_in_page_and_csv(office: Office) -> None:
    xss = office.ids["xss@edilnord.it"]
    office.http("olga").get(f"/mail/{xss}")
    with office.db.session() as s:  # a subject a spreadsheet would run as a formula
        s.get(Message, office.ids[F118]).subject = "=HYPERLINK(\"http://evil.example\")"
    office.http("olga").get(f"/mail/{office.ids[F118]}")
    boss = office.http("direttore")
    _, _, html = boss.get("/readlog?user=olga")
    assert "<script>window.__xss" not in html and "&lt;script&gt;" in html
    _, _, body = boss.get("/readlog?user=olga&format=csv")
    subjects = [r["subject"] for r in csv.DictReader(io.StringIO(body))]
    assert "'=HYPERLINK(\"http://evil.example\")" in subjects


def test_a_personal_message_shows_as_a_row_without_its_subject(office: Office) -> None:
    f118 = personal_mailbox(office, "olga", office.ids[F118])
    assert office.http("olga").get(f"/mail/{f118}")[0] == 200  # her own mailbox
    with office.db.reading() as s:
        assert s.scalar(select(ReadLog.id).where(ReadLog.message_id == f118)) is not None
        assert s.scalar(select(Account.owner_user_id).where(Account.name == "personale-olga")) is not None
    boss = office.http("direttore")
    _, _, html = boss.get("/readlog?user=olga")
    table = html.split('id="readlog-rows"')[1].split("</table>")[0]
    assert "(messaggio privato)" in table and "Fattura 2026/118" not in table and f'href="/mail/{f118}"' not in table
    assert boss.get(f"/readlog?message={f118}")[0] == 404  # the manager cannot read it
    _, _, body = boss.get("/readlog?user=olga&format=csv")
    assert [r["subject"] for r in csv.DictReader(io.StringIO(body))] == ["(messaggio privato)"]


def test_browser_manager_follows_the_read_log_from_the_message(office: Office, page: Any) -> None:
    f118 = office.ids[F118]
    office.http("olga").get(f"/mail/{f118}")
    login(page, office, "direttore")
    page.goto(f"{office.url}/mail/{f118}")
    page.locator("#work-reads a", has_text="Olga Operatrice").click()
    page.wait_for_url("**/readlog?user=olga")
    page.locator("#readlog-rows a", has_text="Fattura 2026/118 cantiere Monza").wait_for()
    with page.expect_download() as info:
        page.get_by_role("link", name="Esporta CSV").click()
    text = Path(info.value.path()).read_text(encoding="utf-8")
    assert "olga" in text and "Fattura 2026/118" in text
    with office.db.reading() as s:
        assert s.scalar(select(AuditLog.target).where(AuditLog.action == "readlog:export")) == "user:olga"
