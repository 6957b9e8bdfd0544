"""The demo: on an installation with no accounts at all, `casella serve` fills a local
account named ``demo`` with generated business mail, so a first-time user sees Casella at
work straight away (threads, protocol numbers, contacts, companies, unknown senders).

Everything goes through the real pipeline: the anagrafica is imported with the CSV
importer (the companies of contacts.csv, plus contacts for the first few generated
correspondents at those companies' domains) and the mail is stored by the same Storer as
IMAP and `casella import`. The mail is generated (casella.demo.corpus, seed 1), so the demo
is the same on every machine; only its dates move, so that the newest message is from
yesterday. Turn it off with ``CASELLA_DEMO=0`` or ``casella serve --no-demo``.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Callable, Iterable, Sequence
from importlib import resources

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from anagrafica.contacts_csv import EXPORT_COLUMNS, ImportReport, import_csv
from anagrafica.freemail import is_freemail
from anagrafica.link import candidate_domains
from casella.db import Database
from casella.demo.corpus import OWN_DOMAIN, GeneratedMessage, generate_messages
from casella.models import Account
from casella.settings import Settings
from ingest.accounts import AccountExists, add_account

DEMO_ACCOUNT = "demo"
INBOX, SENT = "INBOX", "Sent"
DEMO_COUNT = 300
DEMO_SEED = 1
# 300 messages of seed 1 run from day 0 at 08:43 UTC to day 33 before 19:00 UTC (the span
# does not depend on the start date), so starting 34 days before today (UTC) puts the newest
# message yesterday, never in the future.
DEMO_DAYS_BACK = 34
DEMO_CONTACTS = 40  # correspondents at a known company's domain that become contacts
CONTACTS_FILE = "contacts.csv"


def demo_start(today: dt.date | None = None) -> str:
    """The generator's start date (YYYY-MM-DD) for a demo made on `today` (UTC)."""
    today = today or dt.datetime.now(dt.timezone.utc).date()
    return (today - dt.timedelta(days=DEMO_DAYS_BACK)).isoformat()


def demo_messages(today: dt.date | None = None) -> list[GeneratedMessage]:
    return list(generate_messages(DEMO_COUNT, DEMO_SEED, demo_start(today)))


def folder_of(message: GeneratedMessage) -> str:
    """Mail written from the own domain (studioferrari.it) is sent mail."""
    return SENT if message.from_own_domain else INBOX


def correspondent(message: GeneratedMessage) -> tuple[str, str]:
    """(name, address) of the other party, as anagrafica.link sees it: the sender of
    received mail, the (only) recipient of sent mail."""
    person = message.recipient if message.from_own_domain else message.sender
    return person.name, person.addr.lower()


def company_rows() -> list[dict[str, str]]:
    """The demo companies shipped in contacts.csv."""
    text = resources.files(__package__).joinpath(CONTACTS_FILE).read_text(encoding="utf-8")
    return list(csv.DictReader(io.StringIO(text)))


def contact_rows(messages: Iterable[GeneratedMessage], companies: Sequence[dict[str, str]],
                 limit: int = DEMO_CONTACTS) -> list[dict[str, str]]:
    """Contacts for the first `limit` distinct correspondents whose address is at one of
    the companies' domains. Free-mail and unknown senders never become contacts."""
    owner = {d.strip().lower(): row for row in companies
             for d in row["company_domain"].replace(";", ",").split(",") if d.strip()}
    rows: list[dict[str, str]] = []
    seen: set[str] = set()
    for message in messages:
        name, addr = correspondent(message)
        if addr in seen or addr.endswith("@" + OWN_DOMAIN):
            continue
        domains = [d for d in candidate_domains(addr) if not is_freemail(d)]
        company = next((owner[d] for d in domains if d in owner), None)
        if company is None:
            continue
        seen.add(addr)
        rows.append({"company_name": company["company_name"], "company_domain": "", "contact_name": name or addr,
                     "email": addr, "vat_number": company["vat_number"], "fiscal_code": "", "lifecycle": "",
                     "agent": ""})
        if len(rows) >= limit:
            break
    return rows


def anagrafica_csv(messages: Iterable[GeneratedMessage]) -> str:
    """The demo anagrafica as one CSV in the import format: companies, then contacts."""
    companies = company_rows()
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(EXPORT_COLUMNS), lineterminator="\n")
    writer.writeheader()
    writer.writerows(companies)
    writer.writerows(contact_rows(messages, companies))
    return out.getvalue()


def ensure_demo(settings: Settings, database: Database, echo: Callable[[str], object] = print) -> bool:
    """Create and fill the demo account if the installation has no account at all.

    Returns True if it made the demo, False (doing nothing) if any account exists."""
    with database.session() as session:
        if session.scalar(select(func.count(Account.id))):
            return False
    messages = demo_messages()
    try:
        with database.session() as session:
            # Checked again in the writing transaction: two starting processes make one demo.
            if session.scalar(select(func.count(Account.id))):
                return False
            account = add_account(session, settings, name=DEMO_ACCOUNT, imap_host=None, imap_port=None,
                                  username=None, password=None, security="none", is_pec=False,
                                  folders=[INBOX, SENT], sent_folders=[SENT])
            account_id = account.id
            report: ImportReport = import_csv(session, io.StringIO(anagrafica_csv(messages)),
                                              extra_freemail=settings.freemail_domains_extra)
    except (AccountExists, IntegrityError):
        return False

    from ingest.service import make_storer
    from ingest.store import Incoming

    storer = make_storer(settings, database)
    batch_size = settings.ingest_batch_size
    stored = 0
    for first in range(0, len(messages), batch_size):
        chunk = messages[first:first + batch_size]
        result = storer.store_batch(account_id, [Incoming(raw=m.raw, folder=folder_of(m)) for m in chunk],
                                    source="demo")
        stored += result.stored
    sent = sum(1 for m in messages if folder_of(m) == SENT)
    echo(f"demo: created the account {DEMO_ACCOUNT!r} with {stored} generated messages "
         f"({len(messages) - sent} in {INBOX}, {sent} in {SENT}), {report.companies_created} companies and "
         f"{report.contacts_created} contacts")
    echo("demo: add your own accounts with `casella account add`; CASELLA_DEMO=0 or --no-demo skips the demo")
    return True
