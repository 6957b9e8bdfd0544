"""The relay worker: delivers queued messages, internally or through the account's upstream.

    claim (COMMIT state=sending, attempts+1, lease) ─► internal copies (Storer, INBOX)
        ─► SMTP to the upstream for the other recipients ─► COMMIT sent | deferred | failed

Crash safety. A queued row is never deleted, so a killed worker loses nothing. The state is
committed *before* the SMTP transaction (sending) and *after* it. On start, rows left in
`sending` by a crash are sent again: a crash after the upstream accepted the message but
before `sent` was committed then delivers it twice (the window is one COMMIT; the
Message-ID is the same, so clients can recognise the copy). While a worker runs, a
`sending` row whose lease (next_attempt_at) expired is also taken back.
Internal copies are idempotent: the Storer recognises the same bytes in an account.

Bcc. The Sent copy keeps its Bcc: header (the sender sees whom he copied); the bytes that
leave (upstream SMTP and internal copies) have no Bcc: or Resent-Bcc: field, while the
envelope still names every recipient.

Sent folder on the server. For an account with `imap_append_sent` and an IMAP server, a sent
message's stored bytes, byte-exact, are appended (\\Seen) to the first of its sent_folders
the server has ("Sent" is created when none is). It runs after the deliveries of a pass and
never changes the delivery's outcome: a failure is kept in imap_append_error and tried again
later (1, 2, 4… minutes, at most hourly). Before appending, the folder is searched for the
Message-ID, so a copy is never appended twice. The poller then recognises the copy: its
(folder, UIDVALIDITY, UID) is recorded (APPENDUID), and its bytes have the stored sha256.

Retries. 4xx replies, timeouts, refused or dropped connections → deferred, next attempt
after 1, 2, 4… minutes (at most 1 hour apart), until CASELLA_RELAY_GIVE_UP_SECONDS after
submission → failed. A 5xx reply → failed at once with the upstream's reply. Every outcome
is also a `message_event` on the Sent message. Run one worker per installation.
"""

from __future__ import annotations

import logging
import re
import signal
import smtplib
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from imapclient import IMAPClient
from sqlalchemy import and_, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from casella.blobs import BlobStore
from casella.db import Database
from casella.errors import CasellaError, NotFound
from casella.models import Account, Message, MessageEvent, MessageLocation, utcnow
from casella.models.outbound import AccountSmtp, OutboundMessage
from casella.pipeline import build_stages
from casella.secrets import SecretBox
from casella.settings import Settings
from ingest.imap import connect, connection_for
from ingest.store import Incoming, Storer
from mailserver.errors import MailserverConfigError
from mailserver.identities import internal_addresses, normalise
from mailserver.submit import DEFAULT_SENT_FOLDER, strip_headers

log = logging.getLogger(__name__)

BACKOFF_FIRST = 60.0
BACKOFF_MAX = 3600.0
POLL_SECONDS = 2.0
INBOX = "INBOX"
BCC_HEADERS = ("Bcc", "Resent-Bcc")
APPEND_PENDING = "not yet copied to the server's Sent folder"
APPENDUID = re.compile(rb"APPENDUID (\d+) (\d+)")
INTERRUPTED = ("interrupted while sending (the worker stopped); sent again - if the upstream had already "
               "accepted it, recipients may get a second copy with the same Message-ID")


@dataclass(frozen=True, slots=True)
class Outcome:
    state: str  # sent | deferred | failed
    error: str | None = None


@dataclass(frozen=True, slots=True)
class Upstream:
    host: str
    port: int
    security: str
    username: str | None
    password: str | None


def backoff(attempts: int) -> timedelta:
    """Delay after the n-th failed attempt: 1, 2, 4… minutes, capped at one hour."""
    return timedelta(seconds=min(BACKOFF_FIRST * 2 ** max(attempts - 1, 0), BACKOFF_MAX))


class RelayWorker:
    def __init__(self, settings: Settings, db: Database, *, clock: Callable[[], datetime] = utcnow) -> None:
        self.db = db
        self.clock = clock
        self.timeout = settings.relay_timeout_seconds
        self.give_up = timedelta(seconds=settings.relay_give_up_seconds)
        self.lease = timedelta(seconds=max(600.0, self.timeout * 10))
        self.secrets = SecretBox(settings.secret_key_file)
        self.blobs = BlobStore(settings.blob_dir)
        self.storer = Storer(db, self.blobs, build_stages(settings), workers=1)
        self.imap_timeout = settings.imap_timeout_seconds
        self.append_retry: dict[int, tuple[int, datetime]] = {}  # outbound id → (failures, next try)

    # ------------------------------------------------------------ the loop
    def run_forever(self, stop: threading.Event, wake: threading.Event | None = None) -> None:
        self.recover()
        wake = wake or threading.Event()
        while not stop.is_set():
            try:
                self.run_pending()
            except Exception:
                log.exception("relay pass failed; trying again shortly")
            wake.wait(POLL_SECONDS)
            wake.clear()

    def run_pending(self) -> int:
        """Deliver every row that is due now; the number handled."""
        done = 0
        while (outbound_id := self.claim()) is not None:
            self.deliver(outbound_id)
            done += 1
        self.append_pending()
        return done

    def recover(self) -> int:
        """On start: rows a crashed worker left in `sending` are due again at once."""
        with self.db.session() as s:
            count = s.execute(update(OutboundMessage).where(OutboundMessage.state == "sending")
                              .values(state="deferred", next_attempt_at=self.clock(), last_error=INTERRUPTED)
                              .execution_options(synchronize_session=False)).rowcount
        if count:
            log.warning("%d message(s) were being sent when the relay stopped; sending them again", count)
        return count

    # ------------------------------------------------------------ one message
    def claim(self) -> int | None:
        """Commit state=sending on the next due row, before any SMTP traffic."""
        for _ in range(5):
            now = self.clock()
            due = or_(and_(OutboundMessage.state.in_(("queued", "deferred")),
                           or_(OutboundMessage.next_attempt_at.is_(None), OutboundMessage.next_attempt_at <= now)),
                      and_(OutboundMessage.state == "sending", OutboundMessage.next_attempt_at <= now))
            with self.db.session() as s:
                candidate = s.scalar(select(OutboundMessage.id).where(due)
                                     .order_by(OutboundMessage.next_attempt_at, OutboundMessage.id).limit(1))
                if candidate is None:
                    return None
                taken = s.execute(update(OutboundMessage).where(OutboundMessage.id == candidate, due)
                                  .values(state="sending", attempts=OutboundMessage.attempts + 1,
                                          next_attempt_at=now + self.lease)
                                  .execution_options(synchronize_session=False)).rowcount
            if taken == 1:
                return candidate
        return None  # other workers keep taking them: leave it to the next pass

    def deliver(self, outbound_id: int) -> Outcome:
        with self.db.reading() as s:
            row = s.get(OutboundMessage, outbound_id)
            assert row is not None
            message = s.get(Message, row.message_id)
            assert message is not None
            sha256, mail_from, rcpt_tos = message.sha256, row.mail_from, list(row.rcpt_tos)
            config = s.get(AccountSmtp, row.account_id)
            account = s.get(Account, row.account_id)
            account_name = account.name if account else str(row.account_id)
            internal = internal_addresses(s)
        try:
            upstream = self._upstream(config)
        except CasellaError as exc:  # the key file changed: retried until someone fixes it
            return self.finish(outbound_id, Outcome("deferred", str(exc)))
        raw, _ = strip_headers(self.blobs.get(sha256), BCC_HEADERS)  # the Sent copy keeps them
        local = sorted({internal[normalise(r)] for r in rcpt_tos if normalise(r) in internal})
        external = [r for r in rcpt_tos if normalise(r) not in internal]
        outcome = Outcome("sent")
        try:
            for account_id in local:
                self.storer.store_batch(account_id, [Incoming(raw=raw, folder=INBOX)], source="internal")
        except Exception as exc:
            log.exception("internal delivery of outbound #%d failed", outbound_id)
            outcome = Outcome("deferred", f"internal delivery failed: {type(exc).__name__}: {exc}")
        if outcome.state == "sent" and external:
            if upstream is None:
                outcome = Outcome("failed", f"account {account_name} has no upstream SMTP server "
                                            "(`casella smtp-upstream` sets one)")
            else:
                outcome = self.send(upstream, mail_from, external, raw)
        return self.finish(outbound_id, outcome)

    def send(self, upstream: Upstream, mail_from: str, rcpt_tos: list[str], raw: bytes) -> Outcome:
        """One SMTP transaction with the upstream; classify what happened."""
        try:
            if upstream.security == "ssl":
                client: smtplib.SMTP = smtplib.SMTP_SSL(upstream.host, upstream.port, timeout=self.timeout,
                                                        context=ssl.create_default_context())
            else:
                client = smtplib.SMTP(upstream.host, upstream.port, timeout=self.timeout)
            with client:
                if upstream.security == "starttls":
                    client.starttls(context=ssl.create_default_context())
                if upstream.username:
                    client.login(upstream.username, upstream.password or "")
                refused = client.sendmail(mail_from, rcpt_tos, raw)
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _ in exc.recipients.values()]
            detail = "; ".join(f"{r}: {c} {m.decode('utf-8', 'replace')}" for r, (c, m) in exc.recipients.items())
            return Outcome("failed" if all(500 <= c < 600 for c in codes) else "deferred",
                           f"every recipient refused: {detail}")
        except smtplib.SMTPResponseException as exc:
            reply = exc.smtp_error.decode("utf-8", "replace") if isinstance(exc.smtp_error, bytes) else str(exc.smtp_error)
            state = "failed" if 500 <= exc.smtp_code < 600 else "deferred"
            return Outcome(state, f"{upstream.host} replied {exc.smtp_code} {reply}")
        except (smtplib.SMTPException, OSError) as exc:
            return Outcome("deferred", f"{upstream.host}:{upstream.port}: {type(exc).__name__}: {exc}")
        if refused:
            detail = "; ".join(f"{r}: {c} {m.decode('utf-8', 'replace')}" for r, (c, m) in refused.items())
            return Outcome("sent", f"some recipients refused: {detail}")
        return Outcome("sent")

    def finish(self, outbound_id: int, outcome: Outcome) -> Outcome:
        """Commit the outcome; a deferral past the give-up period becomes a failure."""
        with self.db.session() as s:
            row = s.get(OutboundMessage, outbound_id)
            assert row is not None
            if row.state != "sending":
                log.warning("outbound #%d changed state to %s meanwhile; keeping it", outbound_id, row.state)
                return Outcome(row.state, row.last_error)
            now = self.clock()
            if outcome.state == "deferred" and now - row.created_at >= self.give_up:
                outcome = Outcome("failed", f"gave up after {row.attempts} attempt(s) over "
                                            f"{self.give_up}: {outcome.error}")
            row.state = outcome.state
            row.last_error = outcome.error
            if outcome.state == "sent":
                row.sent_at, row.next_attempt_at = now, None
                account = s.get(Account, row.account_id)
                if account is not None and account.imap_append_sent and account.imap_host \
                        and row.imap_appended_at is None:
                    row.imap_append_error = APPEND_PENDING  # append_pending() picks it up
            elif outcome.state == "failed":
                row.next_attempt_at = None
            else:
                row.next_attempt_at = now + backoff(row.attempts)
            s.add(MessageEvent(message_id=row.message_id, actor="mailserver", action=f"relay-{outcome.state}",
                               detail={"outbound_id": row.id, "attempt": row.attempts, "error": outcome.error}))
        log.log(logging.WARNING if outcome.state != "sent" else logging.INFO, "outbound #%d %s%s", outbound_id,
                outcome.state, f": {outcome.error}" if outcome.error else "")
        return outcome

    # ------------------------------------------------------------ the server's Sent folder
    def append_pending(self) -> int:
        """Copy to the IMAP Sent folder what was sent and is still waiting; the number copied."""
        now = self.clock()
        with self.db.reading() as s:
            waiting = list(s.scalars(select(OutboundMessage.id).join(Account, Account.id == OutboundMessage.account_id)
                                     .where(OutboundMessage.state == "sent", OutboundMessage.imap_appended_at.is_(None),
                                            OutboundMessage.imap_append_error.is_not(None),
                                            Account.imap_append_sent.is_(True), Account.imap_host.is_not(None))
                                     .order_by(OutboundMessage.id)))
        due = [n for n in waiting if n not in self.append_retry or self.append_retry[n][1] <= now]
        return sum(self.append_to_sent(n) for n in due)

    def append_to_sent(self, outbound_id: int) -> bool:
        """Append one sent message to the server's Sent folder, unless it is there already."""
        try:
            with self.db.reading() as s:
                row = s.get(OutboundMessage, outbound_id)
                assert row is not None
                message = s.get(Message, row.message_id)
                account = s.get(Account, row.account_id)
                assert message is not None and account is not None
                conn = connection_for(account, self.secrets, self.imap_timeout)
                name, candidates, mid, when = account.name, list(account.sent_folders), row.smtp_message_id, row.sent_at
            raw = self.blobs.get(message.sha256)
            with connect(conn, name) as client:
                folder = self._server_sent_folder(client, candidates)
                uidvalidity = int(client.select_folder(folder, readonly=True)[b"UIDVALIDITY"])
                there = client.search(["HEADER", "Message-ID", mid]) if mid else []
                if there:
                    uid: int | None = int(there[0])
                else:
                    reply = client.append(folder, raw, flags=(b"\\Seen",), msg_time=when)
                    found = APPENDUID.search(reply if isinstance(reply, bytes) else str(reply).encode())
                    uid = int(found.group(2)) if found and int(found.group(1)) == uidvalidity else None
        except Exception as exc:  # noqa: BLE001 - never the sending's problem: recorded on the row, retried later
            failures = self.append_retry.get(outbound_id, (0, self.clock()))[0] + 1
            self.append_retry[outbound_id] = (failures, self.clock() + backoff(failures))
            error = f"copy to the server's Sent folder failed ({type(exc).__name__}: {exc}); tried again later"
            log.warning("outbound #%d: %s", outbound_id, error)
            with self.db.session() as s:
                s.execute(update(OutboundMessage).where(OutboundMessage.id == outbound_id)
                          .values(imap_append_error=error).execution_options(synchronize_session=False))
            return False
        self.append_retry.pop(outbound_id, None)
        with self.db.session() as s:
            row = s.get(OutboundMessage, outbound_id)
            assert row is not None
            row.imap_appended_at, row.imap_append_error = self.clock(), None
            s.add(MessageEvent(message_id=row.message_id, actor="mailserver", action="imap-appended",
                               detail={"outbound_id": row.id, "folder": folder, "uid": uid, "found": bool(there)}))
            if uid is not None:  # the poller skips this server copy by its location
                try:
                    with s.begin_nested():
                        s.add(MessageLocation(message_id=row.message_id, account_id=row.account_id, folder=folder,
                                              uidvalidity=uidvalidity, uid=uid))
                except IntegrityError:
                    pass  # the poller recorded it first
        log.info("outbound #%d copied to %s/%s", outbound_id, name, folder)
        return True

    @staticmethod
    def _server_sent_folder(client: IMAPClient, candidates: list[str]) -> str:
        names = {str(name) for _, _, name in client.list_folders()}
        for folder in [*candidates, DEFAULT_SENT_FOLDER]:
            if folder in names:
                return folder
        client.create_folder(DEFAULT_SENT_FOLDER)
        return DEFAULT_SENT_FOLDER

    def _upstream(self, config: AccountSmtp | None) -> Upstream | None:
        if config is None:
            return None
        password = self.secrets.decrypt(config.password_encrypted) if config.password_encrypted else None
        return Upstream(config.host, config.port, config.security, config.username, password)


def set_imap_append_sent(session: Session, account_name: str, on: bool) -> Account:
    """`casella sent-copy ACCOUNT --on|--off`."""
    account = session.scalar(select(Account).where(Account.name == account_name))
    if account is None:
        raise NotFound(f"no account named {account_name!r}; `casella account list` shows them")
    if on and not (account.imap_host and account.username and account.password_encrypted is not None):
        raise MailserverConfigError(f"account {account_name} has no IMAP server to copy sent mail to; "
                                    "give it one with `casella account add ... --imap-host`")
    account.imap_append_sent = on
    session.flush()
    return account


def main() -> None:
    """`python -m mailserver.relay`: the relay worker alone, until SIGTERM or Ctrl-C."""
    from casella.settings import get_settings

    settings = get_settings()
    logging.basicConfig(level=getattr(logging, settings.log_level, logging.INFO),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    RelayWorker(settings, Database.from_settings(settings)).run_forever(stop)


if __name__ == "__main__":
    main()
