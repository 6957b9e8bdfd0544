"""What a rule can see of a message: a frozen value built from the stored row, its
top-level headers, its attachments and the company it is linked to.

Rules never read the database: everything they may test is in a `RoutableMessage`, so the
evaluation is a pure function and can be tested without one.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from typing import Any

from ingest.parsed import Address

BODY_LIMIT = 100_000  # characters of body a condition looks at (a rule is not a search engine)
TRANSPORT_KINDS = {"posta-certificata": "posta-certificata", "errore": "anomalia"}  # X-Trasporto → kind

_TAG = re.compile(r"<[^>]*>")
_SCRIPT = re.compile(r"<(script|style)\b.*?</\1\s*>", re.IGNORECASE | re.DOTALL)


@dataclass(frozen=True, slots=True)
class AttachmentInfo:
    filename: str
    content_type: str


@dataclass(frozen=True, slots=True)
class CompanyFacts:
    """The linked company, as far as rules care."""

    id: int
    name: str
    lifecycle: str
    agent: str | None
    category: str | None = None


@dataclass(frozen=True, slots=True)
class RoutableMessage:
    subject: str = ""
    sender: Address | None = None
    to: tuple[Address, ...] = ()
    cc: tuple[Address, ...] = ()
    body: str = ""
    attachments: tuple[AttachmentInfo, ...] = ()
    # Every top-level header of the stored bytes, decoded, in order. For a PEC transport
    # envelope these are the envelope's (X-Trasporto…), while subject, sender, body and
    # attachments are those of the certified message inside it, as the row shows them.
    headers: tuple[tuple[str, str], ...] = ()
    direction: str = "in"  # in | out
    sender_unknown: bool = True  # the anagrafica link found no contact nor company
    company: CompanyFacts | None = None
    id: int | None = None
    account: str = ""
    pec: str | None = None  # the PEC kind found by the ingest (pec/classify.py); None: read the headers

    def header_values(self, name: str) -> tuple[str, ...]:
        key = name.lower()
        return tuple(value for header, value in self.headers if header.lower() == key)

    @property
    def pec_kind(self) -> str:
        return self.pec if self.pec is not None else pec_kind_from_headers(self.headers)


def pec_kind_from_headers(headers: tuple[tuple[str, str], ...]) -> str:
    """accettazione, avvenuta-consegna, … (X-Ricevuta), else posta-certificata or anomalia
    (X-Trasporto: errore), else "" for mail that is not PEC; as pec/classify.py names them."""
    found = {name.lower(): " ".join(value.split()).lower() for name, value in reversed(headers)}
    if found.get("x-ricevuta"):
        return found["x-ricevuta"]
    transport = found.get("x-trasporto", "")
    return TRANSPORT_KINDS.get(transport, transport)


def body_of(text: str, html_body: str) -> str:
    """The text part, else the HTML without its tags; at most BODY_LIMIT characters."""
    if text.strip():
        return text[:BODY_LIMIT]
    stripped = _TAG.sub(" ", _SCRIPT.sub(" ", html_body[: BODY_LIMIT * 4]))
    return html.unescape(stripped)[:BODY_LIMIT]


def routable_from_row(row: Any, *, account: str, headers: tuple[tuple[str, str], ...],
                      attachments: tuple[AttachmentInfo, ...], company: CompanyFacts | None,
                      pec_kind: str | None = None) -> RoutableMessage:
    """Build from a `casella.models.Message` row (typed Any: this module imports no models)."""
    return RoutableMessage(
        id=row.id, account=account, subject=row.subject or "",
        sender=Address(row.from_name or "", row.from_addr) if row.from_addr or row.from_name else None,
        to=tuple(Address(a.get("name", ""), a.get("addr", "")) for a in row.to or ()),
        cc=tuple(Address(a.get("name", ""), a.get("addr", "")) for a in row.cc or ()),
        body=body_of(row.body_text or "", row.body_html or ""), attachments=attachments, headers=headers,
        direction=row.direction, sender_unknown=row.link_kind == "unknown", company=company, pec=pec_kind)
