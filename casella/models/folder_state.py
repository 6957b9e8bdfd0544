"""Per account and server folder: the UIDVALIDITY seen and the UID cursor."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from casella.models.base import Base, UTCDateTime


class FolderState(Base):
    __tablename__ = "folder_state"
    __table_args__ = (UniqueConstraint("account_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("account.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(255))
    uidvalidity: Mapped[int | None] = mapped_column(BigInteger)
    # Highest UID whose message is committed here; advanced in the same transaction.
    last_uid: Mapped[int] = mapped_column(BigInteger, default=0)
    server_count: Mapped[int | None] = mapped_column(Integer)
    last_fetch_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
