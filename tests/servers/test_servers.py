"""The test-server helpers work against the real servers."""
from __future__ import annotations

import os
import signal
import socket
import time

import pytest
from imapclient import IMAPClient

from .dovecot import DovecotServer
from .postgres import PostgresServer
from .proxy import FlakyProxy

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

needs_dovecot = pytest.mark.skipif(not DovecotServer.available(), reason="dovecot not installed (scripts/test-deps.sh)")
needs_postgres = pytest.mark.skipif(not PostgresServer.available(), reason="postgresql not installed (scripts/test-deps.sh)")


def _msg(i: int, body_size: int = 0) -> bytes:
    body = (f"line {i} " + "x" * 70 + "\r\n") * max(1, body_size // 78) if body_size else f"Hello {i}\r\n"
    return (
        f"From: Sender {i} <s{i}@example.org>\r\n"
        f"To: alice@example.org\r\n"
        f"Subject: message {i}\r\n"
        f"Message-ID: <m{i}@example.org>\r\n"
        "MIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        "\r\n" + body
    ).encode()


def _procs_with(text: str) -> list[str]:
    """Command lines of live processes that contain *text*."""
    found = []
    for d in os.listdir("/proc"):
        if d.isdigit() and int(d) != os.getpid():
            try:
                with open(f"/proc/{d}/cmdline", "rb") as f:
                    cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if text in cmd:
                found.append(f"{d} {cmd}")
    return found


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture
def dovecot(tmp_path):
    srv = DovecotServer(tmp_path / "imap", {"alice": "alicepw", "bob": "bobpw"})
    srv.start()
    try:
        yield srv
    finally:
        srv.stop(fast=True)  # graceful stop is covered by the restart test


@pytest.fixture
def postgres(tmp_path):
    srv = PostgresServer(tmp_path / "pg")
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


# --------------------------------------------------------------------- Dovecot
@needs_dovecot
def test_dovecot_login_and_users(dovecot):
    assert dovecot.host == "127.0.0.1" and dovecot.port > 0
    assert dovecot.users == {"alice": "alicepw", "bob": "bobpw"}
    for user in dovecot.users:
        c = IMAPClient(dovecot.host, dovecot.port, ssl=False, timeout=5)
        c.login(user, dovecot.users[user])
        assert c.select_folder("INBOX", readonly=True)[b"EXISTS"] == 0
        c.logout()
    c = IMAPClient(dovecot.host, dovecot.port, ssl=False, timeout=5)
    with pytest.raises(IMAPClient.Error):
        c.login("alice", "wrong")
    c.shutdown()
    # a failed LOGIN must not slow down the next ones (anvil auth penalty is off)
    t0 = time.monotonic()
    dovecot.add_user("carol", "carolpw")
    with dovecot.client("carol", "INBOX") as c:
        assert c.search("ALL") == []
    assert time.monotonic() - t0 < 3
    assert dovecot.maildir("alice") == dovecot.run_dir / "mail" / "alice"
    assert (dovecot.maildir("alice") / "cur").is_dir()


@needs_dovecot
def test_dovecot_append_and_fetch_byte_exact(dovecot):
    raws = [_msg(i) for i in range(3)]
    uids = [dovecot.deliver("alice", raw) for raw in raws]
    assert uids == [1, 2, 3]
    with dovecot.client("alice", "INBOX") as c:
        fetched = c.fetch(uids, ["BODY.PEEK[]", "FLAGS"])
        assert [fetched[u][b"BODY[]"] for u in uids] == raws
        assert all(b"\\Seen" not in fetched[u][b"FLAGS"] for u in uids)  # PEEK kept them unseen
    # other users do not see them
    with dovecot.client("bob", "INBOX") as c:
        assert c.search("ALL") == []


@needs_dovecot
def test_dovecot_folders_append_many_and_write_maildir(dovecot):
    path = dovecot.create_folder("alice", "Archive/2024")
    assert path == dovecot.maildir("alice", "Archive/2024") and path.is_dir()
    raws = [_msg(i) for i in range(1200)]
    uids = dovecot.append_many("alice", raws, "Archive/2024", batch=500)
    assert uids == list(range(1, 1201))

    files = [_msg(10_000 + i) for i in range(300)]
    paths = dovecot.write_maildir("alice", files, "Written", flags="S")
    assert len(paths) == 300 and all(p.parent == dovecot.maildir("alice", "Written") / "cur" for p in paths)
    written_inbox = dovecot.deliver_many("alice", files[:5], via="files")
    assert len(written_inbox) == 5
    with dovecot.client("alice") as c:
        names = {f[2] for f in c.list_folders()}
        assert {"INBOX", "Archive/2024", "Written"} <= names
        c.select_folder("Archive/2024", readonly=True)
        got = c.fetch([1, 600, 1200], ["BODY.PEEK[]"])
        assert [got[u][b"BODY[]"] for u in (1, 600, 1200)] == [raws[0], raws[599], raws[1199]]
        # files get UIDs on the next SELECT, in the order they were written
        c.select_folder("Written", readonly=True)
        uids_w = c.search("ALL")
        assert len(uids_w) == 300
        got = c.fetch(uids_w, ["BODY.PEEK[]", "FLAGS"])
        assert [got[u][b"BODY[]"] for u in sorted(uids_w)] == files
        assert all(b"\\Seen" in got[u][b"FLAGS"] for u in uids_w)
        c.select_folder("INBOX", readonly=True)
        assert len(c.search("ALL")) == 5


@needs_dovecot
def test_dovecot_reset_uidvalidity(dovecot):
    raws = [_msg(i) for i in range(4)]
    dovecot.append_many("alice", raws[:2])
    dovecot.append_many("alice", raws[2:], "Other")
    old_inbox, old_other = dovecot.uidvalidity("alice"), dovecot.uidvalidity("alice", "Other")

    new_inbox = dovecot.reset_uidvalidity("alice")
    assert new_inbox != old_inbox
    assert dovecot.uidvalidity("alice") == new_inbox  # stable afterwards
    assert dovecot.uidvalidity("alice", "Other") == old_other  # other folders untouched
    with dovecot.client("alice", "INBOX") as c:
        got = c.fetch(c.search("ALL"), ["BODY.PEEK[]"])
        assert [got[u][b"BODY[]"] for u in sorted(got)] == raws[:2]

    new_other = dovecot.reset_uidvalidity("alice", "Other")
    assert new_other not in (old_other, new_inbox)
    with dovecot.client("alice", "Other") as c:
        got = c.fetch(c.search("ALL"), ["BODY.PEEK[]"])
        assert [got[u][b"BODY[]"] for u in sorted(got)] == raws[2:]
    # new deliveries continue after the rebuilt folder's messages
    assert dovecot.deliver("alice", _msg(99), "Other") == 3


@needs_dovecot
def test_dovecot_restart_and_stop_leave_no_process(tmp_path):
    srv = DovecotServer(tmp_path / "imap", {"u": "p"}).start()
    try:
        srv.deliver("u", _msg(1))
        port, pid = srv.port, srv.proc.pid
        srv.restart()
        assert srv.port == port and srv.proc.pid != pid and not _alive(pid)
        with srv.client("u", "INBOX") as c:
            assert len(c.search("ALL")) == 1
        pid = srv.proc.pid
        assert _procs_with(f"casella-test-{port}/")  # anvil, log, auth, ... (process titles)
    finally:
        srv.stop()
    assert not _alive(pid)
    assert _procs_with(f"casella-test-{port}/") == [] and _procs_with(str(srv.conf_path)) == []
    with pytest.raises(OSError):
        socket.create_connection((srv.host, port), timeout=1).close()
    assert (tmp_path / "imap" / "dovecot.log").exists()  # caller's dir is kept


@needs_dovecot
def test_dovecot_own_run_dir_is_removed_and_fast_stop():
    with DovecotServer(users={"u": "p"}) as srv:
        run_dir = srv.run_dir
        assert srv.running
    assert not run_dir.exists() and not srv.running

    srv = DovecotServer(users={"u": "p"}).start()
    port = srv.port
    t0 = time.monotonic()
    srv.stop(fast=True)
    assert time.monotonic() - t0 < 1
    assert _procs_with(f"casella-test-{port}/") == []


# ------------------------------------------------------------------ FlakyProxy
@needs_dovecot
def test_flaky_proxy_cuts_fetch_midway_and_forwards_when_disabled(dovecot):
    raws = [_msg(i, body_size=20_000) for i in range(30)]  # ~600 KB in total
    dovecot.append_many("alice", raws)
    total = sum(map(len, raws))
    with FlakyProxy(dovecot.host, dovecot.port, cut_after_bytes=total // 3) as px:
        c = IMAPClient(px.host, px.port, ssl=False, timeout=10)
        c.login("alice", "alicepw")
        c.select_folder("INBOX", readonly=True)
        with pytest.raises((IMAPClient.Error, OSError)):
            c.fetch(c.search("ALL"), ["BODY.PEEK[]"])
        c.shutdown()
        assert px.cuts == 1
        assert px.bytes_to_client == total // 3  # exactly N bytes reached the client

        px.cut_after_bytes = None
        c = IMAPClient(px.host, px.port, ssl=False, timeout=10)
        c.login("alice", "alicepw")
        c.select_folder("INBOX", readonly=True)
        got = c.fetch(c.search("ALL"), ["BODY.PEEK[]"])
        assert [got[u][b"BODY[]"] for u in sorted(got)] == raws
        c.logout()
        assert px.connections == 2 and px.cuts == 1


@needs_dovecot
def test_flaky_proxy_drop_all_and_cut_before_greeting(dovecot):
    with FlakyProxy(dovecot.host, dovecot.port) as px:
        c = IMAPClient(px.host, px.port, ssl=False, timeout=10)
        c.login("alice", "alicepw")
        deadline = time.monotonic() + 5
        while px.open_connections != 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert px.drop_all() == 1
        with pytest.raises((IMAPClient.Error, OSError)):
            c.noop()
        c.shutdown()
        # reconnecting works after a drop
        c = IMAPClient(px.host, px.port, ssl=False, timeout=10)
        c.login("alice", "alicepw")
        c.logout()
        # cut_after_bytes=0: the connection closes before the greeting
        px.cut_after_bytes = 0
        with pytest.raises((IMAPClient.Error, OSError)):
            IMAPClient(px.host, px.port, ssl=False, timeout=10)
    assert px.open_connections == 0


def test_flaky_proxy_plain_echo_server():
    """No Dovecot needed: byte-exact cut against a trivial sender."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    srv.settimeout(5)
    payload = bytes(range(256)) * 4000  # ~1 MB
    import threading

    def serve():
        try:
            conn, _ = srv.accept()
        except OSError:
            return
        with conn:
            conn.settimeout(5)
            try:
                conn.sendall(payload)
            except OSError:
                pass

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    with FlakyProxy("127.0.0.1", srv.getsockname()[1], cut_after_bytes=123_457) as px:
        s = socket.create_connection((px.host, px.port), timeout=5)
        received = b""
        while True:
            try:
                chunk = s.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            received += chunk
        s.close()
    t.join(5)
    srv.close()
    assert received == payload[:123_457]


# -------------------------------------------------------------------- Postgres
@needs_postgres
def test_postgres_select_1_and_create_database(postgres):
    import sqlalchemy as sa

    assert postgres.url == f"postgresql+psycopg://casella@127.0.0.1:{postgres.port}/postgres"
    engine = sa.create_engine(postgres.url)
    try:
        with engine.connect() as conn:
            assert conn.execute(sa.text("select 1")).scalar() == 1
            assert conn.execute(sa.text("show server_encoding")).scalar() == "UTF8"
            assert conn.execute(sa.text("show fsync")).scalar() == "off"
    finally:
        engine.dispose()

    url = postgres.create_database("casella_test")
    assert url == f"postgresql+psycopg://casella@127.0.0.1:{postgres.port}/casella_test"
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("create table t (x text)"))
            conn.execute(sa.text("insert into t values ('Àb')"))
            assert conn.execute(sa.text("select current_database(), lower(x) from t")).one() == ("casella_test", "àb")
    finally:
        engine.dispose()
    postgres.drop_database("casella_test")


@needs_postgres
def test_postgres_stop_with_open_connections_leaves_no_process():
    import sqlalchemy as sa

    srv = PostgresServer().start()
    base = srv.base_dir
    engine = sa.create_engine(srv.url)
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("select 1"))
        conn = engine.connect()  # still open when the server stops
        pid = srv._postmaster_pid() or srv.proc.pid
        port = srv.port
        t0 = time.monotonic()
        srv.stop()
        assert time.monotonic() - t0 < 10
        assert not _alive(pid)
        assert not base.exists()
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
        conn.invalidate()
    finally:
        engine.dispose()
        if srv.running:  # pragma: no cover
            srv.proc.send_signal(signal.SIGKILL)
