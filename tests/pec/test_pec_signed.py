"""PEC envelopes and receipts built and signed in the test run by a test CA."""

from __future__ import annotations

import subprocess
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, pkcs7

import pec_testkit as kit
from ingest.parse import parse_message
from pec.classify import RECEIPT_KINDS, classify
from pec.receipts import delivery_states
from pec.signature import verify_signature
from pec.trust import TrustStore

pytestmark = pytest.mark.unit
UTC = timezone.utc


@pytest.fixture
def trust(tmp_path: Path) -> TrustStore:
    store = TrustStore(tmp_path / "pec-trust.pem", system_bundle=None)
    assert store.add_certificates(kit.root().pem) == 1
    return store


def check(raw: bytes, trust: TrustStore):  # noqa: ANN201
    info = classify(raw, parse_message(raw), trust)
    assert info is not None
    return info


def test_envelope_valid_real_message_is_postacert(trust: TrustStore) -> None:
    raw = kit.envelope()
    info = check(raw, trust)
    assert (info.kind, info.receipt_form, info.refers_to_msgid) == \
        ("posta-certificata", "completa", "orig-1@pec.mittente.test")
    assert info.postacert == kit.POSTACERT and info.postacert in raw
    assert info.sender == "mittente@pec.mittente.test"
    assert info.problems == ()
    sig = info.signature
    assert sig.status == "valid", sig
    assert sig.signer_email == "posta-certificata@pec.test"
    assert sig.signing_time == datetime(2021, 12, 14, 13, 36, 8, tzinfo=UTC)
    assert "Posta Certificata TEST" in sig.signer_subject
    assert (sig.not_before.year, sig.not_after.year) == (2020, 2023)


FORMS = {"avvenuta-consegna": ["completa", "breve", "sintetica"]}


@pytest.mark.parametrize("kind,form", [(k, f) for k in RECEIPT_KINDS for f in FORMS.get(k, [None])])
def test_every_receipt_type_and_form(kind: str, form: str | None, trust: TrustStore) -> None:
    raw = kit.receipt(kind, form=form, consegna="dest@pec.dest.test",
                      with_postacert=form == "completa")
    info = check(raw, trust)
    assert (info.kind, info.receipt_form) == (kind, form)
    assert info.is_receipt and info.refers_to_msgid == "orig-1@pec.mittente.test"
    assert info.signature.status == "valid"
    assert info.problems == ()
    assert (info.postacert == kit.POSTACERT) == (form == "completa")


def test_anomaly_envelope(trust: TrustStore) -> None:
    content = kit.signed_content(daticert=None, postacert=kit.POSTACERT)
    raw = kit.pec_message({"X-Trasporto": "errore", "Subject": "ANOMALIA MESSAGGIO: Fattura 42"},
                          content, kit.provider())
    info = check(raw, trust)
    assert info.kind == "anomalia" and info.postacert == kit.POSTACERT
    assert info.problems == () and info.signature.status == "valid"


def test_subject_alone_never_classifies(trust: TrustStore) -> None:
    raw = (b"From: a@b.it\r\nTo: c@d.it\r\nSubject: POSTA CERTIFICATA: ACCETTAZIONE: ciao\r\n"
           b"\r\nciao\r\n")
    assert classify(raw, parse_message(raw), trust) is None


def test_untrusted_signer(trust: TrustStore) -> None:
    other = kit.provider("Posta Certificata ALTRO", issuer="Other Root")
    info = check(kit.envelope(other), trust)
    assert info.signature.status == "untrusted"
    assert info.signature.signer_subject.startswith("CN=Posta Certificata ALTRO")


def test_trusting_the_provider_leaf_directly(tmp_path: Path) -> None:
    store = TrustStore(tmp_path / "t.pem", system_bundle=None)
    store.add_certificates(kit.provider().pem)
    assert verify_signature(kit.envelope(), store).status == "valid"


@pytest.mark.parametrize("where", [b"Gentile", b"in allegato", b"Gestore TEST"])
def test_tampered_content_is_invalid(where: bytes, trust: TrustStore) -> None:
    raw = kit.envelope()
    if where == b"Gestore TEST":  # inside the base64 daticert: change one base64 character
        start = raw.index(b"filename=\"daticert.xml\"")
        pos = raw.index(b"\r\n\r\n", start) + 10
    else:
        pos = raw.index(where) + 1
    tampered = raw[:pos] + bytes([raw[pos] ^ 0x01]) + raw[pos + 1:]
    check_ = verify_signature(tampered, trust)
    assert check_.status == "invalid" and "content altered" in check_.detail


def test_broken_signature_bytes_are_invalid(trust: TrustStore) -> None:
    raw = kit.envelope()
    start = raw.index(b"smime.p7s\"\r\n\r\n") + 200
    assert verify_signature(raw[:start] + b"AAAA" + raw[start + 4:], trust).status == "invalid"


def test_old_pec_stays_valid_after_the_certificate_expired(trust: TrustStore) -> None:
    signer = kit.provider()  # valid 2020..2023; today is later
    assert signer.cert.not_valid_after_utc < datetime.now(UTC)
    assert check(kit.envelope(signer), trust).signature.status == "valid"


def test_signed_after_the_signer_expired_is_invalid(trust: TrustStore) -> None:
    signer = kit.provider("Posta Certificata SCADUTA", not_before=datetime(2010, 1, 1, tzinfo=UTC),
                          not_after=datetime(2013, 1, 1, tzinfo=UTC))
    info = check(kit.envelope(signer, signing_time=datetime(2021, 12, 14, tzinfo=UTC)), trust)
    assert info.signature.status == "invalid"
    assert "not valid at signing time" in info.signature.detail


def test_signing_time_falls_back_to_the_date_header(trust: TrustStore) -> None:
    # cryptography's builder signs "now" with a current certificate, the real-world way
    signer = kit.provider("Posta Certificata ORA", not_before=datetime.now(UTC) - timedelta(days=1),
                          not_after=datetime.now(UTC) + timedelta(days=365))
    content = kit.signed_content(daticert=kit.daticert_xml("accettazione"), postacert=None)
    der = (pkcs7.PKCS7SignatureBuilder().set_data(content)
           .add_signer(signer.cert, signer.key, hashes.SHA256())
           .sign(Encoding.DER, [pkcs7.PKCS7Options.DetachedSignature, pkcs7.PKCS7Options.Binary]))
    raw = kit.pec_message({"X-Ricevuta": "accettazione"}, content, None, signature=der)
    info = check(raw, trust)
    assert info.kind == "accettazione" and info.signature.status == "valid", info.signature
    assert info.signature.signing_time is not None


def test_lf_converted_store_still_verifies(trust: TrustStore) -> None:
    raw = kit.envelope().replace(b"\r\n", b"\n")
    sig = check(raw, trust).signature
    assert sig.status == "valid" and "CRLF" in sig.detail


def test_system_bundle_needs_a_posta_certificata_san(tmp_path: Path) -> None:
    (tmp_path / "system.pem").write_bytes(kit.root().pem)  # stands for the public roots
    store = TrustStore(tmp_path / "empty.pem", system_bundle=tmp_path / "system.pem")
    assert verify_signature(kit.envelope(), store).status == "valid"
    plain = kit.provider("Mario Rossi S/MIME", email="mario@example.it")
    result = verify_signature(kit.envelope(plain), store)
    assert result.status == "untrusted" and "posta-certificata" in result.detail


def test_forged_receipt_inside_postacert_is_an_ordinary_certified_message(trust: TrustStore) -> None:
    forged = kit.receipt("avvenuta-consegna", form="completa", consegna="dest@pec.dest.test",
                         signer=kit.provider("Falsario", issuer="Other Root"),
                         msgid="<victim@pec.mittente.test>")
    # a third party's message has its own boundaries (the provider's are not predictable)
    forged = forged.replace(b"outer-b", b"forged-o").replace(b"inner-b", b"forged-i")
    content = kit.signed_content(daticert=kit.daticert_xml("posta-certificata"), postacert=forged)
    raw = kit.pec_message({"X-Trasporto": "posta-certificata",
                           "X-Riferimento-Message-ID": "<orig-1@pec.mittente.test>"}, content, kit.provider())
    info = check(raw, trust)
    assert info.kind == "posta-certificata" and not info.is_receipt
    assert info.refers_to_msgid == "orig-1@pec.mittente.test"
    assert info.postacert == forged and info.daticert["tipo"] == "posta-certificata"
    assert info.signature.status == "valid"
    # and a plain mail carrying a forged receipt as an attachment is no PEC at all
    plain = (b"From: a@b.it\r\nTo: c@d.it\r\nSubject: fwd\r\nContent-Type: multipart/mixed; boundary=x\r\n"
             b"\r\n--x\r\nContent-Type: text/plain\r\n\r\nsee\r\n--x\r\nContent-Type: message/rfc822\r\n\r\n"
             + forged + b"\r\n--x--\r\n")
    assert classify(plain, parse_message(plain), trust) is None


def test_receipts_out_of_order_and_unknown_reference(trust: TrustStore) -> None:
    raws = [kit.receipt("avvenuta-consegna", form="breve", consegna="dest@pec.dest.test", ora="14:40:00"),
            kit.receipt("preavviso-errore-consegna", consegna="cc@pec.dest.test", errore="no-dest",
                        errore_esteso="4.4.7 nessuna risposta", ora="23:00:00"),
            kit.receipt("accettazione", ora="14:36:08"),
            kit.receipt("avvenuta-consegna", consegna="dest@pec.dest.test", msgid="<unknown@x.test>")]
    infos = [check(r, trust) for r in raws]
    mine = [i for i in infos if i.refers_to_msgid == "orig-1@pec.mittente.test"]  # the caller links
    assert len(mine) == 3
    states = delivery_states(["dest@pec.dest.test", "cc@pec.dest.test", "bcc@pec.dest.test"], mine)
    assert states["dest@pec.dest.test"]["state"] == "delivered"
    assert states["dest@pec.dest.test"]["at"].isoformat() == "2021-12-14T14:40:00+01:00"
    assert states["cc@pec.dest.test"] == {"state": "warning", "error": "4.4.7 nessuna risposta",
                                          "at": infos[1].at}
    assert states["bcc@pec.dest.test"]["state"] == "accepted"
    assert states == delivery_states(["dest@pec.dest.test", "cc@pec.dest.test", "bcc@pec.dest.test"], mine[::-1])


def test_opaque_pkcs7_mime_signature(trust: TrustStore, tmp_path: Path) -> None:
    signer = kit.provider("Posta Certificata ORA", not_before=datetime.now(UTC) - timedelta(days=1),
                          not_after=datetime.now(UTC) + timedelta(days=365))
    (tmp_path / "signer.pem").write_bytes(signer.pem)
    (tmp_path / "signer.key").write_bytes(signer.key.private_bytes(
        Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
    (tmp_path / "content").write_bytes(kit.signed_content(daticert=kit.daticert_xml("accettazione"),
                                                          postacert=None))
    subprocess.run(["openssl", "cms", "-sign", "-nodetach", "-binary", "-outform", "SMIME",
                    "-signer", str(tmp_path / "signer.pem"), "-inkey", str(tmp_path / "signer.key"),
                    "-in", str(tmp_path / "content"), "-out", str(tmp_path / "out")], check=True)
    smime = (tmp_path / "out").read_bytes()
    assert b"application/pkcs7-mime" in smime.split(b"\n\n")[0]
    raw = b"From: posta-certificata@pec.test\r\nX-Ricevuta: accettazione\r\n" + smime
    assert verify_signature(raw, trust).status == "valid"
    start = len(raw) // 3  # inside the base64 body, which embeds the signed content
    while not raw[start:start + 1].isalnum():
        start += 1
    damaged = raw[:start] + (b"B" if raw[start:start + 1] != b"B" else b"C") + raw[start + 1:]
    assert verify_signature(damaged, trust).status == "invalid"
