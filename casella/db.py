"""Engine, sessions and migrations: the only place that knows which database is behind.

SQLite (WAL, the embedded default) and PostgreSQL run the same schema through Alembic.
On SQLite every transaction starts with ``BEGIN IMMEDIATE`` so that two writers queue on
the busy timeout instead of failing on a lock upgrade (this is what keeps protocol numbers
gapless with two ingest processes on one file).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

from casella.settings import Settings

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"
SQLITE_BUSY_TIMEOUT_MS = 60_000
READ_ONLY = "casella_read_only"


def make_engine(url: str) -> Engine:
    # A webmail request may hold its read session while it opens a short write session (the
    # read log) and a fresh read: with 40 request threads the default pool (5 + 10) starves.
    if url.startswith("sqlite"):
        # SQLite connections are file handles: no upper bound needed.
        engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
                               pool_size=10, max_overflow=-1)
        _configure_sqlite(engine)
        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=40)


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the driver, decide when a transaction starts.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        # FULL: a COMMIT is on disk when it returns. With NORMAL a power cut can undo the
        # last commits after we answered 250 to a submission or flagged mail on an IMAP
        # server; in WAL mode FULL costs one fsync of the log per transaction.
        cur.execute("PRAGMA synchronous=FULL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        # Read-only sessions (Database.reading) take no write lock, so they never wait
        # for a writer: WAL gives them a consistent snapshot.
        conn.exec_driver_sql("BEGIN" if conn.get_execution_options().get(READ_ONLY) else "BEGIN IMMEDIATE")


def ensure_sqlite_dir(url: str) -> None:
    if url.startswith("sqlite:///") and url != "sqlite:///:memory:":
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)


def alembic_config(url: str) -> Config:
    cfg = Config(str(MIGRATIONS_DIR / "alembic.ini"))
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(url: str, revision: str = "head") -> None:
    """Bring the schema to `revision` (Alembic); safe to call on every start."""
    ensure_sqlite_dir(url)
    command.upgrade(alembic_config(url), revision)


def downgrade(url: str, revision: str) -> None:
    command.downgrade(alembic_config(url), revision)


class Database:
    """An engine plus its session factory, built from the settings."""

    def __init__(self, url: str) -> None:
        ensure_sqlite_dir(url)
        self.url = url
        self.engine = make_engine(url)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)
        self.read_sessions = sessionmaker(self.engine.execution_options(**{READ_ONLY: True}), expire_on_commit=False)

    @classmethod
    def from_settings(cls, settings: Settings, *, migrate: bool = True) -> Database:
        if migrate:
            upgrade(settings.database_url)
        return cls(settings.database_url)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session whose transaction commits on success and rolls back on any error."""
        with self.sessions() as session, session.begin():
            yield session

    @contextmanager
    def reading(self) -> Iterator[Session]:
        """A session for reads only: on SQLite it does not queue behind writers."""
        with self.read_sessions() as session, session.begin():
            yield session

    def dispose(self) -> None:
        self.engine.dispose()
