"""A mailbox Casella reads: an IMAP (or PEC) account, or a local one filled by import."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    JSON,
    Boolean,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    Text,
    false,
)
from sqlalchemy.orm import Mapped, mapped_column

from casella.models.base import Base, UTCDateTime, utcnow

# The settings that say which mailbox an account is: another value, another mailbox (whose
# UIDs say nothing of this one's).
MAILBOX_IDENTITY = ("imap_host", "imap_port", "username")
DEFAULT_SENT_FOLDERS = ["Sent", "Sent Items", "Sent Messages", "INBOX.Sent", "Posta inviata", "Inviata", "Inviati"]


class Account(Base):
    __tablename__ = "account"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120), unique=True)
    imap_host: Mapped[str | None] = mapped_column(String(255))
    imap_port: Mapped[int | None] = mapped_column(Integer)
    username: Mapped[str | None] = mapped_column(String(255))
    password_encrypted: Mapped[bytes | None] = mapped_column(LargeBinary)
    security: Mapped[str] = mapped_column(String(16), default="ssl")  # ssl | starttls | none
    is_pec: Mapped[bool] = mapped_column(Boolean, default=False)
    folders: Mapped[list[str]] = mapped_column(JSON, default=lambda: ["INBOX"])
    sent_folders: Mapped[list[str]] = mapped_column(JSON, default=lambda: list(DEFAULT_SENT_FOLDERS))
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    # Optional changes on the server, done only after the local commit.
    mark_seen: Mapped[bool] = mapped_column(Boolean, default=False)
    move_to_folder: Mapped[str | None] = mapped_column(String(255))
    move_after_days: Mapped[int | None] = mapped_column(Integer)
    # Sending: add the account's default signature to every submission (a client can also
    # ask per message with the X-Casella-Signature header), and copy sent mail to the
    # server's Sent folder (IMAP APPEND) once relayed.
    auto_signature: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    imap_append_sent: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    registry_id: Mapped[int | None] = mapped_column(ForeignKey("protocol_registry.id"))
    # A personal mailbox: only its owner reads it, until a message is made public.
    owner_user_id: Mapped[int | None] = mapped_column(ForeignKey("app_user.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Fetch status, shown by `casella account list --json`.
    last_fetch_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    last_error_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    @property
    def mailbox(self) -> tuple[str | None, int | None, str | None]:
        """Which mailbox this is (MAILBOX_IDENTITY): server, port and login."""
        return (self.imap_host, self.imap_port, self.username)

    @property
    def is_remote(self) -> bool:
        return bool(self.imap_host)

    def is_sent_folder(self, folder: str) -> bool:
        return folder in self.sent_folders
