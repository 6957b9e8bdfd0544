"""With a certificate the submission server offers STARTTLS and refuses AUTH before it."""

from __future__ import annotations

import smtplib
import ssl
from datetime import timedelta
from email.message import EmailMessage
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from sqlalchemy import select

from casella.db import Database
from casella.models import Account, utcnow
from casella.models.outbound import OutboundMessage
from casella.settings import Settings
from casella.users import add_user, grant_mailbox
from mailserver.server import SubmissionServer
from tests.conftest import make_env

pytestmark = pytest.mark.e2e


def self_signed(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(utcnow() - timedelta(days=1))
            .not_valid_after(utcnow() + timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
            .sign(key, hashes.SHA256()))
    cert_file, key_file = directory / "smtp.crt", directory / "smtp.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_file, key_file


def test_starttls_then_auth(tmp_path: Path, sqlite_url: str) -> None:
    cert, key = self_signed(tmp_path)
    settings = Settings.load(make_env(tmp_path / "data", sqlite_url, CASELLA_SMTP_LISTEN="127.0.0.1:0",
                                      CASELLA_SMTP_TLS_CERT=str(cert), CASELLA_SMTP_TLS_KEY=str(key)))
    db = Database.from_settings(settings)
    with db.session() as s:
        add_user(s, "alice", "operator", password="alice-pw")
        s.add(Account(name="ufficio", username="info@ufficio.example.it"))
        s.flush()
        grant_mailbox(s, "ufficio", user="alice", level="write")
    server = SubmissionServer(settings, db).start()
    try:
        with smtplib.SMTP("127.0.0.1", server.port, timeout=10) as client:
            client.ehlo()
            code, _ = client.docmd("AUTH", "PLAIN AGFsaWNlAGFsaWNlLXB3")  # \0alice\0alice-pw
            assert code == 538  # encryption required first
            context = ssl.create_default_context(cafile=str(cert))
            context.check_hostname = False
            client.starttls(context=context)
            client.login("alice", "alice-pw")
            msg = EmailMessage()
            msg["From"], msg["To"], msg["Subject"] = "info@ufficio.example.it", "info@ufficio.example.it", "TLS"
            msg.set_content("cifrato\n")
            client.send_message(msg)
        with db.reading() as s:
            assert s.scalar(select(OutboundMessage.state)) == "queued"
    finally:
        server.stop()
        db.dispose()
