"""Anagrafica: companies and the mail domains that belong to them."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from casella.models.base import Base, UTCDateTime, utcnow

LIFECYCLES = ("suspect", "lead", "prospect", "customer")


class Company(Base):
    __tablename__ = "company"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(255), index=True)
    vat_number: Mapped[str | None] = mapped_column(String(32), index=True)
    fiscal_code: Mapped[str | None] = mapped_column(String(32))
    lifecycle: Mapped[str] = mapped_column(String(16), default="suspect")
    agent: Mapped[str | None] = mapped_column(String(255))  # username of the owning agent
    category: Mapped[str | None] = mapped_column(String(64), index=True)  # e.g. fornitore, cliente, ente
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class CompanyDomain(Base):
    __tablename__ = "company_domain"

    id: Mapped[int] = mapped_column(primary_key=True)
    company_id: Mapped[int] = mapped_column(ForeignKey("company.id", ondelete="CASCADE"), index=True)
    domain: Mapped[str] = mapped_column(String(255), unique=True)
