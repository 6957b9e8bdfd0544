"""Conversations: join each new message to its thread.

References first: the message's own Message-ID, its In-Reply-To and every References entry
are looked up in `thread_ref`; a reply that carries only References (as Outlook sends) joins
like any other. A message that bridges two threads merges them. Only when nothing is known
does the subject decide: a reply-looking subject ("Re:", "R:", "AW:" …) joins the most recent
thread with the same normalised subject from the last 60 days. Every Message-ID seen is then
recorded, so a parent that arrives after its child joins the child's thread.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import bindparam, delete, insert, or_, select, update
from sqlalchemy.orm import Session

from casella.models import Message, Thread, ThreadRef
from ingest.subject import is_reply_subject, normalize_subject

if TYPE_CHECKING:
    from casella.pipeline import StoredMessage

SUBJECT_WINDOW = timedelta(days=60)
MAX_KEY = 255


def message_refs(item: StoredMessage) -> list[str]:
    parsed = item.parsed
    refs = list(parsed.references)
    if parsed.in_reply_to and parsed.in_reply_to not in refs:
        refs.append(parsed.in_reply_to)
    return [r[:998] for r in refs if r]


class ThreadStage:
    name = "ingest.threads"

    def process(self, batch: Sequence[StoredMessage], session: Session) -> None:
        # Threads of this batch are resolved in memory (a key is an existing thread's id, or
        # a new Thread not yet inserted), then written with a few statements.
        all_ids = {i for item in batch for i in _ids(item)}
        known: dict[str, int | Thread] = dict(
            session.execute(select(ThreadRef.msgid, ThreadRef.thread_id).where(ThreadRef.msgid.in_(all_ids))).all()
        ) if all_ids else {}
        preexisting = set(known)
        chosen: list[tuple[StoredMessage, int | Thread]] = []
        by_subject: dict[str, Thread] = {}  # threads new in this batch, by subject key
        ordered = sorted(batch, key=lambda it: (it.row.date is None, it.row.date or it.row.stored_at, it.row.id))
        with session.no_autoflush:
            for item in ordered:
                if item.row.thread_id is not None:
                    continue
                ids = _ids(item)
                found = _unique(known[i] for i in ids if i in known)
                if found:
                    key = _merge(session, found, known)
                else:
                    key = self._by_subject(session, item, by_subject) or Thread(
                        subject=item.row.subject[:2000], subject_key=normalize_subject(item.row.subject)[:MAX_KEY])
                    if isinstance(key, Thread) and key.subject_key:
                        by_subject.setdefault(key.subject_key, key)
                for i in ids:
                    known[i] = key
                chosen.append((item, key))
        last: dict[int | Thread, datetime] = {}
        for item, key in chosen:
            if item.row.date is not None and (key not in last or item.row.date > last[key]):
                last[key] = item.row.date
        new_threads = _unique(k for _, k in chosen if isinstance(k, Thread))
        for thread in new_threads:
            assert isinstance(thread, Thread)
            thread.last_date = last.get(thread)
        session.add_all(new_threads)
        session.flush()
        for item, key in chosen:
            item.row.thread_id = key.id if isinstance(key, Thread) else key
        refs = [{"msgid": i, "thread_id": k.id if isinstance(k, Thread) else k}
                for i, k in known.items() if i not in preexisting]
        if refs:
            session.execute(insert(ThreadRef), refs)
        # Existing threads: move last_date forward, all in one executemany.
        moved = [{"tid": k, "d": d} for k, d in last.items() if isinstance(k, int)]
        if moved:
            table = Thread.__table__
            session.execute(
                update(table).where(table.c.id == bindparam("tid"),
                                    or_(table.c.last_date.is_(None), table.c.last_date < bindparam("d")))
                .values(last_date=bindparam("d")), moved)
        session.flush()

    def _by_subject(self, session: Session, item: StoredMessage, fresh: dict[str, Thread]) -> int | Thread | None:
        subject = item.row.subject
        if message_refs(item) or not is_reply_subject(subject):
            return None
        key = normalize_subject(subject)[:MAX_KEY]
        if not key:
            return None
        if key in fresh:
            return fresh[key]
        query = select(Thread.id).where(Thread.subject_key == key).order_by(Thread.id.desc()).limit(1)
        if item.row.date is not None:
            query = query.where(Thread.last_date >= item.row.date - SUBJECT_WINDOW)
        return session.scalar(query)


def _unique(keys: Iterable[int | Thread]) -> list[int | Thread]:
    out: list[int | Thread] = []
    for k in keys:
        if not any(k is o or (isinstance(k, int) and k == o) for o in out):
            out.append(k)
    return out


def _ids(item: StoredMessage) -> list[str]:
    own = [item.row.message_id] if item.row.message_id else []
    return list(dict.fromkeys(own + message_refs(item)))


def _merge(session: Session, found: list[int | Thread], known: dict[str, int | Thread]) -> int | Thread:
    """One message links several threads: they become one (the oldest stored thread wins;
    threads new in this batch are simply folded in memory)."""
    stored = sorted(k for k in found if isinstance(k, int))
    keep: int | Thread = stored[0] if stored else found[0]
    drop = [k for k in found if k is not keep]
    if not drop:
        return keep
    for msgid, key in list(known.items()):
        if any(key is d for d in drop):
            known[msgid] = keep
    dropped_ids = [d for d in drop if isinstance(d, int)]
    if dropped_ids:
        assert isinstance(keep, int)
        session.execute(update(Message).where(Message.thread_id.in_(dropped_ids)).values(thread_id=keep)
                        .execution_options(synchronize_session=False))
        session.execute(update(ThreadRef).where(ThreadRef.thread_id.in_(dropped_ids)).values(thread_id=keep)
                        .execution_options(synchronize_session=False))
        session.execute(delete(Thread).where(Thread.id.in_(dropped_ids)))
        for obj in session.identity_map.values():
            if isinstance(obj, Message) and obj.thread_id in dropped_ids:
                obj.thread_id = keep
    return keep
