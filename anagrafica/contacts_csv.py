"""`casella contacts import FILE.csv` and `casella contacts export`.

Columns (header required; extra columns are allowed, order is free):
``company_name,company_domain,contact_name,email,vat_number`` and optionally
``fiscal_code,lifecycle,agent,category``. A row may describe a company only (no email), a contact
only (no company) or both. Rows are merged by VAT number, then by company name, and by
email for contacts, so importing the same file twice changes nothing. Free-mail and shared
PEC domains are never recorded as a company's domain (that would link every gmail.com
sender to one company); they are reported instead.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TextIO

from sqlalchemy import select
from sqlalchemy.orm import Session

from anagrafica.errors import BadContactsFile
from anagrafica.freemail import is_freemail
from casella.models import LIFECYCLES, Company, CompanyDomain, Contact, ContactEmail

REQUIRED = ("company_name", "company_domain", "contact_name", "email", "vat_number")
EXPORT_COLUMNS = (*REQUIRED, "fiscal_code", "lifecycle", "agent", "category")


@dataclass
class ImportReport:
    companies_created: int = 0
    contacts_created: int = 0
    emails_added: int = 0
    domains_added: int = 0
    warnings: list[str] = field(default_factory=list)


def import_csv(session: Session, stream: TextIO, *, extra_freemail: Iterable[str] = ()) -> ImportReport:
    reader = csv.DictReader(stream)
    header = [h.strip().lower() for h in (reader.fieldnames or [])]
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        raise BadContactsFile(f"the CSV header lacks {', '.join(missing)}; the first line must name at least "
                              f"{','.join(REQUIRED)}")
    reader.fieldnames = header
    report = ImportReport()
    extra = frozenset(d.lower() for d in extra_freemail)
    for lineno, raw in enumerate(reader, start=2):
        row = {k: (v or "").strip() for k, v in raw.items() if k}
        company = _company(session, row, report, lineno)
        for domain in _split(row.get("company_domain", "")):
            domain = domain.lower().lstrip("@")
            if company is None:
                report.warnings.append(f"line {lineno}: domain {domain} given without a company name; ignored")
            elif is_freemail(domain, extra):
                report.warnings.append(f"line {lineno}: {domain} is a free-mail or shared PEC domain; "
                                       "not linked to a company")
            else:
                owner = session.scalar(select(CompanyDomain).where(CompanyDomain.domain == domain))
                if owner is None:
                    session.add(CompanyDomain(company_id=company.id, domain=domain))
                    session.flush()
                    report.domains_added += 1
                elif owner.company_id != company.id:
                    report.warnings.append(f"line {lineno}: domain {domain} already belongs to another company")
        emails = [e.lower() for e in _split(row.get("email", ""))]
        if emails:
            _contact(session, row, emails, company, report)
    return report


def _split(value: str) -> list[str]:
    return [v.strip() for v in value.replace(";", ",").split(",") if v.strip()]


def _company(session: Session, row: dict[str, str], report: ImportReport, lineno: int) -> Company | None:
    name, vat = row.get("company_name", ""), row.get("vat_number", "")
    if not name and not vat:
        return None
    company = None
    if vat:
        company = session.scalar(select(Company).where(Company.vat_number == vat))
    if company is None and name:
        company = session.scalar(select(Company).where(Company.name == name))
    lifecycle = row.get("lifecycle", "").lower()
    if lifecycle and lifecycle not in LIFECYCLES:
        report.warnings.append(f"line {lineno}: lifecycle {lifecycle!r} is not one of {', '.join(LIFECYCLES)}; ignored")
        lifecycle = ""
    if company is None:
        company = Company(name=name or vat, vat_number=vat or None, fiscal_code=row.get("fiscal_code") or None,
                          lifecycle=lifecycle or "suspect", agent=row.get("agent") or None,
                          category=row.get("category") or None)
        session.add(company)
        session.flush()
        report.companies_created += 1
    else:
        company.vat_number = company.vat_number or vat or None
        company.fiscal_code = company.fiscal_code or row.get("fiscal_code") or None
        if lifecycle:
            company.lifecycle = lifecycle
        if row.get("agent"):
            company.agent = row["agent"]
        if row.get("category"):
            company.category = row["category"]
    return company


def _contact(session: Session, row: dict[str, str], emails: list[str], company: Company | None,
             report: ImportReport) -> None:
    known = session.scalars(select(ContactEmail).where(ContactEmail.email.in_(emails))).all()
    contact = session.get(Contact, known[0].contact_id) if known else None
    if contact is None:
        contact = Contact(name=row.get("contact_name") or emails[0], company_id=company.id if company else None)
        session.add(contact)
        session.flush()
        report.contacts_created += 1
    elif company is not None and contact.company_id is None:
        contact.company_id = company.id
    have = {k.email for k in known}
    for email in emails:
        if email not in have:
            session.add(ContactEmail(contact_id=contact.id, email=email))
            report.emails_added += 1
    session.flush()


def export_csv(session: Session) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(EXPORT_COLUMNS)
    companies = {c.id: c for c in session.scalars(select(Company))}
    domains: dict[int, list[str]] = {}
    for d in session.scalars(select(CompanyDomain).order_by(CompanyDomain.domain)):
        domains.setdefault(d.company_id, []).append(d.domain)
    emails: dict[int, list[str]] = {}
    for e in session.scalars(select(ContactEmail).order_by(ContactEmail.id)):
        emails.setdefault(e.contact_id, []).append(e.email)
    with_contacts: set[int] = set()

    def company_cols(c: Company | None) -> list[str]:
        if c is None:
            return ["", "", "", "", "", "", ""]
        return [c.name, ";".join(domains.get(c.id, [])), c.vat_number or "", c.fiscal_code or "", c.lifecycle,
                c.agent or "", c.category or ""]

    for contact in session.scalars(select(Contact).order_by(Contact.id)):
        company = companies.get(contact.company_id) if contact.company_id else None
        if company:
            with_contacts.add(company.id)
        name, dom, vat, fiscal, lifecycle, agent, category = company_cols(company)
        writer.writerow([name, dom, contact.name, ";".join(emails.get(contact.id, [])), vat, fiscal, lifecycle, agent,
                         category])
    for company in companies.values():
        if company.id not in with_contacts:
            name, dom, vat, fiscal, lifecycle, agent, category = company_cols(company)
            writer.writerow([name, dom, "", "", vat, fiscal, lifecycle, agent, category])
    return out.getvalue()
