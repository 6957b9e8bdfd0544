"""The ingest daemon follows the accounts table while it runs: an account added after it
started is read, a disabled one is let go (its thread logs out and ends), an enabled one is
read again from where it stopped, and changed server settings mean a reconnect with them.
A real `casella ingest` process against a real Dovecot."""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import func, select

from casella.models import Account, FolderState, Message
from ingest.accounts import update_account
from ingest.errors import MailboxChanged
from ingest.imap import connect, connection_for
from ingest.service import make_poller
from tests.conftest import Cli
from tests.ingest.test_faults import assert_exactly_once, generated
from tests.ingest.test_imap_ingest import add_account
from tests.servers.proxy import FlakyProxy

pytestmark = pytest.mark.integration


def wait_for(check: Callable[[], bool], what: str, seconds: float = 30.0, poll: float = 0.3) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(poll)
    raise AssertionError(f"not within {seconds:.0f} s: {what}")


def subjects(cli: Cli) -> set[str]:
    return {m["subject"] for m in cli("message", "list", "--json").json()}


def set_account(database, **values: object) -> None:
    """Change the `ufficio` account's row, as the admin page's enable/disable does."""
    with database.session() as s:
        account = s.scalar(select(Account).where(Account.name == "ufficio"))
        for key, value in values.items():
            setattr(account, key, value)


def ufficio_id(database) -> int:
    with database.reading() as s:
        account_id = s.scalar(select(Account.id).where(Account.name == "ufficio"))
    assert account_id is not None
    return account_id


def change_login(database, settings, username: str, password: str) -> None:
    """Log `ufficio` in as another user of the same server, as the admin page does: the old
    mailbox's UID cursors are dropped in the same transaction."""
    with database.session() as s:
        account = s.scalar(select(Account).where(Account.name == "ufficio"))
        changed = update_account(
            s, settings, account, name="ufficio", imap_host=account.imap_host, imap_port=account.imap_port,
            username=username, password=password, security="none", is_pec=False, folders=["INBOX"],
            sent_folders=account.sent_folders, mark_seen=False, move_to=None, move_after_days=None)
        assert changed == ["username", "password"]
        assert s.scalar(select(func.count()).select_from(FolderState).where(FolderState.account_id == account.id)) == 0


@contextmanager
def ingest_daemon(cli: Cli, log: Path) -> Iterator[None]:
    """A real `casella ingest` daemon, its log in `log`; stopped with SIGTERM, cleanly."""
    proc = cli.popen("ingest", stdout=subprocess.DEVNULL, stderr=log.open("w"))
    try:
        yield
    except BaseException:
        print(f"the daemon's log:\n{log.read_text()}")  # shown by pytest with the failure
        raise
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    assert "Traceback" not in log.read_text()


def test_daemon_follows_accounts_added_disabled_enabled_and_changed(dovecot, cli: Cli, database, settings,
                                                                    tmp_path: Path) -> None:
    dovecot.append_many("alice", generated(2, "alice"))
    dovecot.append_many("bob", generated(1, "bob"))
    cli.env["CASELLA_INGEST_POLL_SECONDS"] = "600"  # the passes come from IDLE and the watcher only
    cli.env["CASELLA_INGEST_ACCOUNTS_SECONDS"] = "0.5"
    log = tmp_path / "ingest.log"
    with ingest_daemon(cli, log):
        wait_for(lambda: "watching 0 account(s)" in log.read_text(), "the daemon started with no account")
        add_account(cli, dovecot, "ufficio")  # while it runs, as the admin page or the CLI would
        wait_for(lambda: subjects(cli) == {"Preventivo alice 0", "Preventivo alice 1"}, "the new account read")

        set_account(database, enabled=False)
        wait_for(lambda: "ufficio: no longer read" in log.read_text(), "the disabled account let go")
        dovecot.deliver("alice", generated(1, "while-off")[0])
        time.sleep(2.0)  # four watcher rounds: nothing reads the disabled account
        assert "Preventivo while-off 0" not in subjects(cli)

        set_account(database, enabled=True)
        wait_for(lambda: "Preventivo while-off 0" in subjects(cli), "the re-enabled account read again")

        change_login(database, settings, "bob", "bobpw")  # as the admin page does
        wait_for(lambda: "ufficio: settings changed, reconnecting" in log.read_text(), "the change noticed")
        wait_for(lambda: "Preventivo bob 0" in subjects(cli), "bob's mailbox read with the new login")
        assert len(subjects(cli)) == 4


def test_disabling_stops_a_long_first_pass_and_enabling_resumes_it(dovecot, cli: Cli, database,
                                                                   tmp_path: Path) -> None:
    """A first pass over a big mailbox does not run to its end once the account is
    disabled: it stops after the batch being committed, and resumes from there.

    The IMAP connection goes through a proxy that the test holds while it disables the
    account, so the pass is at a known place whatever the machine's speed (and, on SQLite,
    the disabling write does not queue behind the pass's commits)."""
    dovecot.append_many("alice", generated(400, "big"))
    with FlakyProxy(dovecot.host, dovecot.port) as proxy:
        add_account(cli, dovecot, "ufficio", port=proxy.port)
        cli.env.update({"CASELLA_INGEST_POLL_SECONDS": "600", "CASELLA_INGEST_ACCOUNTS_SECONDS": "0.3",
                        "CASELLA_INGEST_BATCH_SIZE": "1"})  # one transaction per message: a long pass
        log = tmp_path / "ingest.log"

        def stored() -> int:
            with database.reading() as s:
                return s.scalar(select(func.count(Message.id))) or 0

        with ingest_daemon(cli, log):
            wait_for(lambda: stored() > 0, "the first pass started", poll=0.01)
            proxy.held = True  # the pass now waits on the server for its next message
            time.sleep(0.5)  # what was already fetched is committed
            held = stored()
            assert held < 400
            set_account(database, enabled=False)
            wait_for(lambda: "ufficio: no longer read" in log.read_text(), "the watcher noticed")
            proxy.held = False
            wait_for(lambda: "ufficio: stopped reading" in log.read_text(), "the pass stopped")
            paused = stored()
            # the batch being fetched when the proxy was held, and the one being committed
            assert held <= paused <= held + 2, "the pass went on although the account was disabled"
            time.sleep(1.0)
            assert stored() == paused
            set_account(database, enabled=True)
            wait_for(lambda: stored() == 400, "the rest read after enabling", seconds=120)
    assert_exactly_once(database, 400)


def test_a_pass_on_the_old_mailbox_stores_nothing_once_the_login_changed(dovecot, cli: Cli, database,
                                                                        settings) -> None:
    """The admin changes the login while a pass is reading the old mailbox: the pass's next
    write finds the account naming another mailbox and stops (MailboxChanged) instead of
    storing the old mailbox's mail and UID cursor under the new login — Dovecot may give the
    new mailbox the same UIDVALIDITY, and that cursor would skip its first messages."""
    dovecot.append_many("alice", generated(3, "alice"))
    dovecot.append_many("bob", generated(1, "bob"))
    add_account(cli, dovecot, "ufficio")
    poller = make_poller(settings, database)
    account = poller.load_account(ufficio_id(database))
    with connect(connection_for(account, poller.secrets, poller.timeout), "ufficio") as client:
        change_login(database, settings, "bob", "bobpw")  # committed while the pass is connected as alice
        with pytest.raises(MailboxChanged, match="server or login changed"):
            poller.run_pass(client, account)
    with database.reading() as s:
        assert s.scalar(select(func.count(Message.id))) == 0
        assert s.scalar(select(func.count()).select_from(FolderState)) == 0
    result = poller.run_once(ufficio_id(database))  # with the new login: bob's mailbox, from its start
    assert result.stored == 1
    assert subjects(cli) == {"Preventivo bob 0"}
