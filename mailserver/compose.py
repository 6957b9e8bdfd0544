"""Send a message written in the webmail: the same checks and the same path as SMTP
submission, with no SMTP connection to ourselves.

    Compose ─► may the user send as this address through this account? (identities.py)
            ─► MIME (EmailMessage: text, optional HTML alternative, attachments)
            ─► threading headers from the stored original, read-receipt request
            ─► signature (signatures.py) ─► complete_headers ─► store_and_enqueue
               (Sent copy + protocol number + queue row, one transaction)

The relay worker delivers it like any submission (it polls the queue every few seconds).
"""

from __future__ import annotations

import mimetypes
import socket
from dataclasses import dataclass
from email import policy
from email.headerregistry import Address
from email.message import EmailMessage, MIMEPart
from email.utils import format_datetime, getaddresses, make_msgid

from sqlalchemy import select

from casella.access import grant_for, visible_clause
from casella.blobs import BlobStore
from casella.db import Database
from casella.models import Account, Message, User, utcnow
from casella.pipeline import build_stages
from casella.settings import Settings
from mailserver.errors import ComposeError, RecipientUnreachable, SenderNotAllowed
from mailserver.identities import allowed_senders, normalise, reachable
from mailserver.signatures import render_for, sign_message
from mailserver.submit import Queued, Submission, complete_headers, store_and_enqueue

MAX_REFERENCES = 20  # the original's References kept in a reply, the newest ones


@dataclass(frozen=True, slots=True)
class ComposeAttachment:
    filename: str
    content_type: str  # "application/pdf"; empty: guessed from the file name
    data: bytes


@dataclass(frozen=True, slots=True)
class Compose:
    """One message to send. Addresses are "addr@example.it" or "Name <addr@example.it>"."""

    account_id: int
    from_address: str
    to: tuple[str, ...]
    subject: str
    text: str
    cc: tuple[str, ...] = ()
    bcc: tuple[str, ...] = ()  # kept in the Sent copy, never in what leaves (relay.py)
    html: str | None = None
    attachments: tuple[ComposeAttachment, ...] = ()
    from_name: str = ""
    in_reply_to: int | None = None  # id of the stored message this answers
    request_read_receipt: bool = False  # Disposition-Notification-To: the sender
    signature: bool | str = True  # True: the user's signature if any; a name; False: none


def submit(settings: Settings, db: Database, user: User, compose: Compose) -> Queued:
    """Check, build, sign, store in Sent and queue. Raises SenderNotAllowed,
    RecipientUnreachable, ComposeError or SignatureError; nothing is stored then."""
    sender = normalise(compose.from_address)
    recipients = _addresses(compose.to + compose.cc + compose.bcc)
    if not recipients:
        raise ComposeError("the message has no recipient: add at least one address in To, Cc or Bcc")
    with db.reading() as s:
        account = s.get(Account, compose.account_id)
        if account is None:
            raise ComposeError(f"account #{compose.account_id} does not exist")
        allowed = allowed_senders(s, user.id)
        if allowed.get(sender) != account.id:
            elsewhere = allowed.get(sender)
            hint = (f"{sender} sends through account #{elsewhere}, not {account.name}" if elsewhere is not None
                    else f"ask an administrator for `casella account grant {account.name} --user {user.username} "
                         f"--level write` or `casella identity add {user.username} {sender} --account {account.name}`")
            raise SenderNotAllowed(f"{user.username} may not send as {sender} through account {account.name}: {hint}")
        unreachable = [r for r in recipients if not reachable(s, account.id, r)]
        if unreachable:
            raise RecipientUnreachable(f"account {account.name} has no upstream SMTP server, so only Casella "
                                       f"mailboxes can be reached, not {', '.join(unreachable)}; "
                                       f"`casella smtp-upstream {account.name} ...` sets one")
        msg = build_message(compose, sender, hostname=sender.rpartition("@")[2] or "localhost")
        if compose.in_reply_to is not None:
            original = s.scalar(select(Message).where(Message.id == compose.in_reply_to,
                                                      visible_clause(grant_for(s, user))))
            if original is None:
                raise ComposeError(f"message {compose.in_reply_to} does not exist or {user.username} may not read it")
            add_threading(msg, original)
        if compose.signature:
            name = compose.signature if isinstance(compose.signature, str) else None
            rendered = render_for(s, user.id, account.id, sender, name)
            if rendered is not None:
                sign_message(msg, rendered)
    raw, smtp_message_id = complete_headers(msg.as_bytes(), hostname=socket.getfqdn(), helo="webmail", peer="",
                                            username=user.username, protocol="HTTP")
    if len(raw) > settings.smtp_max_size:
        raise ComposeError(f"the message is {len(raw) / 1e6:.1f} MB, more than the {settings.smtp_max_size / 1e6:.1f} MB "
                           "allowed (CASELLA_SMTP_MAX_SIZE); send fewer or smaller attachments")
    submission = Submission(account_id=compose.account_id, mail_from=sender, rcpt_tos=tuple(recipients), raw=raw,
                            username=user.username)
    queued = store_and_enqueue(db, BlobStore(settings.blob_dir), build_stages(settings), submission, smtp_message_id)
    if queued is None:
        raise ComposeError("the message could not be queued (the same message was stored already); try again")
    return queued


def build_message(compose: Compose, sender: str, *, hostname: str) -> EmailMessage:
    msg = EmailMessage(policy=policy.SMTP)
    msg["From"] = Address(compose.from_name, addr_spec=sender) if compose.from_name else sender
    for header, values in (("To", compose.to), ("Cc", compose.cc), ("Bcc", compose.bcc)):
        if values:
            msg[header] = ", ".join(v.strip() for v in values)
    msg["Subject"] = compose.subject
    msg["Date"] = format_datetime(utcnow())
    msg["Message-ID"] = make_msgid(domain=hostname)
    if compose.request_read_receipt:
        msg["Disposition-Notification-To"] = sender
    msg.set_content(compose.text if compose.text.endswith("\n") else compose.text + "\n")
    if compose.html is not None:
        msg.add_alternative(compose.html, subtype="html")
    for attachment in compose.attachments:
        content_type = attachment.content_type or mimetypes.guess_type(attachment.filename)[0] \
            or "application/octet-stream"
        if content_type.lower() == "message/rfc822":
            if msg.get_content_type() != "multipart/mixed":
                msg.make_mixed()
            msg.attach(forwarded_message(attachment))
            continue
        maintype, _, subtype = content_type.partition("/")
        # As bytes (base64) whatever the type: a text file keeps its own encoding.
        msg.add_attachment(attachment.data, maintype=maintype, subtype=subtype or "octet-stream",
                           filename=attachment.filename)
    return msg


def forwarded_message(attachment: ComposeAttachment) -> MIMEPart:
    """A message forwarded as an attachment, byte for byte (a signed PEC stays verifiable).

    RFC 2046 §5.2.1 allows only 7bit, 8bit or binary for message/rfc822, never base64: the
    part's payload is the original's bytes, written out unchanged by the generator
    (surrogateescape keeps non-ASCII bytes), with CRLF line ends as SMTP wants."""
    raw = attachment.data
    if b"\r\n" not in raw:
        raw = raw.replace(b"\n", b"\r\n")
    part = MIMEPart(policy=policy.SMTP)
    part["Content-Type"] = "message/rfc822"
    part.add_header("Content-Disposition", "attachment", filename=attachment.filename or "message.eml")
    part["Content-Transfer-Encoding"] = "8bit" if any(b > 127 for b in raw) else "7bit"
    part.set_payload(raw.decode("ascii", "surrogateescape"))
    return part


def add_threading(msg: EmailMessage, original: Message) -> None:
    """In-Reply-To and References (RFC 5322 §3.6.4) from the stored original."""
    if not original.message_id:
        return
    chain = list(original.references or []) or ([original.in_reply_to] if original.in_reply_to else [])
    parent = _bracket(original.message_id)
    msg["In-Reply-To"] = parent
    msg["References"] = " ".join([*(_bracket(r) for r in chain[-MAX_REFERENCES:]), parent])


def _bracket(message_id: str) -> str:
    """The database keeps Message-IDs without their angle brackets."""
    return message_id if message_id.startswith("<") else f"<{message_id}>"


def _addresses(values: tuple[str, ...]) -> list[str]:
    found: dict[str, str] = {}
    for value in values:
        for _, address in getaddresses([value]):
            local, _, domain = address.strip().rpartition("@")
            if not local or not domain or "." not in domain and domain != "localhost":
                raise ComposeError(f"{value!r} is not an e-mail address; write name@example.it")
            found.setdefault(normalise(address), address.strip())
    return list(found.values())
