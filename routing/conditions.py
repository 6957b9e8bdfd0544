"""Fields a condition reads and the operators it applies: the whole vocabulary of rules.

Comparisons ignore case, accents and runs of white space (`È`, `e` and `É` are equal);
`regex` is Python syntax, case-insensitive, tried on the text as it is and without
accents. A field with several values (to, cc, attachments, a repeated header) holds when
any value does, and `negate` turns the whole condition round ("no recipient at x.it").
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from casella.models.company import LIFECYCLES
from routing.routable import RoutableMessage
from routing.rule import Condition

TEXT_OPS = ("contains", "equals", "starts-with", "regex", "exists")
ADDRESS_OPS = (*TEXT_OPS, "domain-is")
OPERATORS = ADDRESS_OPS
PEC_KINDS = ("posta-certificata", "accettazione", "non-accettazione", "presa-in-carico", "avvenuta-consegna",
             "errore-consegna", "preavviso-errore-consegna", "rilevazione-virus", "anomalia")  # pec/classify.py
_ADDRESS = re.compile(r"[^\s<>()\[\],;:\"']+@[^\s<>()\[\],;:\"']+")


@dataclass(frozen=True, slots=True)
class FieldSpec:
    ops: tuple[str, ...]
    help: str
    choices: tuple[str, ...] = ()  # the values `equals` accepts, when the field has a fixed set


FIELDS: dict[str, FieldSpec] = {
    "from": FieldSpec(ADDRESS_OPS, "sender address or display name"),
    "to": FieldSpec(ADDRESS_OPS, "any To recipient, address or display name"),
    "cc": FieldSpec(ADDRESS_OPS, "any Cc recipient, address or display name"),
    "subject": FieldSpec(TEXT_OPS, "the decoded subject"),
    "body": FieldSpec(TEXT_OPS, "the text part, else the HTML without tags (first 100 000 characters)"),
    "attachment-name": FieldSpec(TEXT_OPS, "any attachment's file name (inline parts too: daticert.xml)"),
    "attachment-type": FieldSpec(TEXT_OPS, "any attachment's content type, e.g. application/pdf"),
    "header": FieldSpec(ADDRESS_OPS, "header:<Name>, any occurrence of that top-level header (of a PEC envelope: its own)"),
    "pec-kind": FieldSpec(TEXT_OPS, "accettazione, …, posta-certificata, anomalia; empty for plain mail",
                          PEC_KINDS),
    "direction": FieldSpec(("equals",), "in (received) or out (sent)", ("in", "out")),
    "company-lifecycle": FieldSpec(("equals", "exists"), "lifecycle of the linked company", LIFECYCLES),
    "company-agent": FieldSpec(TEXT_OPS, "agent (username) of the linked company"),
    "company-category": FieldSpec(TEXT_OPS, "category of the linked company (anagrafica `category` column)"),
    "sender-unknown": FieldSpec(("equals",), "true when the anagrafica knows neither contact nor company",
                                ("true", "false")),
}
MULTI = frozenset({"to", "cc", "attachment-name", "attachment-type", "header"})


@dataclass(frozen=True, slots=True)
class ConditionOutcome:
    condition: str  # the condition as text: `subject contains "fattura"`
    matched: bool
    reason: str  # what the field held: `subject is "Fattura 12/2026"`


def fold(text: str) -> str:
    """Case-, accent- and white-space-insensitive form used by every comparison."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return " ".join("".join(c for c in decomposed if not unicodedata.combining(c)).split())


def strip_accents(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    return unicodedata.normalize("NFC", "".join(c for c in decomposed if not unicodedata.combining(c)))


def domain_matches(address: str, domain: str) -> bool:
    """mario@edilnord.it and a@mail.edilnord.it are both in edilnord.it."""
    _, at, host = address.rpartition("@")
    host = host.strip().strip(".").lower()
    want = domain.strip().strip(".").lower().lstrip("@")
    return bool(at) and bool(want) and (host == want or host.endswith("." + want))


def field_values(cond: Condition, msg: RoutableMessage) -> tuple[str, ...]:
    """The strings `cond` looks at, in the message's order."""
    base = cond.base_field
    if base in ("from", "to", "cc"):
        boxes = ((msg.sender,) if msg.sender else ()) if base == "from" else getattr(msg, base)
        if cond.op == "domain-is":
            return tuple(b.addr for b in boxes if b.addr)
        return tuple(v for b in boxes for v in (b.addr, b.name) if v)
    if base == "header":
        values = msg.header_values(cond.header)
        if cond.op == "domain-is":
            return tuple(a for v in values for a in _ADDRESS.findall(v))
        return values
    simple: dict[str, str | None] = {
        "subject": msg.subject, "body": msg.body, "pec-kind": msg.pec_kind, "direction": msg.direction,
        "sender-unknown": "true" if msg.sender_unknown else "false",
        "company-lifecycle": msg.company.lifecycle if msg.company else None,
        "company-agent": msg.company.agent if msg.company else None,
        "company-category": msg.company.category if msg.company else None,
    }
    if base == "attachment-name":
        return tuple(a.filename for a in msg.attachments if a.filename)
    if base == "attachment-type":
        return tuple(a.content_type for a in msg.attachments if a.content_type)
    value = simple[base]
    return (value,) if value else ()


def _holds(cond: Condition, value: str) -> bool:
    if cond.op == "exists":
        return True
    if cond.op == "regex":
        plain = strip_accents(value)
        return any(p.search(value) or (plain != value and p.search(plain)) for p in cond.patterns)
    if cond.op == "domain-is":
        return any(domain_matches(value, v) for v in cond.values)
    have = fold(value)
    if cond.op == "contains":
        return any(fold(v) in have for v in cond.values)
    if cond.op == "equals":
        return any(fold(v) == have for v in cond.values)
    if cond.op == "starts-with":
        return any(have.startswith(fold(v)) for v in cond.values)
    raise AssertionError(f"operator {cond.op!r} passed validation")  # validate.py refuses it


def _show(value: str, limit: int = 60) -> str:
    value = " ".join(value.split())
    return f'"{value[:limit]}…"' if len(value) > limit else f'"{value}"'


def _describe_values(cond: Condition, values: tuple[str, ...]) -> str:
    base = cond.base_field
    label = cond.field
    if not values:
        if base.startswith("company-"):
            return "no linked company" if base == "company-lifecycle" else f"{label} is not set"
        if base == "header":
            return f"no {cond.header} header"
        if base.startswith("attachment-"):
            return "no attachment"
        return f"{label} is empty"
    shown = ", ".join(_show(v) for v in values[:4]) + (f" and {len(values) - 4} more" if len(values) > 4 else "")
    return f"{label} is {shown}"


def check(cond: Condition, msg: RoutableMessage) -> ConditionOutcome:
    """Evaluate one condition; never raises for a validated condition."""
    values = field_values(cond, msg)
    hit = next((v for v in values if _holds(cond, v)), None)
    if hit is not None:
        reason = f"{cond.field} {'includes' if cond.base_field in MULTI else 'is'} {_show(hit)}"
    else:
        reason = _describe_values(cond, values)
    return ConditionOutcome(cond.describe(), (hit is not None) != cond.negate, reason)
