"""Where a stored message was seen: account, server folder, UIDVALIDITY and UID.

Unique per (account, folder, uidvalidity, uid): the same server copy is never stored twice.
An imported message has no UID (NULL), and is recognised again by its hash.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from casella.models.base import Base, UTCDateTime, utcnow


class MessageLocation(Base):
    __tablename__ = "message_location"
    __table_args__ = (UniqueConstraint("account_id", "folder", "uidvalidity", "uid"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("message.id", ondelete="CASCADE"), index=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("account.id"))
    folder: Mapped[str] = mapped_column(String(255))
    uidvalidity: Mapped[int | None] = mapped_column(BigInteger)
    uid: Mapped[int | None] = mapped_column(BigInteger)
    seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Server-side follow-ups, done only after the commit that stored the message.
    flagged_seen_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    moved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
