"""Turn search_outbox rows into index documents, after the commit that wrote them.

`drain` reads a batch of outbox rows in id order, builds the documents of the messages they
name (a message that no longer exists is deleted from the index: the database is the
truth, whatever the row's `op`), writes them to the engine and only then deletes exactly
those rows. A crash in between leaves the rows, and the next drain writes the same
documents again (an upsert by id: idempotent). `reindex` rebuilds the whole index from the
messages; `run_forever` is the daemon's loop.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sqlalchemy import delete, func, select

from casella.blobs import BlobStore
from casella.db import Database
from casella.models import Message, SearchOutbox
from casella.settings import Settings
from search.document import Extractor, MessageSource, build_document, find_extractor, load_sources
from search.engine import open_index
from search.errors import SearchError
from search.index import SearchDocument, SearchIndex

log = logging.getLogger(__name__)

DRAIN_BATCH = 200
REINDEX_BATCH = 500
DRAIN_INTERVAL_SECONDS = 2.0

Progress = Callable[[int, int], None]  # (messages done, messages in all)


@dataclass
class DrainReport:
    rows: int = 0  # outbox rows consumed
    indexed: int = 0  # documents written
    deleted: int = 0  # documents removed (their message is gone)


class _Builder:
    """Builds documents outside any database transaction (attachments are read here)."""

    def __init__(self, settings: Settings) -> None:
        self.blobs = BlobStore(settings.blob_dir)
        self.extractor: Extractor | None = find_extractor()
        self.max_bytes = settings.search_attachment_text_max_bytes

    def __call__(self, sources: Sequence[MessageSource]) -> list[SearchDocument]:
        return [build_document(s, self.blobs, self.extractor, self.max_bytes) for s in sources]


def drain(settings: Settings, db: Database, index: SearchIndex, *, batch_size: int = DRAIN_BATCH) -> DrainReport:
    """Index everything the outbox holds now; return what was done."""
    report = DrainReport()
    build = _Builder(settings)
    while True:
        with db.session() as session:
            rows = session.execute(select(SearchOutbox.id, SearchOutbox.message_id)
                                   .order_by(SearchOutbox.id).limit(batch_size)).all()
            if not rows:
                return report
            ids = sorted({message_id for _, message_id in rows})
            sources = load_sources(session, ids)
        docs = build(sources)
        present = {d.id for d in docs}
        gone = [i for i in ids if i not in present]
        index.upsert(docs)
        index.delete(gone)
        _delete_rows(db, [row_id for row_id, _ in rows])
        report.rows += len(rows)
        report.indexed += len(docs)
        report.deleted += len(gone)


def _delete_rows(db: Database, row_ids: list[int]) -> None:
    """Forget outbox rows whose documents the engine has committed."""
    with db.session() as session:
        session.execute(delete(SearchOutbox).where(SearchOutbox.id.in_(row_ids)))


def reindex(settings: Settings, db: Database, progress: Progress | None = None) -> int:
    """Empty the index and write every message's document again; return how many.
    Outbox rows already written when it starts are covered and removed; later ones stay
    for the indexer."""
    index = open_index(settings, rebuild=True)
    try:
        with db.session() as session:
            covered = session.scalar(select(func.max(SearchOutbox.id))) or 0
            total = session.scalar(select(func.count(Message.id))) or 0
        index.clear()
        build = _Builder(settings)
        done, last_id = 0, 0
        if progress:
            progress(0, total)
        while True:
            with db.session() as session:
                ids = list(session.scalars(select(Message.id).where(Message.id > last_id)
                                           .order_by(Message.id).limit(REINDEX_BATCH)))
                if not ids:
                    break
                sources = load_sources(session, ids)
            index.upsert(build(sources))
            done, last_id = done + len(ids), ids[-1]
            if progress:
                progress(done, max(total, done))
        if covered:
            with db.session() as session:
                session.execute(delete(SearchOutbox).where(SearchOutbox.id <= covered))
        return done
    finally:
        index.close()


def pending(db: Database) -> int:
    """Outbox rows not indexed yet."""
    with db.session() as session:
        return session.scalar(select(func.count(SearchOutbox.id))) or 0


def run_forever(settings: Settings, db: Database, stop_event: threading.Event,
                interval: float = DRAIN_INTERVAL_SECONDS) -> None:
    """Drain the outbox every `interval` seconds until `stop_event` is set (the daemon runs
    this in a thread). Failures are logged and retried; the outbox keeps the work."""
    index: SearchIndex | None = None
    last_error = ""
    while not stop_event.is_set():
        try:
            if index is None:
                index = open_index(settings)
            report = drain(settings, db, index)
            if report.rows:
                log.info("search: %d document(s) written, %d removed", report.indexed, report.deleted)
            last_error = ""
        except Exception as exc:  # noqa: BLE001 - the daemon's boundary: log, keep the outbox, retry
            message = f"{type(exc).__name__}: {exc}"
            if message != last_error:
                (log.error if isinstance(exc, SearchError) else log.exception)("search indexer: %s", message)
            last_error = message
            if not isinstance(exc, SearchError) and index is not None:
                index.close()
                index = None
        stop_event.wait(interval)
    if index is not None:
        index.close()
