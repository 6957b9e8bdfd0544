"""Each account's upstream SMTP server (`casella smtp-upstream NAME ...`)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from casella.errors import NotFound
from casella.models import Account
from casella.models.outbound import SMTP_SECURITY, AccountSmtp
from casella.secrets import SecretBox
from mailserver.errors import UpstreamError

DEFAULT_PORTS = {"ssl": 465, "starttls": 587, "none": 25}


def set_upstream(session: Session, box: SecretBox, account_name: str, *, host: str, port: int | None,
                 security: str, username: str | None, password: str | None) -> AccountSmtp:
    if security not in SMTP_SECURITY:
        raise UpstreamError(f"security {security!r} is not one of {', '.join(SMTP_SECURITY)}")
    if username and not password:
        raise UpstreamError("an upstream username needs a password (--password-env VAR)")
    account = session.scalar(select(Account).where(Account.name == account_name))
    if account is None:
        raise NotFound(f"no account named {account_name!r}; `casella account list` shows them")
    config = session.get(AccountSmtp, account.id) or AccountSmtp(account_id=account.id)
    config.host, config.port, config.security = host, port or DEFAULT_PORTS[security], security
    config.username = username or None
    config.password_encrypted = box.encrypt(password) if username and password else None
    session.add(config)
    session.flush()
    return config
