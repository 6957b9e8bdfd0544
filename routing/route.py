"""Route stored messages: build what rules see, evaluate, act. Shared by the pipeline stage
(new mail), `rules replay` (past mail) and `rules explain` (one message, no acting).

For new mail the headers and attachments come from the parser; for past mail from the
`attachment` table and from the stored raw bytes (only the header section is parsed, and
only when a rule reads a header or the PEC kind).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from casella.blobs import BlobStore
from casella.errors import NotFound
from casella.models import Account, Attachment, Company, Message
from ingest.parse import parse_message
from routing.actions import Change, apply_actions
from routing.evaluate import Evaluation, evaluate
from routing.routable import AttachmentInfo, CompanyFacts, RoutableMessage, routable_from_row
from routing.rule import Rule
from routing.stored_rules import Rulebook

HEADER_FIELDS = frozenset({"header", "pec-kind"})


def reads(rules: Iterable[Rule], fields: Collection[str]) -> bool:
    return any(c.base_field in fields for r in rules for c in r.conditions)


def load_companies(session: Session, ids: Iterable[int | None]) -> dict[int, CompanyFacts]:
    wanted = {i for i in ids if i is not None}
    if not wanted:
        return {}
    return {cid: CompanyFacts(cid, name, lifecycle, agent, category)
            for cid, name, lifecycle, agent, category in session.execute(
                select(Company.id, Company.name, Company.lifecycle, Company.agent, Company.category)
                .where(Company.id.in_(wanted)))}


def load_attachments(session: Session, message_ids: Collection[int]) -> dict[int, tuple[AttachmentInfo, ...]]:
    """Every attachment part, inline ones too: a PEC's daticert.xml and postacert.eml are
    usually inline, and rules must see them."""
    found: dict[int, list[AttachmentInfo]] = {}
    if message_ids:
        for mid, name, ctype in session.execute(
                select(Attachment.message_id, Attachment.filename, Attachment.content_type)
                .where(Attachment.message_id.in_(message_ids))
                .order_by(Attachment.message_id, Attachment.position)):
            found.setdefault(mid, []).append(AttachmentInfo(name, ctype))
    return {mid: tuple(items) for mid, items in found.items()}


def stored_headers(blobs: BlobStore, sha256: str) -> tuple[tuple[str, str], ...]:
    """The top-level headers of a stored message, decoded as the ingest decoded them."""
    try:
        raw = blobs.get(sha256)
    except NotFound:
        return ()
    ends = [i for i in (raw.find(b"\r\n\r\n"), raw.find(b"\n\n")) if i >= 0]
    head = raw[: min(ends)] + b"\r\n\r\n" if ends else raw
    return parse_message(head).headers


def routables(session: Session, rows: Sequence[Message], *, blobs: BlobStore | None,
              rules: Sequence[Rule], all_headers: bool = False) -> list[RoutableMessage]:
    """RoutableMessages for stored rows: three queries at most, plus a blob read per message
    when a rule reads headers (or `all_headers`)."""
    names = dict(session.execute(select(Account.id, Account.name)).all())
    companies = load_companies(session, (r.company_id for r in rows))
    attachments = load_attachments(session, [r.id for r in rows]) \
        if reads(rules, {"attachment-name", "attachment-type"}) else {}
    with_headers = blobs is not None and (all_headers or reads(rules, HEADER_FIELDS))
    return [routable_from_row(row, account=names.get(row.account_id, ""),
                              headers=stored_headers(blobs, row.sha256) if with_headers and blobs else (),
                              attachments=attachments.get(row.id, ()),
                              company=companies.get(row.company_id) if row.company_id else None)
            for row in rows]


def route(session: Session, items: Sequence[tuple[Message, RoutableMessage]], book: Rulebook, *,
          via: str) -> tuple[list[Evaluation], list[Change]]:
    """Evaluate each message against its account's rules and apply what matched."""
    evaluations = [evaluate(msg, book.for_account(row.account_id)) for row, msg in items]
    work = [(row, ev.actions) for (row, _), ev in zip(items, evaluations, strict=True)]
    return evaluations, apply_actions(session, work, via=via)
