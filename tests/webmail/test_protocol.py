"""The protocol register: list with filters, cancel (admin only, with a reason), and the
daily register as CSV (Excel-friendly) and PDF."""

from __future__ import annotations

import csv
import io
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from casella.models import AuditLog, Registration
from tests.webmail.conftest import Office

pytestmark = pytest.mark.integration


def reg_id(office: Office, number: int) -> int:
    with office.db.reading() as s:
        found = s.scalar(select(Registration.id).where(Registration.number == number))
        assert found is not None
        return found


def today(office: Office) -> str:
    return datetime.now(ZoneInfo(office.settings.timezone)).date().isoformat()


def test_register_lists_and_filters(office: Office) -> None:
    status, _, html = office.http("olga").get("/protocol")
    assert status == 200
    for n in range(1, 5):
        assert f"2026/000000{n}" in html
    assert f'href="/mail/{office.ids["f118@edilnord.it"]}"' in html
    assert "<script>window.__xss" not in html
    _, _, html = office.http("olga").get("/protocol?q=manutenzione")
    assert "Offerta manutenzione impianti" in html and "Fattura 2026/118" not in html
    _, _, html = office.http("olga").get("/protocol?q=2026/0000003")
    assert "Richiesta informazioni" in html and "Offerta manutenzione" not in html
    _, _, html = office.http("olga").get("/protocol?q=2025/0000003")  # that number, another year: none
    assert "Richiesta informazioni" not in html
    _, _, html = office.http("olga").get("/protocol?direction=out")
    assert "2026/0000001" not in html
    _, _, html = office.http("olga").get(f"/protocol?from={today(office)}&to={today(office)}&registry=AOO")
    assert "2026/0000004" in html
    _, _, html = office.http("olga").get("/protocol?from=2020-01-01&to=2020-01-02")
    assert "2026/0000001" not in html
    # An agent sees only the entries of the mail they may read.
    _, _, html = office.http("rossi").get("/protocol")
    assert "2026/0000001" in html and "2026/0000002" not in html and "2026/0000003" not in html


def test_cancel_is_for_admins_with_a_reason(office: Office) -> None:
    target = reg_id(office, 2)
    status, _, _ = office.http("olga").post(f"/protocol/{target}/cancel", {"reason": "errore"})
    assert status == 403
    admin = office.http("admin")
    status, _, html = admin.post(f"/protocol/{target}/cancel", {"reason": "  "})
    assert status == 400
    status, _, _ = admin.post(f"/protocol/{target}/cancel", {"reason": "Registrata due volte"})
    assert status == 303
    with office.db.reading() as s:
        reg = s.get(Registration, target)
        assert reg is not None and reg.cancelled_by == "admin" and reg.cancel_reason == "Registrata due volte"
        audit = s.scalar(select(AuditLog).where(AuditLog.action == "protocol-cancel"))
        assert audit is not None and audit.detail["number"] == "2026/0000002"
    _, _, html = admin.get("/protocol")
    assert "Registrata due volte" in html
    status, _, _ = admin.post(f"/protocol/{target}/cancel", {"reason": "ancora"})
    assert status == 400


def test_daily_register_csv_and_pdf(office: Office) -> None:
    admin = office.http("admin")
    admin.post(f"/protocol/{reg_id(office, 3)}/cancel", {"reason": "Spam"})
    # A reason a spreadsheet would run as a formula (subjects and senders come from outside).
    admin.post(f"/protocol/{reg_id(office, 2)}/cancel", {"reason": '=HYPERLINK("https://evil.example","x")'})
    status, headers, body = admin.get_bytes(f"/protocol/daily?date={today(office)}&format=csv")
    assert status == 200 and headers["content-type"].startswith("text/csv")
    assert body.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(body.decode("utf-8-sig")), delimiter=";"))
    assert rows[0][:3] == ["registry", "number", "date"]
    assert [r[1] for r in rows[1:]] == ["2026/0000001", "2026/0000002", "2026/0000003", "2026/0000004"]
    assert rows[3][8] and rows[3][10] == "Spam" and not rows[1][8]
    assert rows[2][10] == '\'=HYPERLINK("https://evil.example","x")'
    assert admin.get_bytes(f"/protocol/daily?date={today(office)}&format=csv&registry=A%22B")[0] == 400
    _, _, body = admin.get_bytes("/protocol/daily?date=2020-01-01&format=csv")
    assert len(list(csv.reader(io.StringIO(body.decode("utf-8-sig")), delimiter=";"))) == 1

    status, headers, pdf = admin.get_bytes(f"/protocol/daily?date={today(office)}&format=pdf&registry=AOO")
    assert status == 200 and headers["content-type"] == "application/pdf" and pdf.startswith(b"%PDF")
    from pypdf import PdfReader

    text = "\n".join(p.extract_text() for p in PdfReader(io.BytesIO(pdf)).pages)
    assert "Registro giornaliero di protocollo" in text
    for n in range(1, 5):
        assert f"2026/000000{n}" in text
    assert "ANNULLATA" in text and "Spam" in text
    assert "Registrazioni: 4" in text and "Pagina 1" in text
    with office.db.reading() as s:
        exports = list(s.scalars(select(AuditLog).where(AuditLog.action == "protocol-export")))
    assert {e.detail["format"] for e in exports} == {"csv", "pdf"}


def test_daily_register_as_agent_holds_only_their_entries(office: Office) -> None:
    _, _, body = office.http("rossi").get_bytes(f"/protocol/daily?date={today(office)}&format=csv")
    numbers = [r[1] for r in csv.reader(io.StringIO(body.decode("utf-8-sig")), delimiter=";")][1:]
    assert numbers == ["2026/0000001", "2026/0000004"]


def test_register_page_in_the_browser(office: Office, page: Any) -> None:
    from tests.webmail.conftest import login

    login(page, office, "admin")
    page.goto(office.url + "/protocol")
    page.click(f"#reg-{reg_id(office, 4)} summary")
    page.fill(f"#reason-{reg_id(office, 4)}", "Messaggio ostile")
    page.click(f"#reg-{reg_id(office, 4)} button.danger")
    page.wait_for_url("**/protocol?notice=cancelled")
    assert "Messaggio ostile" in page.inner_text(f"#reg-{reg_id(office, 4)}")
    assert page.evaluate("window.__xss") is None
