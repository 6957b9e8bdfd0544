"""daticert.xml parsing: every field, and hostile XML refused without raising."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pec.daticert import MAX_BYTES, daticert_datetime, parse_daticert

pytestmark = pytest.mark.unit

FULL = """<?xml version="1.0" encoding="ISO-8859-1"?>
<postacert tipo="presa-in-carico" errore="nessuno">
  <intestazione>
    <mittente>a@pec.a.it</mittente>
    <destinatari tipo="certificato">b@pec.b.it</destinatari>
    <destinatari tipo="esterno">c@gmail.com</destinatari>
    <risposte>reply@pec.a.it</risposte>
    <oggetto>Citt\xe0 &amp; dintorni</oggetto>
  </intestazione>
  <dati>
    <gestore-emittente>Gestore B</gestore-emittente>
    <data zona="-0230"><giorno>01/02/2024</giorno><ora>09:05:07</ora></data>
    <identificativo>opec.9@pec.b.it</identificativo>
    <msgid>&lt;m1@pec.a.it&gt;</msgid>
    <ricevuta tipo="sintetica"/>
    <consegna>b@pec.b.it</consegna>
    <ricezione>b@pec.b.it</ricezione>
    <errore-esteso>4.4.7 timeout</errore-esteso>
  </dati>
</postacert>
""".encode("iso-8859-1")


def test_every_field() -> None:
    d, problems = parse_daticert(FULL)
    assert problems == []
    assert d == {
        "tipo": "presa-in-carico", "errore": "nessuno", "mittente": "a@pec.a.it",
        "destinatari": [{"address": "b@pec.b.it", "tipo": "certificato"},
                        {"address": "c@gmail.com", "tipo": "esterno"}],
        "risposte": "reply@pec.a.it", "oggetto": "Città & dintorni",
        "gestore-emittente": "Gestore B",
        "data": {"zona": "-0230", "giorno": "01/02/2024", "ora": "09:05:07"},
        "identificativo": "opec.9@pec.b.it", "msgid": "<m1@pec.a.it>", "ricevuta": "sintetica",
        "consegna": "b@pec.b.it", "ricezione": "b@pec.b.it", "errore-esteso": "4.4.7 timeout"}
    assert daticert_datetime(d).isoformat() == "2024-02-01T09:05:07-02:30"


BOMB = b"""<?xml version="1.0"?>
<!DOCTYPE postacert [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">
<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;"><!ENTITY d "&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;">]>
<postacert tipo="accettazione"><intestazione><oggetto>&d;</oggetto></intestazione></postacert>"""
EXTERNAL = b"""<?xml version="1.0"?>
<!DOCTYPE postacert [<!ENTITY x SYSTEM "file:///etc/passwd">]>
<postacert tipo="accettazione"><intestazione><oggetto>&x;</oggetto></intestazione></postacert>"""
REMOTE_DTD = b"""<?xml version="1.0"?>
<!DOCTYPE postacert SYSTEM "http://192.0.2.1/daticert.dtd">
<postacert tipo="accettazione"><intestazione/><dati/></postacert>"""


@pytest.mark.parametrize("xml", [BOMB, EXTERNAL], ids=["billion-laughs", "external-entity"])
def test_entities_refused(xml: bytes) -> None:
    d, problems = parse_daticert(xml)
    assert d is None and "refused" in problems[0]


def test_doctype_without_subset_is_tolerated_and_never_fetched() -> None:
    d, problems = parse_daticert(REMOTE_DTD)  # 192.0.2.1 is TEST-NET: a fetch would hang
    assert d is not None and d["tipo"] == "accettazione"


@pytest.mark.parametrize("xml", [b"", b"<postacert", b"\xff\xfe\x00garbage", b"<a><b></a>"])
def test_broken_xml_is_a_problem(xml: bytes) -> None:
    d, problems = parse_daticert(xml)
    assert d is None and problems and "broken XML" in problems[0]


def test_too_large_and_wrong_root() -> None:
    assert parse_daticert(b" " * (MAX_BYTES + 1))[0] is None
    d, problems = parse_daticert(b"<other/>")
    assert d is not None and any("not <postacert>" in p for p in problems)
    assert daticert_datetime(d) is None


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2000))
def test_random_bytes_never_raise(data: bytes) -> None:
    d, problems = parse_daticert(data)
    assert d is not None or problems
