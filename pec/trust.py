"""The trust store for PEC provider signatures.

Two sources, checked in this order by `pec.signature`:
1. `data_dir/pec-trust.pem`: certificates an administrator added (`casella pec trust add`):
   provider certificates or the CAs they chain to. A signer that chains here is valid.
2. the system CA bundle (Debian's ca-certificates): real provider certificates chain to
   AgID CA1, which chains to roots shipped there. Because that bundle trusts every public
   CA, a signer validated only through it counts as valid only when its subjectAltName
   carries a `posta-certificata@...` address (what PEC providers' signing certificates do).
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from pec.errors import TrustStoreError

if TYPE_CHECKING:
    from casella.settings import Settings

__all__ = ["SYSTEM_BUNDLE", "TrustStore", "load_pem_certificates"]

SYSTEM_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
STORE_NAME = "pec-trust.pem"
_PEM_BLOCK = re.compile(rb"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", re.S)


def load_pem_certificates(pem: bytes, source: str = "input") -> list[x509.Certificate]:
    """Every certificate of a PEM bundle; TrustStoreError if one does not load or none."""
    blocks = _PEM_BLOCK.findall(pem)
    if not blocks:
        raise TrustStoreError(f"{source}: no PEM certificate found "
                              "(expected -----BEGIN CERTIFICATE-----)")
    certs = []
    for index, block in enumerate(blocks, 1):
        try:
            certs.append(x509.load_pem_x509_certificate(block))
        except ValueError as exc:
            raise TrustStoreError(f"{source}: certificate #{index} does not load: {exc}") from exc
    return certs


def fingerprint(cert: x509.Certificate) -> str:
    return hashlib.sha256(cert.public_bytes(Encoding.DER)).hexdigest()


@dataclass(frozen=True)
class TrustStore:
    """Where trusted certificates live. `system_bundle=None` disables the system bundle."""

    pec_bundle: Path
    system_bundle: Path | None = SYSTEM_BUNDLE

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> TrustStore:
        if settings is None:
            from casella.settings import get_settings
            settings = get_settings()
        return cls(pec_bundle=settings.data_dir / STORE_NAME)

    def certificates(self) -> list[x509.Certificate]:
        """The administrator's certificates (not the system bundle); [] when none."""
        try:
            pem = self.pec_bundle.read_bytes()
        except OSError:
            return []
        certs = []
        for block in _PEM_BLOCK.findall(pem):
            try:
                certs.append(x509.load_pem_x509_certificate(block))
            except ValueError:
                continue  # a hand-edited broken block: skipped, the rest still counts
        return certs

    def add_certificates(self, pem: bytes, source: str = "input") -> int:
        """Add every certificate of a PEM bundle; returns how many were new (dedup by SHA-256)."""
        new = load_pem_certificates(pem, source)
        current = self.certificates()
        seen = {fingerprint(c) for c in current}
        added = []
        for cert in new:
            fp = fingerprint(cert)
            if fp not in seen:
                seen.add(fp)
                added.append(cert)
        if added:
            self._write(current + added)
        return len(added)

    def _write(self, certs: list[x509.Certificate]) -> None:
        self.pec_bundle.parent.mkdir(parents=True, exist_ok=True)
        enc = Encoding.PEM
        data = b"".join(f"# {c.subject.rfc4514_string()}\n".encode() + c.public_bytes(enc)
                        for c in certs)
        fd, tmp = tempfile.mkstemp(prefix=".pec-trust-", dir=self.pec_bundle.parent)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self.pec_bundle)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def pec_pem(self) -> bytes:
        """The administrator's bundle as PEM bytes (b"" when empty)."""
        enc = Encoding.PEM
        return b"".join(c.public_bytes(enc) for c in self.certificates())
