"""The aiosmtpd handler of the submission server: authenticate, check the sender, store.

AUTH (PLAIN or LOGIN) is checked against Casella users (argon2id hashes); aiosmtpd refuses
MAIL before AUTH (530), so nothing is ever relayed for an anonymous client. `handle_DATA`
parses the headers, adds the signature when asked (signatures.py; the X-Casella-Signature
header never leaves), stores the message in the account's Sent folder and queues it, and
returns one of the named replies below. Delivery is the relay worker's job (relay.py).

Nothing that blocks runs on the event loop, which serves every connection: the argon2
check (`SubmissionSMTP`), every database read and the storing go to the loop's thread
pool, DATA's as one call (sender check, signature, headers, store: `accept`).
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
from casella.models.outbound import AccountSmtp
from casella.pipeline import Stage
from casella.users import verify_password
from mailserver.errors import SignatureError
from mailserver.identities import allowed_senders, internal_addresses, normalise
from mailserver.signatures import sign_submission
from mailserver.submit import (
    Submission,
    complete_headers,
    store_and_enqueue,
    submission_target,
)

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
# What RCPT TO may reach from that account, read at MAIL FROM in the same pool call as the
# sender check (identities.reachable, once per transaction instead of once per recipient):
# True when the account has an upstream (every address), else the Casella mailboxes' addresses.
ENVELOPE_REACH = "casella_reachable"


@dataclass(frozen=True, slots=True)
class AuthenticatedUser:
    """What a successful AUTH leaves in the SMTP session (`session.auth_data`)."""

    user_id: int
    username: str


class Authenticator:
    """aiosmtpd `authenticator`: a Casella username and password (PLAIN or LOGIN).

    One argon2 verification (tens to hundreds of milliseconds) and a database read: with
    `SubmissionSMTP` it runs on a pool thread, not on the event loop."""

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


@dataclass(frozen=True, slots=True)
class _PendingAuth:
    """The credentials `SubmissionSMTP._authenticate` leaves for the check off the loop."""

    mechanism: str
    auth_data: Any


class SubmissionSMTP(SMTP):
    """aiosmtpd's SMTP whose AUTH PLAIN / LOGIN run the authenticator (argon2, a database
    read) on the loop's thread pool: aiosmtpd calls it synchronously, on the event loop,
    which would stall every other connection meanwhile. The protocol exchange is
    aiosmtpd's own; only the final check moves.

    `_authenticate` (called by aiosmtpd's auth_PLAIN / auth_LOGIN) returns a *failed*
    result carrying the credentials, which `_finish_auth` replaces with the real check:
    should anything else ever use that placeholder, the AUTH fails (535), never passes."""

    def _authenticate(self, mechanism: str, auth_data: Any) -> AuthResult:
        return AuthResult(success=False, handled=False, auth_data=_PendingAuth(mechanism, auth_data))

    async def _finish_auth(self, result: AuthResult) -> AuthResult:
        pending = result.auth_data if isinstance(result, AuthResult) else None
        if not isinstance(pending, _PendingAuth):
            return result  # aiosmtpd refused before the check (bad base64, '*' …)
        return await asyncio.get_running_loop().run_in_executor(
            None, SMTP._authenticate, self, pending.mechanism, pending.auth_data)

    async def auth_PLAIN(self, _: Any, args: list[str]) -> AuthResult:
        return await self._finish_auth(await super().auth_PLAIN(_, args))

    async def auth_LOGIN(self, _: Any, args: list[str]) -> AuthResult:
        return await self._finish_auth(await super().auth_LOGIN(_, args))


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
        account_id, reach = await asyncio.to_thread(self._sender, user.user_id, normalise(address))
        if account_id is None:
            return SENDER_NOT_ALLOWED
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        setattr(envelope, ENVELOPE_ACCOUNT, account_id)
        setattr(envelope, ENVELOPE_REACH, reach)
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
        reach = getattr(envelope, ENVELOPE_REACH, frozenset())
        if reach is not True and rcpt not in reach:
            return NO_UPSTREAM
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return OK

    async def handle_DATA(self, server: SMTP, session: SmtpSession, envelope: Envelope) -> str:
        account_id = getattr(envelope, ENVELOPE_ACCOUNT, None)
        user = session.auth_data
        if account_id is None or not isinstance(user, AuthenticatedUser) or envelope.mail_from is None:
            return AUTH_REQUIRED
        return await asyncio.get_running_loop().run_in_executor(
            None, self.accept, user, account_id, envelope.mail_from, tuple(envelope.rcpt_tos),
            envelope.original_content or b"", session.host_name or "", str(session.peer[0]) if session.peer else "")

    def accept(self, user: AuthenticatedUser, account_id: int, mail_from: str, rcpt_tos: tuple[str, ...],
               raw: bytes, helo: str, peer: str) -> str:
        """DATA, on a pool thread: the From: check, the signature, the headers, then the
        Sent copy + protocol number + queue row in one transaction; the SMTP reply."""
        senders = [normalise(a) for _, a in getaddresses(BytesHeaderParser().parsebytes(raw).get_all("From") or [])
                   if a]
        if not senders:
            return NO_FROM
        with self.db.reading() as s:
            allowed = allowed_senders(s, user.user_id)
            if any(sender not in allowed for sender in senders):
                return FROM_NOT_ALLOWED
            try:
                raw = sign_submission(s, raw, user_id=user.user_id, account_id=account_id, sender=senders[0])
            except SignatureError as exc:
                return BAD_SIGNATURE.format(reason=str(exc).encode("ascii", "replace").decode())
            target = submission_target(s, account_id)
        data, smtp_message_id = complete_headers(raw, hostname=self.hostname, helo=helo, peer=peer,
                                                 username=user.username)
        submission = Submission(account_id=account_id, mail_from=mail_from, rcpt_tos=rcpt_tos, raw=data,
                                username=user.username)
        queued = store_and_enqueue(self.db, self.blobs, self.stages, submission, smtp_message_id, target=target)
        if queued is None:
            log.error("submission by %s from %s was not queued", user.username, mail_from)
            return NOT_STORED
        log.info("queued #%d (message %d, %s) from %s for %d recipient(s)", queued.outbound_id, queued.message_id,
                 smtp_message_id, mail_from, len(rcpt_tos))
        if self.on_queued is not None:
            self.on_queued()
        return QUEUED.format(id=queued.outbound_id)

    def _sender(self, user_id: int, address: str) -> tuple[int | None, bool | frozenset[str]]:
        """MAIL FROM, on a pool thread: the account the user may send `address` through
        (None: not allowed) and what its recipients may be (ENVELOPE_REACH)."""
        with self.db.reading() as s:
            account_id = allowed_senders(s, user_id).get(address)
            if account_id is None:
                return None, frozenset()
            if s.get(AccountSmtp, account_id) is not None:
                return account_id, True
            return account_id, frozenset(internal_addresses(s))
