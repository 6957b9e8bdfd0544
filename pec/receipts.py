"""Per-recipient delivery state of a sent PEC, from its receipts.  Pure; order-independent.

    delivery_states(["a@x.it", "b@y.it"], receipts)
    -> {"a@x.it": {"state": "delivered", "at": datetime, "error": None}, ...}

A receipt is anything with `kind`, `daticert` (the dict of pec.daticert) and `at` (a
PecInfo is one). States, strongest first: delivered (avvenuta-consegna for the recipient),
failed (errore-consegna / rilevazione-virus for the recipient, or non-accettazione for
all), warning (preavviso-errore-consegna), accepted (accettazione / presa-in-carico),
pending (nothing yet). The strongest state wins whatever the arrival order; among receipts
giving the same state the earliest `at` is kept (a missing `at` counts as latest).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any, Protocol

__all__ = ["STATES", "Receipt", "delivery_states"]

STATES = ("pending", "accepted", "warning", "failed", "delivered")  # weakest first
_RANK = {state: rank for rank, state in enumerate(STATES)}
_PER_RECIPIENT = {"avvenuta-consegna": "delivered", "errore-consegna": "failed",
                  "rilevazione-virus": "failed", "preavviso-errore-consegna": "warning",
                  "presa-in-carico": "accepted"}
_FOR_ALL = {"accettazione": "accepted", "non-accettazione": "failed"}


class Receipt(Protocol):
    kind: str
    daticert: dict[str, Any] | None
    at: datetime | None


def _norm(address: str | None) -> str:
    return (address or "").strip().strip("<>").strip().lower()


def _error(daticert: dict[str, Any]) -> str | None:
    extended = daticert.get("errore-esteso")
    short = daticert.get("errore")
    if extended:
        return str(extended)
    return str(short) if short and short != "nessuno" else None


def _key(state: str, at: datetime | None, error: str | None) -> tuple[int, int, float, str]:
    # higher is better: strongest state, then earliest time, then a stable tie-break
    return (_RANK[state], 0 if at is None else 1, -at.timestamp() if at else 0.0, error or "")


def delivery_states(sent_recipients: list[str],
                    receipts: Iterable[Receipt]) -> dict[str, dict[str, Any]]:
    """The state of each sent recipient (keys lower-cased), from receipts in any order."""
    best: dict[str, dict[str, Any]] = {_norm(r): {"state": "pending", "at": None, "error": None}
                                       for r in sent_recipients if _norm(r)}
    for receipt in receipts:
        daticert = receipt.daticert or {}
        if receipt.kind in _FOR_ALL:
            state, targets = _FOR_ALL[receipt.kind], list(best)
        elif receipt.kind in _PER_RECIPIENT:
            state = _PER_RECIPIENT[receipt.kind]
            target = _norm(daticert.get("consegna") or daticert.get("ricezione"))
            targets = [target] if target in best else []
        else:
            continue
        error = _error(daticert) if state in ("failed", "warning") else None
        for target in targets:
            current = best[target]
            if _key(state, receipt.at, error) > _key(current["state"], current["at"], current["error"]):
                best[target] = {"state": state, "at": receipt.at, "error": error}
    return best
