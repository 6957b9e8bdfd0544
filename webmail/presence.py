"""Who is looking at a conversation right now (collision detection).

Conversation key → the people on it, each "viewing" or "replying", kept in the database
(casella/models/presence.py) so that every webmail process — `casella webmail --workers N`
— sees the same people. The message page (static/work.js) reports "viewing" every few
seconds, the compose page "replying"; an entry not refreshed within `EXPIRY` seconds no
longer counts and is swept later. The key is the message's thread when it has one, so
people on different messages of one conversation see each other.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from casella.db import Database
from casella.models import PresenceEntry, utcnow

STATES = ("viewing", "replying")
EXPIRY = 30.0  # seconds without news before someone is no longer "here"
POLL = 10  # seconds between two reports of static/work.js
SWEEP_CHANCE = 0.02  # a report now and then also deletes the stale rows


@dataclass(frozen=True, slots=True)
class Here:
    username: str
    name: str
    state: str
    seconds_ago: int


class Presence:
    """Safe from any thread and any process: each call is its own short transaction."""

    def __init__(self, db: Database, expiry: float = EXPIRY) -> None:
        self.db = db
        self.expiry = timedelta(seconds=expiry)

    def touch(self, key: str, username: str, state: str, name: str = "", *, session: Session | None = None) -> None:
        """Mark `username` present on `key`. In `session` (the caller's writing transaction,
        committed with it) when given: opening a message writes its read log and presence
        in one commit."""
        if state not in STATES:
            raise ValueError(f"presence state must be one of {', '.join(STATES)}")
        if session is not None:
            self._touch_in(session, key, username, state, name)
            return
        try:
            with self.db.session() as w:
                self._touch_in(w, key, username, state, name)
        except IntegrityError:  # the same person's other tab, in another process, inserted first
            with self.db.session() as w:
                self._touch_in(w, key, username, state, name)

    def _touch_in(self, w: Session, key: str, username: str, state: str, name: str) -> None:
        now = utcnow()
        row = w.get(PresenceEntry, (key, username))
        if row is None:
            w.add(PresenceEntry(key=key, username=username, state=state, name=name or username, seen_at=now))
        elif state == "viewing" and row.state == "replying" and now - row.seen_at < self.expiry:
            # Replying wins over viewing for a while: the message tab of someone who is
            # writing an answer in another tab must not hide that they are replying.
            row.name = name or row.name
        else:
            row.state, row.name, row.seen_at = state, name or username, now
        if random.random() < SWEEP_CHANCE:
            w.execute(delete(PresenceEntry).where(PresenceEntry.seen_at < now - self.expiry))

    def leave(self, key: str, username: str) -> None:
        with self.db.session() as w:
            w.execute(delete(PresenceEntry).where(PresenceEntry.key == key, PresenceEntry.username == username))

    def others(self, key: str, username: str, session: Session | None = None) -> list[Here]:
        """Everyone present on `key` but `username`, replying first, then by name; read in
        `session` when the caller has one open (the page's), else in a fresh one."""
        now = utcnow()
        query = (select(PresenceEntry.username, PresenceEntry.name, PresenceEntry.state, PresenceEntry.seen_at)
                 .where(PresenceEntry.key == key, PresenceEntry.username != username,
                        PresenceEntry.seen_at > now - self.expiry))
        if session is not None:
            rows = session.execute(query).all()
        else:
            with self.db.reading() as r:
                rows = r.execute(query).all()
        out = [Here(u, name, state, int((now - seen).total_seconds())) for u, name, state, seen in rows]
        out.sort(key=lambda h: (h.state != "replying", h.name.lower()))
        return out


def key_for(message: Any) -> str:
    """The conversation a message belongs to: its thread, else the message itself."""
    return f"thread:{message.thread_id}" if message.thread_id else f"message:{message.id}"
