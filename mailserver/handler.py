"""The aiosmtpd handler of the submission server: authenticate, check the sender, store.

AUTH (PLAIN or LOGIN) is checked against Casella users (argon2id hashes); aiosmtpd refuses
MAIL before AUTH (530), so nothing is ever relayed for an anonymous client. `handle_DATA`
parses the headers, adds the signature when asked (signatures.py; the X-Casella-Signature
header never leaves), stores the message in the account's Sent folder and queues it, and
returns one of the named replies below. Delivery is the relay worker's job (relay.py).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from email.parser import BytesHeaderParser
from email.utils import getaddresses
from typing import Any

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword
from aiosmtpd.smtp import Session as SmtpSession
from sqlalchemy import select

from casella.blobs import BlobStore
from casella.db import Database
from casella.models import User
from casella.pipeline import Stage
from casella.users import verify_password
from mailserver.errors import SignatureError
from mailserver.identities import allowed_senders, normalise, reachable
from mailserver.signatures import sign_submission
from mailserver.submit import Submission, complete_headers, store_and_enqueue

log = logging.getLogger(__name__)

OK = "250 2.0.0 OK"
QUEUED = "250 2.0.0 OK queued as {id}"
AUTH_REQUIRED = "530 5.7.0 Authentication required"
SENDER_NOT_ALLOWED = "553 5.7.1 Sender address not allowed for this user"
FROM_NOT_ALLOWED = "550 5.7.1 From: header address not allowed for this user"
NO_FROM = "550 5.6.0 The message has no From: header"
BAD_RECIPIENT = "553 5.1.3 Bad recipient address syntax"
NO_UPSTREAM = "550 5.3.5 Account has no outgoing SMTP server configured; only Casella mailboxes can be reached"
NOT_STORED = "451 4.3.0 Message could not be queued; try again later"
BAD_SIGNATURE = "550 5.6.0 X-Casella-Signature: {reason}"
# The sending account chosen at MAIL FROM, kept on the envelope (aiosmtpd makes a new one
# after DATA and on RSET, so it cannot leak into the next transaction).
ENVELOPE_ACCOUNT = "casella_account_id"


@dataclass(frozen=True, slots=True)
class AuthenticatedUser:
    """What a successful AUTH leaves in the SMTP session (`session.auth_data`)."""

    user_id: int
    username: str


class Authenticator:
    """aiosmtpd `authenticator`: a Casella username and password (PLAIN or LOGIN).

    It runs on the server's event loop: one argon2 verification (tens of milliseconds)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def __call__(self, server: SMTP, session: SmtpSession, envelope: Envelope, mechanism: str,
                 auth_data: Any) -> AuthResult:
        if mechanism not in ("PLAIN", "LOGIN") or not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        try:
            username = auth_data.login.decode("utf-8")
            password = auth_data.password.decode("utf-8")
        except UnicodeDecodeError:
            return AuthResult(success=False, handled=False)
        with self.db.reading() as s:
            user = s.scalar(select(User).where(User.username == username))
            ok = user is not None and user.active and verify_password(user.password_hash, password)
            who = AuthenticatedUser(user.id, user.username) if ok and user is not None else None
        if who is None:
            log.info("AUTH %s failed for %r from %s", mechanism, username, session.peer)
            return AuthResult(success=False, handled=False)  # aiosmtpd replies 535 5.7.8
        return AuthResult(success=True, auth_data=who)


class SubmissionHandler:
    def __init__(self, db: Database, blobs: BlobStore, stages: Sequence[Stage], *, hostname: str,
                 on_queued: Callable[[], None] | None = None) -> None:
        self.db = db
        self.blobs = blobs
        self.stages = stages
        self.hostname = hostname
        self.on_queued = on_queued

    async def handle_MAIL(self, server: SMTP, session: SmtpSession, envelope: Envelope, address: str,
                          mail_options: list[str]) -> str:
        user = session.auth_data
        if not session.authenticated or not isinstance(user, AuthenticatedUser):
            return AUTH_REQUIRED
        allowed = await asyncio.to_thread(self._allowed, user.user_id)
        account_id = allowed.get(normalise(address))
        if account_id is None:
            return SENDER_NOT_ALLOWED
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        setattr(envelope, ENVELOPE_ACCOUNT, account_id)
        return OK

    async def handle_RCPT(self, server: SMTP, session: SmtpSession, envelope: Envelope, address: str,
                          rcpt_options: list[str]) -> str:
        account_id = getattr(envelope, ENVELOPE_ACCOUNT, None)
        if account_id is None:
            return AUTH_REQUIRED
        rcpt = normalise(address)
        local, _, domain = rcpt.rpartition("@")
        if not local or not domain or "." not in domain and domain != "localhost":
            return BAD_RECIPIENT
        if not await asyncio.to_thread(self._reachable, account_id, rcpt):
            return NO_UPSTREAM
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return OK

    async def handle_DATA(self, server: SMTP, session: SmtpSession, envelope: Envelope) -> str:
        account_id = getattr(envelope, ENVELOPE_ACCOUNT, None)
        user = session.auth_data
        if account_id is None or not isinstance(user, AuthenticatedUser) or envelope.mail_from is None:
            return AUTH_REQUIRED
        raw = envelope.original_content or b""
        senders = [normalise(a) for _, a in getaddresses(BytesHeaderParser().parsebytes(raw).get_all("From") or [])
                   if a]
        if not senders:
            return NO_FROM
        allowed = await asyncio.to_thread(self._allowed, user.user_id)
        if any(s not in allowed for s in senders):
            return FROM_NOT_ALLOWED
        try:
            raw = await asyncio.to_thread(self._sign, raw, user.user_id, account_id, senders[0])
        except SignatureError as exc:
            return BAD_SIGNATURE.format(reason=str(exc).encode("ascii", "replace").decode())
        data, smtp_message_id = complete_headers(raw, hostname=self.hostname, helo=session.host_name or "",
                                                 peer=str(session.peer[0]) if session.peer else "",
                                                 username=user.username)
        submission = Submission(account_id=account_id, mail_from=envelope.mail_from,
                                rcpt_tos=tuple(envelope.rcpt_tos), raw=data, username=user.username)
        queued = await asyncio.to_thread(store_and_enqueue, self.db, self.blobs, self.stages, submission,
                                         smtp_message_id)
        if queued is None:
            log.error("submission by %s from %s was not queued", user.username, envelope.mail_from)
            return NOT_STORED
        log.info("queued #%d (message %d, %s) from %s for %d recipient(s)", queued.outbound_id, queued.message_id,
                 smtp_message_id, envelope.mail_from, len(envelope.rcpt_tos))
        if self.on_queued is not None:
            self.on_queued()
        return QUEUED.format(id=queued.outbound_id)

    def _allowed(self, user_id: int) -> dict[str, int]:
        with self.db.reading() as s:
            return allowed_senders(s, user_id)

    def _reachable(self, account_id: int, rcpt: str) -> bool:
        with self.db.reading() as s:
            return reachable(s, account_id, rcpt)

    def _sign(self, raw: bytes, user_id: int, account_id: int, sender: str) -> bytes:
        """The X-Casella-Signature header removed, the signature added if asked for."""
        with self.db.reading() as s:
            return sign_submission(s, raw, user_id=user_id, account_id=account_id, sender=sender)
