"""Delivery reports about mail we sent, parsed from the raw bytes with the standard library.

- Bounces and delays: a DSN (RFC 3464), ``multipart/report; report-type=delivery-status``.
  Its ``message/delivery-status`` part is one block of per-message fields (Reporting-MTA,
  Arrival-Date), then one block per recipient (Final-Recipient, Original-Recipient, Action,
  Status, Diagnostic-Code, Last-Attempt-Date). The original's Message-ID comes from the
  attached ``message/rfc822`` or ``text/rfc822-headers`` part.
- Read receipts: an MDN (RFC 8098), ``report-type=disposition-notification``. Its
  ``message/disposition-notification`` part says who (Final-Recipient), what
  (Disposition: ``manual-action/MDN-sent-manually; displayed``) and about which message
  (Original-Message-ID, else the attached original, else In-Reply-To/References).

The SMTPUTF8 forms (RFC 6533: message/global-delivery-status, -disposition-notification,
-headers) are read the same way. Nothing here raises on a broken report: what could not be
understood is listed in `DeliveryReport.problems` and the stage keeps the message.

Casella only reads reports: it never sends an MDN (nor a DSN) on its own, whatever a
message's Disposition-Notification-To asks. A person's mail client may send one.
"""

from __future__ import annotations

import base64
import binascii
import quopri
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email import message_from_string
from email.message import Message as EmailMessage
from email.parser import BytesParser, HeaderParser
from email.policy import compat32
from email.utils import getaddresses, parsedate_to_datetime

__all__ = ["DeliveryReport", "RecipientReport", "is_report", "parse_report", "recipient_state"]

DSN_PARTS = ("message/delivery-status", "message/global-delivery-status")
MDN_PARTS = ("message/disposition-notification", "message/global-disposition-notification")
ORIGINAL_PARTS = ("message/rfc822", "message/global", "text/rfc822-headers", "message/global-headers")
REPORT_TYPES = {"delivery-status": "dsn", "disposition-notification": "mdn"}
_ACTION_BY_CLASS = {"2": "delivered", "4": "delayed", "5": "failed"}  # RFC 3463 status classes
_STATUS = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")
_MSGID = re.compile(r"<([^<>\s]+)>")

# What one recipient's report means for the sender, and which wins when several speak of
# the same recipient: a final answer beats a transient one, a read receipt beats all.
_DSN_STATES = {"failed": "bounced", "delayed": "delayed", "delivered": "delivered", "relayed": "relayed",
               "expanded": "expanded"}
_MDN_STATES = {"displayed": "read", "deleted": "deleted", "dispatched": "dispatched", "processed": "processed"}
STATE_RANK = {"delayed": 1, "relayed": 2, "expanded": 2, "delivered": 3, "bounced": 4, "processed": 5,
              "dispatched": 5, "deleted": 6, "read": 7}


@dataclass(frozen=True, slots=True)
class RecipientReport:
    """What a report says about one recipient."""

    recipient: str | None  # Final-Recipient address, lower-cased, without the address type
    original_recipient: str | None  # Original-Recipient, when given
    action: str  # DSN Action (failed, delayed, delivered, relayed, expanded); MDN disposition type
    status: str | None  # DSN Status, e.g. "5.1.1"
    diagnostic: str | None  # DSN Diagnostic-Code without its type ("550 5.1.1 ... unknown")
    at: datetime | None  # Last-Attempt-Date, else Arrival-Date, else the report's Date (UTC)

    @property
    def state(self) -> str:
        return recipient_state(self.action)


@dataclass(frozen=True, slots=True)
class DeliveryReport:
    """One DSN or MDN: about which message, for whom, and what went wrong reading it."""

    kind: str  # dsn | mdn
    refers_to_msgid: str | None  # the original's Message-ID, without angle brackets
    recipients: tuple[RecipientReport, ...]
    reporter: str | None  # Reporting-MTA (DSN) or Reporting-UA (MDN)
    disposition: str | None  # the whole MDN Disposition field
    problems: tuple[str, ...]


def recipient_state(action: str) -> str:
    """bounced | delayed | delivered | relayed | expanded | read | deleted | dispatched |
    processed; the action itself when unknown."""
    return _DSN_STATES.get(action) or _MDN_STATES.get(action) or action or "unknown"


def is_report(headers: Iterable[tuple[str, str]]) -> bool:
    """True when the top-level Content-Type is multipart/report (any report type): cheap,
    from the parsed headers, so only reports cost a read of the stored bytes."""
    return any(key.lower() == "content-type" and value.strip().lower().startswith("multipart/report")
               for key, value in headers)


def parse_report(raw: bytes, *, fallback_at: datetime | None = None) -> DeliveryReport | None:
    """The DSN or MDN in `raw`; None when it is not one (an ordinary message, or another
    report type such as an abuse feedback report). Never raises on malformed input."""
    try:
        msg = BytesParser(policy=compat32).parsebytes(raw)
    except Exception as exc:  # noqa: BLE001 - the stdlib parser is lenient; this is a last guard
        return DeliveryReport("dsn", None, (), None, None, (f"unreadable message: {exc}",))
    if msg.get_content_type() != "multipart/report":
        return None
    report_type = (msg.get_param("report-type") or "")
    report_type = report_type.lower().strip() if isinstance(report_type, str) else ""
    parts = list(_walk(msg))
    types = [p.get_content_type() for p in parts]
    kind = REPORT_TYPES.get(report_type)
    if kind is None:
        if report_type:
            return None  # feedback-report, tlsrpt…: not about delivery to our recipients
        kind = "dsn" if any(t in DSN_PARTS for t in types) else "mdn" if any(t in MDN_PARTS for t in types) else None
        if kind is None:
            return None
    problems: list[str] = []
    if not report_type:
        problems.append(f"multipart/report without report-type; read as {'DSN' if kind == 'dsn' else 'MDN'}")
    date = _date(msg.get("Date")) or fallback_at
    original = _original_msgid(parts)
    if kind == "dsn":
        recipients, reporter = _dsn(parts, date, problems)
        refers = original or _field_msgid(msg, "X-Original-Message-ID") or _reply_msgid(msg)
        if original is None and refers is not None:
            problems.append("no original message attached; matched by the report's own headers")
        disposition = None
    else:
        recipients, reporter, disposition, refers = _mdn(parts, msg, date, problems)
        refers = refers or original or _reply_msgid(msg)
    if refers is None:
        problems.append("no Message-ID of the original message (no Original-Message-ID, attached original, "
                        "In-Reply-To or References): cannot be linked to a sent message")
    return DeliveryReport(kind, refers, tuple(recipients), reporter, disposition, tuple(problems))


def _walk(msg: EmailMessage) -> Iterable[EmailMessage]:
    """The leaf-level parts of the report, not descending into the attached original nor
    into the delivery-status blocks (which the stdlib stores as a list of pseudo-messages)."""
    payload = msg.get_payload()
    if not isinstance(payload, list):
        return
    for part in payload:
        if not isinstance(part, EmailMessage):
            continue
        ctype = part.get_content_type()
        if part.is_multipart() and ctype.startswith("multipart/"):
            yield from _walk(part)
        else:
            yield part


def _blocks(part: EmailMessage) -> list[EmailMessage]:
    """The field blocks of a delivery-status or disposition-notification part."""
    cte = str(part.get("Content-Transfer-Encoding", "")).strip().lower()
    payload = part.get_payload()
    if isinstance(payload, list) and cte not in ("base64", "quoted-printable"):
        blocks = [b for b in payload if isinstance(b, EmailMessage)]
        fields = [b for b in blocks if b.keys()]
        # Some MTAs (Postfix behind Proofpoint) put "Content-Transfer-Encoding: base64"
        # among the per-message fields and encode the recipient blocks below it.
        inner = next((str(b["Content-Transfer-Encoding"]).strip().lower() for b in fields
                      if b["Content-Transfer-Encoding"]), "")
        rest = "\n".join(str(b.get_payload()) for b in blocks
                         if not b.keys() and isinstance(b.get_payload(), str) and b.get_payload().strip())
        if inner in ("base64", "quoted-printable") and rest:
            fields += _split_blocks(_decode(rest, inner))
        return fields
    if isinstance(payload, list):  # encoded, yet parsed as fields by the stdlib: undo that
        text = "\n".join(b.as_string() for b in payload if isinstance(b, EmailMessage))
    else:
        text = str(payload)
    return _split_blocks(_decode(text, cte))


def _split_blocks(text: str) -> list[EmailMessage]:
    blocks = []
    for chunk in re.split(r"\r?\n[ \t]*\r?\n", text):
        if chunk.strip():
            block = HeaderParser(policy=compat32).parsestr(chunk.strip("\r\n") + "\n\n")
            if block.keys():
                blocks.append(block)
    return blocks


def _decode(text: str, cte: str) -> str:
    data = text.encode("utf-8", "surrogateescape")
    try:
        if cte == "base64":
            data = base64.b64decode(re.sub(rb"[^A-Za-z0-9+/=]", b"", data) + b"==")
        elif cte == "quoted-printable":
            data = quopri.decodestring(data)
    except (binascii.Error, ValueError):
        pass
    return data.decode("utf-8", "replace")


def _text(value: object) -> str:
    """A field value unfolded into one line (compat32 keeps folds)."""
    return " ".join(str(value).split()) if value is not None else ""


def _typed(value: object) -> str:
    """The part after "type;" of an address-type or diagnostic-type field."""
    text = _text(value)
    head, sep, rest = text.partition(";")
    return rest.strip() if sep and " " not in head.strip() else text


def _address(value: object) -> str | None:
    text = _typed(value).strip().strip("<>").strip()
    if not text:
        return None
    pairs = getaddresses([text])
    addr = pairs[0][1] if pairs and pairs[0][1] else text
    return addr.lower()[:998]


def _date(value: object) -> datetime | None:
    text = _text(value)
    if not text:
        return None
    try:
        parsed = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if parsed is None:
        return None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _status(value: object) -> str | None:
    match = _STATUS.search(_text(value))
    return ".".join(match.groups())[:16] if match else None


def _msgid(value: object) -> str | None:
    text = _text(value)
    match = _MSGID.search(text)
    if match:
        return match.group(1)[:998]
    text = text.strip()
    return text[:998] if text and " " not in text else None


def _field_msgid(msg: EmailMessage, name: str) -> str | None:
    value = msg.get(name)
    return _msgid(value) if value is not None else None


def _reply_msgid(msg: EmailMessage) -> str | None:
    """In-Reply-To, else the last of References: what most clients set on an MDN."""
    found = _field_msgid(msg, "In-Reply-To")
    if found:
        return found
    refs = _MSGID.findall(_text(msg.get("References", "")))
    return refs[-1][:998] if refs else None


def _original_msgid(parts: Sequence[EmailMessage]) -> str | None:
    """The Message-ID of the attached original (whole message or headers only)."""
    for part in parts:
        ctype = part.get_content_type()
        if ctype not in ORIGINAL_PARTS:
            continue
        payload = part.get_payload()
        if isinstance(payload, list) and payload and isinstance(payload[0], EmailMessage):
            headers = payload[0]  # message/rfc822: the stdlib parsed the attached message
        else:
            cte = str(part.get("Content-Transfer-Encoding", "")).strip().lower()
            headers = message_from_string(_decode(str(payload), cte), policy=compat32)
        found = _field_msgid(headers, "Message-ID")
        if found:
            return found
    return None


def _dsn(parts: Sequence[EmailMessage], date: datetime | None,
         problems: list[str]) -> tuple[list[RecipientReport], str | None]:
    status_parts = [p for p in parts if p.get_content_type() in DSN_PARTS]
    if not status_parts:
        problems.append("delivery-status report without a message/delivery-status part: no recipient known")
        return [], None
    blocks = [block for part in status_parts for block in _blocks(part)]
    reporter = next((_typed(b["Reporting-MTA"]) for b in blocks if b["Reporting-MTA"]), None)
    arrival = next((_date(b["Arrival-Date"]) for b in blocks if b["Arrival-Date"]), None)
    out = []
    for block in blocks:
        if not (block["Final-Recipient"] or block["Original-Recipient"] or block["Action"]):
            continue  # the per-message block
        action = _text(block["Action"]).lower().split(" ")[0].split("(")[0]
        recipient = _address(block["Final-Recipient"]) or _address(block["Original-Recipient"])
        if recipient is None:
            problems.append("a recipient block without Final-Recipient")
        status = _status(block["Status"])
        if block["Status"] and status is None:
            problems.append(f"unreadable Status {_text(block['Status'])[:40]!r}")
        if not action:
            action = _ACTION_BY_CLASS.get(status[0], "") if status else ""
            problems.append(f"recipient {recipient or '?'} without an Action field"
                            + (f"; read as {action} from Status {status}" if action else ""))
        diagnostic = _typed(block["Diagnostic-Code"]) or None
        out.append(RecipientReport(recipient, _address(block["Original-Recipient"]), action[:32], status,
                                   diagnostic, _date(block["Last-Attempt-Date"]) or arrival or date))
    if not out:
        problems.append("message/delivery-status part without any recipient block")
    return out, reporter


def _mdn(parts: Sequence[EmailMessage], msg: EmailMessage, date: datetime | None,
         problems: list[str]) -> tuple[list[RecipientReport], str | None, str | None, str | None]:
    mdn_parts = [p for p in parts if p.get_content_type() in MDN_PARTS]
    if not mdn_parts:
        problems.append("disposition-notification report without a message/disposition-notification part")
        return [], None, None, None
    fields: dict[str, str] = {}
    for block in _blocks(mdn_parts[0]):
        for key, value in block.items():
            fields.setdefault(key.lower(), _text(value))
    disposition = fields.get("disposition") or None
    action = ""
    if disposition:
        # "manual-action/MDN-sent-manually; displayed" (RFC 3798 allowed "displayed/error").
        action = disposition.partition(";")[2].strip().split("/")[0].strip().lower()
    if not action:
        problems.append(f"unreadable Disposition {disposition!r}" if disposition else "MDN without Disposition")
    senders = getaddresses([_text(msg.get("From", ""))])
    recipient = (_address(fields.get("final-recipient")) or _address(fields.get("original-recipient"))
                 or (senders[0][1].lower()[:998] if senders and senders[0][1] else None))
    errors = "; ".join(fields[k] for k in ("error", "failure", "warning") if fields.get(k)) or None
    report = RecipientReport(recipient, _address(fields.get("original-recipient")), action[:32], None, errors, date)
    refers = _msgid(fields["original-message-id"]) if fields.get("original-message-id") else None
    return [report], fields.get("reporting-ua") or None, disposition, refers
