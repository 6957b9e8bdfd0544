"""Pratiche (cases): a piece of work that many messages belong to."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from casella.models.base import Base, UTCDateTime, utcnow

PRATICA_STATUSES = ("open", "suspended", "closed")


class Pratica(Base):
    __tablename__ = "pratica"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(120), unique=True)
    title: Mapped[str] = mapped_column(Text, default="")
    company_id: Mapped[int | None] = mapped_column(ForeignKey("company.id", ondelete="SET NULL"))
    status: Mapped[str] = mapped_column(String(16), default="open")
    owner: Mapped[str | None] = mapped_column(String(120))  # username
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class MessagePratica(Base):
    __tablename__ = "message_pratica"

    message_id: Mapped[int] = mapped_column(ForeignKey("message.id", ondelete="CASCADE"), primary_key=True)
    pratica_id: Mapped[int] = mapped_column(ForeignKey("pratica.id", ondelete="CASCADE"), primary_key=True, index=True)


class MessageTag(Base):
    __tablename__ = "message_tag"

    message_id: Mapped[int] = mapped_column(ForeignKey("message.id", ondelete="CASCADE"), primary_key=True)
    tag: Mapped[str] = mapped_column(String(120), primary_key=True, index=True)
