"""Builds PEC messages signed by a test CA made in the test run (no files on disk).

The CMS SignedData is assembled here in DER (a few lines) so a test can choose the
signingTime: openssl and cryptography always sign "now", and the point of several tests is
a signature made years ago, or made after the signer certificate expired.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from functools import lru_cache

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

UTC = timezone.utc


# ---------------------------------------------------------------- certificates
@dataclass(frozen=True)
class Identity:
    cert: x509.Certificate
    key: rsa.RSAPrivateKey

    @property
    def pem(self) -> bytes:
        return self.cert.public_bytes(Encoding.PEM)


@lru_cache(maxsize=None)
def _key(name: str) -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COUNTRY_NAME, "IT"),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Casella Test"),
                      x509.NameAttribute(NameOID.COMMON_NAME, cn)])


@lru_cache(maxsize=None)
def root(name: str = "Test PEC Root") -> Identity:
    key = _key(name)
    cert = (x509.CertificateBuilder().subject_name(_name(name)).issuer_name(_name(name))
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(datetime(2000, 1, 1, tzinfo=UTC))
            .not_valid_after(datetime(2099, 1, 1, tzinfo=UTC))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False,
                                         key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, key_cert_sign=True, crl_sign=True,
                                         encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256()))
    return Identity(cert, key)


@lru_cache(maxsize=None)
def provider(name: str = "Posta Certificata TEST", *, issuer: str = "Test PEC Root",
             email: str | None = "posta-certificata@pec.test",
             not_before: datetime = datetime(2020, 1, 1, tzinfo=UTC),
             not_after: datetime = datetime(2023, 1, 1, tzinfo=UTC)) -> Identity:
    ca = root(issuer)
    key = _key(name)
    builder = (x509.CertificateBuilder().subject_name(_name(name)).issuer_name(ca.cert.subject)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(not_before).not_valid_after(not_after)
               .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
               .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=True,
                                            key_encipherment=False, data_encipherment=False,
                                            key_agreement=False, key_cert_sign=False, crl_sign=False,
                                            encipher_only=False, decipher_only=False), critical=True)
               .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
               .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()),
                              critical=False))
    if email:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.RFC822Name(email)]),
                                        critical=False)
    return Identity(builder.sign(ca.key, hashes.SHA256()), key)


# ---------------------------------------------------------------- DER / CMS
def _der(tag: int, content: bytes) -> bytes:
    n = len(content)
    if n < 0x80:
        return bytes([tag, n]) + content
    size = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(size)]) + size + content


def _oid(dotted: str) -> bytes:
    parts = [int(p) for p in dotted.split(".")]
    body = bytes([40 * parts[0] + parts[1]])
    for value in parts[2:]:
        chunk = [value & 0x7F]
        value >>= 7
        while value:
            chunk.append(0x80 | (value & 0x7F))
            value >>= 7
        body += bytes(reversed(chunk))
    return _der(0x06, body)


def _int(value: int) -> bytes:
    return _der(0x02, value.to_bytes(value.bit_length() // 8 + 1, "big", signed=True))


def _seq(*items: bytes) -> bytes:
    return _der(0x30, b"".join(items))


def _set(*items: bytes) -> bytes:
    return _der(0x31, b"".join(sorted(items)))


SHA256 = _seq(_oid("2.16.840.1.101.3.4.2.1"), b"\x05\x00")


def cms_sign(content: bytes, signer: Identity, signing_time: datetime,
             extra_certs: tuple[x509.Certificate, ...] = ()) -> bytes:
    """A detached CMS SignedData (DER) over content, with the given signingTime."""
    utc = signing_time.astimezone(UTC).strftime("%y%m%d%H%M%SZ").encode()
    attrs = [_seq(_oid("1.2.840.113549.1.9.3"), _set(_oid("1.2.840.113549.1.7.1"))),
             _seq(_oid("1.2.840.113549.1.9.5"), _set(_der(0x17, utc))),
             _seq(_oid("1.2.840.113549.1.9.4"), _set(_der(0x04, hashlib.sha256(content).digest())))]
    signed_attrs = _set(*attrs)
    signature = signer.key.sign(signed_attrs, padding.PKCS1v15(), hashes.SHA256())
    signer_info = _seq(_int(1),
                       _seq(signer.cert.issuer.public_bytes(), _int(signer.cert.serial_number)),
                       SHA256, b"\xa0" + signed_attrs[1:],
                       _seq(_oid("1.2.840.113549.1.1.1"), b"\x05\x00"), _der(0x04, signature))
    certs = b"".join(c.public_bytes(Encoding.DER) for c in (signer.cert, *extra_certs))
    signed_data = _seq(_int(1), _set(SHA256), _seq(_oid("1.2.840.113549.1.7.1")),
                       _der(0xA0, certs), _set(signer_info))
    return _seq(_oid("1.2.840.113549.1.7.2"), _der(0xA0, signed_data))


# ---------------------------------------------------------------- messages
def daticert_xml(tipo: str, *, msgid: str = "<orig-1@pec.mittente.test>", errore: str = "nessuno",
                 mittente: str = "mittente@pec.mittente.test",
                 destinatari: tuple[tuple[str, str], ...] = (("dest@pec.dest.test", "certificato"),),
                 ricevuta: str | None = None, consegna: str | None = None,
                 ricezione: str | None = None, errore_esteso: str | None = None,
                 giorno: str = "14/12/2021", ora: str = "14:36:08") -> bytes:
    esc = msgid.replace("<", "&lt;").replace(">", "&gt;")
    dest = "".join(f'<destinatari tipo="{t}">{a}</destinatari>' for a, t in destinatari)
    extra = (f'<ricevuta tipo="{ricevuta}" />' if ricevuta else "") \
        + (f"<consegna>{consegna}</consegna>" if consegna else "") \
        + (f"<ricezione>{ricezione}</ricezione>" if ricezione else "") \
        + (f"<errore-esteso>{errore_esteso}</errore-esteso>" if errore_esteso else "")
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n<postacert tipo="{tipo}" errore="{errore}">'
            f"<intestazione><mittente>{mittente}</mittente>{dest}<risposte>{mittente}</risposte>"
            f"<oggetto>Prova àèì</oggetto></intestazione><dati><gestore-emittente>Gestore TEST"
            f'</gestore-emittente><data zona="+0100"><giorno>{giorno}</giorno><ora>{ora}</ora></data>'
            f"<identificativo>opec.1@pec.test</identificativo><msgid>{esc}</msgid>{extra}</dati>"
            f"</postacert>").encode("utf-8")


POSTACERT = (b"From: Mario Rossi <mittente@pec.mittente.test>\r\nTo: dest@pec.dest.test\r\n"
             b"Subject: Fattura 42\r\nMessage-ID: <orig-1@pec.mittente.test>\r\n"
             b"Date: Tue, 14 Dec 2021 14:36:00 +0100\r\nContent-Type: text/plain; charset=utf-8\r\n"
             b"\r\nGentile cliente,\r\nin allegato la fattura.\r\n")


def signed_content(*, daticert: bytes | None, postacert: bytes | None,
                   text: bytes = b"Messaggio di posta certificata.\r\n") -> bytes:
    parts = [b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n" + text]
    if daticert is not None:
        parts.append(b'Content-Type: application/xml; name="daticert.xml"\r\n'
                     b'Content-Disposition: inline; filename="daticert.xml"\r\n'
                     b"Content-Transfer-Encoding: base64\r\n\r\n"
                     + base64.encodebytes(daticert).replace(b"\n", b"\r\n"))
    if postacert is not None:
        parts.append(b'Content-Type: message/rfc822; name="postacert.eml"\r\n'
                     b'Content-Disposition: inline; filename="postacert.eml"\r\n\r\n' + postacert)
    body = b"".join(b"--inner-b\r\n" + p + b"\r\n" for p in parts)
    return b'Content-Type: multipart/mixed; boundary="inner-b"\r\n\r\n' + body + b"--inner-b--\r\n"


def pec_message(headers: dict[str, str], content: bytes, signer: Identity | None,
                signing_time: datetime = datetime(2021, 12, 14, 13, 36, 8, tzinfo=UTC),
                *, signature: bytes | None = None) -> bytes:
    """A multipart/signed PEC message: top-level headers, the content, its smime.p7s."""
    head = {"From": "posta-certificata@pec.test", "To": "dest@pec.dest.test",
            "Date": "Tue, 14 Dec 2021 14:36:08 +0100", "Message-ID": "<opec.1@pec.test>",
            "Subject": "POSTA CERTIFICATA: Fattura 42", "MIME-Version": "1.0", **headers}
    raw = b"".join(f"{k}: {v}\r\n".encode() for k, v in head.items() if v is not None)
    if signer is None and signature is None:
        return raw + b'Content-Type: multipart/signed; protocol="application/pkcs7-signature"; ' \
            b'micalg=sha-256; boundary="outer-b"\r\n\r\n--outer-b\r\n' + content + b"\r\n--outer-b--\r\n"
    der = signature if signature is not None else cms_sign(content, signer, signing_time)  # type: ignore[arg-type]
    return (raw + b'Content-Type: multipart/signed; protocol="application/pkcs7-signature"; '
            b'micalg=sha-256; boundary="outer-b"\r\n\r\nThis is an S/MIME signed message\r\n\r\n'
            b"--outer-b\r\n" + content + b"\r\n--outer-b\r\n"
            b'Content-Type: application/pkcs7-signature; name="smime.p7s"\r\n'
            b"Content-Transfer-Encoding: base64\r\n"
            b'Content-Disposition: attachment; filename="smime.p7s"\r\n\r\n'
            + base64.encodebytes(der).replace(b"\n", b"\r\n") + b"\r\n--outer-b--\r\n")


def envelope(signer: Identity | None = None, **kw: object) -> bytes:
    """A transport envelope (busta di trasporto) carrying POSTACERT."""
    content = signed_content(daticert=daticert_xml("posta-certificata", ricevuta="completa"),
                             postacert=POSTACERT)
    return pec_message({"X-Trasporto": "posta-certificata", "X-TipoRicevuta": "completa",
                        "X-Riferimento-Message-ID": "<orig-1@pec.mittente.test>",
                        "From": '"Per conto di: mittente@pec.mittente.test" <posta-certificata@pec.test>'},
                       content, signer if signer is not None else provider(), **kw)  # type: ignore[arg-type]


def receipt(kind: str, *, form: str | None = None, consegna: str | None = None,
            errore: str = "nessuno", errore_esteso: str | None = None, with_postacert: bool = False,
            msgid: str = "<orig-1@pec.mittente.test>", signer: Identity | None = None,
            ricezione: str | None = None, giorno: str = "14/12/2021", ora: str = "14:36:08") -> bytes:
    content = signed_content(
        daticert=daticert_xml(kind, msgid=msgid, ricevuta=form, consegna=consegna, errore=errore,
                              errore_esteso=errore_esteso, ricezione=ricezione, giorno=giorno, ora=ora),
        postacert=POSTACERT if with_postacert else None)
    headers = {"X-Ricevuta": kind, "X-Riferimento-Message-ID": msgid}
    if form:
        headers["X-TipoRicevuta"] = form
    return pec_message(headers, content, signer if signer is not None else provider())
