"""A throwaway PostgreSQL server for tests.

``PostgresServer().start()`` runs ``initdb`` (trust auth, superuser
``casella``, UTF8) and ``postgres`` on 127.0.0.1:<free port> with a private
Unix-socket directory and ``fsync=off``; ``url`` is
``postgresql+psycopg://casella@127.0.0.1:PORT/postgres``.

``initdb`` refuses to run as root: as root both commands run as the
``postgres`` user via ``runuser -u postgres --`` (the directory is chowned to
it and made traversable); as non-root they run as the caller.

``stop()`` sends SIGINT to the postmaster (PostgreSQL's *fast* shutdown: it
disconnects clients). SIGTERM would be a *smart* shutdown, which waits for
every client (e.g. an SQLAlchemy pool) to disconnect first. ``runuser`` stays
as a watching parent, so the postmaster PID is read from ``postmaster.pid``.
"""
from __future__ import annotations

import contextlib
import glob
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

__all__ = ["PostgresServer", "find_pg_bindir"]

from .sandbox import HOST, make_traversable
from .sandbox import free_port as _free_port


def _make_traversable(path: Path) -> None:
    make_traversable(path, "the postgres user")


def find_pg_bindir() -> Path | None:
    """Directory with initdb/postgres: ``pg_config --bindir`` if it has them,
    else the highest /usr/lib/postgresql/<version>/bin, else PATH."""
    candidates: list[Path] = []
    pg_config = shutil.which("pg_config")
    if pg_config:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, timeout=10).stdout.strip()
            if out:
                candidates.append(Path(out))

    def version(p: str) -> tuple[int, ...]:
        m = re.search(r"/postgresql/([0-9.]+)/bin$", p)
        return tuple(int(x) for x in m.group(1).split(".") if x) if m else ()

    candidates += [Path(p) for p in sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=version, reverse=True)]
    initdb = shutil.which("initdb")
    if initdb:
        candidates.append(Path(initdb).parent)
    for d in candidates:
        if (d / "initdb").is_file() and (d / "postgres").is_file():
            return d
    return None


def _utf8_locale() -> str:
    """C.UTF-8 when the system has it (lower()/upper() then work on non-ASCII
    text), else C."""
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        out = subprocess.run(["locale", "-a"], capture_output=True, text=True, timeout=10).stdout
        for name in out.split():
            if name.lower() in ("c.utf8", "c.utf-8"):
                return "C.UTF-8"
    return "C"


class PostgresServer:
    """PostgreSQL on 127.0.0.1:<free port> in *base_dir* (default: a new
    temp dir, removed on stop). Use ``start()``/``stop()`` or ``with``."""

    host = HOST

    def __init__(
        self,
        base_dir: str | os.PathLike | None = None,
        *,
        user: str = "casella",
        port: int | None = None,
        start_timeout: float = 30.0,
    ) -> None:
        self._own_dir = base_dir is None
        self.base_dir = Path(base_dir if base_dir is not None else tempfile.mkdtemp(prefix="casella-pg-")).resolve()
        self.data_dir = self.base_dir / "data"
        self.user = user
        self._fixed_port = port
        self.port: int = port or 0
        self.start_timeout = start_timeout
        self.proc: subprocess.Popen | None = None
        self.socket_dir: Path | None = None
        self.bindir = find_pg_bindir()
        self._as_root = os.geteuid() == 0

    @staticmethod
    def available() -> bool:
        """True when the server binaries are installed (for pytest skips)."""
        return find_pg_bindir() is not None

    # ------------------------------------------------------------- urls/dsn
    def url_for(self, dbname: str) -> str:
        return f"postgresql+psycopg://{self.user}@{self.host}:{self.port}/{dbname}"

    @property
    def url(self) -> str:
        """SQLAlchemy URL of the ``postgres`` database."""
        return self.url_for("postgres")

    def dsn(self, dbname: str = "postgres") -> str:
        """libpq conninfo for psycopg.connect()."""
        return f"host={self.host} port={self.port} user={self.user} dbname={dbname}"

    @property
    def log_path(self) -> Path:
        return self.base_dir / "postgres.log"

    # ------------------------------------------------------------ lifecycle
    def _cmd(self, *args: str | os.PathLike) -> list[str]:
        prefix = ["runuser", "-u", "postgres", "--"] if self._as_root else []
        return prefix + [str(a) for a in args]

    def start(self) -> "PostgresServer":
        if self.proc is not None and self.proc.poll() is None:
            return self
        if self.bindir is None:
            raise RuntimeError("PostgreSQL server binaries not found (apt-get install postgresql; scripts/test-deps.sh)")
        self.base_dir.mkdir(parents=True, exist_ok=True)
        # short private socket dir: Unix socket paths are limited to ~107 bytes
        if self.socket_dir is None:
            self.socket_dir = Path(tempfile.mkdtemp(prefix="pgsock-"))
        if self._as_root:
            import pwd

            pg = pwd.getpwnam("postgres")
            for d in (self.base_dir, self.socket_dir):
                os.chown(d, pg.pw_uid, pg.pw_gid)
                os.chmod(d, 0o755)
            _make_traversable(self.base_dir)
            _make_traversable(self.socket_dir)
        if not (self.data_dir / "PG_VERSION").exists():
            res = subprocess.run(
                self._cmd(
                    self.bindir / "initdb", "-D", self.data_dir, "-A", "trust", "-U", self.user,
                    "-E", "UTF8", f"--locale={_utf8_locale()}", "--no-sync",
                ),
                stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120,
            )
            if res.returncode != 0:
                raise RuntimeError(f"initdb failed ({res.returncode}):\n{res.stdout}\n{res.stderr}")

        attempts = 1 if self._fixed_port else 3
        last_error = ""
        for _ in range(attempts):
            self.port = self._fixed_port or _free_port()
            log_size = self.log_path.stat().st_size if self.log_path.exists() else 0
            with open(self.log_path, "ab") as log:
                self.proc = subprocess.Popen(
                    self._cmd(
                        self.bindir / "postgres", "-D", self.data_dir, "-k", self.socket_dir,
                        "-h", self.host, "-p", str(self.port),
                        "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
                    ),
                    stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                    start_new_session=True,  # own process group: killpg on timeout
                )
            try:
                self._wait_ready()
                return self
            except Exception as exc:  # noqa: BLE001
                last_error = f"{exc}\n--- postgres.log ---\n{self._log_since(log_size)}"
                self._terminate()
                if "in use" not in last_error:
                    break
        raise RuntimeError(f"PostgreSQL did not start on {self.host}:{self.port}: {last_error}")

    def _log_since(self, offset: int) -> str:
        try:
            with open(self.log_path, "rb") as f:
                f.seek(offset)
                return f.read().decode("utf-8", "replace")[-4000:]
        except OSError:
            return ""

    def _wait_ready(self) -> None:
        assert self.proc is not None and self.bindir is not None
        deadline = time.monotonic() + self.start_timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"postgres exited with code {self.proc.returncode}")
            with contextlib.suppress(subprocess.TimeoutExpired):
                rc = subprocess.run(
                    [str(self.bindir / "pg_isready"), "-q", "-h", self.host, "-p", str(self.port), "-t", "1"],
                    stdin=subprocess.DEVNULL, capture_output=True, timeout=5,
                ).returncode
                if rc == 0:
                    return
            if time.monotonic() > deadline:
                raise TimeoutError("pg_isready did not succeed")
            time.sleep(0.1)

    def _postmaster_pid(self) -> int | None:
        with contextlib.suppress(OSError, ValueError, IndexError):
            return int((self.data_dir / "postmaster.pid").read_text().splitlines()[0])
        return None

    def _terminate(self, timeout: float = 15.0) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        pid = self._postmaster_pid() if self._as_root else proc.pid
        if pid is not None and pid != proc.pid:
            # make sure the pid file belongs to our child, not a stale one
            try:
                with open(f"/proc/{pid}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                ppid = -1
            if ppid != proc.pid:
                pid = None
        try:
            if pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGINT)  # fast shutdown
            else:
                proc.terminate()
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)

    def stop(self, timeout: float = 15.0) -> None:
        """Fast shutdown, SIGKILL of the process group on timeout; removes
        the directories this object created."""
        self._terminate(timeout)
        if self.socket_dir is not None:
            shutil.rmtree(self.socket_dir, ignore_errors=True)
            self.socket_dir = None
        if self._own_dir:
            shutil.rmtree(self.base_dir, ignore_errors=True)

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def __enter__(self) -> "PostgresServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------ databases
    def _admin(self):
        import psycopg

        return psycopg.connect(self.dsn("postgres"), autocommit=True, connect_timeout=10)

    def create_database(self, name: str) -> str:
        """CREATE DATABASE *name*; returns its SQLAlchemy URL."""
        from psycopg import sql

        with self._admin() as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.url_for(name)

    def drop_database(self, name: str) -> None:
        """DROP DATABASE IF EXISTS *name* WITH (FORCE) (disconnects clients)."""
        from psycopg import sql

        with self._admin() as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
