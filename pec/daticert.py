"""daticert.xml -> a plain dict, with a hardened parser.  Never raises.

A daticert is attacker-controlled input (anyone can attach a file called daticert.xml), so
it is parsed with defusedxml: no entity declarations (no "billion laughs"), no external
entities or DTD fetch. A bare `<!DOCTYPE postacert SYSTEM "daticert.dtd">` without an
internal subset is tolerated (never fetched), as some providers write one.

The dict keeps the names of the DTD of the technical rules (DM 2 November 2005):

    {"tipo": "avvenuta-consegna", "errore": "nessuno",
     "mittente": "a@pec.it", "destinatari": [{"address": "b@pec.it", "tipo": "certificato"}],
     "risposte": "a@pec.it", "oggetto": "...",
     "gestore-emittente": "ARUBA PEC S.p.A.",
     "data": {"zona": "+0100", "giorno": "14/12/2021", "ora": "14:36:08"},
     "identificativo": "opec...@pec.aruba.it", "msgid": "<...@pec.it>",
     "ricevuta": "completa", "consegna": "b@pec.it", "ricezione": None,
     "errore-esteso": None}

Missing elements are None (destinatari: []).
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any
from xml.etree.ElementTree import Element, ParseError

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring

__all__ = ["MAX_BYTES", "parse_daticert", "daticert_datetime"]

MAX_BYTES = 256 * 1024


def _text(element: Element | None) -> str | None:
    if element is None:
        return None
    return " ".join("".join(element.itertext()).split())


def parse_daticert(data: bytes) -> tuple[dict[str, Any] | None, list[str]]:
    """Parse daticert.xml bytes. Returns (dict or None, problems)."""
    if len(data) > MAX_BYTES:
        return None, [f"daticert.xml too large ({len(data)} bytes)"]
    try:
        root = fromstring(data, forbid_dtd=False, forbid_entities=True, forbid_external=True)
    except DefusedXmlException as exc:
        return None, [f"daticert.xml refused (unsafe XML: {type(exc).__name__})"]
    except (ParseError, ValueError, TypeError, RecursionError) as exc:
        return None, [f"daticert.xml is broken XML: {exc}"]
    except Exception as exc:  # never raise: anything else is a broken daticert too
        return None, [f"daticert.xml could not be read: {type(exc).__name__}: {exc}"]
    problems: list[str] = []
    if root.tag != "postacert":
        problems.append(f"daticert.xml root is <{root.tag[:40]}>, not <postacert>")
    head = root.find("intestazione")
    dati = root.find("dati")
    if head is None:
        problems.append("daticert.xml has no <intestazione>")
    if dati is None:
        problems.append("daticert.xml has no <dati>")
    head = head if head is not None else Element("intestazione")
    dati = dati if dati is not None else Element("dati")
    data_el = dati.find("data")
    ricevuta = dati.find("ricevuta")
    result: dict[str, Any] = {
        "tipo": root.get("tipo"),
        "errore": root.get("errore"),
        "mittente": _text(head.find("mittente")),
        "destinatari": [{"address": _text(d) or "", "tipo": d.get("tipo")}
                        for d in head.findall("destinatari")],
        "risposte": _text(head.find("risposte")),
        "oggetto": _text(head.find("oggetto")),
        "gestore-emittente": _text(dati.find("gestore-emittente")),
        "data": None if data_el is None else {
            "zona": data_el.get("zona"),
            "giorno": _text(data_el.find("giorno")),
            "ora": _text(data_el.find("ora"))},
        "identificativo": _text(dati.find("identificativo")),
        "msgid": _text(dati.find("msgid")),
        "ricevuta": None if ricevuta is None else ricevuta.get("tipo"),
        "consegna": _text(dati.find("consegna")),
        "ricezione": _text(dati.find("ricezione")),
        "errore-esteso": _text(dati.find("errore-esteso")),
    }
    return result, problems


def daticert_datetime(daticert: dict[str, Any] | None) -> datetime | None:
    """The <data> of a daticert as an aware datetime (giorno dd/mm/yyyy, ora, zona +hhmm)."""
    data = (daticert or {}).get("data") or {}
    try:
        local = datetime.strptime(f"{data['giorno']} {data['ora']}", "%d/%m/%Y %H:%M:%S")
        zona = str(data.get("zona") or "+0000").strip()
        sign = -1 if zona.startswith("-") else 1
        digits = zona.lstrip("+-")
        offset = timedelta(hours=int(digits[:2]), minutes=int(digits[2:4] or 0))
        return local.replace(tzinfo=timezone(sign * offset))
    except (KeyError, TypeError, ValueError):
        return None
