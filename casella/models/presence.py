"""Who is looking at a conversation right now (webmail/presence.py): one row per person and
conversation, refreshed every few seconds while they view or reply, ignored once stale.
In the database so that every webmail process (`casella webmail --workers N`) sees the
same people; it is ephemeral, old rows are swept."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, String
from sqlalchemy.orm import Mapped, mapped_column

from casella.models.base import Base, UTCDateTime


class PresenceEntry(Base):
    __tablename__ = "presence_entry"
    __table_args__ = (Index("ix_presence_entry_seen_at", "seen_at"),)

    key: Mapped[str] = mapped_column(String(64), primary_key=True)  # thread:ID or message:ID
    username: Mapped[str] = mapped_column(String(255), primary_key=True)
    state: Mapped[str] = mapped_column(String(16))  # viewing | replying
    name: Mapped[str] = mapped_column(String(255))  # shown to the others
    seen_at: Mapped[datetime] = mapped_column(UTCDateTime)
