"""Store a batch of raw messages: blobs first, then one transaction for everything else.

    raw bytes ──► blob store (sha256, synced) ──► one DB transaction:
        message + attachments + location rows, the pipeline stages (thread, protocol number,
        anagrafica link), and the folder's UID cursor ──► COMMIT

A PEC message (X-Trasporto / X-Ricevuta headers, or any message of a PEC account) is
classified before the commit (pec/classify.py, signature included). A transport envelope
is shown as the certified message it carries (postacert.eml: real sender, subject, bodies,
attachments), while its raw blob stays the envelope, byte-exact: the legal proof.

Only after this commit may anything be done on the IMAP server (mark seen, move). The same
bytes twice in one account are one message (a second location row at most); a copy already
seen at the same (folder, UIDVALIDITY, UID) is skipped. Nothing here drops a message: a
message the parser cannot read is stored with its defects, and a failing stage quarantines
the message, which stays stored.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import insert, select, tuple_
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from casella.blobs import BlobStore, sha256_hex
from casella.db import Database
from casella.models import (
    Account,
    Attachment,
    FolderState,
    Message,
    MessageEvent,
    MessageLocation,
    MessagePec,
    utcnow,
)
from casella.pipeline import Stage, StoredMessage, run_stages
from ingest.errors import MailboxChanged
from ingest.parse_pool import parse_and_store, parse_and_store_many, parse_many
from ingest.parsed import ParsedMessage
from pec.classify import PecInfo, classify
from pec.trust import TrustStore

Mailbox = tuple[str | None, int | None, str | None]  # Account.mailbox: server, port, login
log = logging.getLogger(__name__)
MAX_TEXT = 2_000_000  # characters of body text/html kept in the database (the blob keeps all)


@dataclass(frozen=True, slots=True)
class Incoming:
    """One raw message as a source delivered it."""

    raw: bytes
    folder: str
    uidvalidity: int | None = None
    uid: int | None = None
    internal_date: datetime | None = None


AfterWrite = Callable[[Session, list[StoredMessage]], None]


@dataclass(frozen=True, slots=True)
class Prepared:
    """A batch whose blobs are on disk and whose messages are parsed, ready to commit."""

    account_id: int
    items: list[Incoming]
    digests: list[str]
    parsed: list[ParsedMessage | None]  # None: the account had these bytes already
    pec: list[PecInfo | None] = field(default_factory=list)  # by position; [] when none is PEC
    # Blobs written but not yet synced (`prepare_one`): `commit` syncs them before its COMMIT.
    unsynced: list[str] = field(default_factory=list)


@dataclass(slots=True)
class BatchResult:
    stored: int = 0
    duplicates: int = 0
    skipped: int = 0  # already stored at this exact location
    message_ids: list[int] = field(default_factory=list)

    def add(self, other: BatchResult) -> None:
        self.stored += other.stored
        self.duplicates += other.duplicates
        self.skipped += other.skipped
        self.message_ids.extend(other.message_ids)


class Storer:
    """Stores batches for one account; shared by the IMAP poller and `casella import`."""

    def __init__(self, db: Database, blobs: BlobStore, stages: Sequence[Stage], *, workers: int = 1,
                 pec_trust: TrustStore | None = None) -> None:
        self.db = db
        self.blobs = blobs
        self.stages = stages
        self.workers = workers
        self.pec_trust = pec_trust  # None: the trust store of the process-wide settings

    def store_batch(self, account_id: int, items: Sequence[Incoming], *, cursor: tuple[str, int, int] | None = None,
                    source: str = "imap", after_write: AfterWrite | None = None,
                    mailbox: Mailbox | None = None) -> BatchResult:
        """Store `items`; with `cursor` = (folder, uidvalidity, last_uid), advance that
        folder's UID cursor in the same transaction. `after_write(session, stored)` runs in
        that transaction too, after the stages, outside their quarantine boundary: if it
        raises, nothing of the batch is committed (the mailserver queues a submission so).
        `mailbox`: the server and login the items were read from (see check_mailbox)."""
        return self.commit(self.prepare(account_id, items), cursor=cursor, source=source, after_write=after_write,
                           mailbox=mailbox)

    def prepare(self, account_id: int, items: Sequence[Incoming]) -> Prepared:
        """The work that needs no transaction: hash, parse, write the blobs (synced). It can
        run for the next batch while the previous one commits (see ImapPoller)."""
        digests = [sha256_hex(item.raw) for item in items]
        # Parse only what this account does not have yet (a re-read folder costs little);
        # the write transaction checks again, so a race only costs a wasted parse.
        known = self._known_digests(account_id, digests)
        todo = [n for n, d in enumerate(digests) if d not in known]
        # Parsing and writing the blobs happen together on every core (ingest/parse_pool.py),
        # then one filesystem sync makes the blobs durable before the commit refers to them.
        parsed_todo = parse_and_store_many([items[n].raw for n in todo], [digests[n] for n in todo], self.blobs,
                                           self.workers)
        parsed: list[ParsedMessage | None] = [None] * len(items)
        for n, p in zip(todo, parsed_todo, strict=True):
            parsed[n] = p
        # PEC: classified here, out of the transaction (the signature check runs openssl).
        pec: list[PecInfo | None] = [None] * len(items)
        if todo:
            is_pec_account = self._is_pec_account(account_id)
            written: list[str] = []
            for n in todo:
                pec[n], parsed[n] = self._pec(items[n].raw, parsed[n], is_pec_account, written)  # type: ignore[arg-type]
            self.blobs.finish_writes_of(written)
        return Prepared(account_id, list(items), digests, parsed, pec if any(pec) else [])

    def prepare_one(self, account_id: int, item: Incoming, *, is_pec_account: bool) -> Prepared:
        """One message (a submission), parsed and its blobs written here, in this thread, not
        yet synced: `commit` syncs them on another thread while its transaction does the
        rows and stages, and waits for that sync before the COMMIT. No look-up for bytes the
        account already has (the transaction checks); the caller says whether it is PEC."""
        digest = sha256_hex(item.raw)
        parsed = parse_and_store(item.raw, digest, str(self.blobs.root))
        written = [digest, *(a.sha256 for a in parsed.attachments)]
        info, parsed = self._pec(item.raw, parsed, is_pec_account, written)
        return Prepared(account_id, [item], [digest], [parsed], [info] if info is not None else [], unsynced=written)

    def _is_pec_account(self, account_id: int) -> bool:
        with self.db.reading() as session:
            return bool(session.scalar(select(Account.is_pec).where(Account.id == account_id)))

    def _pec(self, raw: bytes, parsed: ParsedMessage, is_pec_account: bool,
             written: list[str]) -> tuple[PecInfo | None, ParsedMessage]:
        """(PecInfo or None, the ParsedMessage the row shows). For a transport envelope that
        is the certified message inside it, whose blobs are written here (unsynced: the
        caller syncs the digests added to `written`)."""
        if not (is_pec_account or has_pec_headers(parsed)):
            return None, parsed
        info = classify(raw, parsed, self.pec_trust)
        if info is None or info.kind != "posta-certificata" or not info.postacert:
            return info, parsed
        digest = sha256_hex(info.postacert)
        inner = parse_and_store(info.postacert, digest, str(self.blobs.root))
        written.extend([digest, *(a.sha256 for a in inner.attachments)])
        return info, inner

    def commit(self, prepared: Prepared, *, cursor: tuple[str, int, int] | None = None,
               source: str = "imap", after_write: AfterWrite | None = None,
               mailbox: Mailbox | None = None) -> BatchResult:
        """One transaction: rows, pipeline stages, cursor. Retried if another process
        stored some of the same messages at the same moment."""
        if not prepared.items and cursor is None:
            return BatchResult()
        synced = _sync_later(self.blobs, prepared.unsynced) if prepared.unsynced else None
        for attempt in range(3):
            try:
                with self.db.session() as session:
                    result, stored = self._write(session, prepared.account_id, prepared.items, prepared.digests,
                                                 prepared.parsed, cursor, source, prepared.pec, mailbox)
                    if after_write is not None:
                        after_write(session, stored)
                    if synced is not None:
                        synced.result()  # the blobs are durable before the COMMIT that refers to them
                    return result
            except IntegrityError:
                # The second pass sees the other process's rows and stores only what is missing.
                if attempt == 2:
                    raise
                log.info("concurrent insert on account %s; retrying the batch", prepared.account_id)
        raise AssertionError("unreachable")

    def _known_digests(self, account_id: int, digests: list[str]) -> set[str]:
        if not digests:
            return set()
        with self.db.reading() as session:
            return set(session.scalars(select(Message.sha256).where(Message.account_id == account_id,
                                                                     Message.sha256.in_(set(digests)))))

    def _write(self, session: Session, account_id: int, items: Sequence[Incoming], digests: list[str],
               parsed: list[ParsedMessage | None], cursor: tuple[str, int, int] | None,
               source: str, pec: Sequence[PecInfo | None] = (), mailbox: Mailbox | None = None
               ) -> tuple[BatchResult, list[StoredMessage]]:
        account = check_mailbox(session, account_id, mailbox)
        result = BatchResult()
        existing: dict[str, int] = dict(session.execute(
            select(Message.sha256, Message.id).where(Message.account_id == account_id, Message.sha256.in_(set(digests)))
        ).all()) if digests else {}
        located = set(items_locations(items))
        seen_locations = set(session.execute(
            select(MessageLocation.folder, MessageLocation.uidvalidity, MessageLocation.uid).where(
                MessageLocation.account_id == account_id,
                tuple_(MessageLocation.folder, MessageLocation.uidvalidity, MessageLocation.uid).in_(located))
        ).all()) if located else set()
        new: list[tuple[StoredMessage, Incoming]] = []
        new_by_digest: dict[str, Message] = {}
        extra_locations: list[tuple[str, Incoming]] = []  # more copies of a message stored here
        pec = list(pec) or [None] * len(items)
        for item, digest, p, info in zip(items, digests, parsed, pec, strict=True):
            loc = (item.folder, item.uidvalidity, item.uid)
            if item.uid is not None and loc in seen_locations:
                result.skipped += 1
                continue
            seen_locations.add(loc)
            if digest in existing or digest in new_by_digest:
                result.duplicates += 1
                extra_locations.append((digest, item))
                continue
            if p is None:  # known at our first look, gone by now (erased meanwhile): parse it here
                written: list[str] = []
                info, p = self._pec(item.raw, parse_many([item.raw], 1)[0], account.is_pec, written)
                self.blobs.finish_writes_of(written)
            row = build_message(account, item, digest, p)
            session.add(row)
            new_by_digest[digest] = row
            new.append((StoredMessage(row=row, parsed=p, account=account, pec=info), item))
        session.flush()
        # Rows nobody changes later go in with one executemany per table.
        locations = [dict(message_id=stored.row.id, account_id=account_id, folder=item.folder,
                          uidvalidity=item.uidvalidity, uid=item.uid) for stored, item in new]
        locations += [dict(message_id=existing[d] if d in existing else new_by_digest[d].id, account_id=account_id,
                           folder=item.folder, uidvalidity=item.uidvalidity, uid=item.uid) for d, item in extra_locations]
        attachments = [dict(message_id=stored.row.id, position=n, filename=a.filename[:998],
                            content_type=a.content_type[:255], size=a.size, sha256=a.sha256,
                            content_id=a.content_id[:998] if a.content_id else None, inline=a.inline)
                       for stored, _ in new for n, a in enumerate(stored.parsed.attachments)]
        events = [dict(message_id=stored.row.id, actor="ingest", action="stored",
                       detail={"source": source, "folder": item.folder, "uid": item.uid}) for stored, item in new]
        pecs = [pec_row(stored.row.id, stored.pec) for stored, _ in new if stored.pec is not None]
        for model, rows in ((MessageLocation, locations), (Attachment, attachments), (MessageEvent, events),
                            (MessagePec, pecs)):
            if rows:
                session.execute(insert(model), rows)
        batch = [stored for stored, _ in new]
        run_stages(self.stages, batch, session)
        if cursor is not None:
            _advance_cursor(session, account_id, *cursor)
        result.stored = len(batch)
        result.message_ids = [s.row.id for s in batch]
        return result, batch


_syncer: ThreadPoolExecutor | None = None
_syncer_lock = threading.Lock()


def _sync_later(blobs: BlobStore, digests: list[str]) -> Future[None]:
    """Make blobs durable (BlobStore.finish_writes_of) on a helper thread; wait on the result."""
    global _syncer
    with _syncer_lock:
        if _syncer is None:
            _syncer = ThreadPoolExecutor(max_workers=2, thread_name_prefix="blob-sync")
        return _syncer.submit(blobs.finish_writes_of, list(digests))


def items_locations(items: Sequence[Incoming]) -> list[tuple[str, int | None, int | None]]:
    return [(i.folder, i.uidvalidity, i.uid) for i in items if i.uid is not None]


def check_mailbox(session: Session, account_id: int, mailbox: Mailbox | None) -> Account:
    """The account, its row locked for the transaction (PostgreSQL; on SQLite the
    transaction holds the write lock already); MailboxChanged when `mailbox` (what the
    caller is connected to) is no longer the account's server and login."""
    account = session.get(Account, account_id, with_for_update=mailbox is not None)
    if account is None:
        raise MailboxChanged(f"account {account_id} was deleted while it was being read")
    if mailbox is not None and account.mailbox != mailbox:
        raise MailboxChanged(f"account {account.name}: its server or login changed while the old mailbox was "
                             "being read; nothing of that batch was stored, reading again with the new settings")
    return account


def _advance_cursor(session: Session, account_id: int, folder: str, uidvalidity: int, last_uid: int) -> None:
    state = session.scalar(select(FolderState).where(FolderState.account_id == account_id, FolderState.name == folder))
    if state is None:
        state = FolderState(account_id=account_id, name=folder, uidvalidity=uidvalidity, last_uid=0)
        session.add(state)
    if state.uidvalidity != uidvalidity:
        state.uidvalidity = uidvalidity
        state.last_uid = 0
    state.last_uid = max(state.last_uid or 0, last_uid)
    state.last_fetch_at = utcnow()


def has_pec_headers(parsed: ParsedMessage) -> bool:
    """True when the top-level headers say PEC (X-Trasporto or X-Ricevuta, any case)."""
    return any(key.lower() in ("x-trasporto", "x-ricevuta") for key, _ in parsed.headers)


def pec_row(message_id: int, info: PecInfo) -> dict[str, object]:
    return dict(message_id=message_id, kind=info.kind, receipt_form=info.receipt_form,
                refers_to_msgid=info.refers_to_msgid[:998] if info.refers_to_msgid else None, refers_to_id=None,
                sender=info.sender[:998] if info.sender else None, at=info.at, daticert=info.daticert,
                signature=info.signature.as_json() if info.signature else None, problems=list(info.problems))


def build_message(account: Account, item: Incoming, digest: str, p: ParsedMessage) -> Message:
    direction = "out" if account.is_sent_folder(item.folder) else "in"
    sender = p.sender
    return Message(
        account_id=account.id, folder=item.folder, direction=direction, sha256=digest, size=len(item.raw),
        message_id=(p.message_id or None) and p.message_id[:998],
        in_reply_to=(p.in_reply_to or None) and p.in_reply_to[:998],
        references=list(p.references)[:200], subject=p.subject,
        from_name=sender.name[:998] if sender else "", from_addr=sender.addr[:998] if sender else "",
        to=[a.as_json() for a in p.to], cc=[a.as_json() for a in p.cc], date=p.date,
        received_at=item.internal_date, stored_at=utcnow(), body_text=p.text[:MAX_TEXT], body_html=p.html[:MAX_TEXT],
        has_attachments=any(not a.inline for a in p.attachments), defects=list(p.defects),
        parse_engine=p.engine, link_kind="unknown", extra={},
    )
