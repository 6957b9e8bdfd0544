"""Conversations: a thread, and the Message-IDs (seen or only referenced) that lead to it."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from casella.models.base import Base, UTCDateTime, utcnow


class Thread(Base):
    __tablename__ = "thread"

    id: Mapped[int] = mapped_column(primary_key=True)
    subject: Mapped[str] = mapped_column(Text, default="")
    subject_key: Mapped[str] = mapped_column(String(255), default="", index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_date: Mapped[datetime | None] = mapped_column(UTCDateTime)


class ThreadRef(Base):
    """A Message-ID known to belong to a thread (the message itself may not be here yet)."""

    __tablename__ = "thread_ref"

    msgid: Mapped[str] = mapped_column(String(998), primary_key=True)
    thread_id: Mapped[int] = mapped_column(ForeignKey("thread.id", ondelete="CASCADE"), index=True)
