"""Run the ingest: one pass over every account (`casella ingest --once`) or the daemon.

The daemon runs one thread per account: connect, read every folder, then IDLE on the first
folder where the server offers it (polling otherwise), and again; a dropped connection or a
failing server is retried with exponential backoff (1 s doubling to 5 minutes). Each
account's fetch status (last success, last error, messages on the server) is written to the
database for `casella account list --json` and the admin page.

The accounts are watched while it runs (every `ingest_accounts_seconds`): an account added
or enabled (in the webmail or with the command line) gets its thread, a disabled or deleted
one's thread logs out and ends, and one whose server settings changed reconnects with them.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from imapclient import IMAPClient
from sqlalchemy import select

from casella.blobs import BlobStore
from casella.db import Database
from casella.models import Account, utcnow
from casella.pipeline import build_stages
from casella.secrets import SecretBox
from casella.settings import Settings
from ingest.errors import AccountError, MailboxChanged
from ingest.imap import (
    NETWORK_ERRORS,
    AccountPassResult,
    ImapPoller,
    connect,
    connection_for,
)
from ingest.store import Storer

log = logging.getLogger(__name__)
ATTEMPTS_PER_PASS = 3
MAX_BACKOFF = 300.0
IDLE_SLICE = 2.0


@dataclass
class PassOutcome:
    account: str
    result: AccountPassResult | None
    error: str | None


def make_storer(settings: Settings, db: Database) -> Storer:
    from pec.trust import TrustStore

    return Storer(db, BlobStore(settings.blob_dir), build_stages(settings), workers=settings.ingest_workers,
                  pec_trust=TrustStore.from_settings(settings))


def make_poller(settings: Settings, db: Database) -> ImapPoller:
    return ImapPoller(make_storer(settings, db), SecretBox(settings.secret_key_file),
                      batch_size=settings.ingest_batch_size, batch_bytes=settings.ingest_batch_bytes,
                      timeout=settings.imap_timeout_seconds)


def remote_accounts(db: Database, name: str | None = None) -> list[tuple[int, str]]:
    """The accounts to read: every enabled one with an IMAP server, or the one named (then
    whether enabled or not: the command line asked for it)."""
    return [(i, n) for i, n, _settings in _watched(db, name)]


def _watched(db: Database, name: str | None) -> list[tuple[int, str, tuple[Any, ...]]]:
    """`remote_accounts` with each one's connection settings (a change means reconnect)."""
    with db.session() as session:
        query = (select(Account.id, Account.name, Account.imap_host, Account.imap_port, Account.username,
                        Account.password_encrypted, Account.security, Account.folders)
                 .where(Account.imap_host.is_not(None)).order_by(Account.id))
        if name is not None:
            query = query.where(Account.name == name)
        else:
            query = query.where(Account.enabled.is_(True))
        return [(row[0], row[1], (*row[2:7], tuple(row[7] or ()))) for row in session.execute(query)]


def record_status(db: Database, account_id: int, error: str | None) -> None:
    with db.session() as session:
        account = session.get(Account, account_id)
        if account is None:
            return
        if error is None:
            account.last_fetch_at = utcnow()
            account.last_error = None
        else:
            account.last_error = error
            account.last_error_at = utcnow()


def ingest_once(settings: Settings, db: Database, account_name: str | None = None) -> list[PassOutcome]:
    """One pass over each account, one after the other; a failing account does not stop
    the others. A dropped connection is retried (it resumes from the committed cursor)."""
    poller = make_poller(settings, db)
    outcomes = []
    for account_id, name in remote_accounts(db, account_name):
        error: str | None = None
        result: AccountPassResult | None = None
        for attempt in range(1, ATTEMPTS_PER_PASS + 1):
            try:
                result = poller.run_once(account_id)
                error = None
                break
            except AccountError as exc:
                error = str(exc)
                break  # configuration problems do not heal by retrying
            except NETWORK_ERRORS as exc:
                error = f"account {name}: connection lost ({type(exc).__name__}: {exc}); will resume from the last stored message"
                log.warning("%s (attempt %d of %d)", error, attempt, ATTEMPTS_PER_PASS)
        record_status(db, account_id, error)
        outcomes.append(PassOutcome(name, result, error))
    return outcomes


@dataclass
class _Watch:
    """One account's thread, the settings it connected with, and its own stop signal."""
    thread: threading.Thread
    settings: tuple[Any, ...]
    quit: threading.Event


class IngestDaemon:
    """One thread per remote account, kept in step with the accounts table by a watcher
    thread; stop() ends them all within a few seconds."""

    def __init__(self, settings: Settings, db: Database) -> None:
        self.settings = settings
        self.db = db
        self.stop_event = threading.Event()
        self.watches: dict[int, _Watch] = {}
        self.account_name: str | None = None
        self.watcher: threading.Thread | None = None
        self._lock = threading.Lock()

    @property
    def threads(self) -> list[threading.Thread]:
        """The account threads running now."""
        with self._lock:
            return [w.thread for w in self.watches.values() if w.thread.is_alive()]

    def start(self, account_name: str | None = None) -> None:
        self.account_name = account_name
        self.sync()
        log.info("ingest: watching %d account(s)", len(self.threads))
        self.watcher = threading.Thread(target=self._watch_accounts, name="ingest-accounts", daemon=True)
        self.watcher.start()

    def stop(self) -> None:
        self.stop_event.set()
        with self._lock:
            watches = list(self.watches.values())
        for watch in watches:
            watch.quit.set()
        if self.watcher is not None:
            self.watcher.join(timeout=10)
        for watch in watches:
            watch.thread.join(timeout=10)

    def sync(self) -> None:
        """Start a thread for each account to read that has none; tell the thread of an
        account no longer to read, or read with other settings, to end (the next sync
        starts it again with the new settings)."""
        wanted = {i: (name, conf) for i, name, conf in _watched(self.db, self.account_name)}
        with self._lock:
            if self.stop_event.is_set():
                return
            for account_id, watch in list(self.watches.items()):
                if account_id not in wanted or wanted[account_id][1] != watch.settings:
                    if not watch.quit.is_set():
                        log.info("ingest: %s: %s", watch.thread.name.removeprefix("ingest-"),
                                 "settings changed, reconnecting" if account_id in wanted else "no longer read")
                    watch.quit.set()
                if not watch.thread.is_alive():
                    del self.watches[account_id]
            for account_id, (name, conf) in wanted.items():
                if account_id in self.watches:
                    continue
                quit_event = threading.Event()
                thread = threading.Thread(target=self._run_account, args=(account_id, name, quit_event),
                                          name=f"ingest-{name}", daemon=True)
                self.watches[account_id] = _Watch(thread, conf, quit_event)
                thread.start()

    def _watch_accounts(self) -> None:
        while not self.stop_event.wait(self.settings.ingest_accounts_seconds):
            try:
                self.sync()
            except Exception:  # noqa: BLE001 - a database hiccup must not end the watching
                log.exception("ingest: cannot read the accounts; trying again in %.0f s",
                              self.settings.ingest_accounts_seconds)

    def _run_account(self, account_id: int, name: str, quit_event: threading.Event) -> None:
        poller = make_poller(self.settings, self.db)
        log.info("ingest: %s: reading", name)
        backoff = 1.0
        while not quit_event.is_set():
            try:
                account = poller.load_account(account_id)
                connected = account.mailbox
                with connect(connection_for(account, poller.secrets, poller.timeout), name) as client:
                    while not quit_event.is_set() and account.mailbox == connected:
                        result = poller.run_pass(client, account, quit_event)
                        record_status(self.db, account_id, None)
                        backoff = 1.0
                        if result.stored:
                            log.info("ingest: %s stored %d new message(s)", name, result.stored)
                        wait = self.settings.ingest_poll_seconds
                        if client.has_capability("IDLE") and account.folders:
                            self._idle(client, account.folders[0], min(wait, self.settings.ingest_idle_seconds),
                                       quit_event)
                        else:
                            client.noop()
                            quit_event.wait(wait)
                        account = poller.load_account(account_id)
            except MailboxChanged as exc:
                log.info("ingest: %s", exc)  # the loop reconnects, with the new settings
            except (AccountError, *NETWORK_ERRORS) as exc:
                record_status(self.db, account_id, str(exc))
                log.warning("ingest: %s: %s; retrying in %.0f s", name, exc, backoff)
                quit_event.wait(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF)
            except Exception:  # noqa: BLE001 - keep the daemon alive, say what happened
                log.exception("ingest: %s: unexpected error; retrying in %.0f s", name, backoff)
                record_status(self.db, account_id, "unexpected error, see the log")
                quit_event.wait(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF)
        log.info("ingest: %s: stopped reading", name)

    def _idle(self, client: IMAPClient, folder: str, seconds: float, quit_event: threading.Event) -> None:
        """IDLE on `folder` for up to `seconds`, in short slices so that stop() (or the
        account's being disabled) is honoured promptly; return as soon as the server
        reports a change."""
        client.select_folder(folder, readonly=True)
        client.idle()
        try:
            remaining = seconds
            while remaining > 0 and not quit_event.is_set():
                if client.idle_check(timeout=min(IDLE_SLICE, remaining)):
                    return
                remaining -= IDLE_SLICE
        finally:
            client.idle_done()


def summary_lines(outcomes: Sequence[PassOutcome]) -> list[str]:
    lines = []
    for o in outcomes:
        if o.error:
            lines.append(f"ERROR {o.error}")
        elif o.result is not None:
            lines.append(f"{o.account}: {o.result.stored} new, {o.result.duplicates} already stored, "
                         f"{o.result.server_count} on the server")
    return lines
