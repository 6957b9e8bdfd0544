"""Several webmail processes on one database (`casella webmail --workers N`): presence
(collision detection) kept in the database — its rules on SQLite and PostgreSQL — and two
real processes seeing the same people and the same unread counts."""

from __future__ import annotations

import os
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace

from casella.db import Database
from tests.conftest import CASELLA
from tests.servers.sandbox import free_port
from tests.webmail.conftest import PASSWORDS, Office, WebClient, inbox_unread
from webmail.presence import Presence, key_for


def test_presence_rules(database: Database) -> None:
    p = Presence(database)
    p.touch("thread:1", "olga", "replying", "Olga")
    p.touch("thread:1", "olga", "viewing", "Olga")  # her message tab does not hide her reply
    p.touch("thread:1", "dario", "viewing", "Dario")
    assert [(h.username, h.state) for h in p.others("thread:1", "anna")] == [("olga", "replying"), ("dario", "viewing")]
    assert [h.username for h in p.others("thread:1", "olga")] == ["dario"]
    assert p.others("thread:2", "anna") == []
    p.leave("thread:1", "olga")
    assert [h.username for h in p.others("thread:1", "anna")] == ["dario"]
    # Another registry on the same database (another webmail process) sees the same people.
    assert [h.username for h in Presence(database).others("thread:1", "anna")] == ["dario"]
    gone = Presence(database, expiry=0.0)  # nothing lasts: an entry is expired as soon as written
    gone.touch("message:5", "olga", "viewing")
    assert gone.others("message:5", "anna") == []
    try:
        p.touch("thread:1", "olga", "dancing")
    except ValueError as exc:
        assert "viewing, replying" in str(exc)
    else:
        raise AssertionError("an unknown state was accepted")
    # Messages of one conversation share a key; a message alone has its own.
    assert key_for(SimpleNamespace(id=5, thread_id=9)) == key_for(SimpleNamespace(id=6, thread_id=9)) == "thread:9"
    assert key_for(SimpleNamespace(id=5, thread_id=None)) == "message:5"


def test_presence_from_many_threads_loses_nothing(database: Database) -> None:
    p = Presence(database)
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            for i in range(6):
                p.touch(f"thread:{i % 3}", f"user{n}", "viewing")
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert {h.username for h in p.others("thread:2", "nobody")} == {f"user{n}" for n in range(6)}


@contextmanager
def second_webmail(office: Office, tmp_path: Path) -> Iterator[str]:
    """Another `casella webmail` process on the office's database; its base URL."""
    port = free_port()
    env = {**os.environ, "CASELLA_DATA_DIR": str(office.settings.data_dir),
           "CASELLA_DATABASE_URL": office.settings.database_url, "CASELLA_DEMO": "0",
           "CASELLA_WEB_LISTEN": f"127.0.0.1:{port}", "CASELLA_LOG_LEVEL": "WARNING"}
    env.pop("CASELLA_ENV_FILE", None)
    log = tmp_path / "second.log"
    with log.open("w") as out:
        proc = subprocess.Popen([CASELLA, "webmail"], env=env, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while "webmail on" not in log.read_text():
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_two_webmail_processes_see_the_same_people(office: Office, tmp_path: Path) -> None:
    """Someone viewing through one process is seen by a colleague whose requests land on
    another."""
    with second_webmail(office, tmp_path) as second:
        mid = next(iter(office.ids.values()))
        olga = office.http("olga")  # on the first process
        boss = WebClient(second)  # on the second
        assert boss.login("direttore", PASSWORDS["direttore"]) == 303
        assert olga.post(f"/mail/{mid}/presence", {"state": "replying"})[0] == 200
        others = boss.json(f"/mail/{mid}/presence")["others"]
        assert [(o["username"], o["state"]) for o in others] == [("olga", "replying")]
        assert boss.post(f"/mail/{mid}/presence", {"state": "viewing"})[0] == 200
        assert [o["username"] for o in olga.json(f"/mail/{mid}/presence")["others"]] == ["direttore"]
        assert olga.post(f"/mail/{mid}/presence", {"state": "leave"})[0] == 200
        assert boss.json(f"/mail/{mid}/presence")["others"] == []


def test_reading_through_one_process_updates_the_counts_of_another(office: Office, tmp_path: Path) -> None:
    """The folder counts are cached per process for a few seconds; a user's own reading
    and unreading elsewhere must not leave them stale."""
    mid = office.ids["f118@edilnord.it"]
    first = office.http("olga")
    before = inbox_unread(first)  # counted and cached by the first process
    with second_webmail(office, tmp_path) as base:
        second = WebClient(base)
        assert second.login("olga", PASSWORDS["olga"]) == 303
        assert second.get(f"/mail/{mid}")[0] == 200  # read through the second
        assert inbox_unread(first) == before - 1
        assert inbox_unread(second) == before - 1
        assert second.post(f"/mail/{mid}/unread", {"back": "/mail"})[0] == 303
        assert inbox_unread(first) == before
        assert first.post("/mail/bulk", {"ids": [str(mid)], "action": "read", "back": "/mail"})[0] == 303
        assert inbox_unread(second) == before - 1
