"""The pipeline stage `routing.apply`: each new message meets its account's rules, then the
rules for every account, and what matched is applied in the storing transaction.

Without rules it costs one query per batch. With rules: one for the rules, one for the
linked companies, and a few for the actions' targets (`routing/actions.py`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

from sqlalchemy.orm import Session

from casella.blobs import BlobStore
from casella.settings import Settings
from routing.route import load_companies, reads, route, stored_headers
from routing.routable import AttachmentInfo, pec_kind_from_headers, routable_from_row
from routing.stored_rules import load_rules

if TYPE_CHECKING:
    from casella.pipeline import StoredMessage

log = logging.getLogger(__name__)


class RoutingStage:
    name = "routing.apply"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.blobs = BlobStore(settings.blob_dir)

    def _headers(self, item: StoredMessage, wanted: bool) -> tuple[tuple[str, str], ...]:
        """The stored bytes' top-level headers. For a PEC envelope the ingest hands over the
        certified message inside it, so the envelope's own headers are read from its blob
        (already written), and only when a rule reads a header."""
        parsed = item.parsed.headers
        if wanted and getattr(item, "pec", None) is not None and not pec_kind_from_headers(parsed):
            return stored_headers(self.blobs, item.row.sha256)
        return parsed

    def process(self, batch: Sequence[StoredMessage], session: Session) -> None:
        book = load_rules(session, {item.account.id for item in batch})
        if not book:
            return
        companies = load_companies(session, (item.row.company_id for item in batch))
        wanted = reads(book.all(), {"header"})
        items = [(item.row, routable_from_row(
            item.row, account=item.account.name, headers=self._headers(item, wanted),
            attachments=tuple(AttachmentInfo(a.filename, a.content_type) for a in item.parsed.attachments),
            company=companies.get(item.row.company_id) if item.row.company_id else None,
            pec_kind=_pec_kind(item))) for item in batch]
        evaluations, changes = route(session, items, book, via="ingest")
        matched = sum(1 for ev in evaluations if ev.matched)
        if matched:
            log.debug("routing: %d of %d message(s) matched a rule, %d change(s)", matched, len(batch), len(changes))


def _pec_kind(item: StoredMessage) -> str | None:
    """The kind pec/classify.py found (envelope, receipt, anomaly); None: from the headers."""
    info = getattr(item, "pec", None)
    kind = getattr(info, "kind", None)
    return kind if isinstance(kind, str) else None
