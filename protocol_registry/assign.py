"""Protocollo informatico: hand out the next gapless numbers, in the storing transaction.

Numbers are per registry and per year (the registration's year in the registry's time zone,
so they restart on 1 January). A batch of n messages takes n numbers with one atomic
``UPDATE … SET last_number = last_number + n … RETURNING``: PostgreSQL holds the counter's
row lock, SQLite the database write lock, until the transaction ends. A rollback gives the
numbers back with everything else, so no gap can appear, and UNIQUE(registry, year, number)
makes a duplicate impossible.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from sqlalchemy import insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from casella.models import Account, ProtocolCounter, ProtocolRegistry, Registration, utcnow
from casella.settings import Settings

if TYPE_CHECKING:
    from casella.pipeline import StoredMessage


def get_registry(session: Session, account: Account, default_code: str) -> ProtocolRegistry:
    if account.registry_id is not None:
        registry = session.get(ProtocolRegistry, account.registry_id)
        assert registry is not None
        return registry
    return ensure_registry(session, default_code)


def ensure_registry(session: Session, code: str, name: str | None = None) -> ProtocolRegistry:
    registry = session.scalar(select(ProtocolRegistry).where(ProtocolRegistry.code == code))
    if registry is None:
        insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
        session.execute(insert(ProtocolRegistry).values(code=code, name=name or code)
                        .on_conflict_do_nothing(index_elements=["code"]))
        registry = session.scalar(select(ProtocolRegistry).where(ProtocolRegistry.code == code))
        assert registry is not None
    return registry


def allocate_numbers(session: Session, registry_id: int, year: int, count: int) -> range:
    """Reserve `count` consecutive numbers; they are ours until this transaction ends."""
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    session.execute(insert(ProtocolCounter).values(registry_id=registry_id, year=year, last_number=0)
                    .on_conflict_do_nothing(index_elements=["registry_id", "year"]))
    last = session.execute(
        update(ProtocolCounter)
        .where(ProtocolCounter.registry_id == registry_id, ProtocolCounter.year == year)
        .values(last_number=ProtocolCounter.last_number + count)
        .returning(ProtocolCounter.last_number)
    ).scalar_one()
    return range(last - count + 1, last + 1)


def correspondent_of(item: StoredMessage) -> str:
    parsed = item.parsed
    who = (parsed.to[0] if parsed.to else None) if item.row.direction == "out" else parsed.sender
    if who is None:
        return ""
    return f"{who.name} <{who.addr}>" if who.name else who.addr


class RegistrationStage:
    """Registers every new message (in and out) in its account's registry, PEC receipts
    excepted. A PEC envelope is registered as the certified message it carries (the row's
    sender and subject come from its postacert.eml)."""

    name = "protocol_registry.assign"

    def __init__(self, settings: Settings) -> None:
        self.default_code = settings.default_registry
        self.zone = ZoneInfo(settings.timezone)

    def process(self, batch: Sequence[StoredMessage], session: Session) -> None:
        # Idempotent: a batch retried message by message after a failure skips what is done.
        ids = [item.row.id for item in batch]
        done = set(session.scalars(select(Registration.message_id).where(Registration.message_id.in_(ids))))
        # PEC receipts are the provider's notices about a message, not correspondence: no number.
        pending = [item for item in batch if item.row.id not in done and not (item.pec and item.pec.is_receipt)]
        by_registry: dict[int, list[StoredMessage]] = {}
        for item in pending:
            registry = get_registry(session, item.account, self.default_code)
            by_registry.setdefault(registry.id, []).append(item)
        for registry_id, items in by_registry.items():
            now = utcnow()
            year = now.astimezone(self.zone).year
            numbers = allocate_numbers(session, registry_id, year, len(items))
            session.execute(insert(Registration), [
                dict(registry_id=registry_id, year=year, number=number, registered_at=now,
                     direction=item.row.direction, correspondent=correspondent_of(item),
                     subject=item.row.subject, sha256=item.row.sha256, message_id=item.row.id)
                for item, number in zip(items, numbers, strict=True)
            ])
        session.flush()


def parse_number(text: str) -> tuple[int, int]:
    """'2026/42' or '2026/0000042' → (2026, 42)."""
    year, sep, number = text.strip().partition("/")
    if not sep or not year.isdigit() or not number.isdigit():
        from protocol_registry.errors import BadProtocolNumber

        raise BadProtocolNumber(f"{text!r} is not a protocol number: write it as YEAR/NUMBER, e.g. 2026/42")
    return int(year), int(number)
