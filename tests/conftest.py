"""Shared fixtures: real servers (Dovecot, PostgreSQL), a database per test on SQLite and
on PostgreSQL, Casella settings in a temporary data directory, and the real CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from casella.db import Database
from casella.settings import Settings
from tests.servers.dovecot import DovecotServer, make_traversable
from tests.servers.postgres import PostgresServer

ROOT = Path(__file__).resolve().parent.parent
CORPUS = Path(__file__).resolve().parent / "corpus"
CASELLA = str(ROOT / ".venv" / "bin" / "casella") if (ROOT / ".venv" / "bin" / "casella").exists() else "casella"


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresServer]:
    if not PostgresServer.available():
        pytest.fail("PostgreSQL is not installed: run scripts/test.sh, which installs it")
    server = PostgresServer().start()
    yield server
    server.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty database: an SQLite file, or a new database on the real server."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'casella.db'}"
    server: PostgresServer = request.getfixturevalue("pg_server")
    return server.create_database(f"t_{uuid.uuid4().hex[:12]}")


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'casella.db'}"


def make_env(data_dir: Path, db_url: str, **extra: str) -> dict[str, str]:
    env = {"CASELLA_DATA_DIR": str(data_dir), "CASELLA_DATABASE_URL": db_url, "CASELLA_INGEST_WORKERS": "1",
           "CASELLA_INGEST_BATCH_SIZE": "50", "CASELLA_DEMO": "0"}
    env.update(extra)
    return env


@pytest.fixture
def env(tmp_path: Path, db_url: str) -> dict[str, str]:
    return make_env(tmp_path / "data", db_url)


@pytest.fixture
def settings(env: dict[str, str]) -> Settings:
    return Settings.load(env)


@pytest.fixture
def database(settings: Settings) -> Iterator[Database]:
    database = Database.from_settings(settings)
    yield database
    database.dispose()


@pytest.fixture
def dovecot(tmp_path: Path) -> Iterator[DovecotServer]:
    if not DovecotServer.available():
        pytest.fail("Dovecot is not installed: run scripts/test.sh, which installs it")
    run = tmp_path / "imap"
    run.mkdir()
    make_traversable(run)
    server = DovecotServer(run, {"alice": "alicepw", "bob": "bobpw"}).start()
    yield server
    server.stop()


@dataclass
class CliResult:
    returncode: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)


@dataclass
class Cli:
    """The real `casella` command, run as a user would, against one data directory."""

    env: dict[str, str]

    def __call__(self, *args: str, check: bool = True, input: str | None = None, timeout: float = 300,
                 extra_env: dict[str, str] | None = None) -> CliResult:
        full_env = {**os.environ, **self.env, **(extra_env or {})}
        proc = subprocess.run([CASELLA, *args], env=full_env, capture_output=True, text=True, input=input,
                              timeout=timeout)
        result = CliResult(proc.returncode, proc.stdout, proc.stderr)
        if check and proc.returncode != 0:
            raise AssertionError(f"casella {' '.join(args)} exited {proc.returncode}:\n{proc.stderr}\n{proc.stdout}")
        return result

    def popen(self, *args: str, **kwargs: Any) -> subprocess.Popen[str]:
        return subprocess.Popen([CASELLA, *args], env={**os.environ, **self.env}, text=True, **kwargs)


@pytest.fixture
def cli(env: dict[str, str]) -> Cli:
    return Cli(env)


def crlf(raw: bytes) -> bytes:
    """The bytes an IMAP server serves for a stored file: every line ends in CRLF."""
    return raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def pytest_configure(config: pytest.Config) -> None:
    sys.path.insert(0, str(ROOT))
