"""Pipeline stage `pec.link`: a PEC receipt points at the sent message it is about.

Receipts and the sent copy arrive in any order (the Sent folder may be read after INBOX):

- a receipt of the batch links to the stored message whose Message-ID is its
  `refers_to_msgid` (X-Riferimento-Message-ID, else the daticert <msgid>);
- a message of the batch adopts the earlier orphan receipts that refer to its Message-ID.

Among several messages with that Message-ID the sent copy wins (direction "out"), then one
in the receipt's own account, then the oldest; a received message in another account is
never a target (it is someone else's copy). Each link writes a MessageEvent on the sent
message (actor "pec", action = the receipt kind). At most four queries per batch, whatever its size.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session

from casella.models import Message, MessageEvent, MessagePec
from pec.classify import RECEIPT_KINDS

if TYPE_CHECKING:
    from casella.pipeline import StoredMessage

__all__ = ["PecLinkStage", "best_target"]


def best_target(candidates: Iterable[tuple[int, str, int]], receipt_account: int) -> int | None:
    """The id to link a receipt to among (id, direction, account_id) rows; None if none fits."""
    eligible = [c for c in candidates if c[1] == "out" or c[2] == receipt_account]
    if not eligible:
        return None
    return min(eligible, key=lambda c: (c[1] != "out", c[2] != receipt_account, c[0]))[0]


class PecLinkStage:
    name = "pec.link"

    def process(self, batch: Sequence[StoredMessage], session: Session) -> None:
        links: dict[int, int] = {}  # receipt message id -> sent message id
        about: dict[int, tuple[str, Any]] = {}  # receipt message id -> (kind, at)
        receipts = {item.row.id: item for item in batch
                    if item.pec is not None and item.pec.is_receipt and item.pec.refers_to_msgid}
        if receipts:
            # Idempotent: a receipt already linked (a retried batch) is left alone.
            open_ids = set(session.scalars(select(MessagePec.message_id).where(
                MessagePec.message_id.in_(receipts), MessagePec.refers_to_id.is_(None))))
            refs = {receipts[i].pec.refers_to_msgid[:998] for i in open_ids}  # type: ignore[index, union-attr]
            by_msgid: dict[str, list[tuple[int, str, int]]] = {}
            if refs:
                for mid, msgid, direction, account_id in session.execute(
                        select(Message.id, Message.message_id, Message.direction, Message.account_id)
                        .where(Message.message_id.in_(refs))):
                    if mid not in receipts:
                        by_msgid.setdefault(msgid, []).append((mid, direction, account_id))
            for rid in open_ids:
                item = receipts[rid]
                target = best_target(by_msgid.get(item.pec.refers_to_msgid[:998], []),  # type: ignore[index, union-attr]
                                     item.account.id)
                if target is not None:
                    links[rid] = target
                    about[rid] = (item.pec.kind, item.pec.at)  # type: ignore[union-attr]
        # Earlier receipts waiting for a message of this batch (the sent copy read late).
        candidates: dict[str, list[tuple[int, str, int]]] = {}
        for item in batch:
            if item.row.message_id and item.row.id not in receipts:
                candidates.setdefault(item.row.message_id, []).append(
                    (item.row.id, item.row.direction, item.account.id))
        if candidates:
            orphans = session.execute(
                select(MessagePec.message_id, MessagePec.refers_to_msgid, Message.account_id, MessagePec.kind,
                       MessagePec.at)
                .join(Message, Message.id == MessagePec.message_id)
                .where(MessagePec.refers_to_id.is_(None), MessagePec.kind.in_(RECEIPT_KINDS),
                       MessagePec.refers_to_msgid.in_(set(candidates)))).all()
            for rid, msgid, account_id, kind, at in orphans:
                if rid in links:
                    continue
                target = best_target(candidates.get(msgid, []), account_id)
                if target is not None:
                    links[rid] = target
                    about[rid] = (kind, at)
        if not links:
            return
        session.execute(update(MessagePec), [{"message_id": rid, "refers_to_id": sent} for rid, sent in links.items()])
        events: list[dict[str, Any]] = [
            dict(message_id=sent, actor="pec", action=about[rid][0],
                 detail={"receipt": rid, "at": about[rid][1].isoformat() if about[rid][1] else None})
            for rid, sent in sorted(links.items())]
        session.execute(insert(MessageEvent), events)
        session.flush()
