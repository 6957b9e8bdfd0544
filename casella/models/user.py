"""People who use Casella, their groups, and which mailboxes each may read."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, CheckConstraint, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from casella.models.base import Base, UTCDateTime, utcnow

ROLES = ("admin", "manager", "operator", "agent", "marketing")
ASSIGNMENT_POLICIES = ("round-robin", "least-loaded")


class User(Base):
    __tablename__ = "app_user"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(120), unique=True)
    display_name: Mapped[str] = mapped_column(String(255), default="")
    email: Mapped[str | None] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16))
    password_hash: Mapped[str | None] = mapped_column(String(255))  # argon2id
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    # Shown in signatures ({job_title}, {phone}) and used by the webmail.
    job_title: Mapped[str | None] = mapped_column(String(255))
    phone: Mapped[str | None] = mapped_column(String(64))
    locale: Mapped[str] = mapped_column(String(8), default="it", server_default="it")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Bumped whenever this user's read state changes: it keys their cached folder counts, so
    # that every webmail process counts again (webmail/mailbox.py folder_tree).
    seen_version: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class Group(Base):
    __tablename__ = "user_group"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120), unique=True)
    assignment: Mapped[str] = mapped_column(String(16), default="round-robin")
    # Round-robin: the member who got the last message (next one goes to the following id).
    last_assigned_user_id: Mapped[int | None] = mapped_column(Integer)


class GroupMember(Base):
    __tablename__ = "group_member"

    group_id: Mapped[int] = mapped_column(ForeignKey("user_group.id", ondelete="CASCADE"), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("app_user.id", ondelete="CASCADE"), primary_key=True)


class MailboxPermission(Base):
    """A group or a user may read (or also work on) an account's mail."""

    __tablename__ = "mailbox_permission"
    __table_args__ = (CheckConstraint("(group_id IS NULL) <> (user_id IS NULL)", name="one_grantee"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("account.id", ondelete="CASCADE"), index=True)
    group_id: Mapped[int | None] = mapped_column(ForeignKey("user_group.id", ondelete="CASCADE"))
    user_id: Mapped[int | None] = mapped_column(ForeignKey("app_user.id", ondelete="CASCADE"))
    level: Mapped[str] = mapped_column(String(8), default="write")  # read | write
