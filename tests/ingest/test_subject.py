"""ingest.subject: the subject key of the thread fallback."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ingest.subject import is_reply_subject, normalize_subject

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("subject, key", [
    ("Re: Fattura n. 12", "fattura n. 12"),
    ("RE: RE: re:Fattura n. 12", "fattura n. 12"),
    ("R: R: R: I: FR-selca LA selcaE", "fr-selca la selcae"),  # Outlook in Italian
    ("Rif: Ordine 2023/45", "ordine 2023/45"),
    ("Ris: Preventivo", "preventivo"),
    ("I: Inoltro: Inoltrato: Verbale", "verbale"),
    ("Fwd: Fw: FW: Meeting", "meeting"),
    ("AW: WG: Angebot", "angebot"),  # German
    ("TR : RE : Facture", "facture"),  # French, space before the colon
    ("Réf. : dossier 7", "dossier 7"),
    ("SV: VS: Hej", "hej"),  # Scandinavian
    ("Antw: Doorst: Offerte", "offerte"),  # Dutch
    ("Odp: PD: Faktura", "faktura"),  # Polish
    ("RV: Res: ENC: Orçamento", "orçamento"),  # Spanish / Portuguese
    ("回复：转发：会议", "会议"),  # full-width colon
    ("Re[2]: Re(3): Re^4: Budget", "budget"),
    ("[Fedora] Re: [Fedora-devel] Re: rawhide report", "rawhide report"),
    ("RE: [EXT] Fwd: Riunione   del\t lunedì", "riunione del lunedì"),
    ("Ordine  URGENTE", "ordine urgente"),
    ("MAßE", "masse"),  # casefold, not lower
    ("pine forward (fwd)", "pine forward"),
    ("Re:", ""),
    ("", ""),
])
def test_normalize_subject(subject: str, key: str) -> None:
    assert normalize_subject(subject) == key


@pytest.mark.parametrize("subject", [
    "R&D: budget",  # not a prefix: "R" must be followed by the colon
    "Resoconto: riunione",
    "ISTAT: dati 2023",
    "Ordine n. 5: consegna",
    "Re-send: password",
    "Ricevuta di consegna: Fattura",
    "Fatture [gennaio]",  # a tag that is not a prefix stays
])
def test_normalize_keeps_words_that_only_look_like_prefixes(subject: str) -> None:
    assert normalize_subject(subject) == " ".join(subject.split()).casefold()


@pytest.mark.parametrize("subject, reply", [
    ("Re: x", True), ("RE : x", True), ("R: x", True), ("Rif: x", True), ("AW: x", True),
    ("SV: x", True), ("Antw: x", True), ("Re[2]: x", True), ("[Fedora] Re: x", True),
    ("回复：x", True), ("Re: Fwd: x", True),
    ("Fwd: x", False), ("I: x", False), ("WG: x", False), ("TR: x", False),
    ("Fwd: Re: x", False),  # a forward of a reply starts a new conversation
    ("x", False), ("", False), ("Re", False), ("Resoconto: x", False), ("[Fedora] x", False),
])
def test_is_reply_subject(subject: str, reply: bool) -> None:
    assert is_reply_subject(subject) is reply


@settings(max_examples=300, deadline=None, database=None)
@given(st.text(max_size=200))
def test_total_and_idempotent(subject: str) -> None:
    key = normalize_subject(subject)
    assert isinstance(is_reply_subject(subject), bool)
    assert key == key.strip() and "  " not in key
    assert normalize_subject(key) == key  # idempotent


@settings(max_examples=300, deadline=None, database=None)
@given(st.lists(st.sampled_from(["Re:", "R:", "Fwd:", "I:", "AW:", "[list]", "RE :", "Re[2]:"]),
                max_size=6), st.text(st.characters(whitelist_categories=("L", "N")), min_size=1,
                                     max_size=30))
def test_any_run_of_prefixes_is_stripped(prefixes: list[str], rest: str) -> None:
    subject = " ".join(prefixes + [rest])
    assert normalize_subject(subject) == normalize_subject(rest)
