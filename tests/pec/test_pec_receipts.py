"""Per-recipient delivery states from receipts, in any order."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pec.receipts import STATES, delivery_states

pytestmark = pytest.mark.unit

T0 = datetime(2024, 3, 1, 10, 0, tzinfo=timezone.utc)


@dataclass(frozen=True)
class R:
    kind: str
    daticert: dict[str, Any] | None
    at: datetime | None


def rec(kind: str, consegna: str | None = None, minutes: int = 0, **extra: Any) -> R:
    return R(kind, {"consegna": consegna, **extra}, T0 + timedelta(minutes=minutes))


SENT = ["A@pec.it", "b@pec.it", "c@pec.it", "d@pec.it"]


def test_each_state() -> None:
    receipts = [rec("accettazione"),
                rec("avvenuta-consegna", "a@pec.it", 1),
                rec("errore-consegna", "b@pec.it", 2, errore="no-dest", **{"errore-esteso": "5.1.1 non valido"}),
                rec("preavviso-errore-consegna", "c@pec.it", 3, errore="no-dest")]
    states = delivery_states(SENT, receipts)
    assert {k: v["state"] for k, v in states.items()} == {
        "a@pec.it": "delivered", "b@pec.it": "failed", "c@pec.it": "warning", "d@pec.it": "accepted"}
    assert states["b@pec.it"]["error"] == "5.1.1 non valido"
    assert states["c@pec.it"]["error"] == "no-dest"
    assert states["a@pec.it"]["at"] == T0 + timedelta(minutes=1)
    assert states["d@pec.it"] == {"state": "accepted", "at": T0, "error": None}


def test_nothing_is_pending_and_unknown_recipients_are_ignored() -> None:
    states = delivery_states(["x@pec.it"], [rec("avvenuta-consegna", "other@pec.it")])
    assert states == {"x@pec.it": {"state": "pending", "at": None, "error": None}}


def test_non_accettazione_fails_everyone() -> None:
    states = delivery_states(SENT, [rec("non-accettazione", **{"errore-esteso": "virus"})])
    assert {v["state"] for v in states.values()} == {"failed"}


def test_delivery_after_warning_wins_in_either_order() -> None:
    late = [rec("preavviso-errore-consegna", "a@pec.it", 720), rec("avvenuta-consegna", "a@pec.it", 900)]
    assert delivery_states(["a@pec.it"], late)["a@pec.it"]["state"] == "delivered"
    assert delivery_states(["a@pec.it"], late[::-1])["a@pec.it"]["state"] == "delivered"


def test_duplicate_delivery_keeps_the_first_time() -> None:
    rs = [rec("avvenuta-consegna", "a@pec.it", 5), rec("avvenuta-consegna", "a@pec.it", 1)]
    assert delivery_states(["a@pec.it"], rs)["a@pec.it"]["at"] == T0 + timedelta(minutes=1)


KINDS = ["accettazione", "non-accettazione", "presa-in-carico", "avvenuta-consegna", "errore-consegna",
         "preavviso-errore-consegna", "rilevazione-virus", "posta-certificata", "anomalia"]
receipt_st = st.builds(
    lambda kind, who, minutes, err: R(kind, {"consegna": who, "errore-esteso": err},
                                      None if minutes is None else T0 + timedelta(minutes=minutes)),
    st.sampled_from(KINDS), st.sampled_from(SENT + ["z@pec.it", None]),
    st.none() | st.integers(0, 10_000), st.none() | st.sampled_from(["e1", "e2"]))


@settings(max_examples=300, deadline=None)
@given(st.lists(receipt_st, max_size=12), st.randoms(use_true_random=False))
def test_order_independent(receipts: list[R], rnd: Any) -> None:
    shuffled = list(receipts)
    rnd.shuffle(shuffled)
    first = delivery_states(SENT, receipts)
    assert first == delivery_states(SENT, shuffled)
    assert set(first) == {s.lower() for s in SENT}
    assert all(v["state"] in STATES for v in first.values())


@settings(max_examples=200, deadline=None)
@given(st.lists(receipt_st, max_size=12), receipt_st)
def test_a_receipt_never_weakens_a_state(receipts: list[R], extra: R) -> None:
    before = delivery_states(SENT, receipts)
    after = delivery_states(SENT, [*receipts, extra])
    for who in before:
        assert STATES.index(after[who]["state"]) >= STATES.index(before[who]["state"])
