"""Accept one submitted message: complete its headers, then in ONE transaction store it in
the account's Sent folder (numbered by the protocol registry, direction out, linked) and
put it in the outbound queue.

The queue row is written by `enqueue`, which the Storer runs in its storing transaction
after the pipeline stages (`after_write`): the message, its protocol number and its queue
row are committed together, or not at all.

Headers added (RFC 6409 §8): a `Received:` trace line with a unique id, which also makes
every submission distinct bytes (the Storer deduplicates by sha256 per account); a
`Message-ID:` when missing (it is the stable id of the message through every retry); a
`Date:` when missing.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from email.parser import BytesHeaderParser
from email.utils import format_datetime, make_msgid

from sqlalchemy.orm import Session

from casella.blobs import BlobStore
from casella.db import Database
from casella.models import Account, MessageEvent, utcnow
from casella.models.outbound import OutboundMessage
from casella.pipeline import Stage, StoredMessage
from ingest.store import AfterWrite, Incoming, Storer

DEFAULT_SENT_FOLDER = "Sent"


@dataclass(frozen=True, slots=True)
class Submission:
    account_id: int
    mail_from: str
    rcpt_tos: tuple[str, ...]
    raw: bytes
    username: str
    helo: str = ""
    peer: str = ""


@dataclass(frozen=True, slots=True)
class Queued:
    outbound_id: int
    message_id: int
    smtp_message_id: str


def enqueue(submission: Submission, smtp_message_id: str,
            queued: dict[int, OutboundMessage] | None = None) -> AfterWrite:
    """The `after_write` hook that puts each newly stored message in the outbound queue;
    with `queued`, the queue rows are left there by message id (their ids are set)."""

    def write(session: Session, batch: list[StoredMessage]) -> None:
        now = utcnow()
        rows: dict[int, OutboundMessage] = {}
        for stored in batch:
            rows[stored.row.id] = row = OutboundMessage(
                message_id=stored.row.id, account_id=stored.account.id, mail_from=submission.mail_from,
                rcpt_tos=list(submission.rcpt_tos), state="queued", attempts=0, next_attempt_at=now,
                created_at=now, smtp_message_id=smtp_message_id)
            session.add(row)
            session.add(MessageEvent(message_id=stored.row.id, actor=submission.username, action="submitted",
                                     detail={"mail_from": submission.mail_from, "rcpt_tos": list(submission.rcpt_tos)}))
        session.flush()
        if queued is not None:  # a retried transaction replaces what a failed attempt left
            queued.clear()
            queued.update(rows)

    return write


def complete_headers(raw: bytes, *, hostname: str, helo: str, peer: str, username: str,
                     now: datetime | None = None, protocol: str = "ESMTPSA") -> tuple[bytes, str]:
    """Return the bytes to store and send, and their Message-ID. `protocol` is the trace
    line's "with" (ESMTPSA for SMTP submission, HTTP for the webmail's compose)."""
    now = now or utcnow()
    eol = b"\r\n" if b"\r\n" in raw[:4096] or not raw else b"\n"
    headers = BytesHeaderParser().parsebytes(raw)
    token = secrets.token_hex(8)
    added: list[bytes] = []
    message_id = (headers.get("Message-ID") or "").strip()
    if not message_id:
        message_id = make_msgid(idstring=token, domain=hostname)
        added.append(b"Message-ID: " + message_id.encode("ascii"))
    if not headers.get("Date"):
        added.append(b"Date: " + format_datetime(now).encode("ascii"))
    received = (f"Received: from {helo or 'unknown'} ({peer or 'unknown'})" + eol.decode()
                + f"\tby {hostname} (Casella) with {protocol} id {token}" + eol.decode()
                + f"\tfor authenticated user {username}; {format_datetime(now)}").encode("utf-8", "replace")
    trailer = b"".join(line + eol for line in added)
    # Added headers go at the top of the header block, the trace line first.
    return received + eol + trailer + raw, message_id


def strip_headers(raw: bytes, names: Iterable[str]) -> tuple[bytes, list[str]]:
    """Remove every top-level header field called one of `names` (any case, with its folded
    continuation lines); every other byte stays as it was. Returns the new bytes and the
    removed fields' values (unfolded, stripped)."""
    wanted = {n.lower().encode("ascii") for n in names}
    end = _header_end(raw)
    lines = raw[:end].splitlines(keepends=True)
    kept: list[bytes] = []
    removed: list[bytes] = []
    dropping = False
    for line in lines:
        if line[:1] in (b" ", b"\t") and kept + removed:
            (removed if dropping else kept)[-1] += line
            continue
        dropping = line.split(b":", 1)[0].strip().lower() in wanted and b":" in line
        (removed if dropping else kept).append(line)
    if not removed:
        return raw, []
    values = [b" ".join(f.split(b":", 1)[1].split()).decode("utf-8", "replace") for f in removed]
    return b"".join(kept) + raw[end:], values


def _header_end(raw: bytes) -> int:
    """Offset of the blank line that ends the header block (len(raw) when there is none)."""
    found = [i for i in (raw.find(b"\r\n\r\n"), raw.find(b"\n\n")) if i >= 0]
    if not found:
        return len(raw)
    first = min(found)
    return first + (2 if raw.startswith(b"\r\n", first) else 1)


def sent_folder(account: Account) -> str:
    return account.sent_folders[0] if account.sent_folders else DEFAULT_SENT_FOLDER


def submission_target(session: Session, account_id: int) -> tuple[str, bool]:
    """(the account's Sent folder, whether it is a PEC account): where a submission goes."""
    account = session.get(Account, account_id)
    assert account is not None
    return sent_folder(account), bool(account.is_pec)


def store_and_enqueue(db: Database, blobs: BlobStore, stages: Sequence[Stage], submission: Submission,
                      smtp_message_id: str, *, target: tuple[str, bool] | None = None) -> Queued | None:
    """One transaction: Sent copy + protocol number + link + queue row. None when nothing
    was queued (the same bytes were stored already). `target`: `submission_target`, when
    the caller has read it already.

    The blobs are written first and synced while the transaction does its rows and stages;
    the COMMIT waits for that sync (Storer.commit), so nothing refers to a blob that could
    be lost."""
    if target is None:
        with db.reading() as session:
            target = submission_target(session, submission.account_id)
    folder, is_pec = target
    storer = Storer(db, blobs, stages, workers=1)
    prepared = storer.prepare_one(submission.account_id, Incoming(raw=submission.raw, folder=folder),
                                  is_pec_account=is_pec)
    queued: dict[int, OutboundMessage] = {}
    result = storer.commit(prepared, source="submission", after_write=enqueue(submission, smtp_message_id, queued))
    if result.stored != 1:
        return None
    message_id = result.message_ids[0]
    row = queued.get(message_id)
    if row is None or row.id is None:
        return None
    return Queued(row.id, message_id, smtp_message_id)
