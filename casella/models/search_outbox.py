"""Messages whose search document must be (re)written; filled in the storing transaction,
drained by search/indexer.py. The database is the truth; the index can always be rebuilt."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, String
from sqlalchemy.orm import Mapped, mapped_column

from casella.models.base import Base, UTCDateTime, utcnow


class SearchOutbox(Base):
    __tablename__ = "search_outbox"

    id: Mapped[int] = mapped_column(primary_key=True)
    message_id: Mapped[int] = mapped_column(BigInteger, index=True)  # no FK: a deleted message is deleted from the index
    op: Mapped[str] = mapped_column(String(8), default="upsert")  # upsert | delete
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
