"""Delivery reports about mail we sent: bounces (DSN, RFC 3464) and read receipts (MDN,
RFC 8098). One row per recipient the report speaks of, linked to the sent message by its
Message-ID whichever of the two is stored first (mailserver/reports.py)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from casella.models.base import Base, UTCDateTime

REPORT_KINDS = ("dsn", "mdn")


class MessageReport(Base):
    __tablename__ = "message_report"

    id: Mapped[int] = mapped_column(primary_key=True)
    # The stored report message itself.
    message_id: Mapped[int] = mapped_column(ForeignKey("message.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(8))  # dsn | mdn
    refers_to_msgid: Mapped[str | None] = mapped_column(String(998), index=True)  # without angle brackets
    refers_to_id: Mapped[int | None] = mapped_column(ForeignKey("message.id", ondelete="SET NULL"), index=True)
    recipient: Mapped[str | None] = mapped_column(String(998))  # Final-Recipient / Final-Recipient of the MDN
    # DSN: Action (failed, delayed, delivered, relayed, expanded); MDN: disposition type
    # (displayed, deleted, dispatched, processed).
    action: Mapped[str] = mapped_column(String(32), default="")
    status: Mapped[str | None] = mapped_column(String(16))  # DSN Status, e.g. 5.1.1
    diagnostic: Mapped[str | None] = mapped_column(Text)  # DSN Diagnostic-Code
    at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # Arrival/Last-Attempt-Date, else Date
