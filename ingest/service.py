"""Run the ingest: one pass over every account (`casella ingest --once`) or the daemon.

The daemon runs one thread per account: connect, read every folder, then IDLE on the first
folder where the server offers it (polling otherwise), and again; a dropped connection or a
failing server is retried with exponential backoff (1 s doubling to 5 minutes). Each
account's fetch status (last success, last error, messages on the server) is written to the
database for `casella account list --json`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass

from imapclient import IMAPClient
from sqlalchemy import select

from casella.blobs import BlobStore
from casella.db import Database
from casella.models import Account, utcnow
from casella.pipeline import build_stages
from casella.secrets import SecretBox
from casella.settings import Settings
from ingest.errors import AccountError
from ingest.imap import NETWORK_ERRORS, AccountPassResult, ImapPoller, connect, connection_for
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
    with db.session() as session:
        query = select(Account.id, Account.name).where(Account.imap_host.is_not(None)).order_by(Account.id)
        if name is not None:
            query = query.where(Account.name == name)
        else:
            query = query.where(Account.enabled.is_(True))
        return [(i, n) for i, n in session.execute(query)]


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


class IngestDaemon:
    """One thread per remote account; stop() ends them all within a few seconds."""

    def __init__(self, settings: Settings, db: Database) -> None:
        self.settings = settings
        self.db = db
        self.stop_event = threading.Event()
        self.threads: list[threading.Thread] = []

    def start(self, account_name: str | None = None) -> None:
        for account_id, name in remote_accounts(self.db, account_name):
            thread = threading.Thread(target=self._run_account, args=(account_id, name), name=f"ingest-{name}", daemon=True)
            thread.start()
            self.threads.append(thread)
        log.info("ingest: watching %d account(s)", len(self.threads))

    def stop(self) -> None:
        self.stop_event.set()
        for thread in self.threads:
            thread.join(timeout=10)

    def _run_account(self, account_id: int, name: str) -> None:
        poller = make_poller(self.settings, self.db)
        backoff = 1.0
        while not self.stop_event.is_set():
            try:
                account = poller.load_account(account_id)
                with connect(connection_for(account, poller.secrets, poller.timeout), name) as client:
                    while not self.stop_event.is_set():
                        result = poller.run_pass(client, account)
                        record_status(self.db, account_id, None)
                        backoff = 1.0
                        if result.stored:
                            log.info("ingest: %s stored %d new message(s)", name, result.stored)
                        wait = self.settings.ingest_poll_seconds
                        if client.has_capability("IDLE") and account.folders:
                            self._idle(client, account.folders[0], min(wait, self.settings.ingest_idle_seconds))
                        else:
                            client.noop()
                            self.stop_event.wait(wait)
                        account = poller.load_account(account_id)
            except (AccountError, *NETWORK_ERRORS) as exc:
                record_status(self.db, account_id, str(exc))
                log.warning("ingest: %s: %s; retrying in %.0f s", name, exc, backoff)
                self.stop_event.wait(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF)
            except Exception:  # noqa: BLE001 - keep the daemon alive, say what happened
                log.exception("ingest: %s: unexpected error; retrying in %.0f s", name, backoff)
                record_status(self.db, account_id, "unexpected error, see the log")
                self.stop_event.wait(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF)

    def _idle(self, client: IMAPClient, folder: str, seconds: float) -> None:
        """IDLE on `folder` for up to `seconds`, in short slices so that stop() is honoured
        promptly; return as soon as the server reports a change."""
        client.select_folder(folder, readonly=True)
        client.idle()
        try:
            remaining = seconds
            while remaining > 0 and not self.stop_event.is_set():
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
