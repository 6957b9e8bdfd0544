"""Build the search document of each message from the database, in batches.

Two steps, so that a database transaction is never held while attachments are read and
their text extracted: `load_sources` reads rows (a handful of queries per batch) into plain
values, `build_document` turns one of them into a `SearchDocument` outside the session.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from html.parser import HTMLParser

from sqlalchemy import select
from sqlalchemy.orm import Session

from casella.blobs import BlobStore
from casella.models import (Account, Attachment, Company, Contact, Message, MessagePec, MessagePratica, MessageTag,
                            Pratica, Registration, format_protocol)
from search.index import SearchDocument

log = logging.getLogger(__name__)

MAX_BODY_CHARS = 200_000  # a longer body is indexed up to here (the database keeps it whole)
NO_TEXT_TYPES = ("image/", "audio/", "video/")
MAX_ATTACHMENT_READ_BYTES = 20_000_000  # larger attachments are indexed by name only

Extractor = Callable[[bytes, str, str, int], str]


@dataclass(frozen=True, slots=True)
class AttachmentSource:
    filename: str
    content_type: str
    size: int
    sha256: str
    inline: bool


@dataclass(frozen=True, slots=True)
class MessageSource:
    """The rows one document is made of, read in one short transaction."""

    message: Message
    account: str
    protocol: str | None
    company: str
    contact: str
    tags: tuple[str, ...]
    praticas: tuple[str, ...]
    attachments: tuple[AttachmentSource, ...] = field(default=())
    pec_kind: str = ""


def load_sources(session: Session, ids: Sequence[int]) -> list[MessageSource]:
    """The sources of the messages among `ids` that exist, in id order."""
    if not ids:
        return []
    messages = list(session.scalars(select(Message).where(Message.id.in_(ids)).order_by(Message.id)))
    if not messages:
        return []
    found = [m.id for m in messages]
    accounts = dict(session.execute(select(Account.id, Account.name)
                                    .where(Account.id.in_({m.account_id for m in messages}))).all())
    protocols = {mid: format_protocol(year, number) for mid, year, number in session.execute(
        select(Registration.message_id, Registration.year, Registration.number)
        .where(Registration.message_id.in_(found)))}
    company_ids = {m.company_id for m in messages if m.company_id is not None}
    contact_ids = {m.contact_id for m in messages if m.contact_id is not None}
    companies = dict(session.execute(select(Company.id, Company.name).where(Company.id.in_(company_ids))).all()) \
        if company_ids else {}
    contacts = dict(session.execute(select(Contact.id, Contact.name).where(Contact.id.in_(contact_ids))).all()) \
        if contact_ids else {}
    tags: dict[int, list[str]] = {}
    for mid, tag in session.execute(select(MessageTag.message_id, MessageTag.tag)
                                    .where(MessageTag.message_id.in_(found)).order_by(MessageTag.tag)):
        tags.setdefault(mid, []).append(tag)
    praticas: dict[int, list[str]] = {}
    for mid, code in session.execute(select(MessagePratica.message_id, Pratica.code)
                                     .join(Pratica, Pratica.id == MessagePratica.pratica_id)
                                     .where(MessagePratica.message_id.in_(found)).order_by(Pratica.code)):
        praticas.setdefault(mid, []).append(code)
    attachments: dict[int, list[AttachmentSource]] = {}
    for a in session.scalars(select(Attachment).where(Attachment.message_id.in_(found))
                             .order_by(Attachment.message_id, Attachment.position)):
        attachments.setdefault(a.message_id, []).append(
            AttachmentSource(a.filename, a.content_type, a.size, a.sha256, a.inline))
    pec_kinds = dict(session.execute(select(MessagePec.message_id, MessagePec.kind)
                                     .where(MessagePec.message_id.in_(found))).all())
    for m in messages:
        session.expunge(m)
    return [MessageSource(message=m, account=accounts.get(m.account_id, ""), protocol=protocols.get(m.id),
                          company=companies.get(m.company_id, "") if m.company_id is not None else "",
                          contact=contacts.get(m.contact_id, "") if m.contact_id is not None else "",
                          tags=tuple(tags.get(m.id, ())), praticas=tuple(praticas.get(m.id, ())),
                          attachments=tuple(attachments.get(m.id, ())), pec_kind=pec_kinds.get(m.id) or "")
            for m in messages]


def find_extractor() -> Extractor | None:
    """search/extract.py's `extract_text`, when it is there; without it no attachment text
    is indexed (names still are)."""
    try:
        from search.extract import extract_text
    except ImportError:
        return None
    return extract_text


def build_document(source: MessageSource, blobs: BlobStore | None, extractor: Extractor | None,
                   max_attachment_bytes: int) -> SearchDocument:
    msg = source.message
    body = msg.body_text.strip() or html_to_text(msg.body_html)
    named = [a for a in source.attachments if not (a.inline and a.content_type.startswith("image/"))]
    texts = []
    if extractor is not None and blobs is not None and max_attachment_bytes > 0:
        texts = [t for t in (_attachment_text(a, blobs, extractor, max_attachment_bytes) for a in named) if t]
    extra = msg.extra if isinstance(msg.extra, dict) else {}
    return SearchDocument(
        id=msg.id, account_id=msg.account_id, account=source.account, folder=msg.folder,
        date=msg.date or msg.received_at or msg.stored_at, message_id=msg.message_id, subject=msg.subject,
        from_name=msg.from_name, from_addr=msg.from_addr.lower(),
        to=tuple(_address(a) for a in msg.to or ()), cc=tuple(_address(a) for a in msg.cc or ()),
        body=body[:MAX_BODY_CHARS], attachment_names=tuple(a.filename for a in named if a.filename),
        attachment_text="\n".join(texts), protocol=source.protocol, company=source.company,
        contact=source.contact, tags=source.tags, praticas=source.praticas, direction=msg.direction,
        link_kind=msg.link_kind, company_id=msg.company_id, agent=msg.agent,
        assigned_user_id=msg.assigned_user_id, assigned_group_id=msg.assigned_group_id,
        is_public=bool(msg.is_public), has_attachments=bool(msg.has_attachments),
        pec_kind=source.pec_kind or str(extra.get("pec_kind") or ""))


def _address(a: dict[str, str]) -> str:
    name, addr = (a.get("name") or "").strip(), (a.get("addr") or "").strip()
    return f"{name} <{addr}>" if name and addr else name or addr


def _attachment_text(a: AttachmentSource, blobs: BlobStore, extractor: Extractor, max_bytes: int) -> str:
    """At most `max_bytes` of the attachment's text (UTF-8)."""
    if a.content_type.startswith(NO_TEXT_TYPES) or a.size > MAX_ATTACHMENT_READ_BYTES:
        return ""
    try:
        data = blobs.get(a.sha256)
        text = extractor(data, a.content_type, a.filename, MAX_ATTACHMENT_READ_BYTES)
    except Exception as exc:  # noqa: BLE001 - a bad attachment must not stop its message's document
        log.warning("no text from attachment %r (%s): %s", a.filename, a.sha256[:12], exc)
        return ""
    encoded = text.encode("utf-8")
    if len(encoded) > max_bytes:
        text = encoded[:max_bytes].decode("utf-8", "ignore")
    return text.strip()


# ---------------------------------------------------------------- HTML to text
class _TextCollector(HTMLParser):
    SKIP = frozenset({"script", "style", "head", "title", "template", "noscript"})
    BLOCK = frozenset({"p", "div", "br", "li", "tr", "td", "th", "h1", "h2", "h3", "h4", "h5", "h6", "table",
                       "blockquote", "pre", "hr", "section", "article", "header", "footer", "ul", "ol", "dd", "dt"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skipping = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self.SKIP:
            self.skipping += 1
        elif tag in self.BLOCK:
            self.parts.append("\n")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self.BLOCK:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in self.SKIP:
            self.skipping = max(0, self.skipping - 1)
        elif tag in self.BLOCK:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self.skipping:
            self.parts.append(data)


def html_to_text(html: str) -> str:
    """The readable text of an HTML body: no tags, scripts or styles; entities decoded."""
    if not html:
        return ""
    collector = _TextCollector()
    try:
        collector.feed(html)
        collector.close()
    except Exception:  # noqa: BLE001 - html.parser is lenient; keep what was read before a failure
        log.debug("HTML body could not be read to the end", exc_info=True)
    lines = (" ".join(line.split()) for line in "".join(collector.parts).splitlines())
    return "\n".join(line for line in lines if line)
