"""One typed settings object, read once from the environment and an optional file.

Order: the environment (``CASELLA_*``), then ``$CASELLA_DATA_DIR/casella.env`` or the file
named by ``CASELLA_ENV_FILE`` (``KEY=value`` lines), then the defaults below. Nothing else in
Casella reads ``os.environ``. ``.env.example`` documents every key.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from casella.errors import ConfigurationError

PREFIX = "CASELLA_"


def _read_env_file(path: Path) -> dict[str, str]:
    values: dict[str, str] = {}
    if not path.is_file():
        return values
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep:
            raise ConfigurationError(f"{path}:{lineno}: expected KEY=value, got {line!r}")
        values[key.strip()] = value.strip().strip('"').strip("'")
    return values


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    database_url: str
    blob_dir: Path
    secret_key_file: Path
    ingest_batch_size: int = 500
    ingest_batch_bytes: int = 64 << 20
    ingest_poll_seconds: float = 60.0
    ingest_idle_seconds: float = 300.0
    ingest_accounts_seconds: float = 10.0
    ingest_workers: int = 2
    imap_timeout_seconds: float = 60.0
    timezone: str = "Europe/Rome"
    default_registry: str = "AOO"
    freemail_domains_extra: tuple[str, ...] = ()
    demo: bool = True
    log_level: str = "INFO"
    # Search: empty search_url = the embedded engine, with its index in search_index_dir.
    search_url: str = ""
    search_api_key: str = ""
    search_index_name: str = "casella_messages"
    search_index_dir: Path = Path("data/index")
    search_attachment_text_max_bytes: int = 1_000_000
    # Mail submission (mailserver/): listen address, size limit, TLS, relay retries.
    smtp_listen: str = "127.0.0.1:8587"
    smtp_max_size: int = 35 << 20
    smtp_tls_cert: Path | None = None
    smtp_tls_key: Path | None = None
    smtp_implicit_tls: bool = False
    relay_give_up_seconds: float = 172800.0
    relay_timeout_seconds: float = 60.0
    # PEC: a sent PEC still without delivery receipts after this many hours is overdue.
    pec_delivery_timeout_hours: float = 24.0
    # Webmail (webmail/): listen address, session lifetime, cookies only over HTTPS, and the
    # threads of a process that run pages at once (more only fight over Python's interpreter
    # lock: the other requests wait their turn, which is faster) and, beside them, heavy
    # views (exports, downloads, statistics, sending).
    web_listen: str = "127.0.0.1:8025"
    web_session_hours: float = 12.0
    web_secure_cookies: bool = False
    web_threads: int = 1
    web_heavy_threads: int = 2
    extra: dict[str, str] = field(default_factory=dict)

    @classmethod
    def load(cls, environ: dict[str, str] | None = None) -> Settings:
        env = dict(os.environ if environ is None else environ)
        data_dir = Path(env.get(f"{PREFIX}DATA_DIR", "./data")).expanduser().absolute()
        env_file = Path(env.get(f"{PREFIX}ENV_FILE", str(data_dir / "casella.env")))
        merged = {**_read_env_file(env_file), **env}

        def get(key: str, default: str) -> str:
            return merged.get(PREFIX + key, default)

        def get_int(key: str, default: int) -> int:
            raw = get(key, str(default))
            try:
                return int(raw)
            except ValueError:
                raise ConfigurationError(f"{PREFIX}{key} must be a whole number, got {raw!r}") from None

        def get_float(key: str, default: float) -> float:
            raw = get(key, str(default))
            try:
                return float(raw)
            except ValueError:
                raise ConfigurationError(f"{PREFIX}{key} must be a number, got {raw!r}") from None

        def get_bool(key: str, default: bool) -> bool:
            raw = get(key, "1" if default else "0").lower()
            if raw in ("1", "true", "yes", "on"):
                return True
            if raw in ("0", "false", "no", "off"):
                return False
            raise ConfigurationError(f"{PREFIX}{key} must be true or false, got {raw!r}")

        default_db = f"sqlite:///{data_dir / 'casella.db'}"
        batch = get_int("INGEST_BATCH_SIZE", 500)
        if batch < 1:
            raise ConfigurationError(f"{PREFIX}INGEST_BATCH_SIZE must be at least 1, got {batch}")
        extra_domains = tuple(
            d.strip().lower() for d in get("FREEMAIL_DOMAINS", "").split(",") if d.strip()
        )
        return cls(
            data_dir=data_dir,
            database_url=get("DATABASE_URL", default_db),
            blob_dir=Path(get("BLOB_DIR", str(data_dir / "blobs"))),
            secret_key_file=Path(get("SECRET_KEY_FILE", str(data_dir / "secret.key"))),
            ingest_batch_size=batch,
            ingest_batch_bytes=get_int("INGEST_BATCH_BYTES", 64 << 20),
            ingest_poll_seconds=get_float("INGEST_POLL_SECONDS", 60.0),
            ingest_idle_seconds=get_float("INGEST_IDLE_SECONDS", 300.0),
            ingest_accounts_seconds=get_float("INGEST_ACCOUNTS_SECONDS", 10.0),
            ingest_workers=get_int("INGEST_WORKERS", min(2, os.cpu_count() or 1)),
            imap_timeout_seconds=get_float("IMAP_TIMEOUT_SECONDS", 60.0),
            timezone=get("TIMEZONE", "Europe/Rome"),
            default_registry=get("DEFAULT_REGISTRY", "AOO"),
            freemail_domains_extra=extra_domains,
            demo=get_bool("DEMO", True),
            log_level=get("LOG_LEVEL", "INFO").upper(),
            search_url=get("SEARCH_URL", "").strip(),
            search_api_key=get("SEARCH_API_KEY", ""),
            search_index_name=get("SEARCH_INDEX_NAME", "casella_messages"),
            search_index_dir=Path(get("SEARCH_INDEX_DIR", str(data_dir / "index"))),
            search_attachment_text_max_bytes=get_int("SEARCH_ATTACHMENT_TEXT_MAX_BYTES", 1_000_000),
            smtp_listen=get("SMTP_LISTEN", "127.0.0.1:8587").strip(),
            smtp_max_size=get_int("SMTP_MAX_SIZE", 35 << 20),
            smtp_tls_cert=Path(get("SMTP_TLS_CERT", "")) if get("SMTP_TLS_CERT", "").strip() else None,
            smtp_tls_key=Path(get("SMTP_TLS_KEY", "")) if get("SMTP_TLS_KEY", "").strip() else None,
            smtp_implicit_tls=get_bool("SMTP_IMPLICIT_TLS", False),
            relay_give_up_seconds=get_float("RELAY_GIVE_UP_SECONDS", 172800.0),
            relay_timeout_seconds=get_float("RELAY_TIMEOUT_SECONDS", 60.0),
            pec_delivery_timeout_hours=get_float("PEC_DELIVERY_TIMEOUT_HOURS", 24.0),
            web_listen=get("WEB_LISTEN", "127.0.0.1:8025").strip(),
            web_session_hours=get_float("WEB_SESSION_HOURS", 12.0),
            web_secure_cookies=get_bool("WEB_SECURE_COOKIES", False),
            web_threads=max(1, get_int("WEB_THREADS", 1)),
            web_heavy_threads=max(1, get_int("WEB_HEAVY_THREADS", 2)),
        )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read on first use."""
    return Settings.load()


def read_secret_env(var: str) -> str | None:
    """Read a secret the user named on the command line (--password-env VAR)."""
    return os.environ.get(var)
