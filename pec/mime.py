"""A minimal MIME splitter that works on the raw bytes and never re-serialises.

The email package rebuilds what it parses; a PEC signature covers the exact bytes, and
postacert.eml must be kept as the provider sent it. Here an entity is a byte string: its
headers are read with the standard library (read-only), its body is cut at the boundary
lines, and a leaf is transfer-decoded. Depth and part counts are bounded; nothing raises.
"""

from __future__ import annotations

import binascii
import quopri
import re
from dataclasses import dataclass, field
from email.message import Message
from email.parser import BytesHeaderParser
from email.policy import compat32

MAX_DEPTH = 8
MAX_PARTS = 500
_BLANK = re.compile(rb"\r?\n\r?\n")


@dataclass(frozen=True)
class Entity:
    """One MIME entity: its exact bytes, split into header block and body."""

    raw: bytes = field(repr=False)
    headers: Message = field(repr=False, compare=False)
    body: bytes = field(repr=False)

    @property
    def content_type(self) -> str:
        return self.headers.get_content_type()

    @property
    def filename(self) -> str:
        try:
            name = self.headers.get_filename() or self.headers.get_param("name") or ""
        except Exception:  # malformed RFC 2231 parameters
            return ""
        return str(name).strip().lower()

    @property
    def boundary(self) -> str | None:
        try:
            return self.headers.get_boundary()
        except Exception:
            return None

    def decoded(self) -> bytes:
        """The body after Content-Transfer-Encoding (base64, quoted-printable, or as is)."""
        cte = str(self.headers.get("content-transfer-encoding", "")).strip().lower()
        if cte == "base64":
            cleaned = re.sub(rb"[^A-Za-z0-9+/=]", b"", self.body)
            cleaned = cleaned.split(b"=")[0]
            cleaned += b"=" * (-len(cleaned) % 4)
            try:
                return binascii.a2b_base64(cleaned)
            except (binascii.Error, ValueError):
                return b""
        if cte == "quoted-printable":
            return quopri.decodestring(self.body)
        return self.body


def parse_entity(raw: bytes) -> Entity:
    """Split raw bytes into headers (parsed, read-only) and body (exact bytes)."""
    if raw.startswith((b"\r\n", b"\n")):
        head, body = b"", raw[2 if raw.startswith(b"\r\n") else 1:]
    else:
        match = _BLANK.search(raw)
        head, body = (raw[:match.start()], raw[match.end():]) if match else (raw, b"")
    try:
        headers = BytesHeaderParser(policy=compat32).parsebytes(head + b"\n\n")
    except Exception:
        headers = Message()
    return Entity(raw=raw, headers=headers, body=body)


def split_multipart(body: bytes, boundary: str) -> tuple[list[bytes], bool]:
    """The exact bytes of each part (the CRLF before a delimiter belongs to the delimiter).

    Returns (parts, closed): closed is False when the closing delimiter is missing.
    """
    delimiter = re.compile(rb"(?:^|\r?\n)--" + re.escape(boundary.encode("utf-8", "replace"))
                           + rb"(--)?[ \t]*(?:\r?\n|$)")
    parts: list[bytes] = []
    start: int | None = None
    for match in delimiter.finditer(body):
        if start is not None:
            parts.append(body[start:match.start()])
            if len(parts) >= MAX_PARTS:
                return parts, False
        if match.group(1):
            return parts, True
        start = match.end()
    if start is not None:
        parts.append(body[start:])
    return parts, False


def children(entity: Entity) -> list[Entity]:
    """The direct parts of a multipart entity ([] for a leaf or a broken multipart)."""
    if not entity.content_type.startswith("multipart/"):
        return []
    boundary = entity.boundary
    if not boundary:
        return []
    parts, _closed = split_multipart(entity.body, boundary)
    return [parse_entity(part) for part in parts]


def walk(entity: Entity, depth: int = 0) -> list[Entity]:
    """Every entity below this one, depth first, NOT descending into message/* parts."""
    found: list[Entity] = []
    if depth >= MAX_DEPTH:
        return found
    for child in children(entity):
        found.append(child)
        if len(found) > MAX_PARTS:
            break
        found.extend(walk(child, depth + 1))
    return found
