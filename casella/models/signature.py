"""Company signatures: templates per account (the mailbox's default) and per user.

A template is Jinja2-free text with `{name}`-style variables (see mailserver/signatures.py
for the list); the HTML and the text version are kept side by side, because a message
carries both.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, CheckConstraint, ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from casella.models.base import Base, UTCDateTime, utcnow


class Signature(Base):
    __tablename__ = "signature"
    __table_args__ = (
        UniqueConstraint("name"),
        CheckConstraint("account_id IS NOT NULL OR user_id IS NOT NULL", name="has_owner"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120))
    # An account's signature (user_id NULL) or a user's own (optionally for one account).
    account_id: Mapped[int | None] = mapped_column(ForeignKey("account.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("app_user.id", ondelete="CASCADE"), index=True)
    body_text: Mapped[str] = mapped_column(Text, default="")
    body_html: Mapped[str] = mapped_column(Text, default="")
    is_default: Mapped[bool] = mapped_column(Boolean, default=False)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
