"""Offline check of a PEC provider's S/MIME signature, on the raw bytes.  Never raises.

The signed part is cut out of the raw message byte-exact (`pec.mime`, never re-serialised)
and handed to `openssl cms -verify -binary` with `-attime` = the signature's signingTime
(else the message Date): a PEC signed while the provider certificate was valid stays valid
after it expires. Steps:

1. intact?  `-noverify` (signature + content digest, no chain). Stores that rewrote CRLF
   to LF are tried again on the CRLF-canonical form S/MIME signs (RFC 8551 3.1.1). No ->
   `invalid`.
2. signer certificate valid at the signing time? No -> `invalid`.
3. chains to the administrator's store (`-partial_chain`: a provider leaf may be trusted
   directly) -> `valid`; to the system CA bundle with a `posta-certificata@` SAN -> `valid`;
   otherwise `untrusted`.
No signature part -> `missing`; openssl absent or timed out -> `error` (check again later).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.serialization import pkcs7

from pec.mime import children, parse_entity
from pec.trust import TrustStore

__all__ = ["SignatureCheck", "STATUSES", "verify_signature"]

STATUSES = ("valid", "untrusted", "invalid", "missing", "error")
TIMEOUT_SECONDS = 20.0
_SIGNATURE_TYPES = {"application/pkcs7-signature", "application/x-pkcs7-signature"}
_OPAQUE_TYPES = {"application/pkcs7-mime", "application/x-pkcs7-mime"}
_SIGNING_TIME_OID = bytes.fromhex("06092a864886f70d010905")


@dataclass(frozen=True)
class SignatureCheck:
    """The outcome of one check; times are aware UTC datetimes."""

    status: str  # one of STATUSES
    signer_subject: str | None = None
    signer_email: str | None = None  # first rfc822Name of the signer's subjectAltName
    signing_time: datetime | None = None  # signingTime attribute (None if absent)
    not_before: datetime | None = None
    not_after: datetime | None = None
    detail: str = ""

    def as_json(self) -> dict[str, str | None]:
        def iso(value: datetime | None) -> str | None:
            return value.isoformat() if value else None
        return {"status": self.status, "signer_subject": self.signer_subject,
                "signer_email": self.signer_email, "signing_time": iso(self.signing_time),
                "not_before": iso(self.not_before), "not_after": iso(self.not_after),
                "detail": self.detail}


# ---------------------------------------------------------------- DER reading
def _tlv(data: bytes, pos: int) -> tuple[int, int, int]:
    """(tag, content start, content end) of the DER element at pos; ValueError if broken."""
    tag = data[pos]
    length = data[pos + 1]
    pos += 2
    if length & 0x80:
        count = length & 0x7F
        if count == 0 or count > 4:
            raise ValueError("unsupported DER length")
        length = int.from_bytes(data[pos:pos + count], "big")
        pos += count
    if pos + length > len(data):
        raise ValueError("DER element runs past the end")
    return tag, pos, pos + length


def _items(data: bytes, start: int, end: int) -> list[tuple[int, int, int]]:
    items, pos = [], start
    while pos < end:
        tag, cstart, cend = _tlv(data, pos)
        items.append((tag, cstart, cend))
        pos = cend
    return items


def _asn1_time(tag: int, value: bytes) -> datetime | None:
    text = value.decode("ascii", "replace").rstrip("Z").split(".")[0]
    try:
        if tag == 0x17:  # UTCTime YYMMDDHHMMSS
            parsed = datetime.strptime(text, "%y%m%d%H%M%S")
        elif tag == 0x18:  # GeneralizedTime YYYYMMDDHHMMSS
            parsed = datetime.strptime(text, "%Y%m%d%H%M%S")
        else:
            return None
    except ValueError:
        return None
    return parsed.replace(tzinfo=timezone.utc)


def _signer_info(der: bytes) -> tuple[int | None, datetime | None]:
    """(serial number of the signer, signingTime) from a DER CMS SignedData."""
    serial: int | None = None
    signing_time: datetime | None = None
    try:
        _, s, e = _tlv(der, 0)  # ContentInfo
        _oid, explicit = _items(der, s, e)[:2]
        _, s, e = _tlv(der, explicit[1])  # SignedData
        signer_infos = [item for item in _items(der, s, e) if item[0] == 0x31][-1]
        first = _items(der, signer_infos[1], signer_infos[2])[0]
        fields = _items(der, first[1], first[2])
        sid = fields[1]
        if sid[0] == 0x30:  # IssuerAndSerialNumber
            serial_item = _items(der, sid[1], sid[2])[1]
            serial = int.from_bytes(der[serial_item[1]:serial_item[2]], "big", signed=True)
        for tag, cs, ce in fields[2:]:
            if tag != 0xA0:
                continue
            for _t, as_, ae in _items(der, cs, ce):
                oid, values = _items(der, as_, ae)[:2]
                if der[oid[1] - 2:oid[2]] == _SIGNING_TIME_OID:
                    ttag, ts, te = _items(der, values[1], values[2])[0]
                    signing_time = _asn1_time(ttag, der[ts:te])
            break
    except (ValueError, IndexError):
        pass
    return serial, signing_time


def _signer_certificate(der: bytes, serial: int | None) -> x509.Certificate | None:
    try:
        certs = pkcs7.load_der_pkcs7_certificates(der)
    except Exception:
        return None
    for cert in certs:
        if serial is not None and cert.serial_number == serial:
            return cert
    for cert in certs:  # no sid: the end-entity certificate
        try:
            if not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca:
                return cert
        except x509.ExtensionNotFound:
            return cert
    return certs[0] if certs else None


def _san_emails(cert: x509.Certificate) -> list[str]:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (x509.ExtensionNotFound, ValueError):
        return []
    return [str(e).lower() for e in san.get_values_for_type(x509.RFC822Name)]


# ---------------------------------------------------------------- openssl
def _openssl(args: list[str]) -> tuple[bool, str]:
    binary = shutil.which("openssl")
    if binary is None:
        raise FileNotFoundError("the openssl command is not installed")
    proc = subprocess.run([binary, "cms", "-verify", "-binary", "-purpose", "any",
                           "-no-CApath", "-no-CAstore", *args], capture_output=True,
                          timeout=TIMEOUT_SECONDS, check=False)
    lines = [ln for ln in proc.stderr.decode("utf-8", "replace").splitlines() if ln.strip()]
    # OpenSSL 3: "<thread>:error:<code>:<library>:<function>:<reason>:<file>:<line>:"
    reasons = [ln.split(":")[5] for ln in lines if ":error:" in ln and ln.count(":") >= 6]
    plain = [ln.strip() for ln in lines if ":error:" not in ln]
    return proc.returncode == 0, "; ".join(dict.fromkeys(reasons or plain))[:300]


def _split(raw: bytes) -> tuple[bytes | None, bytes | None, str]:
    """(signed content or None for opaque, DER signature, "") or (None, None, why missing)."""
    top = parse_entity(raw)
    ctype = top.content_type
    if ctype in _OPAQUE_TYPES:
        der = top.decoded()
        return (None, der, "") if der else (None, None, "empty application/pkcs7-mime body")
    if ctype != "multipart/signed":
        return None, None, f"not signed (top-level {ctype})"
    parts = children(top)
    if len(parts) < 2:
        return None, None, "multipart/signed without a signature part"
    signature = parts[1]
    if signature.content_type not in _SIGNATURE_TYPES:
        return None, None, f"multipart/signed second part is {signature.content_type}"
    der = signature.decoded()
    if not der:
        return None, None, "empty smime.p7s"
    return parts[0].raw, der, ""


def verify_signature(raw: bytes, trust: TrustStore, *,
                     fallback_time: datetime | None = None) -> SignatureCheck:
    """Check the top-level S/MIME signature of raw message bytes. Never raises."""
    try:
        return _verify(raw, trust, fallback_time)
    except (OSError, subprocess.SubprocessError) as exc:
        return SignatureCheck("error", detail=f"could not run the check: {exc}")
    except Exception as exc:  # never raise: report it, the message stays stored
        return SignatureCheck("error", detail=f"{type(exc).__name__}: {exc}")


def _intact(work: Path, der: bytes, content: bytes | None,
            attime: list[str]) -> tuple[list[str] | None, str, bool]:
    """Step 1: (openssl arguments that verified, reason, verified on CRLF) or (None, ...)."""
    (work / "sig.der").write_bytes(der)
    base = ["-inform", "DER", "-in", str(work / "sig.der"), "-out", str(work / "out")]
    if content is None:  # opaque pkcs7-mime: the content is inside the signature
        ok, reason = _openssl([*base, "-noverify", "-no-CAfile", *attime])
        return (base if ok else None), reason, False
    variants = [content]
    if re.search(rb"(?<!\r)\n", content):
        variants.append(re.sub(rb"(?<!\r)\n", b"\r\n", content))
    reason = ""
    for index, variant in enumerate(variants):
        (work / f"content{index}").write_bytes(variant)
        args = [*base, "-content", str(work / f"content{index}")]
        ok, reason = _openssl([*args, "-noverify", "-no-CAfile", *attime])
        if ok:
            return args, reason, index == 1
    return None, reason, False


def _verify(raw: bytes, trust: TrustStore, fallback_time: datetime | None) -> SignatureCheck:
    content, der, why = _split(raw)
    if der is None:
        return SignatureCheck("missing", detail=why)
    serial, signing_time = _signer_info(der)
    cert = _signer_certificate(der, serial)
    info: dict[str, Any] = {"signing_time": signing_time}
    emails: list[str] = []
    if cert is not None:
        emails = _san_emails(cert)
        info.update(signer_subject=cert.subject.rfc4514_string(),
                    signer_email=emails[0] if emails else None,
                    not_before=cert.not_valid_before_utc, not_after=cert.not_valid_after_utc)
    at = signing_time or fallback_time
    attime = ["-attime", str(int(at.timestamp()))] if at else []

    with tempfile.TemporaryDirectory(prefix="casella-pec-") as tmp:
        work = Path(tmp)
        used, reason, crlf = _intact(work, der, content, attime)
        if used is None:
            return SignatureCheck("invalid", **info,
                                  detail=f"content altered or signature broken: {reason}")
        note = " (verified on CRLF line endings)" if crlf else ""
        if cert is not None and at is not None and not (
                cert.not_valid_before_utc <= at <= cert.not_valid_after_utc):
            return SignatureCheck("invalid", **info,
                                  detail=f"signer certificate not valid at signing time {at.isoformat()}")
        reason = "the trust store is empty"
        store = trust.pec_pem()
        if store:
            (work / "store.pem").write_bytes(store)
            ok, reason = _openssl([*used, "-CAfile", str(work / "store.pem"), "-partial_chain", *attime])
            if ok:
                return SignatureCheck("valid", **info, detail="chains to the PEC trust store" + note)
        system = trust.system_bundle
        if system is not None and system.is_file():
            ok, reason = _openssl([*used, "-CAfile", str(system), *attime])
            if ok and any(e.startswith("posta-certificata@") for e in emails):
                return SignatureCheck("valid", **info, detail="chains to the system CA bundle" + note)
            if ok:
                return SignatureCheck("untrusted", **info, detail="chains to a public CA but is not a PEC "
                                      "provider certificate (no posta-certificata@ SAN)" + note)
        return SignatureCheck("untrusted", **info,
                              detail=f"intact, signer not in the trust store: {reason}" + note)
