"""Migration 0003 (outbound queue) and later: upgrade, downgrade past it and upgrade again, on both databases."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, inspect

from casella.db import downgrade, upgrade
from casella.models.outbound import AccountSmtp, OutboundMessage, SenderIdentity

pytestmark = pytest.mark.integration
TABLES = {"outbound_message", "account_smtp", "sender_identity"}


def test_outbound_migration_upgrades_and_downgrades(db_url: str) -> None:
    upgrade(db_url, "head")
    engine = create_engine(db_url)
    try:
        assert TABLES <= set(inspect(engine).get_table_names())
        for model in (OutboundMessage, AccountSmtp, SenderIdentity):
            columns = {c["name"] for c in inspect(engine).get_columns(model.__tablename__)}
            assert columns == {c.name for c in model.__table__.columns}, model.__tablename__
        downgrade(db_url, "0002")
        assert not TABLES & set(inspect(engine).get_table_names())
        upgrade(db_url, "head")
        assert TABLES <= set(inspect(engine).get_table_names())
    finally:
        engine.dispose()
