"""Account passwords, encrypted at rest with a key kept outside the database.

The key is a Fernet key (AES-128-CBC + HMAC-SHA256) in ``CASELLA_SECRET_KEY_FILE``
(default ``$CASELLA_DATA_DIR/secret.key``, mode 0600), created on first use. A database dump
alone does not reveal any password; back the key file up separately.
"""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

from casella.errors import ConfigurationError


class SecretBox:
    def __init__(self, key_file: Path) -> None:
        self.key_file = key_file
        self._fernet: Fernet | None = None

    def _get(self) -> Fernet:
        if self._fernet is None:
            if not self.key_file.exists():
                self.key_file.parent.mkdir(parents=True, exist_ok=True)
                fd = os.open(self.key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "wb") as f:
                    f.write(Fernet.generate_key())
            try:
                self._fernet = Fernet(self.key_file.read_bytes().strip())
            except ValueError:
                raise ConfigurationError(f"{self.key_file} is not a valid secret key file; restore it from backup") from None
        return self._fernet

    def encrypt(self, secret: str) -> bytes:
        return self._get().encrypt(secret.encode("utf-8"))

    def decrypt(self, token: bytes) -> str:
        try:
            return self._get().decrypt(token).decode("utf-8")
        except InvalidToken:
            raise ConfigurationError(
                f"cannot decrypt an account password with {self.key_file}: the key file changed. "
                "Restore the original key file, or set the password again with `casella account password`"
            ) from None
