"""Protocollo informatico: registries, their yearly counters and the registrations."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from casella.models.base import Base, UTCDateTime


def format_protocol(year: int, number: int) -> str:
    """The printed form of a protocol number: 2026/0000042."""
    return f"{year}/{number:07d}"


class ProtocolRegistry(Base):
    """A registry (AOO, area organizzativa omogenea) that numbers its own mail."""

    __tablename__ = "protocol_registry"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(255))


class ProtocolCounter(Base):
    """The last number handed out per registry and year; updated under a row lock."""

    __tablename__ = "protocol_counter"

    registry_id: Mapped[int] = mapped_column(ForeignKey("protocol_registry.id"), primary_key=True)
    year: Mapped[int] = mapped_column(Integer, primary_key=True)
    last_number: Mapped[int] = mapped_column(BigInteger, default=0)


class Registration(Base):
    """One registration: immutable once written (database triggers refuse changes),
    except for the cancellation fields, which can be set once."""

    __tablename__ = "protocol_registration"
    __table_args__ = (UniqueConstraint("registry_id", "year", "number"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    registry_id: Mapped[int] = mapped_column(ForeignKey("protocol_registry.id"))
    year: Mapped[int] = mapped_column(Integer)
    number: Mapped[int] = mapped_column(BigInteger)
    registered_at: Mapped[datetime] = mapped_column(UTCDateTime)
    direction: Mapped[str] = mapped_column(String(3))  # in | out
    correspondent: Mapped[str] = mapped_column(Text)
    subject: Mapped[str] = mapped_column(Text)  # oggetto
    sha256: Mapped[str] = mapped_column(String(64))
    message_id: Mapped[int] = mapped_column(ForeignKey("message.id"), unique=True)
    cancelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    cancelled_by: Mapped[str | None] = mapped_column(String(255))
    cancel_reason: Mapped[str | None] = mapped_column(Text)

    @property
    def label(self) -> str:
        return format_protocol(self.year, self.number)
