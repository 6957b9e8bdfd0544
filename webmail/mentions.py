"""@mentions as notifications: a note naming @username tells that user (the top bar's
badge, GET /mentions) until they open the message or mark their mentions seen.

A `note_mention` row is written with the note (webmail/views/work.py `notes`) for every
active user it names but its author, whatever they may read. Every read goes through
`visible_clause`: a mention never shows a message its user may not (or no longer) open.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import bindparam, func, select, update
from sqlalchemy.orm import Session

from casella.access import Grant, visible_clause
from casella.models import Message, MessageNote, NoteMention, User, utcnow
from webmail.work import note_parts

PAGE_SIZE = 100


@dataclass(frozen=True, slots=True)
class Mention:
    note_id: int
    message_id: int
    subject: str
    author: str | None  # None: the author's account was deleted
    at: datetime
    parts: list[tuple[str, bool]]
    seen: bool


def notify(session: Session, note: MessageNote) -> list[int]:
    """One `note_mention` per active user the (flushed) note names, its author excepted.
    The ids of the users told."""
    if not note.mentions:
        return []
    users = list(session.scalars(select(User.id).where(User.username.in_(note.mentions), User.active.is_(True))))
    told = [uid for uid in users if uid != note.user_id]
    session.add_all(NoteMention(note_id=note.id, user_id=uid, message_id=note.message_id) for uid in told)
    return told


_ANY_UNSEEN = select(NoteMention.note_id).where(NoteMention.user_id == bindparam("user_id"),
                                                NoteMention.seen_at.is_(None)).limit(1)


def unread_count(session: Session, user_id: int, grant: Grant) -> int:
    """The user's unseen mentions on messages they may read: one query on the index
    (user_id, seen_at), each row joined to its message by primary key. On every page, so
    the usual case — nothing unseen — is a single prebuilt lookup on that index."""
    if session.scalar(_ANY_UNSEEN, {"user_id": user_id}) is None:
        return 0
    return session.scalar(select(func.count()).select_from(NoteMention)
                          .join(Message, Message.id == NoteMention.message_id)
                          .where(NoteMention.user_id == user_id, NoteMention.seen_at.is_(None),
                                 visible_clause(grant))) or 0


def listing(session: Session, user_id: int, grant: Grant, before: int | None = None) -> list[Mention]:
    """The user's mentions on messages they may read, newest first, PAGE_SIZE + 1 of them
    (the extra one says there is an older page); `before` a note id for that page."""
    query = (select(NoteMention, MessageNote.body, MessageNote.mentions, Message.subject, User.username,
                    User.display_name)
             .join(MessageNote, MessageNote.id == NoteMention.note_id)
             .join(Message, Message.id == NoteMention.message_id)
             .outerjoin(User, User.id == MessageNote.user_id)
             .where(NoteMention.user_id == user_id, visible_clause(grant)))
    if before is not None:
        query = query.where(NoteMention.note_id < before)
    rows = session.execute(query.order_by(NoteMention.note_id.desc()).limit(PAGE_SIZE + 1))
    return [Mention(note_id=m.note_id, message_id=m.message_id, subject=subject, author=display or username,
                    at=m.created_at, parts=note_parts(body, named or []), seen=m.seen_at is not None)
            for m, body, named, subject, username, display in rows]


def mark_seen(session: Session, user_id: int, message_id: int | None = None) -> int:
    """Mark the user's unseen mentions (on one message, or all) seen; how many."""
    query = update(NoteMention).where(NoteMention.user_id == user_id, NoteMention.seen_at.is_(None))
    if message_id is not None:
        query = query.where(NoteMention.message_id == message_id)
    # No NoteMention objects are loaded where this runs: nothing in the session to update.
    return session.execute(query.values(seen_at=utcnow()),
                           execution_options={"synchronize_session": False}).rowcount or 0
