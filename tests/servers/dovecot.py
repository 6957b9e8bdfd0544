"""A real Dovecot IMAP server for tests.

``DovecotServer`` renders ``dovecot.conf.in`` (next to this file) into a run
directory and starts ``dovecot -F -c RUN/dovecot.conf`` on 127.0.0.1 and a free
port. Every path Dovecot uses (config, sockets, state, log, mail) lives in the
run directory, so several instances can run side by side; /etc/dovecot and the
system service are not used.

Layout of a run directory::

    dovecot.conf  users  dovecot.log  dovecot.stdout  run/  state/
    home/<user>/
    mail/<user>/{cur,new,tmp}            INBOX (Maildir root, LAYOUT=fs)
    mail/<user>/<Folder>/{cur,new,tmp}   other folders, "/" is the separator

As root, Dovecot refuses to access mail as uid 0: mail and home directories are
chowned to ``nobody`` (the passwd-file maps every user to it), login and
internal processes use the Debian package's ``dovenull`` / ``dovecot`` users,
and the run directory and every parent below the temp root are made
traversable (pytest's tmp dirs are 0700; without this LOGIN fails with
"[UNAVAILABLE] Temporary authentication failure"). As non-root everything
runs as the caller (login/anvil chroot is disabled in the config for that).

The config also turns off the anvil auth penalty (otherwise one failed LOGIN
from 127.0.0.1 delays the next logins, even correct ones, by 2-15 s) and
raises mail_max_userip_connections from 10 to 1000.

Line endings: IMAP serves CRLF. ``BODY.PEEK[]`` returns exactly what was
appended only for CRLF messages (Dovecot stores LF and converts back; imaplib's
single APPEND also rewrites bare LF to CRLF, MULTIAPPEND does not).

``FlakyProxy`` (re-exported from ``proxy.py``) cuts IMAP connections on demand.
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Iterable, Iterator, Mapping, Sequence

from imapclient import IMAPClient, imap_utf7

try:
    from .proxy import FlakyProxy  # noqa: F401  (re-export)
except ImportError:  # imported as a top-level module
    from proxy import FlakyProxy  # type: ignore[no-redef]  # noqa: F401

__all__ = ["DovecotServer", "FlakyProxy", "free_port"]

HERE = Path(__file__).resolve().parent
CONF_TEMPLATE = HERE / "dovecot.conf.in"
from .sandbox import HOST, free_port
from .sandbox import make_traversable as _make_traversable


def make_traversable(path: Path) -> None:
    """Let Dovecot's mail processes (running as ``nobody``) reach *path*."""
    _make_traversable(path, "Dovecot's mail processes (user nobody)")


def _find_dovecot() -> str | None:
    path = os.environ.get("PATH", "") + os.pathsep + "/usr/sbin:/sbin"
    return shutil.which("dovecot", path=path)


def _parse_uid_set(text: str) -> list[int]:
    uids: list[int] = []
    for part in text.split(","):
        if ":" in part:
            a, b = (int(x) for x in part.split(":"))
            uids.extend(range(min(a, b), max(a, b) + 1))
        else:
            uids.append(int(part))
    return uids


def _appenduid(response: bytes | str | tuple) -> tuple[int, list[int]]:
    """(uidvalidity, uids) from an APPEND response ``[APPENDUID v uid-set]``
    (IMAPClient.multiappend returns imaplib's raw ``(typ, [text])``)."""
    if isinstance(response, tuple):
        typ, data = response
        if typ != "OK":
            raise RuntimeError(f"APPEND failed: {typ} {data!r}")
        response = data[-1] if data else b""
    if isinstance(response, bytes):
        response = response.decode("ascii", "replace")
    m = re.search(r"APPENDUID (\d+) ([0-9:,]+)", response)
    if not m:
        raise RuntimeError(f"no APPENDUID in APPEND response: {response!r}")
    return int(m.group(1)), _parse_uid_set(m.group(2))


class DovecotServer:
    """A throwaway Dovecot IMAP server on 127.0.0.1:<free port>.

    ``DovecotServer(run_dir, {"alice": "pw"}).start()`` or use it as a context
    manager. ``host``/``port``/``users`` are plain attributes. Passwords must
    not contain ':' or newlines (passwd-file format); user names must be
    simple (letters, digits, ``._@+-``).
    """

    host = HOST

    def __init__(
        self,
        run_dir: str | os.PathLike | None = None,
        users: Mapping[str, str] | None = None,
        *,
        port: int | None = None,
        start_timeout: float = 15.0,
    ) -> None:
        self.users: dict[str, str] = dict(users if users is not None else {"testuser": "testpass"})
        self._own_dir = run_dir is None
        self.run_dir = Path(run_dir if run_dir is not None else tempfile.mkdtemp(prefix="casella-dovecot-")).resolve()
        if any(c.isspace() for c in str(self.run_dir)):
            raise ValueError(f"run_dir must not contain whitespace: {self.run_dir}")
        self._fixed_port = port
        self.port: int = port or 0
        self.start_timeout = start_timeout
        self.proc: subprocess.Popen | None = None
        self._seq = 0  # write_maildir file-name counter
        self._t0 = int(time.time())
        if os.geteuid() == 0:
            import pwd

            nobody = pwd.getpwnam("nobody")
            self._mail_uid, self._mail_gid = nobody.pw_uid, nobody.pw_gid
            self._login_user, self._internal_user, self._internal_group = "dovenull", "dovecot", "dovecot"
        else:
            import grp
            import pwd

            self._mail_uid, self._mail_gid = os.getuid(), os.getgid()
            name = pwd.getpwuid(os.getuid()).pw_name
            self._login_user = self._internal_user = name
            self._internal_group = grp.getgrgid(os.getgid()).gr_name

    # ------------------------------------------------------------------ setup
    @staticmethod
    def available() -> bool:
        """True when the dovecot binary is installed (for pytest skips)."""
        return _find_dovecot() is not None

    @property
    def conf_path(self) -> Path:
        return self.run_dir / "dovecot.conf"

    @property
    def log_path(self) -> Path:
        return self.run_dir / "dovecot.log"

    def _chown(self, path: Path) -> None:
        if os.geteuid() == 0:
            os.chown(path, self._mail_uid, self._mail_gid)

    def _mkdir_owned(self, path: Path) -> None:
        """mkdir -p, chowning every directory it creates below run_dir."""
        missing = []
        p = path
        while not p.exists():
            missing.append(p)
            p = p.parent
        for d in reversed(missing):
            d.mkdir(mode=0o755)
            self._chown(d)

    def _write_users(self) -> None:
        lines = []
        for user, password in self.users.items():
            if not re.fullmatch(r"[A-Za-z0-9._@+-]+", user):
                raise ValueError(f"unsupported IMAP user name: {user!r}")
            if any(c in password for c in ":\r\n"):
                raise ValueError(f"password for {user!r} must not contain ':' or newlines")
            home = self.run_dir / "home" / user
            self._mkdir_owned(home)
            mail = self.run_dir / "mail" / user
            for sub in ("cur", "new", "tmp"):
                self._mkdir_owned(mail / sub)
            lines.append(f"{user}:{{PLAIN}}{password}:{self._mail_uid}:{self._mail_gid}::{home}\n")
        tmp = self.run_dir / "users.tmp"
        tmp.write_text("".join(lines))
        os.chmod(tmp, 0o644)
        os.replace(tmp, self.run_dir / "users")

    def _render_conf(self) -> None:
        text = CONF_TEMPLATE.read_text()
        for key, value in {
            "@RUN@": str(self.run_dir),
            "@PORT@": str(self.port),
            "@LOGIN_USER@": self._login_user,
            "@INTERNAL_USER@": self._internal_user,
            "@INTERNAL_GROUP@": self._internal_group,
        }.items():
            text = text.replace(key, value)
        self.conf_path.write_text(text)

    def start(self) -> "DovecotServer":
        """Start Dovecot; return when the port answers and a LOGIN succeeds."""
        if self.proc is not None and self.proc.poll() is None:
            return self
        binary = _find_dovecot()
        if binary is None:
            raise RuntimeError("dovecot is not installed (apt-get install dovecot-imapd; scripts/test-deps.sh)")
        if not self.users:
            raise ValueError("DovecotServer needs at least one user")
        self.run_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.run_dir, 0o755)
        if os.geteuid() == 0:
            make_traversable(self.run_dir)
        for d in ("run", "state"):
            (self.run_dir / d).mkdir(exist_ok=True)
        self._mkdir_owned(self.run_dir / "mail")
        self._mkdir_owned(self.run_dir / "home")
        self._write_users()

        attempts = 1 if self._fixed_port else 3
        last_error = ""
        for _ in range(attempts):
            self.port = self._fixed_port or free_port()
            self._render_conf()
            log_size = self.log_path.stat().st_size if self.log_path.exists() else 0
            with open(self.run_dir / "dovecot.stdout", "ab") as out:
                self.proc = subprocess.Popen(
                    [binary, "-F", "-c", str(self.conf_path)],
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,  # own process group: killpg on timeout
                )
            try:
                self._wait_ready()
                return self
            except Exception as exc:  # noqa: BLE001
                last_error = f"{exc}\n--- dovecot.log ---\n{self.log_tail(40, since=log_size)}"
                self._terminate()
                if "in use" not in last_error:
                    break
        raise RuntimeError(f"Dovecot did not start on {self.host}:{self.port}: {last_error}")

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.start_timeout
        assert self.proc is not None
        # 1. the port answers
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"dovecot exited with code {self.proc.returncode}")
            try:
                socket.create_connection((self.host, self.port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise TimeoutError("port did not open") from None
                time.sleep(0.05)
        # 2. a LOGIN succeeds (the auth process may still be starting)
        user, password = next(iter(self.users.items()))
        last: Exception | None = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"dovecot exited with code {self.proc.returncode}")
            try:
                c = IMAPClient(self.host, self.port, ssl=False, timeout=5)
                try:
                    c.login(user, password)
                    c.logout()
                    return
                finally:
                    with contextlib.suppress(Exception):
                        c.shutdown()
            except Exception as exc:  # noqa: BLE001
                last = exc
                time.sleep(0.1)
        raise TimeoutError(f"LOGIN as {user!r} did not succeed: {last!r}")

    def _terminate(self, timeout: float = 10.0, fast: bool = False) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.poll() is None:
            if fast:
                # the master and every child share the process group we created
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
            else:
                proc.terminate()  # the master stops all its children on SIGTERM
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)

    def stop(self, timeout: float = 10.0, *, fast: bool = False) -> None:
        """SIGTERM the master and wait (Dovecot takes ~1.1 s to shut down),
        SIGKILL its process group on timeout. ``fast=True``: SIGKILL the
        process group at once (instant, nothing left behind; the mail is
        throwaway anyway). Removes the run directory if this object created it."""
        self._terminate(timeout, fast)
        if self._own_dir:
            shutil.rmtree(self.run_dir, ignore_errors=True)

    def restart(self) -> None:
        """Stop and start again on the same port and run directory (mail kept)."""
        port = self.port
        self._terminate()
        fixed, self._fixed_port = self._fixed_port, port
        try:
            self.start()
        finally:
            self._fixed_port = fixed

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def __enter__(self) -> "DovecotServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def log_tail(self, lines: int = 40, since: int = 0) -> str:
        try:
            with open(self.log_path, "rb") as f:
                f.seek(since)
                data = f.read()
        except OSError:
            return ""
        return "\n".join(data.decode("utf-8", "replace").splitlines()[-lines:])

    def add_user(self, user: str, password: str, *, timeout: float = 10.0) -> None:
        """Add (or change) a user. Dovecot re-reads the passwd-file when it
        changes, but checks at most once a second: when the server is running
        this waits until the new user can LOG IN."""
        self.users[user] = password
        if not self.run_dir.exists():
            return
        self._write_users()
        if not self.running:
            return
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.connect(user, timeout=5).logout()
                return
            except IMAPClient.Error:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    # ----------------------------------------------------------------- client
    def connect(self, user: str, *, timeout: float = 10.0) -> IMAPClient:
        """A logged-in IMAPClient (caller logs out)."""
        c = IMAPClient(self.host, self.port, ssl=False, timeout=timeout)
        try:
            c.login(user, self.users[user])
        except Exception:
            with contextlib.suppress(Exception):
                c.shutdown()
            raise
        return c

    @contextlib.contextmanager
    def client(self, user: str, folder: str | None = None, *, readonly: bool = True) -> Iterator[IMAPClient]:
        """``with srv.client(user, "INBOX") as c:`` — logged in, optionally selected."""
        c = self.connect(user)
        try:
            if folder is not None:
                c.select_folder(folder, readonly=readonly)
            yield c
        finally:
            try:
                c.logout()
            except Exception:  # noqa: BLE001
                with contextlib.suppress(Exception):
                    c.shutdown()

    # ------------------------------------------------------------------ mail
    def maildir(self, user: str, folder: str = "INBOX") -> Path:
        """The Maildir of *folder* (INBOX is the user's Maildir root)."""
        root = self.run_dir / "mail" / user
        if folder.upper() == "INBOX":
            return root
        # LAYOUT=fs: "/" separated hierarchy = directories; names are stored
        # in modified UTF-7 on disk.
        return root.joinpath(*imap_utf7.encode(folder).decode("ascii").split("/"))

    def create_folder(self, user: str, name: str) -> Path:
        """CREATE *name* over IMAP (no-op if it exists); returns its Maildir."""
        with self.client(user) as c:
            if not c.folder_exists(name):
                c.create_folder(name)
        return self.maildir(user, name)

    def deliver(
        self,
        user: str,
        raw: bytes,
        folder: str = "INBOX",
        *,
        flags: Sequence[str | bytes] = (),
        msg_time: _dt.datetime | None = None,
    ) -> int:
        """APPEND one message (the server assigns the UID); returns the UID.
        A missing folder is created. Note: imaplib rewrites bare LF to CRLF
        on a single APPEND."""
        with self.client(user) as c:
            if not c.folder_exists(folder):
                c.create_folder(folder)
            resp = c.append(folder, raw, flags=flags, msg_time=msg_time)
        return _appenduid(resp)[1][-1]

    def append_many(
        self,
        user: str,
        raws: Iterable[bytes],
        folder: str = "INBOX",
        *,
        batch: int = 500,
        flags: Sequence[str | bytes] = (),
    ) -> list[int]:
        """APPEND many messages over ONE connection with MULTIAPPEND (*batch*
        messages per command); returns their UIDs in order. A missing folder
        is created. Bytes are sent unchanged (use CRLF line endings)."""
        uids: list[int] = []
        with self.client(user) as c:
            if not c.folder_exists(folder):
                c.create_folder(folder)
            chunk: list = []

            def flush() -> None:
                if chunk:
                    uids.extend(_appenduid(c.multiappend(folder, chunk))[1])
                    chunk.clear()

            for raw in raws:
                chunk.append({"msg": raw, "flags": flags} if flags else raw)
                if len(chunk) >= batch:
                    flush()
            flush()
        return uids

    def write_maildir(
        self,
        user: str,
        raws: Iterable[bytes],
        folder: str = "INBOX",
        *,
        flags: str = "",
        mtime: float | None = None,
    ) -> list[Path]:
        """Write messages straight into ``<folder>/cur`` as Maildir files (the
        fastest way to load 10,000+ messages; no IMAP round trips).

        Dovecot notices them on the next SELECT/STATUS of the folder and
        assigns UIDs then, in file-name order, which is the order of *raws*.
        *flags* are Maildir info letters (``"S"`` = \\Seen, ``"F"`` = \\Flagged,
        ``"RS"`` ...; sorted as Maildir requires). *mtime* becomes the
        INTERNALDATE. A missing folder is created over IMAP first. Bytes are
        written unchanged (IMAP will serve LF as CRLF).
        """
        if folder.upper() != "INBOX" and not self.maildir(user, folder).is_dir():
            self.create_folder(user, folder)
        d = self.maildir(user, folder)
        for sub in ("cur", "new", "tmp"):
            self._mkdir_owned(d / sub)
        info = "".join(sorted(set(flags)))
        pid = os.getpid()
        paths: list[Path] = []
        for raw in raws:
            seq = self._seq
            self._seq += 1
            sec, usec = self._t0 + seq // 1_000_000, seq % 1_000_000
            name = f"{sec}.M{usec}P{pid}Q{seq}.casella-test,S={len(raw)}:2,{info}"
            tmp = d / "tmp" / name
            with open(tmp, "wb") as f:
                f.write(raw)
            self._chown(tmp)
            if mtime is not None:
                os.utime(tmp, (mtime, mtime))
            dest = d / "cur" / name
            os.rename(tmp, dest)
            paths.append(dest)
        return paths

    def deliver_many(
        self, user: str, raws: Iterable[bytes], folder: str = "INBOX", *, via: str = "imap"
    ) -> list[int] | list[Path]:
        """Bulk delivery: ``via="imap"`` → :meth:`append_many` (UIDs),
        ``via="files"`` → :meth:`write_maildir` (paths)."""
        if via == "imap":
            return self.append_many(user, raws, folder)
        if via == "files":
            return self.write_maildir(user, raws, folder)
        raise ValueError(f"via must be 'imap' or 'files', not {via!r}")

    def uidvalidity(self, user: str, folder: str = "INBOX") -> int:
        """UIDVALIDITY as a fresh SELECT (read-only) reports it."""
        with self.client(user) as c:
            return int(c.select_folder(folder, readonly=True)[b"UIDVALIDITY"])

    def reset_uidvalidity(self, user: str, folder: str = "INBOX") -> int:
        """Make the server present a NEW UIDVALIDITY for *folder*, keeping its
        messages (they get new UIDs 1..N, in the same order).

        Deletes the folder's ``dovecot-uidlist`` and ``dovecot.index*`` (and
        the user's mailbox-list index, which caches UIDVALIDITY), so Dovecot
        rebuilds them on the next SELECT with a new UIDVALIDITY. Works without
        a restart; restarts only if the value did not change. Close your own
        connections that have the folder selected first. Returns the new value.
        """
        old = self.uidvalidity(user, folder)
        d = self.maildir(user, folder)
        root = self.maildir(user, "INBOX")
        for pattern_dir, patterns in ((d, ("dovecot-uidlist", "dovecot.index*")), (root, ("dovecot.list.index*",))):
            for pattern in patterns:
                for p in pattern_dir.glob(pattern):
                    if p.is_file():
                        p.unlink()
        new = self.uidvalidity(user, folder)
        if new == old:
            self.restart()
            new = self.uidvalidity(user, folder)
        if new == old:
            raise RuntimeError(f"UIDVALIDITY of {user}/{folder} did not change ({old})")
        return new
