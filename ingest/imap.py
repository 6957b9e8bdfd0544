"""Read one IMAP account: per folder, check UIDVALIDITY, fetch what is past the UID cursor.

Fetches use ``BODY.PEEK[]`` so the server's \\Seen flags are never touched, and the folder
is selected read-only. Messages are stored a batch at a time (`Storer.store_batch`), which
advances the cursor in the same transaction; a dropped connection or a crash mid-batch just
means the batch is fetched again, and the store recognises what it already has. When
UIDVALIDITY changes, the folder is read again from the start and the hash makes every
message already stored a no-op. Changes on the server (mark seen, move after N days) come
only after the commit, and only when the account asks for them.
"""

from __future__ import annotations

import logging
import socket
import ssl
import threading
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta

from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientError, LoginError
from sqlalchemy import select

from casella.models import Account, FolderState, MessageLocation, utcnow
from casella.secrets import SecretBox
from ingest.errors import AccountError
from ingest.store import Incoming, Mailbox, Prepared, Storer, check_mailbox

log = logging.getLogger(__name__)

FETCH_KEYS = [b"BODY.PEEK[]", b"INTERNALDATE"]
NETWORK_ERRORS = (OSError, socket.timeout, ssl.SSLError, IMAPClientError, EOFError)


@dataclass
class AccountPassResult:
    account: str
    stored: int = 0
    duplicates: int = 0
    server_count: int = 0
    folders: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Connection:
    host: str
    port: int
    username: str
    password: str
    security: str
    timeout: float


@contextmanager
def connect(conn: Connection, account_name: str) -> Iterator[IMAPClient]:
    try:
        if conn.security == "ssl":
            client = IMAPClient(conn.host, port=conn.port, ssl=True, timeout=conn.timeout)
        else:
            client = IMAPClient(conn.host, port=conn.port, ssl=False, timeout=conn.timeout)
            if conn.security == "starttls":
                client.starttls(ssl.create_default_context())
    except (OSError, ssl.SSLError, IMAPClientError) as exc:
        raise AccountError(f"account {account_name}: cannot connect to {conn.host}:{conn.port} "
                           f"({conn.security}): {exc}. Check host, port and --security") from exc
    try:
        try:
            client.login(conn.username, conn.password)
        except LoginError as exc:
            raise AccountError(f"account {account_name}: the server refused the login for {conn.username!r} "
                               f"({_text(exc)}). Check the username and password") from exc
        client.normalise_times = False  # INTERNALDATE as an aware datetime
        yield client
    finally:
        try:
            client.logout()
        except Exception:  # noqa: BLE001 - the connection may already be gone
            try:
                client.shutdown()
            except Exception:  # noqa: BLE001
                pass


def _text(exc: Exception) -> str:
    return str(exc).strip().strip("b'\"") or type(exc).__name__


def imap_port(port: int | None, security: str) -> int:
    """The port to connect to: the configured one, else 993 for SSL and 143 otherwise."""
    return port or (993 if security == "ssl" else 143)


def connection_for(account: Account, secrets: SecretBox, timeout: float) -> Connection:
    if not account.imap_host or not account.username or account.password_encrypted is None:
        raise AccountError(f"account {account.name} has no IMAP server configured")
    return Connection(host=account.imap_host, port=imap_port(account.imap_port, account.security),
                      username=account.username, password=secrets.decrypt(account.password_encrypted),
                      security=account.security, timeout=timeout)


class ImapPoller:
    """One pass over one account; the daemon calls it in a loop, `ingest --once` once."""

    def __init__(self, storer: Storer, secrets: SecretBox, *, batch_size: int, timeout: float,
                 batch_bytes: int = 64 << 20) -> None:
        self.storer = storer
        self.secrets = secrets
        self.batch_size = batch_size
        self.batch_bytes = batch_bytes
        self.timeout = timeout

    def load_account(self, account_id: int) -> Account:
        with self.storer.db.session() as session:
            account = session.get(Account, account_id)
            if account is None:
                raise AccountError(f"account {account_id} no longer exists")
            session.expunge(account)
        return account

    def run_once(self, account_id: int) -> AccountPassResult:
        """Connect, read every folder, apply the optional server changes, disconnect."""
        account = self.load_account(account_id)
        with connect(connection_for(account, self.secrets, self.timeout), account.name) as client:
            return self.run_pass(client, account)

    def run_pass(self, client: IMAPClient, account: Account, stop: threading.Event | None = None) -> AccountPassResult:
        """Read every folder past its cursor, then apply the optional server changes. `stop`
        set: end after the batch being committed (the cursor stays on committed mail).
        `client` is logged in to `account.mailbox`; every write checks that the account
        still names that mailbox (MailboxChanged otherwise: see ingest.store.check_mailbox)."""
        result = AccountPassResult(account=account.name)
        for folder in account.folders:
            if stop is not None and stop.is_set():
                return result
            got = self._fetch_folder(client, account, folder, stop, account.mailbox)
            result.stored += got.stored
            result.duplicates += got.duplicates
            result.folders[folder] = got.server_count
            result.server_count += got.server_count
        self._after_commit(client, account)
        return result

    def _fetch_folder(self, client: IMAPClient, account: Account, folder: str,
                      stop: threading.Event | None, mailbox: Mailbox) -> _FolderResult:
        try:
            info = client.select_folder(folder, readonly=True)
        except IMAPClientError as exc:
            raise AccountError(f"account {account.name}: cannot open folder {folder!r} ({_text(exc)}). "
                               "Check --folders") from exc
        uidvalidity = int(info[b"UIDVALIDITY"])
        exists = int(info.get(b"EXISTS", 0))
        with self.storer.db.session() as session:
            check_mailbox(session, account.id, mailbox)
            state = session.scalar(select(FolderState).where(FolderState.account_id == account.id,
                                                             FolderState.name == folder))
            last_uid = state.last_uid if state is not None and state.uidvalidity == uidvalidity else 0
            if state is not None and state.uidvalidity not in (None, uidvalidity):
                log.warning("account %s folder %s: UIDVALIDITY changed %s -> %s; reading the folder again",
                            account.name, folder, state.uidvalidity, uidvalidity)
            if state is None:
                session.add(FolderState(account_id=account.id, name=folder, uidvalidity=uidvalidity,
                                        last_uid=0, server_count=exists, last_fetch_at=None))
            else:
                state.server_count = exists
        out = _FolderResult(server_count=exists)
        if exists == 0:
            self._advance_only(account.id, folder, uidvalidity, last_uid, mailbox)
            return out
        uids = sorted(u for u in client.search(["UID", f"{last_uid + 1}:*"]) if u > last_uid)
        # A two-step pipeline: while batch k commits (one transaction, in order), batch k+1
        # is fetched, parsed and written to the blob store. Commits stay strictly in order,
        # so the cursor only ever moves over committed messages.
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="ingest-prepare") as preparer:
            pending: tuple[Future[Prepared], int] | None = None
            for chunk in self._chunks(client, uids):
                if stop is not None and stop.is_set():
                    break
                items = self._fetch_chunk(client, folder, uidvalidity, chunk)
                future = preparer.submit(self.storer.prepare, account.id, items)
                if pending is not None:
                    self._commit(pending, folder, uidvalidity, out, mailbox)
                pending = (future, chunk[-1])
            if pending is not None:
                self._commit(pending, folder, uidvalidity, out, mailbox)
        if not uids:
            self._advance_only(account.id, folder, uidvalidity, last_uid, mailbox)
        return out

    def _chunks(self, client: IMAPClient, uids: list[int]) -> Iterator[list[int]]:
        """Batches of at most `batch_size` messages and about `batch_bytes` bytes (one
        large PEC attachment must not make a batch hold gigabytes in memory)."""
        if not uids:
            return
        sizes = {uid: int(d.get(b"RFC822.SIZE", 0)) for uid, d in client.fetch(uids, [b"RFC822.SIZE"]).items()}
        chunk: list[int] = []
        total = 0
        for uid in uids:
            size = sizes.get(uid, 0)
            if chunk and (len(chunk) >= self.batch_size or total + size > self.batch_bytes):
                yield chunk
                chunk, total = [], 0
            chunk.append(uid)
            total += size
        if chunk:
            yield chunk

    def _fetch_chunk(self, client: IMAPClient, folder: str, uidvalidity: int, chunk: list[int]) -> list[Incoming]:
        fetched = client.fetch(chunk, FETCH_KEYS)
        items = []
        for uid in chunk:
            data = fetched.get(uid)
            if data is None or b"BODY[]" not in data:
                # Expunged between SEARCH and FETCH: nothing to store for this UID.
                continue
            items.append(Incoming(raw=bytes(data[b"BODY[]"]), folder=folder, uidvalidity=uidvalidity, uid=uid,
                                  internal_date=_aware(data.get(b"INTERNALDATE"))))
        return items

    def _commit(self, pending: tuple[Future[Prepared], int], folder: str, uidvalidity: int, out: _FolderResult,
                mailbox: Mailbox) -> None:
        future, last_uid = pending
        batch = self.storer.commit(future.result(), cursor=(folder, uidvalidity, last_uid), mailbox=mailbox)
        out.stored += batch.stored
        out.duplicates += batch.duplicates

    def _advance_only(self, account_id: int, folder: str, uidvalidity: int, last_uid: int, mailbox: Mailbox) -> None:
        self.storer.store_batch(account_id, [], cursor=(folder, uidvalidity, last_uid), mailbox=mailbox)

    def _after_commit(self, client: IMAPClient, account: Account) -> None:
        """Optional server changes, for messages already committed here."""
        if not account.mark_seen and not (account.move_to_folder and account.move_after_days is not None):
            return
        for folder in account.folders:
            with self.storer.db.session() as session:
                state = session.scalar(select(FolderState).where(FolderState.account_id == account.id,
                                                                 FolderState.name == folder))
                if state is None or state.uidvalidity is None:
                    continue
                base = select(MessageLocation).where(
                    MessageLocation.account_id == account.id, MessageLocation.folder == folder,
                    MessageLocation.uidvalidity == state.uidvalidity, MessageLocation.uid.is_not(None),
                    MessageLocation.moved_at.is_(None))
                to_flag = list(session.scalars(base.where(MessageLocation.flagged_seen_at.is_(None)))) \
                    if account.mark_seen else []
                to_move = []
                if account.move_to_folder and account.move_after_days is not None:
                    cutoff = utcnow() - timedelta(days=account.move_after_days)
                    to_move = list(session.scalars(base.where(MessageLocation.seen_at <= cutoff)))
                if not to_flag and not to_move:
                    continue
                client.select_folder(folder, readonly=False)
                if to_flag:
                    client.add_flags([loc.uid for loc in to_flag], [b"\\Seen"], silent=True)
                    for loc in to_flag:
                        loc.flagged_seen_at = utcnow()
                if to_move:
                    assert account.move_to_folder is not None
                    uids = [loc.uid for loc in to_move]
                    if client.has_capability("MOVE"):
                        client.move(uids, account.move_to_folder)
                    else:
                        client.copy(uids, account.move_to_folder)
                        client.delete_messages(uids)
                        client.uid_expunge(uids) if client.has_capability("UIDPLUS") else client.expunge()
                    for loc in to_move:
                        loc.moved_at = utcnow()


@dataclass
class _FolderResult:
    server_count: int = 0
    stored: int = 0
    duplicates: int = 0


def _aware(value: object) -> object:
    from datetime import UTC, datetime

    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return None
