"""Outgoing mail: the persistent relay queue, each account's upstream SMTP server, and the
extra sender addresses (identities) a user may submit as."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, ForeignKey, Index, Integer, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from casella.models.base import Base, UTCDateTime, utcnow

OUTBOUND_STATES = ("queued", "sending", "sent", "deferred", "failed")
SMTP_SECURITY = ("ssl", "starttls", "none")


class OutboundMessage(Base):
    """One submitted message on its way out. `state` moves queued → sending → sent, or
    → deferred (retried at next_attempt_at) or failed (last_error says why). While
    `sending`, next_attempt_at is the claim's lease: past it, the claim is stale."""

    __tablename__ = "outbound_message"
    __table_args__ = (Index("ix_outbound_message_due", "state", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("message.id"), index=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("account.id"), index=True)
    mail_from: Mapped[str] = mapped_column(String(998))
    rcpt_tos: Mapped[list[str]] = mapped_column(JSON, default=list)
    state: Mapped[str] = mapped_column(String(8), default="queued")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    smtp_message_id: Mapped[str | None] = mapped_column(String(998))
    # The copy in the server's Sent folder (account.imap_append_sent): when it was appended,
    # or why it could not be.
    imap_appended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    imap_append_error: Mapped[str | None] = mapped_column(Text)


class AccountSmtp(Base):
    """The upstream SMTP server an account's mail is relayed through."""

    __tablename__ = "account_smtp"

    account_id: Mapped[int] = mapped_column(ForeignKey("account.id", ondelete="CASCADE"), primary_key=True)
    host: Mapped[str] = mapped_column(String(255))
    port: Mapped[int] = mapped_column(Integer)
    security: Mapped[str] = mapped_column(String(16), default="starttls")  # ssl | starttls | none
    username: Mapped[str | None] = mapped_column(String(255))
    password_encrypted: Mapped[bytes | None] = mapped_column(LargeBinary)


class SenderIdentity(Base):
    """An address a user may put in MAIL FROM / From:, sending through an account."""

    __tablename__ = "sender_identity"
    __table_args__ = (UniqueConstraint("user_id", "address"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("app_user.id", ondelete="CASCADE"), index=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("account.id", ondelete="CASCADE"), index=True)
    address: Mapped[str] = mapped_column(String(320), index=True)  # stored lower-case
