"""Standard-library layer of the parser, and the engine="email" fallback.

Everything here needs only the `email` package working on a compat32 message tree:
charset repair, RFC 2047 header text, addresses, Message-IDs, dates, and `Hooks`, the
standard-library way to transfer-decode payloads and flatten nested messages.
`ingest.parse` walks the tree with `MailParserHooks` (mail-parser's helpers,
engine="mail-parser") and, when that raises, again with these `Hooks` on
`stdlib_tree()` (engine="email").  Nothing here raises for any input bytes.
"""

from __future__ import annotations

import binascii
import codecs
import email
import email.header
import email.policy
import email.utils
import re
from datetime import datetime, timezone
from email.generator import BytesGenerator
from email.message import Message
from email.parser import BytesHeaderParser
from functools import lru_cache
from io import BytesIO

from ingest.parsed import Address

# ---------------------------------------------------------------- charsets
_ALIASES = {"x-sjis": "cp932", "windows-874": "cp874", "latin-9": "iso8859-15",
            "x-mac-roman": "mac-roman", "iso-8859-8-i": "iso8859-8", "x-gbk": "gbk"}
_SUPERSETS = {"iso8859-1": "cp1252", "gb2312": "gb18030", "gbk": "gb18030",
              "shift_jis": "cp932", "euc_kr": "cp949", "big5": "big5hkscs"}
_UNSAFE = {"undefined", "unicode-escape", "raw-unicode-escape", "idna", "punycode"}
_WESTERN = {"ascii", "cp1252", "iso8859-15"}  # valid UTF-8 under these labels is UTF-8
_NOT_ASCII_SAFE = ("utf-16", "utf-32", "utf-7", "iso2022", "hz")
_LABEL = re.compile(r"[A-Za-z0-9._:+-]+")
_SURROGATE = re.compile("[\ud800-\udfff]")


@lru_cache(maxsize=256)
def codec_for(label: str | None) -> str | None:
    """Python codec name for a declared charset label, None if unknown or unsafe."""
    m = _LABEL.search(str(label or "").split("*", 1)[0])
    if not m:
        return None
    name = m.group(0).lower()
    name = _ALIASES.get(name, re.sub(r"^cp-(\d+)$", r"cp\1", name))
    for candidate in (name, name[2:] if name.startswith("x-") else None):
        try:
            info = codecs.lookup(candidate) if candidate else None
        except (LookupError, ValueError):
            continue
        if info and getattr(info, "_is_text_encoding", True) and info.name not in _UNSAFE:
            return _SUPERSETS.get(info.name, info.name)
    return None


def decode_bytes(data: bytes, declared: str | None, defects: list, what: str) -> str:
    """Bytes to valid Unicode: declared charset, then UTF-8, then windows-1252 (replace)."""
    if not data:
        return ""
    codec = codec_for(declared)
    if data.isascii() and not (codec or "").startswith(_NOT_ASCII_SAFE):
        return data.decode("ascii")
    if declared and codec is None:
        defects.append(f"{what}: unknown charset {str(declared)[:40]!r}")
    order = ["utf-8", codec] if codec in _WESTERN else [codec, "utf-8"]
    for name in order:
        if name is None:
            continue
        try:
            text = data.decode(name)
        except (UnicodeError, LookupError, ValueError):
            continue
        if name != (codec or "utf-8") and codec not in (None, "ascii"):
            defects.append(f"{what}: declared {declared!r} but decoded as {name}")
        return _SURROGATE.sub("\ufffd", text) if name == "utf-7" else text
    if codec and codec not in _WESTERN and codec != "utf-8":
        try:
            text = _SURROGATE.sub("\ufffd", data.decode(codec, "replace"))
            if text.count("\ufffd") <= max(1, len(text) // 100):
                defects.append(f"{what}: invalid {codec} bytes replaced")
                return text
        except (UnicodeError, LookupError, ValueError):
            pass
    defects.append(f"{what}: undecodable as {codec or 'utf-8'}, decoded as windows-1252")
    return data.decode("cp1252", "replace")


# ---------------------------------------------------------------- header text
_FOLD = re.compile(r"\r?\n(?=[ \t])")
_ENCODED_WORD = re.compile(r"=\?([^?\s]*)\?([qQbB])\?(.*?)\?=")


def to_octets(value: str) -> bytes:
    """compat32 keeps raw 8-bit octets as lone surrogates: get the bytes back."""
    try:
        return value.encode("utf-8", "surrogateescape")
    except UnicodeError:
        return value.encode("utf-8", "replace")


def repair_8bit(value: str, defects: list, what: str, hint: str | None = None) -> str:
    """Raw 8-bit header octets as text: UTF-8 (RFC 6532), else the charset the message
    declares for its body (`hint`), else windows-1252."""
    if value.isascii():
        return value
    raw = to_octets(value)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        pass
    codec = hint if hint and hint not in _WESTERN and hint != "utf-8" else "cp1252"
    try:
        text = raw.decode(codec)
    except (UnicodeError, LookupError):
        codec, text = "cp1252", raw.decode("cp1252", "replace")
    defects.append(f"{what}: raw 8-bit header is not UTF-8, decoded as {codec}")
    return text


def unfold(value: str) -> str:
    if "\n" in value or "\r" in value:
        value = _FOLD.sub("", value).replace("\r", " ").replace("\n", " ")
    return value


def lenient_b64(data: bytes | str) -> bytes:
    if isinstance(data, str):
        data = data.encode("ascii", "ignore")
    data = re.sub(rb"[^A-Za-z0-9+/]", b"", data.split(b"=", 1)[0])
    data = data[:-1] if len(data) % 4 == 1 else data
    return binascii.a2b_base64(data + b"=" * (-len(data) % 4))


def _decode_words_tolerant(value: str, defects: list, what: str) -> str:
    """RFC 2047 without raising: merges adjacent same-charset words (split characters)."""
    out: list[str] = []
    buf, buf_cs, pos = b"", None, 0
    for m in _ENCODED_WORD.finditer(value):
        gap, cs, text = value[pos:m.start()], m.group(1).lower(), m.group(3)
        try:
            if m.group(2) in "qQ":
                data = binascii.a2b_qp(text.encode("utf-8", "replace"), header=True)
            else:
                data = lenient_b64(text)
        except (binascii.Error, ValueError):
            data = text.encode("utf-8", "replace")
            defects.append(f"{what}: broken encoded word")
        if buf_cs is not None and not gap.strip() and cs == buf_cs:
            buf += data
        else:
            if buf_cs is not None:
                out.append(decode_bytes(buf, buf_cs, defects, what))
            if buf_cs is None or gap.strip():
                out.append(gap)
            buf, buf_cs = data, cs
        pos = m.end()
    if buf_cs is not None:
        out.append(decode_bytes(buf, buf_cs, defects, what))
    out.append(value[pos:])
    return "".join(out)


def decode_words(value: str, defects: list, what: str) -> str:
    if "=?" not in value:
        return value
    if value.isascii():
        try:
            chunks = email.header.decode_header(value)
            return "".join(c if isinstance(c, str) else decode_bytes(c, cs, defects, what)
                           for c, cs in chunks)
        except Exception:  # HeaderParseError on bad base64, odd input: tolerant path
            pass
    return _decode_words_tolerant(value, defects, what)


def header_text(value, defects: list, what: str, hint: str | None = None) -> str:
    """A raw compat32 header value as clean Unicode text (unfolded, decoded, stripped)."""
    if isinstance(value, str) and value.isascii() and "=?" not in value and "\n" not in value \
            and "\x00" not in value:
        return value.strip()  # the common case, nothing to decode
    text = decode_words(unfold(repair_8bit(str(value), defects, what, hint)), defects, what)
    return text.replace("\x00", "").strip()


# ---------------------------------------------------------------- structured headers
_MAILBOX = re.compile(  # starts only after a separator, so the search stays linear
    r"(?<![^\s<>()\[\],;:\"'])[^\s<>()\[\],;:\"'@]++@[^\s<>()\[\],;:\"'@]+")
_ANGLE_ID = re.compile(r"<([^<>]*)>")
_ID_SEPARATORS = re.compile(r"[\s,<>]+")
_WS = re.compile(r"\s+")


_ATOMS = r'[^<>()\[\]\\,;:@"\s]'
_SIMPLE_MAILBOX = re.compile(  # `Name <a@b>`, `<a@b>`, `a@b` without quotes/comments/groups
    rf"\s*(?:({_ATOMS}[^<>()\[\]\\,;:@\"]*?)?\s*<({_ATOMS}+@{_ATOMS}+)>|({_ATOMS}+@{_ATOMS}+))\s*")


def _getaddresses(values: list[str], defects: list, what: str) -> list[tuple[str, str]]:
    pairs = []  # fast path, same result as getaddresses() for these simple shapes
    for item in ", ".join(values).split(","):
        m = _SIMPLE_MAILBOX.fullmatch(item)
        if m is None:
            if item.strip():
                break
            continue
        pairs.append((" ".join((m.group(1) or "").split()), m.group(2) or m.group(3)))
    else:
        return pairs
    try:
        return email.utils.getaddresses(values)
    except Exception as exc:  # RecursionError on some huge or odd headers
        defects.append(f"{what}: address parser failed ({type(exc).__name__})")
        return []


def addresses(values: list, defects: list, what: str, hint: str | None = None
              ) -> tuple[Address, ...]:
    """getaddresses() on the unfolded values; display names RFC 2047-decoded after
    splitting (a decoded "Rossi, Mario" must not become two mailboxes)."""
    if not values:
        return ()
    vals = [unfold(repair_8bit(str(v), defects, what, hint)) for v in values]
    pairs = _getaddresses(vals, defects, what)
    if "=?" in "".join(vals) and not any("@" in a for _, a in pairs):
        pairs = _getaddresses([decode_words(v, defects, what) for v in vals], defects, what)
    joined = " ".join(vals)
    if (not pairs or any(_WS.search(a.strip()) or a.startswith("@") or a.endswith("@")
                         or a.count("@") > 1 for _, a in pairs if a)) and _MAILBOX.search(joined):
        found = _MAILBOX.findall(joined)
        rest = joined
        for a in found:
            rest = rest.replace(a, " ")
        name = " ".join(rest.replace("<", " ").replace(">", " ").strip(" \"'\t").split())
        pairs = [(name if len(found) == 1 else "", a) for a in found]
        defects.append(f"{what}: malformed address list, mailboxes recovered by pattern")
    out = []
    for name, addr in pairs:
        name = decode_words(name, defects, what).replace("\x00", "").strip()
        addr = addr.replace("\x00", "").strip().lower()
        if name or addr:
            out.append(Address(name=name, addr=addr))
    return tuple(out)


def message_ids(value: str, bare_needs_at: bool = True) -> list[str]:
    """Angle-bracketed ids in order, brackets and whitespace removed, deduplicated."""
    ids = [_WS.sub("", i) for i in _ANGLE_ID.findall(value)]
    if not ids:  # no <...>: bare ids, or a bracket lost to truncation
        ids = [t for t in _ID_SEPARATORS.split(value) if t and ("@" in t or not bare_needs_at)]
    return list(dict.fromkeys(i for i in ids if i))


def date_stdlib(value: str, defects: list) -> datetime | None:
    try:
        dt = email.utils.parsedate_to_datetime(value)
        if dt.tzinfo is None:  # "-0000" or no zone: unknown local time, read as UTC
            dt = dt.replace(tzinfo=timezone.utc)
        return dt.astimezone(timezone.utc)
    except Exception:
        defects.append(f"Date: unparsable {value[:60]!r}")
        return None


# ---------------------------------------------------------------- transfer decoding
class Hooks:
    """How one engine decodes payloads, dates and nested messages (stdlib here)."""

    name = "email"

    def date(self, value: str, defects: list) -> datetime | None:
        return date_stdlib(value, defects)

    def base64(self, part: Message, data: bytes) -> bytes:
        """Damaged base64 (bad characters, padding or length), best effort."""
        return lenient_b64(data)

    def flatten(self, msg: Message) -> bytes:
        try:
            out = BytesIO()
            BytesGenerator(out, mangle_from_=False, maxheaderlen=0).flatten(msg)
            return out.getvalue()
        except Exception:
            return b""

    def extra_parts(self, msg: Message, categories: set, defects: list) -> list:
        return []


# ---------------------------------------------------------------- trees
_HEADER_LINE = re.compile(rb"[!-9;-~]+:")
_OBS_HEADER_LINE = re.compile(rb"([!-9;-~]+)[ \t]+:")  # RFC 5322 4.5: "Subject :"
_BLANK_LINE = re.compile(rb"\r?\n\r?\n")


def _repair_header_block(raw: bytes, defects: list) -> bytes | None:
    """The email package ends the header block at the first line that is not a header,
    so "Subject :x" (obsolete syntax) or a stray "quite Delivered-To: x" line pushes the
    remaining headers into the body.  Fix those lines when real headers follow."""
    end = _BLANK_LINE.search(raw)
    if end is None:
        return None
    lines = raw[:end.start()].split(b"\n")
    kept, junk, obsolete, last_header = [], [], 0, -1
    for i, line in enumerate(lines):
        if _HEADER_LINE.match(line):
            kept.append(line)
            last_header = i
        elif i and line[:1] in (b" ", b"\t"):
            kept.append(line)
        elif m := _OBS_HEADER_LINE.match(line):
            kept.append(m.group(1) + b":" + line[m.end():])
            obsolete, last_header = obsolete + 1, i
        elif i == 0 and line.startswith(b"From "):  # mbox separator
            kept.append(line)
        elif i == 0:
            return None  # no header at the top: a message without a header block
        else:
            junk.append((i, line))
    if len(junk) > 3 or not (junk or obsolete) or (junk and last_header < junk[-1][0]):
        return None
    junk = [line for _, line in junk]
    defects.extend(f"message: dropped a malformed header line {line[:60]!r}" for line in junk)
    if obsolete:
        defects.append("message: obsolete header syntax (space before the colon) accepted")
    return b"\n".join(kept) + raw[end.start():]


def message_tree(raw: bytes, defects: list) -> Message:
    """The compat32 tree, built as `mailparser.parse_from_bytes` builds it, after the repair
    of a header block that the email package would end too early."""
    msg = email.message_from_bytes(raw, policy=email.policy.compat32)
    if any(type(d).__name__ == "MissingHeaderBodySeparatorDefect" for d in msg.defects):
        repaired = _repair_header_block(raw, defects)
        if repaired is not None:
            msg = email.message_from_bytes(repaired, policy=email.policy.compat32)
    return msg


def stdlib_tree(raw: bytes, defects: list) -> Message:
    """The fallback's message tree: compat32, or headers only if the MIME tree is hopeless."""
    try:
        return message_tree(raw, defects)
    except Exception as exc:  # RecursionError on absurd nesting: headers + raw body text
        defects.append(f"MIME structure unparsable ({type(exc).__name__}); body kept as text")
        return BytesHeaderParser(policy=email.policy.compat32).parsebytes(raw)

