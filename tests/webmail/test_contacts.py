"""Contacts and companies: agents see only their own, edit and merge are audited, and an
unknown sender becomes a contact in two clicks (its mail leaves the unknown view)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from sqlalchemy import select

from casella.models import (
    Company,
    CompanyDomain,
    Contact,
    Message,
    MessageEvent,
)
from tests.webmail.conftest import Office, audit_log, login

pytestmark = pytest.mark.integration


def company_id(office: Office, name: str) -> int:
    with office.db.reading() as s:
        found = s.scalar(select(Company.id).where(Company.name == name))
        assert found is not None
        return found


def test_agent_sees_only_own_companies(office: Office) -> None:
    edilnord, tecno = company_id(office, "Edilnord S.r.l."), company_id(office, "Tecnoservizi S.p.A.")
    rossi = office.http("rossi")
    status, _, html = rossi.get("/contacts")
    assert status == 200
    assert "Edilnord S.r.l." in html and "Tecnoservizi" not in html
    assert "Giulia Neri" in html and "Paolo Verdi" not in html
    status, _, html = rossi.get(f"/contacts/company/{edilnord}")
    assert status == 200 and "edilnord.it" in html and "Fattura 2026/118" in html
    assert rossi.get(f"/contacts/company/{tecno}")[0] == 404
    with office.db.reading() as s:
        paolo = s.scalar(select(Contact.id).where(Contact.name == "Paolo Verdi"))
    assert rossi.get(f"/contacts/contact/{paolo}")[0] == 404
    # An agent cannot edit another agent's company either.
    assert rossi.post(f"/contacts/company/{tecno}", {"name": "Presa"})[0] == 404
    # Search: by domain, by e-mail, and nothing of others leaks.
    olga = office.http("olga")
    _, _, html = olga.get("/contacts?q=tecnoservizi.com")
    assert "Tecnoservizi S.p.A." in html and "Edilnord S.r.l." not in html
    _, _, html = olga.get("/contacts?q=giulia.neri%40edilnord")
    assert "Edilnord S.r.l." in html and "Giulia Neri" in html and "Paolo Verdi" not in html


def test_company_card_shows_mail_and_protocol(office: Office) -> None:
    edilnord = company_id(office, "Edilnord S.r.l.")
    _, _, html = office.http("direttore").get(f"/contacts/company/{edilnord}")
    assert "Giulia Neri" in html
    assert f'/mail?company={edilnord}' in html
    assert "Fattura 2026/118 cantiere Monza" in html
    assert "2026/0000001" in html  # its protocol entry
    assert "<script>window.__xss" not in html and "onerror=\"window" not in html


def test_edit_company_and_marketing_is_read_only(office: Office) -> None:
    edilnord = company_id(office, "Edilnord S.r.l.")
    mara = office.http("mara")
    assert mara.get(f"/contacts/company/{edilnord}")[0] == 200
    assert mara.post(f"/contacts/company/{edilnord}", {"name": "X"})[0] == 403
    rossi = office.http("rossi")
    form = {"name": "Edilnord S.r.l. (Monza)", "vat_number": "IT01234567890", "fiscal_code": "",
            "lifecycle": "customer", "agent": "bianchi", "category": "cliente",
            "domains": "edilnord.it\nedilnord-monza.it"}
    status, _, _ = rossi.post(f"/contacts/company/{edilnord}", form)
    assert status == 303, status
    with office.db.reading() as s:
        row = s.get(Company, edilnord)
        assert row is not None and row.name == "Edilnord S.r.l. (Monza)" and row.vat_number == "IT01234567890"
        assert row.agent == "rossi"  # an agent cannot give the company away
        assert set(s.scalars(select(CompanyDomain.domain).where(CompanyDomain.company_id == edilnord))) == {
            "edilnord.it", "edilnord-monza.it"}
    edits = audit_log(office, "company-edit")
    assert edits and edits[-1].target == f"company:{edilnord}" and edits[-1].detail["domains_added"] == ["edilnord-monza.it"]
    # A domain of another company is refused with a way forward.
    status, _, html = office.http("olga").post(f"/contacts/company/{edilnord}", {**form, "domains": "tecnoservizi.com"})
    assert status == 400 and "tecnoservizi.com" in html


def test_merge_companies_moves_everything(office: Office) -> None:
    edilnord, tecno = company_id(office, "Edilnord S.r.l."), company_id(office, "Tecnoservizi S.p.A.")
    status, headers, _ = office.http("olga").post(f"/contacts/company/{tecno}/merge", {"into": str(edilnord)})
    assert status == 303 and headers["location"].endswith(f"/contacts/company/{edilnord}")
    with office.db.reading() as s:
        assert s.get(Company, tecno) is None
        assert s.scalar(select(CompanyDomain.company_id).where(CompanyDomain.domain == "tecnoservizi.com")) == edilnord
        assert s.scalar(select(Contact.company_id).where(Contact.name == "Paolo Verdi")) == edilnord
        msg = s.get(Message, office.ids["off1@tecnoservizi.com"])
        assert msg is not None and msg.company_id == edilnord
        assert s.scalar(select(MessageEvent.action).where(MessageEvent.message_id == msg.id,
                                                          MessageEvent.action == "company-merged"))
    merges = audit_log(office, "company-merge")
    assert merges and merges[-1].detail["merged"] == tecno and merges[-1].detail["messages"] == 1
    _, _, html = office.http("rossi").get(f"/contacts/company/{edilnord}")
    assert "Paolo Verdi" in html


def test_merge_contacts(office: Office) -> None:
    with office.db.reading() as s:
        giulia = s.scalar(select(Contact.id).where(Contact.name == "Giulia Neri"))
        paolo = s.scalar(select(Contact.id).where(Contact.name == "Paolo Verdi"))
    status, _, _ = office.http("admin").post(f"/contacts/contact/{paolo}/merge", {"into": str(giulia)})
    assert status == 303
    _, _, html = office.http("admin").get(f"/contacts/contact/{giulia}")
    assert "paolo.verdi@tecnoservizi.com" in html and "giulia.neri@edilnord.it" in html
    with office.db.reading() as s:
        msg = s.get(Message, office.ids["off1@tecnoservizi.com"])
        assert msg is not None and msg.contact_id == giulia
    assert audit_log(office, "contact-merge")


def test_unknown_sender_becomes_a_contact(office: Office, page: Any) -> None:
    unknown_id = office.ids["ri1@nuovo-cliente.example"]
    olga = office.http("olga")
    _, _, html = olga.get("/mail?unknown=1")
    assert "Richiesta informazioni" in html
    # The prefill comes from the message, and only for someone who may read it.
    assert office.http("rossi").get(f"/contacts/new?message={unknown_id}")[0] == 404
    login(page, office, "olga")
    page.goto(office.url + "/mail?unknown=1")
    page.locator("tr.msg", has_text="Richiesta informazioni").locator("a.add-contact").click()
    page.wait_for_url(re.compile(rf".*/contacts/new\?message={unknown_id}$"))
    assert page.input_value("#n-email") == "chi@nuovo-cliente.example"
    assert page.input_value("#n-domain") == "nuovo-cliente.example"
    assert page.input_value("#n-company-name") == "Nuovo Cliente"
    page.fill("#n-name", "Chiara Nuovi")
    page.click("#contact-new button[type=submit]")
    page.wait_for_url(re.compile(r".*/contacts/contact/\d+.*"))
    assert "Chiara Nuovi" in page.content()
    with office.db.reading() as s:
        msg = s.get(Message, unknown_id)
        assert msg is not None and msg.link_kind == "contact" and msg.contact_id is not None
        company = s.get(Company, msg.company_id)
        assert company is not None and company.name == "Nuovo Cliente"
        assert s.scalar(select(MessageEvent.action).where(MessageEvent.message_id == unknown_id,
                                                          MessageEvent.action == "linked")) == "linked"
    _, _, html = olga.get("/mail?unknown=1")
    assert "Richiesta informazioni" not in html
    assert any(a.detail["relinked"] == 1 for a in audit_log(office, "contact-create"))


def test_freemail_sender_gets_no_company_domain(office: Office) -> None:
    _, _, html = office.http("olga").get("/contacts/new?email=mario%40gmail.com&name=Mario")
    assert 'id="n-domain" name="domain" value=""' in html
    assert 'value="none" checked' in html
