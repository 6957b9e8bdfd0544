"""The last pipeline stage: note each new message in the search outbox, in the storing
transaction. search/indexer.py turns outbox rows into index documents after the commit, so
the index never has a message the database lacks, and `casella reindex` can rebuild it."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from sqlalchemy import insert
from sqlalchemy.orm import Session

from casella.models import SearchOutbox

if TYPE_CHECKING:
    from casella.pipeline import StoredMessage


def enqueue(session: Session, message_ids: Iterable[int], op: str = "upsert") -> None:
    """Ask for these messages' documents to be (re)written; call it in the transaction
    that changes what a document shows (tags, assignment, link…)."""
    rows = [{"message_id": m, "op": op} for m in message_ids]
    if rows:
        session.execute(insert(SearchOutbox), rows)


class OutboxStage:
    name = "search.outbox"

    def process(self, batch: Sequence[StoredMessage], session: Session) -> None:
        enqueue(session, [item.row.id for item in batch])
