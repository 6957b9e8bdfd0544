"""Malformed PEC: classified with problems, never dropped, never raising."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import pec_testkit as kit
from ingest.parse import parse_message
from pec.classify import classify
from pec.trust import TrustStore

pytestmark = pytest.mark.unit

CORPUS = Path(__file__).resolve().parent.parent / "corpus" / "pec"


@pytest.fixture
def trust(tmp_path: Path) -> TrustStore:
    store = TrustStore(tmp_path / "pec-trust.pem", system_bundle=None)
    store.add_certificates(kit.root().pem)
    return store


def envelope_with(daticert: bytes | None, postacert: bytes | None, signed: bool = True) -> bytes:
    content = kit.signed_content(daticert=daticert, postacert=postacert)
    return kit.pec_message({"X-Trasporto": "posta-certificata",
                            "X-Riferimento-Message-ID": "<orig-1@pec.mittente.test>"},
                           content, kit.provider() if signed else None)


def run(raw: bytes, trust: TrustStore):  # noqa: ANN201
    info = classify(raw, parse_message(raw), trust)
    assert info is not None
    return info


def test_no_daticert(trust: TrustStore) -> None:
    info = run(envelope_with(None, kit.POSTACERT), trust)
    assert info.kind == "posta-certificata" and "missing daticert.xml" in info.problems
    assert info.postacert == kit.POSTACERT and info.signature.status == "valid"


def test_broken_xml(trust: TrustStore) -> None:
    info = run(envelope_with(b"<postacert tipo='posta-certificata'><dati>", kit.POSTACERT), trust)
    assert info.daticert is None and any("broken XML" in p for p in info.problems)
    assert info.refers_to_msgid == "orig-1@pec.mittente.test"


def test_xml_bomb(trust: TrustStore) -> None:
    bomb = (b'<?xml version="1.0"?><!DOCTYPE postacert [<!ENTITY a "aaaaaaaaaa">'
            + b"".join(b'<!ENTITY %s "%s">' % (bytes([98 + i]), b"&%s;" % bytes([97 + i]) * 10)
                       for i in range(8))
            + b']><postacert tipo="posta-certificata"><intestazione><oggetto>&i;</oggetto>'
              b"</intestazione></postacert>")
    info = run(envelope_with(bomb, kit.POSTACERT), trust)
    assert info.daticert is None and any("refused" in p for p in info.problems)


def test_missing_postacert(trust: TrustStore) -> None:
    info = run(envelope_with(kit.daticert_xml("posta-certificata"), None), trust)
    assert info.postacert is None and any("missing postacert.eml" in p for p in info.problems)


def test_unsigned_envelope(trust: TrustStore) -> None:
    info = run(envelope_with(kit.daticert_xml("posta-certificata"), kit.POSTACERT, signed=False), trust)
    assert info.signature.status == "missing" and info.kind == "posta-certificata"


def test_header_and_daticert_disagree(trust: TrustStore) -> None:
    content = kit.signed_content(daticert=kit.daticert_xml("avvenuta-consegna"), postacert=None)
    info = run(kit.pec_message({"X-Ricevuta": "accettazione"}, content, kit.provider()), trust)
    assert info.kind == "accettazione"  # the provider's header decides, the conflict is shown
    assert any("daticert.xml says avvenuta-consegna" in p for p in info.problems)


def test_unknown_header_value_is_still_flagged_as_pec(trust: TrustStore) -> None:
    content = kit.signed_content(daticert=None, postacert=None)
    info = run(kit.pec_message({"X-Ricevuta": "consegna-strana"}, content, kit.provider()), trust)
    assert info.problems and "unknown X-Ricevuta" in info.problems[0]


def test_signed_daticert_without_headers_uses_daticert(trust: TrustStore) -> None:
    content = kit.signed_content(daticert=kit.daticert_xml("accettazione"), postacert=None)
    info = run(kit.pec_message({}, content, kit.provider()), trust)
    assert info.kind == "accettazione" and any("kind taken from daticert" in p for p in info.problems)
    # the same from a signer outside the trust store is ordinary (S/MIME) mail
    forged = kit.pec_message({}, content, kit.provider("Falsario", issuer="Other Root"))
    assert classify(forged, parse_message(forged), trust) is None
    assert classify(forged, parse_message(forged), trust, verify=False) is None


def test_truncated_envelope(trust: TrustStore) -> None:
    raw = kit.envelope()
    for cut in (len(raw) // 3, len(raw) // 2, len(raw) - 40):
        info = run(raw[:cut], trust)
        assert info.kind == "posta-certificata"
        assert info.signature.status in ("missing", "invalid")


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=3000))
def test_random_bytes_never_raise(data: bytes) -> None:
    trust = TrustStore(Path("/nonexistent/pec-trust.pem"), system_bundle=None)
    classify(data, parse_message(data), trust)
    classify(b"X-Ricevuta: accettazione\r\n" + data, parse_message(b"X-Ricevuta: accettazione\r\n" + data), trust)


SAMPLE = (CORPUS / "seedoo_avviso_mancata_consegna.eml").read_bytes()


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, len(SAMPLE) - 1), st.binary(max_size=8)), max_size=4))
def test_mutated_real_receipt_never_raises(edits: list[tuple[int, bytes]]) -> None:
    raw = SAMPLE
    for pos, junk in edits:
        raw = raw[:pos] + junk + raw[pos + len(junk):]
    trust = TrustStore(Path("/nonexistent/pec-trust.pem"), system_bundle=None)
    info = classify(raw, parse_message(raw), trust)
    if info is not None and info.signature is not None:
        assert info.signature.status in ("valid", "untrusted", "invalid", "missing", "error")


def test_provider_security_check_failure_is_a_problem(trust: TrustStore) -> None:
    content = kit.signed_content(daticert=kit.daticert_xml("posta-certificata"), postacert=kit.POSTACERT)
    raw = kit.pec_message({"X-Trasporto": "posta-certificata", "X-VerificaSicurezza": "errore"},
                          content, kit.provider())
    info = run(raw, trust)
    assert info.kind == "posta-certificata" and any("X-VerificaSicurezza" in p for p in info.problems)
