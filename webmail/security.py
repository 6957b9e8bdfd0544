"""Sessions, CSRF and login throttling.

- A session is a random token in an HttpOnly, SameSite=Lax cookie (Secure when
  CASELLA_WEB_SECURE_COOKIES is on); the database keeps only its sha256 (`web_session`).
  Sessions end after CASELLA_WEB_SESSION_HOURS without activity, at logout, and when the
  password changes (every session of that user).
- CSRF: every POST carries the session's token (hidden field `csrf` or header
  `X-CSRF-Token`), compared in constant time; a POST whose Origin (or Referer) is another
  site is refused before anything else. The login form, before a session exists, uses a
  double-submit cookie.
- Throttling: after 5 failed sign-ins for a username, or 20 from one address, within 15
  minutes, further attempts are refused until the window passes (failures are kept in
  `login_attempt`, so several processes share the count).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import bindparam, delete, func, select
from sqlalchemy.orm import Session

from casella.models import LoginAttempt, User, WebSession, utcnow

SESSION_COOKIE = "casella_session"
LOGIN_CSRF_COOKIE = "casella_login_csrf"
THROTTLE_WINDOW = timedelta(minutes=15)
MAX_FAILURES_PER_USER = 5
MAX_FAILURES_PER_IP = 20
TOUCH_EVERY = timedelta(minutes=5)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("ascii", "replace")).hexdigest()


def new_token() -> str:
    return secrets.token_urlsafe(32)


def same_token(a: str | None, b: str | None) -> bool:
    return bool(a) and bool(b) and hmac.compare_digest(str(a), str(b))


@dataclass(frozen=True, slots=True)
class OpenedSession:
    token: str
    csrf: str


def open_session(session: Session, user: User, *, ip: str, user_agent: str) -> OpenedSession:
    token, csrf = new_token(), new_token()
    session.add(WebSession(token_hash=token_hash(token), user_id=user.id, csrf_token=csrf,
                           ip=ip[:64], user_agent=user_agent[:255]))
    return OpenedSession(token, csrf)


_SESSION_AND_USER = (select(WebSession, User).join(User, User.id == WebSession.user_id)
                     .where(WebSession.token_hash == bindparam("token_hash")))


def find_session(session: Session, token: str | None, lifetime: timedelta,
                 now: datetime | None = None) -> tuple[WebSession, User] | None:
    if not token:
        return None
    now = now or utcnow()
    found = session.execute(_SESSION_AND_USER, {"token_hash": token_hash(token)}).first()
    if found is None:
        return None
    row, user = found
    if now - row.last_seen_at > lifetime or not user.active:
        return None
    return row, user


def needs_touch(row: WebSession, now: datetime | None = None) -> bool:
    return (now or utcnow()) - row.last_seen_at > TOUCH_EVERY


def close_sessions(session: Session, *, token: str | None = None, user_id: int | None = None,
                   keep: str | None = None) -> None:
    """End one session (by token) or every session of a user (but `keep`, a token)."""
    if token is not None:
        session.execute(delete(WebSession).where(WebSession.token_hash == token_hash(token)))
    if user_id is not None:
        query = delete(WebSession).where(WebSession.user_id == user_id)
        if keep is not None:
            query = query.where(WebSession.token_hash != token_hash(keep))
        session.execute(query)


def throttled(session: Session, username: str, ip: str, now: datetime | None = None) -> bool:
    since = (now or utcnow()) - THROTTLE_WINDOW
    by_user = session.scalar(select(func.count(LoginAttempt.id))
                             .where(LoginAttempt.username == username.lower(), LoginAttempt.at > since)) or 0
    by_ip = session.scalar(select(func.count(LoginAttempt.id))
                           .where(LoginAttempt.ip == ip, LoginAttempt.at > since)) or 0
    return by_user >= MAX_FAILURES_PER_USER or by_ip >= MAX_FAILURES_PER_IP


def record_failure(session: Session, username: str, ip: str) -> None:
    session.add(LoginAttempt(username=username.lower()[:120], ip=ip[:64]))


def clear_failures(session: Session, username: str) -> None:
    session.execute(delete(LoginAttempt).where(LoginAttempt.username == username.lower()))


def cross_site(origin: str | None, referer: str | None, host: str | None) -> bool:
    """True when a state-changing request comes from another site's page."""
    source = origin if origin and origin != "null" else referer
    if origin == "null":
        return True
    if not source:
        return False  # not a browser form post from elsewhere (curl, scripts): CSRF token decides
    return urlsplit(source).netloc.lower() != (host or "").lower()


def csv_cell(value: Any) -> Any:
    """No spreadsheet formulas from mail subjects or names in an exported CSV (CSV injection)."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def content_security_policy(*, remote_images: bool = False) -> str:
    img = "'self' data:" + (" https: http:" if remote_images else "")
    return ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
            f"img-src {img}; font-src 'self'; connect-src 'self'; frame-src 'self'; "
            "frame-ancestors 'self'; form-action 'self'; base-uri 'none'; object-src 'none'")
