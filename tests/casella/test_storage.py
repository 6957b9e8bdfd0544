"""Storage: migrations on SQLite and PostgreSQL, the blob store, settings."""

from __future__ import annotations

import os

import pytest
from sqlalchemy import create_engine, inspect

from casella.blobs import BlobStore, sha256_hex
from casella.db import downgrade, upgrade
from casella.errors import ConfigurationError, NotFound
from casella.models import Base
from casella.settings import Settings

pytestmark = pytest.mark.integration


def test_migrations_upgrade_downgrade_and_match_the_models(db_url: str) -> None:
    upgrade(db_url)
    engine = create_engine(db_url)
    tables = set(inspect(engine).get_table_names())
    assert set(Base.metadata.tables) <= tables
    for name, table in Base.metadata.tables.items():
        columns = {c["name"] for c in inspect(engine).get_columns(name)}
        assert {c.name for c in table.columns} == columns, name
    downgrade(db_url, "base")
    assert set(inspect(engine).get_table_names()) - {"alembic_version"} == set()
    upgrade(db_url)
    assert set(Base.metadata.tables) <= set(inspect(engine).get_table_names())
    engine.dispose()


@pytest.mark.unit
def test_blob_store_is_content_addressed_and_byte_exact(tmp_path) -> None:
    store = BlobStore(tmp_path / "blobs")
    data = b"From: a@b\r\n\r\nbody\x00\xff\r\n"
    digest = store.put(data)
    assert digest == sha256_hex(data)
    assert store.get(digest, verify=True) == data
    assert store.put(data) == digest  # idempotent
    store.put_many([(sha256_hex(b"x" * n), b"x" * n) for n in range(1, 50)])
    assert store.get(sha256_hex(b"x" * 7)) == b"x" * 7
    assert not list((tmp_path / "blobs").glob("*/.tmp-*"))
    with pytest.raises(NotFound):
        store.get(sha256_hex(b"never stored"))


@pytest.mark.unit
def test_blob_store_sweeps_what_a_crash_left(tmp_path) -> None:
    store = BlobStore(tmp_path / "blobs")
    digest = store.put(b"hello")
    leftover = store.path_for(digest).parent / ".tmp-deadbeef-1-1"
    leftover.write_bytes(b"half a mess")
    assert store.sweep() == 1 and not leftover.exists()
    assert store.get(digest) == b"hello"


@pytest.mark.unit
def test_settings_from_environment_and_file(tmp_path) -> None:
    (tmp_path / "casella.env").write_text("CASELLA_INGEST_BATCH_SIZE=7\nCASELLA_TIMEZONE=Europe/Rome\n")
    s = Settings.load({"CASELLA_DATA_DIR": str(tmp_path), "CASELLA_INGEST_WORKERS": "1"})
    assert s.ingest_batch_size == 7 and s.ingest_workers == 1
    assert s.database_url == f"sqlite:///{tmp_path / 'casella.db'}"
    s2 = Settings.load({"CASELLA_DATA_DIR": str(tmp_path), "CASELLA_INGEST_BATCH_SIZE": "9",
                        "CASELLA_DATABASE_URL": "postgresql+psycopg://x@h/db"})
    assert s2.ingest_batch_size == 9 and s2.database_url.startswith("postgresql")
    with pytest.raises(ConfigurationError, match="CASELLA_INGEST_BATCH_SIZE"):
        Settings.load({"CASELLA_DATA_DIR": str(tmp_path), "CASELLA_INGEST_BATCH_SIZE": "many"})
    assert os.environ.get("CASELLA_INGEST_BATCH_SIZE") is None
