"""The real PEC samples (tests/corpus/pec, see SOURCES.md): classification and signatures."""

from __future__ import annotations

from pathlib import Path

import pytest

from ingest.parse import parse_message
from pec.classify import classify
from pec.signature import verify_signature
from pec.trust import SYSTEM_BUNDLE, TrustStore

pytestmark = pytest.mark.unit

CORPUS = Path(__file__).resolve().parent.parent / "corpus" / "pec"
FATTURA = "1542123565.921546936035156.464602125997431-openerp-8-fatturapa.attachment.out@elbati-Vostro-3550"
PRIVATE = "1415985992.182905912399292.346704098667155-openerp-private@elbati-Vostro-3550"

# file: (kind, form, refers_to, signature status with the system CA bundle, per SOURCES.md)
EXPECTED = {
    "javapecparser_accettazione.eml":
        ("accettazione", None, "SN05IE$951DEC16C1CFD3E4FD8FF1B1D24A99AE@fakepec.it", "missing"),
    "javapecparser_avviso_mancata_consegna.eml":
        ("errore-consegna", None, "SN05IE$951DEC16C1CFD3E4FD8FF1B1D24A99AE@pec.it", "missing"),
    "oca_fatturapa_accettazione.eml": ("accettazione", None, FATTURA, "valid"),
    "oca_fatturapa_avvenuta_consegna_completa.eml": ("avvenuta-consegna", "completa", FATTURA, "valid"),
    "oca_fatturapa_busta_trasporto_sdi_ricevuta_consegna.eml":
        ("posta-certificata", "breve", "5168561142842364.1542124052746@pec.fatturapa.it", "invalid"),
    "oca_fatturapa_busta_trasporto_sdi_notifica_mancata_consegna.eml":
        ("posta-certificata", "breve", "29868973923542086.1546634040973@pec.fatturapa.it", "invalid"),
    "oca_fatturapa_busta_trasporto_sdi_invio_file.eml":
        ("posta-certificata", "breve", "4163125586355393.1544268377979@pec.fatturapa.it", "invalid"),
    "oca_fatturapa_busta_trasporto_sdi_invio_file_base64.eml":
        ("posta-certificata", "breve", "4163125586355393.1544268377979@pec.fatturapa.it", "invalid"),
    "oca_pec_messages_busta_trasporto_completa.eml":
        ("posta-certificata", "completa", "NEOEQO$8B558E13C0664DE7004C1EFB790D1A09@pec.it", "valid"),
    "oca_pec_messages_busta_trasporto.eml":
        ("posta-certificata", "completa",
         "1417097534.920250892639160.712427135196036-openerp-private@master", "valid"),
    "oca_pec_messages_accettazione.eml": ("accettazione", None, PRIVATE, "valid"),
    "oca_pec_messages_avvenuta_consegna.eml": ("avvenuta-consegna", "completa", PRIVATE, "valid"),
    "seedoo_accettazione.eml": ("accettazione", None, "R43XS7$8A2B712B1EC45527B69E94AB60B8CA07@pec.it", "valid"),
    "seedoo_avvenuta_consegna.eml":
        ("avvenuta-consegna", "completa", "R43XS7$8A2B712B1EC45527B69E94AB60B8CA07@pec.it", "valid"),
    "seedoo_avviso_mancata_consegna.eml":
        ("errore-consegna", None, "R43YMM$D7F793DD43B6B427D6C13182BD067782@pec.it", "valid"),
}


def test_every_sample_is_listed() -> None:
    assert sorted(p.name for p in CORPUS.glob("*.eml")) == sorted(EXPECTED)


def _classify(name: str, trust: TrustStore) -> object:
    raw = (CORPUS / name).read_bytes()
    return classify(raw, parse_message(raw), trust)


@pytest.fixture
def system_trust(tmp_path: Path) -> TrustStore:
    if not SYSTEM_BUNDLE.is_file():
        pytest.fail("Debian's ca-certificates bundle is missing (apt-get install ca-certificates)")
    return TrustStore(tmp_path / "pec-trust.pem")


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_sample_classified_as_sources_says(name: str, system_trust: TrustStore) -> None:
    kind, form, refers_to, status = EXPECTED[name]
    info = _classify(name, system_trust)
    assert info is not None
    assert (info.kind, info.receipt_form, info.refers_to_msgid) == (kind, form, refers_to)
    assert info.signature is not None and info.signature.status == status, info.signature
    if status != "missing":  # the signer and the time are shown with the message
        assert info.signature.signer_email.startswith("posta-certificata@")
        assert info.signature.signing_time is not None
        assert info.signature.not_before <= info.signature.signing_time <= info.signature.not_after


@pytest.mark.parametrize("name", [n for n, e in EXPECTED.items() if e[3] == "valid"])
def test_intact_samples_are_untrusted_without_any_trust(name: str, tmp_path: Path) -> None:
    info = _classify(name, TrustStore(tmp_path / "empty.pem", system_bundle=None))
    assert info.signature.status == "untrusted"


def test_valid_old_sample_still_valid_after_the_certificate_expired(system_trust: TrustStore) -> None:
    raw = (CORPUS / "oca_pec_messages_accettazione.eml").read_bytes()
    check = verify_signature(raw, system_trust)
    assert check.status == "valid"
    assert check.not_after.year < 2026  # verified at the 2014 signing time, not today


def test_envelope_real_message_is_postacert_byte_exact(system_trust: TrustStore) -> None:
    raw = (CORPUS / "oca_pec_messages_busta_trasporto_completa.eml").read_bytes()
    info = classify(raw, parse_message(raw), system_trust)
    assert info.postacert is not None and info.postacert in raw  # 7bit part: exact bytes
    assert info.postacert.startswith(b"Received: from pec.it")
    assert info.sender == "thinkstudio@pec.it"  # not posta-certificata@pec.aruba.it
    inner = parse_message(info.postacert)
    assert inner.sender.addr == "thinkstudio@pec.it"
    assert info.problems == ()


def test_base64_envelope_postacert_is_decoded(system_trust: TrustStore) -> None:
    info = _classify("oca_fatturapa_busta_trasporto_sdi_invio_file_base64.eml", system_trust)
    assert parse_message(info.postacert).subject


def test_sdi_notifica_without_daticert_is_flagged_not_dropped(system_trust: TrustStore) -> None:
    info = _classify("oca_fatturapa_busta_trasporto_sdi_notifica_mancata_consegna.eml", system_trust)
    assert info.kind == "posta-certificata"
    assert "missing daticert.xml" in info.problems
    assert info.sender == "sdi48@pec.fatturapa.it"  # from postacert.eml, no daticert


def test_errore_consegna_daticert_fields(system_trust: TrustStore) -> None:
    info = _classify("seedoo_avviso_mancata_consegna.eml", system_trust)
    d = info.daticert
    assert d["tipo"] == "errore-consegna" and d["errore"] == "no-dest"
    assert d["consegna"] == "provaprova@pec.flosslab.it"
    assert d["errore-esteso"] == "5.1.1 - Aruba Pec S.p.A. - indirizzo non valido"
    assert d["destinatari"] == [{"address": "provaprova@pec.flosslab.it", "tipo": "certificato"}]
    assert d["data"] == {"zona": "+0100", "giorno": "14/12/2021", "ora": "14:54:32"}
    assert d["gestore-emittente"] == "ARUBA PEC S.p.A."
    assert info.at.isoformat() == "2021-12-14T14:54:32+01:00"


def test_anonymised_sample_reference_mismatch_is_a_problem(system_trust: TrustStore) -> None:
    info = _classify("javapecparser_avviso_mancata_consegna.eml", system_trust)
    assert any("differs from daticert msgid" in p for p in info.problems)


def test_digest_fail_detail_names_the_reason(system_trust: TrustStore) -> None:
    raw = (CORPUS / "oca_fatturapa_busta_trasporto_sdi_invio_file.eml").read_bytes()
    assert "content verify error" in verify_signature(raw, system_trust).detail  # messageDigest
