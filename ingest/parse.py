"""Raw message bytes -> `ingest.parsed.ParsedMessage`.  Never raises.

Primary engine (engine="mail-parser"): the tree is built as `mailparser.parse_from_bytes`
builds it (`email.message_from_bytes`, compat32) and read with mail-parser's own helpers
where they do what Casella needs: `parse_mail_date` for dates and its diagnostics,
`decode_base64_payload` for damaged base64 (clean base64 goes straight to binascii, same
result), mail-parser's recovery of parts hidden after the closing boundary (`find_between`
on `EPILOGUE_DEFECTS`, as `MailParser.parse()` does it) and `as_string_safe` for nested
messages the generator cannot flatten.  `MailParser.parse()` itself is not run: it parses
every Received header, builds two JSON-ready dicts, descends into message/rfc822 parts,
names unnamed parts with random strings, returns 7bit ISO-2022-JP bodies undecoded and
costs about three times this whole module.  Header and body text use the charset repair
in `ingest.parse_fallback` (declared -> UTF-8 -> windows-1252), because mail-parser's
decoders drop undecodable bytes (errors="ignore").

When any of that raises (mail-parser's epilogue recovery does on some malformed
messages), the message is parsed again with the standard library only (engine="email",
`ingest.parse_fallback.Hooks`) and the reason is recorded in `defects`.
"""

from __future__ import annotations

import binascii
import email
import email.policy
import hashlib
import mimetypes
import re
from datetime import datetime
from email.message import Message
from email.parser import BytesHeaderParser

from mailparser.const import EPILOGUE_DEFECTS
from mailparser.dates import parse_mail_date
from mailparser.utils import as_string_safe, decode_base64_payload, find_between

from ingest.parse_fallback import (Hooks, addresses, codec_for, date_stdlib, decode_bytes,
                                   header_text, message_ids, message_tree, repair_8bit,
                                   stdlib_tree, to_octets)
from ingest.parsed import ParsedAttachment, ParsedMessage

__all__ = ["parse_message"]


class MailParserHooks(Hooks):
    name = "mail-parser"

    def date(self, value: str, defects: list) -> datetime | None:
        result = parse_mail_date(value)
        defects.extend(f"Date: {reason} ({value[:60]!r})" for reason in result.reasons)
        # mail-parser refuses some dates the stdlib reads (no zone, "-600"): second opinion
        return result.value if result.value is not None else date_stdlib(value, [])

    def base64(self, part: Message, data: bytes) -> bytes:
        return decode_base64_payload(data.decode("ascii", "ignore"))

    def flatten(self, msg: Message) -> bytes:
        return super().flatten(msg) or as_string_safe(msg).encode("utf-8", "surrogateescape")

    def extra_parts(self, msg: Message, categories: set, defects: list) -> list:
        """mail-parser's epilogue recovery, as MailParser.parse() does it (and fails)."""
        if not categories & EPILOGUE_DEFECTS:
            return []
        boundary = "--" + msg.get_boundary()
        hidden = find_between(msg.epilogue, boundary, boundary + "--")
        if not hidden:
            return []
        defects.append("epilogue: recovered a part hidden after the closing boundary")
        return [email.message_from_string(hidden, policy=email.policy.compat32)]


# ---------------------------------------------------------------- parts
_MIME = mimetypes.MimeTypes()  # built-in table only: the same names on every machine
_EXT = {"application/xml": ".xml", "text/calendar": ".ics", "application/ms-tnef": ".dat",
        "message/rfc822": ".eml", "message/global": ".eml", "image/jpeg": ".jpg",
        "application/pkcs7-signature": ".p7s", "application/x-pkcs7-signature": ".p7s",
        "application/pkcs7-mime": ".p7m", "application/pgp-signature": ".asc"}
_ALTERNATIVE_TEXT = {"text/plain", "text/html", "text/enriched", "text/richtext"}
_MIME_HEADERS = {"content-type", "content-disposition", "content-id",
                 "content-transfer-encoding"}
_MIME_TYPE = re.compile(r"[a-z0-9!#$%&'*+.^_`|~-]+/[a-z0-9!#$%&'*+.^_`|~-]+")
_CHARSET_PARAM = re.compile(r"""(?i);\s*charset\s*=\s*["']?([^"';\s]+)""")
_META_CHARSET = re.compile(rb"""<meta[^>]{0,200}?charset\s*=\s*["']?([\w.:-]+)""", re.I)
_UNSAFE_NAME = re.compile(r'[\x00-\x1f\x7f/\\:*?"<>|]+')
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _ext(ctype: str) -> str:
    ext = _EXT.get(ctype) or _MIME.guess_extension(ctype)
    return ext or (".txt" if ctype.startswith(("text/", "message/")) else ".bin")


def _view(part: Message, defects: list, label: str) -> Message:
    """A small Message holding only the part's MIME headers (raw 8-bit octets repaired):
    every later lookup scans four headers instead of all of the part's."""
    items = list(part.raw_items())
    if len(items) <= 4 and all(isinstance(v, str) and v.isascii() for _, v in items):
        return part  # a typical body part: already small and clean
    view = Message()
    view.set_default_type(part.get_default_type())
    for name, value in items:
        if name.lower() in _MIME_HEADERS:
            if not (isinstance(value, str) and value.isascii()):
                value = repair_8bit(str(value), defects, f"{label} {name}")
            view[name] = value
    return view


def _filename(view: Message, defects: list, label: str) -> str:
    for param, header in (("filename", "content-disposition"), ("name", "content-type")):
        if param not in str(view.get(header, "")).lower():
            continue  # cheap test first: get_param() parses every parameter
        value = view.get_param(param, None, header)
        if isinstance(value, tuple):  # RFC 2231: (charset, language, %-decoded text)
            try:
                data = value[2].encode("latin-1")
            except UnicodeError:
                data = value[2].encode("utf-8", "replace")
            value = decode_bytes(data, value[0], defects, f"{label} filename")
        if value:
            name = header_text(value, defects, f"{label} filename")
            name = _CONTROL.sub("", name.replace("\\", "/").rsplit("/", 1)[-1]).strip()
            if name:
                return name
    return ""


def _cte(view: Message) -> str:
    return str(view.get("content-transfer-encoding", "")).split(";")[0].strip().lower()


def _payload(part: Message, view: Message, hooks: Hooks, defects: list, label: str) -> bytes:
    """Transfer-decoded bytes of a leaf part; message/* parts are flattened back."""
    # _payload, not get_payload(): compat32 keeps raw octets surrogate-escaped there, while
    # get_payload() would already have (lossily) applied the declared charset.
    payload, cte = part._payload, _cte(view)
    if isinstance(payload, list):  # message/*: parsed by the email package, flatten it
        data = b"".join(hooks.flatten(p) for p in payload if isinstance(p, Message))
    elif isinstance(payload, str):
        data = to_octets(payload)
    else:
        data = bytes(payload or b"")
    if cte == "base64":
        data = data.translate(None, b" \t\r\n")
        try:  # clean base64 decodes to exactly 3 bytes per 4 characters, minus padding
            out = binascii.a2b_base64(data)
            if len(data) % 4 == 0 and len(out) == len(data) // 4 * 3 - (
                    len(data) - len(data.rstrip(b"="))):
                return out
        except (binascii.Error, ValueError):
            pass
        defects.append(f"{label}: damaged base64, decoded best effort")
        return hooks.base64(part, data)
    if cte in ("quoted-printable", "quoted printable", "quoted_printable"):
        return binascii.a2b_qp(data)
    if cte in ("x-uuencode", "uuencode", "uue", "x-uue"):
        return part.get_payload(decode=True) or data
    if cte not in ("", "7bit", "8bit", "binary", "7-bit", "8-bit", "8bits"):
        defects.append(f"{label}: unknown Content-Transfer-Encoding {cte[:30]!r}, kept as is")
    return data


def _charset(view: Message) -> str | None:
    ctype = str(view.get("content-type", ""))
    if "*" in ctype:  # RFC 2231 parameters: let the email package decode them
        return view.get_content_charset()
    m = _CHARSET_PARAM.search(ctype)
    return m.group(1).lower() if m else None


def _text(part: Message, view: Message, data: bytes, defects: list, label: str) -> str:
    charset = _charset(view)
    if charset is None and view.get_content_subtype() == "html":
        m = _META_CHARSET.search(data[:4096])
        charset = m.group(1).decode("ascii") if m else None
    text = decode_bytes(data, charset, defects, label)
    return text.replace("\r\n", "\n").replace("\x00", "")


def _nested_name(part: Message, view: Message, data: bytes, label: str, n: int) -> str:
    inner = part.get_payload()
    if _cte(view) in ("base64", "quoted-printable") or not isinstance(inner, list):
        inner = [BytesHeaderParser(policy=email.policy.compat32).parsebytes(data)]
    subject = header_text(inner[0].get("subject", ""), [], label) if inner else ""
    subject = " ".join(_UNSAFE_NAME.sub(" ", subject).split())[:100].strip(" .")
    return f"{subject}.eml" if subject else f"part-{n}.eml"


def walk(msg: Message, hooks: Hooks, defects: list) -> tuple[str, str, list]:
    """First text/plain and text/html body parts, and every other leaf as an attachment.

    message/* parts are leaves (kept whole as attachments, never searched for the body).
    """
    body: dict[str, str] = {}
    attachments: list[ParsedAttachment] = []
    categories: set[str] = set()
    counter = [0, 0]  # parts seen, leaves seen

    def run(stack: list) -> None:
        while stack:
            part, parent, inside, root = stack.pop()
            counter[0] += 1
            view = _view(part, defects, "message" if root else f"part {counter[0]}")
            ctype = view.get_content_type()
            if not _MIME_TYPE.fullmatch(ctype):
                defects.append(f"part {counter[0]}: invalid Content-Type {ctype[:40]!r}")
                ctype = view.get_default_type()
            label = "message" if root else f"part {counter[0]} ({ctype})"
            for defect in part.defects:
                categories.add(type(defect).__name__)
                defects.append(f"{label}: {type(defect).__name__}")
            maintype = ctype.split("/", 1)[0]
            disposition = view.get_content_disposition()
            filename = _filename(view, defects, label)
            if part.is_multipart() and maintype != "message":
                # RFC 2183 2.9: a disposition on a container covers all of it (mail-parser).
                blocked = inside or disposition not in (None, "inline") or bool(
                    disposition != "inline" and filename)
                children = [p for p in part.get_payload() if isinstance(p, Message)]
                stack.extend((p, ctype, blocked, False) for p in reversed(children))
                continue
            counter[1] += 1
            if maintype == "multipart":  # no usable boundary: the raw text is the body
                ctype = "text/plain"
            data = _payload(part, view, hooks, defects, label)
            slot = {"text/plain": "text", "text/html": "html"}.get(ctype)
            if slot and data.count(b"\x00", 0, 4096) > 8 and not str(
                    codec_for(_charset(view))).startswith(("utf-16", "utf-32")):
                slot = None  # binary junk (e.g. an Outlook .msg) is not a text body
            if (slot and slot not in body and not inside and disposition != "attachment"
                    and (not filename or disposition == "inline" or root)):
                text = _text(part, view, data, defects, label)
                if text.strip():  # an empty part does not take the body's place
                    body[slot] = text
                continue
            if not data and maintype in ("text", "multipart") and not filename:
                continue  # nothing to keep
            if (parent == "multipart/alternative" and ctype in _ALTERNATIVE_TEXT
                    and not filename and disposition != "attachment"):
                continue  # another rendering of the body already chosen
            if not filename:
                filename = (_nested_name(part, view, data, label, counter[1])
                            if ctype in ("message/rfc822", "message/global")
                            else f"part-{counter[1]}{_ext(ctype)}")
            cid = header_text(view.get("content-id", ""), defects, label).strip("<> \t") or None
            attachments.append(ParsedAttachment(
                filename=filename, content_type=ctype, size=len(data),
                sha256=hashlib.sha256(data).hexdigest(), payload=data, content_id=cid,
                inline=disposition == "inline" or cid is not None))

    run([(msg, "", False, True)])
    run([(p, "", True, False) for p in reversed(hooks.extra_parts(msg, categories, defects))])
    return body.get("text", ""), body.get("html", ""), attachments


# ---------------------------------------------------------------- message
def build(msg: Message, hooks: Hooks, defects: list) -> ParsedMessage:
    """Turn a compat32 message tree into a ParsedMessage using `hooks`."""
    headers: list[tuple[str, str]] = []
    first: dict[str, str] = {}
    every: dict[str, list] = {}
    items = list(msg.raw_items())
    hint = None  # charset for raw 8-bit headers: the one declared for the body
    if not all(isinstance(v, str) and v.isascii() for _, v in items):
        hint = codec_for(msg.get_param("charset")) if msg.get("content-type") else None
    for name, value in items:
        if not name.isascii():
            name = repair_8bit(str(name), defects, "header name")
        key = name.lower()
        if key in ("from", "to", "cc", "reply-to"):
            every.setdefault(key, []).append(value)
        text = header_text(value, defects, name, hint)
        headers.append((name, text))
        first.setdefault(key, text)
    sender = addresses(every.get("from", [])[:1], defects, "From", hint)
    mid = message_ids(first.get("message-id", ""), bare_needs_at=False)
    irt = message_ids(first.get("in-reply-to", ""))
    date = hooks.date(first["date"], defects) if first.get("date") else None
    text, html, attachments = walk(msg, hooks, defects)
    if not headers:
        defects.append("message: no header fields")
    return ParsedMessage(
        message_id=mid[0] if mid else None, in_reply_to=irt[0] if irt else None,
        references=tuple(message_ids(first.get("references", ""))),
        subject=first.get("subject", ""), sender=sender[0] if sender else None,
        to=addresses(every.get("to"), defects, "To", hint),
        cc=addresses(every.get("cc"), defects, "Cc", hint),
        reply_to=addresses(every.get("reply-to"), defects, "Reply-To", hint), date=date,
        text=text, html=html, attachments=tuple(attachments), headers=tuple(headers),
        defects=_defects(defects), engine=hooks.name)


def _defects(defects: list[str], limit: int = 200) -> tuple[str, ...]:
    unique = list(dict.fromkeys(defects))
    if len(unique) > limit:
        unique[limit:] = [f"... and {len(unique) - limit} more defects"]
    return tuple(unique)


def _describe(exc: Exception) -> str:
    try:
        return f"{type(exc).__name__}: {str(exc)[:80]}"
    except Exception:
        return type(exc).__name__


def minimal(raw: bytes, defects: list) -> ParsedMessage:
    """Last resort when even the fallback failed: raw text, nothing structured."""
    return ParsedMessage(
        message_id=None, in_reply_to=None, references=(), subject="", sender=None,
        to=(), cc=(), reply_to=(), date=None, attachments=(), headers=(), html="",
        text=raw.decode("utf-8", "replace").replace("\x00", ""),
        defects=_defects(defects), engine="email")


def parse_message(raw: bytes) -> ParsedMessage:
    """Parse one RFC 5322 message.  Never raises: problems are listed in `defects`."""
    defects: list[str] = []
    try:
        if isinstance(raw, str):
            raw = raw.encode("utf-8", "surrogateescape")
        data = bytes(raw) if isinstance(raw, (bytes, bytearray, memoryview)) else b""
    except Exception:
        data = b""
    if not data:
        defects.append("message: empty")
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
        defects.append("message: leading UTF-8 byte order mark removed")
    try:
        primary = list(defects)
        return build(message_tree(data, primary), MailParserHooks(), primary)
    except Exception as exc:
        defects.append(f"mail-parser engine failed ({_describe(exc)}); "
                       "parsed with the email fallback")
    try:
        fallback = list(defects)
        return build(stdlib_tree(data, fallback), Hooks(), fallback)
    except Exception as exc:
        defects.append(f"email fallback failed ({type(exc).__name__}); raw text only")
    return minimal(data, defects)
