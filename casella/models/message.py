"""A stored message: parsed metadata here, the raw bytes in the blob store (by sha256)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import Mapped, mapped_column

from casella.models.base import Base, UTCDateTime, utcnow


class Message(Base):
    __tablename__ = "message"
    __table_args__ = (
        # The same bytes in one account are one message; different bytes that share a
        # Message-ID are two messages.
        UniqueConstraint("account_id", "sha256"),
        Index("ix_message_account_date", "account_id", "date"),
        Index("ix_message_link", "link_kind", "company_id"),
        # The webmail's lists: newest first, page by (date, id) keyset, per folder or overall.
        Index("ix_message_folder_date", "account_id", "folder", "date", "id"),
        Index("ix_message_date_id", "date", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("account.id"), index=True)
    folder: Mapped[str] = mapped_column(String(255))
    direction: Mapped[str] = mapped_column(String(3))  # in | out
    sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(BigInteger)
    message_id: Mapped[str | None] = mapped_column(String(998), index=True)
    in_reply_to: Mapped[str | None] = mapped_column(String(998))
    references: Mapped[list[str]] = mapped_column(JSON, default=list)
    subject: Mapped[str] = mapped_column(Text, default="")
    from_name: Mapped[str] = mapped_column(String(998), default="")
    from_addr: Mapped[str] = mapped_column(String(998), default="", index=True)
    to: Mapped[list[dict[str, str]]] = mapped_column(JSON, default=list)
    cc: Mapped[list[dict[str, str]]] = mapped_column(JSON, default=list)
    date: Mapped[datetime | None] = mapped_column(UTCDateTime)
    received_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # IMAP INTERNALDATE
    stored_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    body_text: Mapped[str] = mapped_column(Text, default="")
    body_html: Mapped[str] = mapped_column(Text, default="")
    has_attachments: Mapped[bool] = mapped_column(Boolean, default=False)
    defects: Mapped[list[str]] = mapped_column(JSON, default=list)
    parse_engine: Mapped[str] = mapped_column(String(16), default="mail-parser")
    thread_id: Mapped[int | None] = mapped_column(ForeignKey("thread.id"), index=True)
    # Anagrafica link: contact | company | unknown.
    link_kind: Mapped[str] = mapped_column(String(8), default="unknown")
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contact.id"))
    company_id: Mapped[int | None] = mapped_column(ForeignKey("company.id"))
    # Working state, set by routing rules and (later) by people in the webmail.
    assigned_user_id: Mapped[int | None] = mapped_column(ForeignKey("app_user.id", ondelete="SET NULL"), index=True)
    assigned_group_id: Mapped[int | None] = mapped_column(ForeignKey("user_group.id", ondelete="SET NULL"), index=True)
    agent: Mapped[str | None] = mapped_column(String(120), index=True)  # username of the responsible agent
    status: Mapped[str] = mapped_column(String(8), default="open", server_default="open")  # open | pending | closed
    is_public: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    extra: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
