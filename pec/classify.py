"""Which PEC message is this?  `classify(raw, parsed) -> PecInfo | None`.  Never raises.

Only the top-level headers count (`X-Trasporto`, `X-Ricevuta`, `X-TipoRicevuta`,
`X-Riferimento-Message-ID`, `X-VerificaSicurezza`): the provider writes them on what it delivers, so a "receipt"
forged inside postacert.eml (a third party's message) stays an ordinary certified message.
The daticert.xml and postacert.eml are looked for in the provider's own MIME parts, never
inside a message/rfc822 part. The subject is never read (it is localised and edited).

A malformed PEC (no daticert, broken XML, no postacert) still gets a PecInfo, with its
problems listed: it is stored, flagged and shown, never dropped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from email.utils import getaddresses
from typing import Any

from ingest.parsed import ParsedMessage
from pec.daticert import daticert_datetime, parse_daticert
from pec.mime import Entity, parse_entity, walk
from pec.signature import SignatureCheck, verify_signature
from pec.trust import TrustStore

__all__ = ["KINDS", "RECEIPT_KINDS", "FORMS", "PecInfo", "classify"]

RECEIPT_KINDS = ("accettazione", "non-accettazione", "presa-in-carico", "avvenuta-consegna",
                 "errore-consegna", "preavviso-errore-consegna", "rilevazione-virus")
KINDS = ("posta-certificata", *RECEIPT_KINDS, "anomalia")
FORMS = ("completa", "breve", "sintetica")
_TRASPORTO = {"posta-certificata": "posta-certificata", "errore": "anomalia"}
_DATICERT_TIPO = {**{k: k for k in KINDS}, "errore": "anomalia"}


@dataclass(frozen=True)
class PecInfo:
    """What Casella knows about one PEC message (envelope, receipt or anomaly)."""

    kind: str  # one of KINDS
    receipt_form: str | None  # completa | breve | sintetica | None
    refers_to_msgid: str | None  # the original's Message-ID, without angle brackets
    daticert: dict[str, Any] | None = field(repr=False)  # pec.daticert.parse_daticert
    postacert: bytes | None = field(repr=False)  # inner postacert.eml, transfer-decoded, exact
    signature: SignatureCheck | None  # None only when classify(verify=False)
    problems: tuple[str, ...] = ()
    sender: str | None = None  # the real sender (daticert mittente, else postacert From)
    at: datetime | None = None  # daticert <data>, else the Date header

    @property
    def is_receipt(self) -> bool:
        return self.kind in RECEIPT_KINDS

    def as_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "receipt_form": self.receipt_form,
                "refers_to_msgid": self.refers_to_msgid, "daticert": self.daticert,
                "postacert_bytes": None if self.postacert is None else len(self.postacert),
                "signature": self.signature.as_json() if self.signature else None,
                "problems": list(self.problems), "sender": self.sender,
                "at": self.at.isoformat() if self.at else None}


def _header(parsed: ParsedMessage, name: str) -> str | None:
    for key, value in parsed.headers:
        if key.lower() == name:
            return " ".join(str(value).split())
    return None


def _strip_msgid(value: str | None) -> str | None:
    value = (value or "").strip().strip("<>").strip()
    return value or None


def _find_daticert(parts: list[Entity]) -> Entity | None:
    named = [p for p in parts if p.filename == "daticert.xml"]
    if named:
        return named[0]
    for part in parts:
        xml = part.content_type in ("application/xml", "text/xml")
        if xml and b"<postacert" in part.decoded()[:4096]:
            return part
    return None


def _find_postacert(parts: list[Entity]) -> Entity | None:
    messages = [p for p in parts if p.content_type in ("message/rfc822", "message/global")]
    named = [p for p in messages if p.filename == "postacert.eml"]
    return (named or messages or [None])[0]


def _kind_from_headers(parsed: ParsedMessage, problems: list[str]) -> str | None:
    trasporto = (_header(parsed, "x-trasporto") or "").lower()
    ricevuta = (_header(parsed, "x-ricevuta") or "").lower()
    if trasporto and ricevuta:
        problems.append(f"both X-Trasporto ({trasporto}) and X-Ricevuta ({ricevuta}) present")
    if ricevuta:
        if ricevuta in RECEIPT_KINDS:
            return ricevuta
        problems.append(f"unknown X-Ricevuta value {ricevuta[:60]!r}")
    if trasporto:
        if trasporto in _TRASPORTO:
            return _TRASPORTO[trasporto]
        problems.append(f"unknown X-Trasporto value {trasporto[:60]!r}")
    return None


def classify(raw: bytes, parsed: ParsedMessage, trust: TrustStore | None = None, *,
             verify: bool = True) -> PecInfo | None:
    """Classify one message; None for ordinary mail. `trust` defaults to the settings' store.

    Without X-Trasporto/X-Ricevuta, a multipart/signed message whose daticert.xml names a
    kind is a PEC only when its signature is `valid` (a trusted provider signed it).
    Set verify=False to skip the signature check (signature is then None)."""
    problems: list[str] = []
    from_daticert_only = False
    try:
        kind = _kind_from_headers(parsed, problems)
        has_pec_headers = kind is not None or bool(problems)
        top = parse_entity(raw)
        parts = walk(top)
        daticert_part = _find_daticert(parts)
        daticert: dict[str, Any] | None = None
        if daticert_part is not None:
            daticert, xml_problems = parse_daticert(daticert_part.decoded())
            problems.extend(xml_problems)
        tipo = _DATICERT_TIPO.get(str((daticert or {}).get("tipo") or "").lower())
        if kind is None:
            if tipo is None or top.content_type != "multipart/signed":
                if not has_pec_headers:
                    return None
                kind = tipo or "anomalia"
                problems.append(f"kind could not be read from the headers; recorded as {kind}")
            else:  # only believed below if a trusted provider signed it
                kind, from_daticert_only = tipo, not has_pec_headers
                problems.append("no X-Trasporto/X-Ricevuta header: kind taken from daticert.xml")
        elif tipo is not None and tipo != kind:
            problems.append(f"daticert.xml says {tipo}, the headers say {kind}")
        if daticert_part is None and kind != "anomalia":
            problems.append("missing daticert.xml")

        postacert_part = _find_postacert(parts)
        postacert = postacert_part.decoded() if postacert_part is not None else None
        if kind == "posta-certificata" and postacert is None:
            problems.append("missing postacert.eml (the certified message)")
        if kind == "anomalia" and postacert is None:
            problems.append("anomaly envelope without the original message")

        form = (_header(parsed, "x-tiporicevuta") or "").lower() or None
        if form is not None and form not in FORMS:
            problems.append(f"unknown X-TipoRicevuta value {form[:60]!r}")
            form = None
        form = form or ((daticert or {}).get("ricevuta") or "").lower() or None
        form = form if form in FORMS else None

        security = (_header(parsed, "x-verificasicurezza") or "").lower()
        if security and security != "ok":
            problems.append(f"the provider reports X-VerificaSicurezza: {security[:40]} "
                            "(its security check of this message failed)")

        header_ref = _strip_msgid(_header(parsed, "x-riferimento-message-id"))
        daticert_ref = _strip_msgid((daticert or {}).get("msgid"))
        if header_ref and daticert_ref and header_ref != daticert_ref:
            problems.append(f"X-Riferimento-Message-ID <{header_ref}> differs from "
                            f"daticert msgid <{daticert_ref}>")

        sender = (daticert or {}).get("mittente") or None
        if sender is None and postacert:
            inner = parse_entity(postacert).headers
            found = [addr for _n, addr in getaddresses([str(inner.get("from", ""))]) if addr]
            sender = found[0].lower() if found else None

        signature = None
        if verify:
            store = trust if trust is not None else TrustStore.from_settings()
            signature = verify_signature(raw, store, fallback_time=parsed.date)
        if from_daticert_only and (signature is None or signature.status != "valid"):
            return None  # anyone can attach a daticert.xml to a signed mail: not a PEC
        return PecInfo(kind=kind, receipt_form=form, refers_to_msgid=header_ref or daticert_ref,
                       daticert=daticert, postacert=postacert, signature=signature,
                       problems=tuple(problems), sender=sender,
                       at=daticert_datetime(daticert) or parsed.date)
    except Exception as exc:  # never raise; a PEC header was seen, so keep it flagged
        kind = _kind_from_headers(parsed, [])
        if kind is None:
            return None
        return PecInfo(kind=kind, receipt_form=None, refers_to_msgid=None, daticert=None,
                       postacert=None, signature=None,
                       problems=(*problems, f"classification failed: {type(exc).__name__}: {exc}"))
