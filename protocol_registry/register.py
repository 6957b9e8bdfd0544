"""Read and cancel registrations: what `casella protocol list/show/cancel` do."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from casella.errors import NotFound
from casella.models import ProtocolRegistry, Registration, format_protocol, utcnow
from protocol_registry.assign import parse_number
from protocol_registry.errors import RegistrationImmutable


def list_registrations(session: Session, *, year: int | None = None, registry: str | None = None) -> list[Registration]:
    query = select(Registration).order_by(Registration.registry_id, Registration.year, Registration.number)
    if year is not None:
        query = query.where(Registration.year == year)
    if registry is not None:
        query = query.join(ProtocolRegistry).where(ProtocolRegistry.code == registry)
    return list(session.scalars(query))


def find_registration(session: Session, label: str, registry: str | None = None) -> Registration:
    year, number = parse_number(label)
    query = select(Registration).where(Registration.year == year, Registration.number == number)
    if registry is not None:
        query = query.join(ProtocolRegistry).where(ProtocolRegistry.code == registry)
    found = list(session.scalars(query))
    if not found:
        raise NotFound(f"no registration {format_protocol(year, number)}; `casella protocol list --year {year}` lists them")
    if len(found) > 1:
        raise NotFound(f"{format_protocol(year, number)} exists in {len(found)} registries: add --registry CODE")
    return found[0]


def cancel(session: Session, reg: Registration, *, reason: str, user: str) -> None:
    """Cancel a registration: it stays in the register, marked, with who, when and why."""
    if reg.cancelled_at is not None:
        raise RegistrationImmutable(f"{reg.label} was already cancelled on {reg.cancelled_at:%Y-%m-%d} by {reg.cancelled_by}")
    if not reason.strip():
        raise RegistrationImmutable("a cancellation needs a reason (--reason)")
    reg.cancelled_at = utcnow()
    reg.cancelled_by = user
    reg.cancel_reason = reason.strip()
    session.flush()
