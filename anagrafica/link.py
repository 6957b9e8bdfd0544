"""Link each message to the shared contact registry.

The correspondent is the sender of received mail and the first recipient of sent mail.
Exact address → that contact (and its company); else a company owning the address's domain
(or a parent domain: mail.edilnord.it → edilnord.it), never a free-mail or shared PEC
domain; else "unknown", and the message shows in the unknown-senders list.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.orm import Session

from anagrafica.freemail import is_freemail
from casella.models import CompanyDomain, Contact, ContactEmail
from casella.settings import Settings

if TYPE_CHECKING:
    from casella.pipeline import StoredMessage


@dataclass(frozen=True, slots=True)
class Link:
    kind: str  # contact | company | unknown
    contact_id: int | None = None
    company_id: int | None = None


UNKNOWN = Link("unknown")


def correspondent_address(item: StoredMessage) -> str:
    parsed = item.parsed
    if item.row.direction == "out":
        return parsed.to[0].addr if parsed.to else ""
    return parsed.sender.addr if parsed.sender else ""


def candidate_domains(addr: str) -> list[str]:
    """edilnord.it for a@edilnord.it; mail.edilnord.it and edilnord.it for a@mail.edilnord.it."""
    _, at, domain = addr.rpartition("@")
    if not at or not domain:
        return []
    labels = domain.lower().strip(".").split(".")
    return [".".join(labels[i:]) for i in range(len(labels) - 1)]


class LinkStage:
    name = "anagrafica.link"

    def __init__(self, settings: Settings) -> None:
        self.extra_freemail = frozenset(settings.freemail_domains_extra)

    def process(self, batch: Sequence[StoredMessage], session: Session) -> None:
        addrs = {correspondent_address(item) for item in batch} - {""}
        links = resolve_links(session, addrs, self.extra_freemail)
        for item in batch:
            link = links.get(correspondent_address(item), UNKNOWN)
            item.row.link_kind = link.kind
            item.row.contact_id = link.contact_id
            item.row.company_id = link.company_id
        session.flush()


def resolve_links(session: Session, addrs: set[str], extra_freemail: frozenset[str] = frozenset()) -> dict[str, Link]:
    """Resolve many addresses with two queries."""
    result: dict[str, Link] = {}
    if not addrs:
        return result
    rows = session.execute(
        select(ContactEmail.email, Contact.id, Contact.company_id)
        .join(Contact, Contact.id == ContactEmail.contact_id)
        .where(ContactEmail.email.in_(addrs))
    ).all()
    for email, contact_id, company_id in rows:
        result[email] = Link("contact", contact_id, company_id)
    rest = {a: [d for d in candidate_domains(a) if not is_freemail(d, extra_freemail)]
            for a in addrs if a not in result}
    wanted = {d for ds in rest.values() for d in ds}
    if wanted:
        owners = dict(session.execute(
            select(CompanyDomain.domain, CompanyDomain.company_id).where(CompanyDomain.domain.in_(wanted))
        ).all())
        for addr, domains in rest.items():
            for domain in domains:  # most specific first
                if domain in owners:
                    result[addr] = Link("company", None, owners[domain])
                    break
    return result
