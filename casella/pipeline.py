"""The order a stored message flows through, in one readable tuple.

ingest/ stores the raw bytes and the parsed metadata, then hands every new message of a
batch to these stages, in this order, inside the same database transaction:

    ingest.threads            -> conversation (Message-ID, In-Reply-To, References, subject)
    protocol_registry.assign  -> gapless number per registry and year, with the sha256
    pec.link                  -> PEC receipts to the sent message they are about, either order
    reports.link              -> bounces (DSN) and read receipts (MDN) to the sent message, either
                                 order, one row per recipient (mailserver/report_stage.py)
    anagrafica.link           -> contact, else company by domain, else "unknown sender"
    routing.apply             -> the account's rules: assign, agent, folder, tags, pratica…
    search.outbox             -> a row per message for the indexer (search/indexer.py)

Each stage is idempotent for a message it has already seen and works on a whole batch, so
a batch costs a few queries, not a few per message.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy.orm import Session

from anagrafica.link import LinkStage
from casella.models import Account, Message, QuarantineEntry
from casella.settings import Settings
from ingest.parsed import ParsedMessage
from ingest.threads import ThreadStage
from mailserver.report_stage import ReportLinkStage
from pec.classify import PecInfo
from pec.stage import PecLinkStage
from protocol_registry.assign import RegistrationStage
from routing.stage import RoutingStage
from search.outbox import OutboxStage

log = logging.getLogger(__name__)


@dataclass(slots=True)
class StoredMessage:
    """A message just written in this transaction, with what the parser found."""

    row: Message
    parsed: ParsedMessage
    account: Account
    pec: PecInfo | None = None  # a PEC envelope, receipt or anomaly (pec/classify.py)


class Stage(Protocol):
    name: str

    def process(self, batch: Sequence[StoredMessage], session: Session) -> None:
        """Do this stage's work for every message of the batch; raise to quarantine."""


def build_stages(settings: Settings) -> tuple[Stage, ...]:
    return (
        ThreadStage(),
        RegistrationStage(settings),
        PecLinkStage(),
        ReportLinkStage(settings),
        LinkStage(settings),
        RoutingStage(settings),
        OutboxStage(),
    )


def run_stages(stages: Sequence[Stage], batch: Sequence[StoredMessage], session: Session) -> None:
    """Run every stage over the batch. A stage that fails on the batch is retried message by
    message in savepoints, so one bad message is quarantined and the others go on; the
    failing message stays stored (its raw bytes and metadata are already written)."""
    for stage in stages:
        if not batch:
            return
        try:
            with session.begin_nested():
                stage.process(batch, session)
            continue
        except Exception:
            log.warning("stage %s failed on a batch of %d; retrying one by one", stage.name, len(batch))
        for item in batch:
            try:
                with session.begin_nested():
                    stage.process([item], session)
            except Exception as exc:  # noqa: BLE001 - the boundary: record, never drop
                log.error("stage %s failed for message %s (Message-ID %s): %s",
                          stage.name, item.row.id, item.row.message_id, exc)
                session.add(QuarantineEntry(account_id=item.account.id, message_id=item.row.id,
                                            sha256=item.row.sha256, stage=stage.name,
                                            reason=f"{type(exc).__name__}: {exc}"))
