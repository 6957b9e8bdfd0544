"""The queries behind the folder tree and the message list.

Every query starts from `visible_clause(grant)` (casella/access.py): what a user may not
read is never selected, so it cannot leak through a count, a page or a direct URL.
The list pages by keyset on (date, id), newest first: a page costs the same at the first
message and at the millionth (indexes ix_message_folder_date and ix_message_date_id).
"""

from __future__ import annotations

import base64
import json
import threading
import time
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, bindparam, exists, func, or_, select, update
from sqlalchemy.orm import Session, aliased

from casella.access import Grant, visible_clause
from casella.models import (
    Account,
    Company,
    Contact,
    Message,
    MessagePec,
    MessagePratica,
    MessageReport,
    MessageSeen,
    MessageTag,
    Pratica,
    Registration,
    User,
    format_protocol,
)
from pec.classify import RECEIPT_KINDS

PAGE_SIZE = 50
COUNTS_TTL = 10.0


@dataclass(frozen=True, slots=True)
class Folder:
    account_id: int
    account: str
    name: str
    total: int
    unread: int


@dataclass(frozen=True, slots=True)
class Mailbox:
    id: int
    name: str
    is_pec: bool
    folders: list[Folder]

    @property
    def unread(self) -> int:
        return sum(f.unread for f in self.folders)


@dataclass(slots=True)
class Filters:
    """What the list shows: the query string of /mail, parsed and validated."""

    account_id: int | None = None
    folder: str | None = None
    unread: bool = False
    mine: bool = False
    status: str | None = None
    unknown: bool = False
    tag: str | None = None
    pratica: str | None = None
    attachments: bool = False
    pec_pending: bool = False
    company_id: int | None = None
    order: str = "desc"

    @classmethod
    def from_query(cls, q: Any) -> Filters:
        def as_int(name: str) -> int | None:
            raw = q.get(name, "")
            return int(raw) if raw.isdigit() else None

        status = q.get("status") or None
        return cls(account_id=as_int("mailbox"), folder=q.get("folder") or None,
                   unread=q.get("unread") == "1", mine=q.get("mine") == "1",
                   status=status if status in ("open", "pending", "closed") else None,
                   unknown=q.get("unknown") == "1", tag=q.get("tag") or None, pratica=q.get("pratica") or None,
                   attachments=q.get("attachments") == "1", pec_pending=q.get("pec_pending") == "1",
                   company_id=as_int("company"), order="asc" if q.get("order") == "asc" else "desc")

    def query_string(self, **override: Any) -> str:
        from urllib.parse import urlencode

        values = {"mailbox": self.account_id, "folder": self.folder, "unread": "1" if self.unread else None,
                  "mine": "1" if self.mine else None, "status": self.status, "unknown": "1" if self.unknown else None,
                  "tag": self.tag, "pratica": self.pratica, "attachments": "1" if self.attachments else None,
                  "pec_pending": "1" if self.pec_pending else None, "company": self.company_id,
                  "order": self.order if self.order != "desc" else None}
        values.update(override)
        return urlencode({k: v for k, v in values.items() if v not in (None, "", False)})


@dataclass(slots=True)  # not frozen: a frozen dataclass's __init__ costs 2x, fifty times a page
class Row:
    id: int
    account: str
    folder: str
    direction: str
    subject: str
    from_name: str
    from_addr: str
    to: list[dict[str, str]]
    date: datetime | None
    has_attachments: bool
    status: str
    protocol: str | None
    assigned: str | None
    link_name: str | None
    link_kind: str
    pec_kind: str | None
    unread: bool
    tags: list[str] = field(default_factory=list)

    @property
    def correspondent(self) -> str:
        if self.direction == "out":
            first = self.to[0] if self.to else {}
            return first.get("name") or first.get("addr") or ""
        return self.from_name or self.from_addr


@dataclass(frozen=True, slots=True)
class Page:
    rows: list[Row]
    next_cursor: str | None


_counts_cache: dict[tuple[Any, ...], tuple[float, list[Mailbox]]] = {}
_counts_lock = threading.Lock()
_key_locks: dict[int, threading.Lock] = {}


def forget_counts() -> None:
    """After a change that moves or hides mail: every tree is counted again on its next use
    (meanwhile, while one request counts, the others show the previous counts)."""
    with _counts_lock:
        for key, (_, tree) in list(_counts_cache.items()):
            _counts_cache[key] = (float("-inf"), tree)


def bump_read_state(session: Session, user_id: int) -> int:
    """This user's read state changes in `session`'s transaction: their new `seen_version`,
    which keys their cached folder counts, so every webmail process counts them again."""
    return session.execute(update(User).where(User.id == user_id).values(seen_version=User.seen_version + 1)
                           .returning(User.seen_version), execution_options={"synchronize_session": False}
                           ).scalar_one()


def adjust_unread(user_id: int, account_id: int, folder: str, delta: int, version: int | None = None) -> None:
    """This user read (-1) or unread (+1) one message: correct their cached trees in place
    (under their new `version`, see `bump_read_state`), so that opening a message does not
    recount every folder in this process."""
    with _counts_lock:
        for key, (at, tree) in list(_counts_cache.items()):
            if key[0] != user_id:
                continue
            del _counts_cache[key]
            if version is not None and key[1] != version - 1:
                continue  # it missed a change made elsewhere: counted again on next use
            _counts_cache[(user_id, key[1] if version is None else version, *key[2:])] = (at, [
                Mailbox(m.id, m.name, m.is_pec, [
                    Folder(f.account_id, f.account, f.name, f.total, max(0, min(f.total, f.unread + delta)))
                    if f.account_id == account_id and f.name == folder else f for f in m.folders])
                for m in tree])


def folder_tree(session: Session, grant: Grant, user_id: int, seen_version: int | None = None) -> list[Mailbox]:
    """Every mailbox and folder the user may see, with total and unread counts, cached a
    few seconds per user (the tree is on every page). One request counts at a time per
    user; the others meanwhile get the previous counts, or wait for the first ones.
    `seen_version`: the user's read-state version when the caller knows it newer than
    `session` would read it (it just wrote it); else read from the user's row."""
    if seen_version is None:
        user = session.get(User, user_id)  # already in the request's session: no query
        seen_version = user.seen_version if user is not None else 0
    # Another process may have changed this user's read state (seen_version); one process
    # may serve several databases (tests).
    key = (user_id, seen_version, grant, str(session.get_bind().url))
    with _counts_lock:
        hit = _counts_cache.get(key)
        if hit and time.monotonic() - hit[0] < COUNTS_TTL:
            return hit[1]
        lock = _key_locks.setdefault(user_id, threading.Lock())  # per user: keys change with seen_version
    if not lock.acquire(blocking=hit is None):
        return hit[1]  # type: ignore[index]  # someone is counting: the previous counts will do
    try:
        with _counts_lock:
            again = _counts_cache.get(key)
            if again and time.monotonic() - again[0] < COUNTS_TTL:
                return again[1]
        tree = _count_tree(session, grant, user_id)
        with _counts_lock:
            if len(_counts_cache) > 1000:
                _counts_cache.clear()
            _counts_cache[key] = (time.monotonic(), tree)
        return tree
    finally:
        lock.release()


def _count_tree(session: Session, grant: Grant, user_id: int) -> list[Mailbox]:
    visible = visible_clause(grant)
    # Whole accounts the grant reads are counted from the (account, folder, …) index alone;
    # only the rest (mail assigned to the user or a group elsewhere, an agent's clients)
    # needs the full access condition. The two parts are disjoint.
    whole = set() if grant.everything else set(grant.account_ids) - set(grant.private_account_ids)
    totals: dict[tuple[int, str], int] = {}
    if whole:
        for a, f, n in session.execute(select(Message.account_id, Message.folder, func.count())
                                       .where(Message.account_id.in_(whole))
                                       .group_by(Message.account_id, Message.folder)):
            totals[(a, f)] = totals.get((a, f), 0) + n
    rest = _outside(grant, whole) if whole else visible
    for a, f, n in session.execute(select(Message.account_id, Message.folder, func.count())
                                   .where(rest).group_by(Message.account_id, Message.folder)):
        totals[(a, f)] = totals.get((a, f), 0) + n
    seen = {(a, f): n for a, f, n in session.execute(
        select(Message.account_id, Message.folder, func.count())
        .join(MessageSeen, and_(MessageSeen.message_id == Message.id, MessageSeen.user_id == user_id))
        .where(visible).group_by(Message.account_id, Message.folder)).all()}
    accounts = {a.id: a for a in session.scalars(select(Account).order_by(Account.name))}
    by_account: dict[int, list[Folder]] = {}
    for (account_id, folder), total in totals.items():
        acc = accounts.get(account_id)
        if acc is None:
            continue
        by_account.setdefault(account_id, []).append(
            Folder(account_id, acc.name, folder, total, total - seen.get((account_id, folder), 0)))
    tree = []
    for acc in accounts.values():
        folders = by_account.get(acc.id)
        if folders is None:
            continue
        folders.sort(key=lambda f: (f.name != "INBOX", not acc.is_sent_folder(f.name), f.name.lower()))
        tree.append(Mailbox(acc.id, acc.name, acc.is_pec, folders))
    return tree


def encode_cursor(date: datetime | None, message_id: int) -> str:
    raw = json.dumps([date.isoformat() if date else None, message_id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> tuple[datetime | None, int] | None:
    if not cursor:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        date_text, message_id = json.loads(raw)
        return (datetime.fromisoformat(date_text) if date_text else None), int(message_id)
    except (ValueError, TypeError):
        return None


def filter_clause(filters: Filters, user_id: int) -> list[ColumnElement[bool]]:
    where: list[ColumnElement[bool]] = []
    if filters.account_id is not None:
        where.append(Message.account_id == filters.account_id)
    if filters.folder is not None:
        where.append(Message.folder == filters.folder)
    if filters.unread:
        where.append(~exists().where(MessageSeen.message_id == Message.id, MessageSeen.user_id == user_id))
    if filters.mine:
        where.append(Message.assigned_user_id == user_id)
    if filters.status is not None:
        where.append(Message.status == filters.status)
    if filters.unknown:
        where.append(Message.link_kind == "unknown")
        where.append(Message.direction == "in")
        where.append(~exists().where(MessagePec.message_id == Message.id, MessagePec.kind.in_(RECEIPT_KINDS)))
        # Bounces and read receipts come from mail servers, not from correspondents.
        where.append(~exists().where(MessageReport.message_id == Message.id))
    if filters.tag:
        where.append(exists().where(MessageTag.message_id == Message.id, MessageTag.tag == filters.tag))
    if filters.pratica:
        where.append(exists().where(MessagePratica.message_id == Message.id, MessagePratica.pratica_id == Pratica.id,
                                    Pratica.code == filters.pratica))
    if filters.attachments:
        where.append(Message.has_attachments.is_(True))
    if filters.company_id is not None:
        where.append(Message.company_id == filters.company_id)
    if filters.pec_pending:
        # Sent PEC with no delivery receipt yet (pec/status.py has the full per-recipient view).
        where.append(Message.direction == "out")
        where.append(exists().where(MessagePec.message_id == Message.id))
        where.append(~exists().where(MessagePec.refers_to_id == Message.id, MessagePec.kind == "avvenuta-consegna"))
    return where


# A page after the first one carries its cursor as parameters, so that the statement stays
# the same from page to page (see _page_statements).
_CURSOR_DATE = bindparam("cursor_date", type_=Message.__table__.c.date.type)
_CURSOR_ID = bindparam("cursor_id", type_=Message.__table__.c.id.type)


def _cursor_clause(dated: bool, order: str) -> ColumnElement[bool]:
    """Rows after the cursor (`cursor_date`, `cursor_id`) in `order`; `dated`: the cursor
    row has a date (undated rows come last, newest first)."""
    if order == "desc":
        if not dated:
            return and_(Message.date.is_(None), Message.id < _CURSOR_ID)
        return or_(Message.date < _CURSOR_DATE, and_(Message.date == _CURSOR_DATE, Message.id < _CURSOR_ID),
                   Message.date.is_(None))
    if not dated:
        return or_(Message.date.is_not(None), and_(Message.date.is_(None), Message.id > _CURSOR_ID))
    return or_(Message.date > _CURSOR_DATE, and_(Message.date == _CURSOR_DATE, Message.id > _CURSOR_ID))


LIST_COLUMNS = (Message.id, Message.account_id, Message.folder, Message.direction, Message.subject, Message.from_name,
                Message.from_addr, Message.to, Message.date, Message.has_attachments, Message.status,
                Message.assigned_user_id, Message.link_kind, Message.contact_id, Message.company_id)


MAX_SPLIT_ACCOUNTS = 12


def _visible_parts(grant: Grant, account_id: int | None) -> list[ColumnElement[bool]]:
    """`visible_clause(grant)` as disjoint parts a database can each walk in date order on
    an index: one per whole account the grant reads, then the rest (assigned mail, an
    agent's clients). One part when the grant reads everything or splitting would not pay."""
    visible = visible_clause(grant)
    whole = set() if grant.everything else set(grant.account_ids) - set(grant.private_account_ids)
    if account_id is not None:
        return [Message.account_id == account_id] if account_id in whole else [visible]
    if not whole or len(whole) > MAX_SPLIT_ACCOUNTS:
        return [visible]
    return [*(Message.account_id == a for a in sorted(whole)), _outside(grant, whole)]


def _outside(grant: Grant, whole: set[int]) -> ColumnElement[bool]:
    """What `grant` reads outside the accounts it reads whole: the same access definition
    without those accounts (so the database can use the assignee indexes), minus them."""
    return visible_clause(replace(grant, account_ids=frozenset())) & Message.account_id.not_in(whole)


def _sort_key(order: str) -> Any:
    if order == "desc":  # newest first, undated last
        return lambda r: (r.date is None, -r.date.timestamp() if r.date else 0.0, -r.id)
    return lambda r: (r.date is not None, r.date.timestamp() if r.date else 0.0, r.id)


_statements: dict[tuple[Any, ...], list[Any]] = {}
MAX_STATEMENTS = 2000


def _page_statements(grant: Grant, user_id: int, filters: Filters, dated: bool | None, page_size: int,
                     extra: list[ColumnElement[bool]] | None) -> list[Any]:
    """The statements of one list page (one per part of `_visible_parts`), each at most
    page_size + 1 rows in order. Kept per grant, filters and cursor shape (without the
    cursor's values): building a statement costs more than running it, and a kept one is
    also found at once in SQLAlchemy's compiled cache."""
    key = (grant, user_id, *(getattr(filters, f) for f in Filters.__slots__), dated, page_size)  # type: ignore[attr-defined]
    if extra is None and (kept := _statements.get(key)) is not None:
        return kept
    where = [*filter_clause(filters, user_id), *(extra or [])]
    if dated is not None:
        where.append(_cursor_clause(dated, filters.order))
    if filters.order == "desc":
        order = (Message.date.desc().nulls_last(), Message.id.desc())
    else:
        order = (Message.date.asc().nulls_first(), Message.id.asc())
    statements = [select(*LIST_COLUMNS).where(part, *where).order_by(*order).limit(page_size + 1)
                  for part in _visible_parts(grant, filters.account_id)]
    if extra is None:
        if len(_statements) >= MAX_STATEMENTS:
            _statements.clear()
        _statements[key] = statements
    return statements


def list_page(session: Session, grant: Grant, user_id: int, filters: Filters, cursor: str | None = None,
              page_size: int = PAGE_SIZE, extra: list[ColumnElement[bool]] | None = None) -> Page:
    decoded = decode_cursor(cursor)
    params: dict[str, Any] = {}
    if decoded is not None:
        params = {"cursor_date": decoded[0], "cursor_id": decoded[1]}
    statements = _page_statements(grant, user_id, filters, None if decoded is None else decoded[0] is not None,
                                  page_size, extra)
    # Bare columns: run on the connection, without the ORM's result machinery.
    connection = session.connection()
    rows: list[Any] = []
    for statement in statements:  # each part: at most one page, in order; merged below
        rows += connection.execute(statement, params).all()
    if len(statements) > 1:
        rows.sort(key=_sort_key(filters.order))
    more = len(rows) > page_size
    rows = rows[:page_size]
    return Page(decorate(session, rows, user_id), encode_cursor(rows[-1].date, rows[-1].id) if more and rows else None)


_assignee = aliased(User)
# Built once: a statement made anew on every call costs more to build and look up in
# SQLAlchemy's cache than to run.
_DECORATIONS = (
    select(Message.id, Account.name.label("account"), Registration.year, Registration.number,
           MessageSeen.message_id.label("seen"), MessagePec.kind.label("pec_kind"),
           _assignee.display_name, _assignee.username, Contact.name.label("contact"), Company.name.label("company"))
    .select_from(Message)
    .join(Account, Account.id == Message.account_id)
    .outerjoin(Registration, Registration.message_id == Message.id)
    .outerjoin(MessageSeen, and_(MessageSeen.message_id == Message.id, MessageSeen.user_id == bindparam("user_id")))
    .outerjoin(MessagePec, MessagePec.message_id == Message.id)
    .outerjoin(_assignee, _assignee.id == Message.assigned_user_id)
    .outerjoin(Contact, and_(Contact.id == Message.contact_id, Message.link_kind == "contact"))
    .outerjoin(Company, and_(Company.id == Message.company_id, Message.link_kind == "company"))
    .where(Message.id.in_(bindparam("ids", expanding=True))))


_TAGS = (select(MessageTag.message_id, MessageTag.tag)
         .where(MessageTag.message_id.in_(bindparam("ids", expanding=True))))


def decorate(session: Session, rows: list[Any], user_id: int) -> list[Row]:
    """Turn bare list columns (LIST_COLUMNS) into `Row`s with names, protocol, unread and
    tags: two queries per page (one with every one-to-one decoration joined, one for
    tags), never one per row."""
    if not rows:
        return []
    connection = session.connection()
    ids = [r.id for r in rows]
    extra = {d[0]: d for d in connection.execute(_DECORATIONS, {"user_id": user_id, "ids": ids})}
    tags: dict[int, list[str]] = {}
    for m, t in connection.execute(_TAGS, {"ids": ids}):
        tags.setdefault(m, []).append(t)
    out = []
    for (id_, _account_id, folder, direction, subject, from_name, from_addr, to, date, has_attachments, status,
         assigned_user_id, link_kind, _contact_id, _company_id) in rows:
        _, account, year, number, seen, pec_kind, display_name, username, contact, company = extra[id_]
        out.append(Row(
            id_, account, folder, direction, subject, from_name, from_addr, to or [], date, has_attachments, status,
            format_protocol(year, number) if number is not None else None,
            (display_name or username) if assigned_user_id else None,
            contact or company, link_kind, pec_kind, seen is None, sorted(tags[id_]) if id_ in tags else []))
    return out


def visible_message(session: Session, grant: Grant, message_id: int) -> Message | None:
    """The message if this user may read it; None otherwise (the view answers 404, the
    same as for a message that does not exist)."""
    return session.scalar(select(Message).where(Message.id == message_id, visible_clause(grant)))
