"""The value the parser hands to the rest of the pipeline.

Frozen dataclasses only: a ParsedMessage crosses process boundaries (ingest parses on
both cores), so everything in it must pickle and nothing in it may hold a live object.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True, slots=True)
class Address:
    """One mailbox of a header: decoded display name and lower-cased address."""

    name: str
    addr: str

    def as_json(self) -> dict[str, str]:
        return {"name": self.name, "addr": self.addr}


@dataclass(frozen=True, slots=True)
class ParsedAttachment:
    """A leaf part that is not the message's body text (or is an explicit attachment)."""

    filename: str
    content_type: str
    size: int
    sha256: str
    payload: bytes = field(repr=False)
    content_id: str | None = None
    inline: bool = False


@dataclass(frozen=True, slots=True)
class ParsedMessage:
    """Everything Casella extracts from one raw message.

    Strings are always valid Unicode (wrong or unknown charsets are repaired, never raised);
    what could not be understood is listed in `defects`, and the raw bytes stay the truth.
    """

    message_id: str | None  # without angle brackets; None when absent or empty
    in_reply_to: str | None  # first Message-ID of In-Reply-To, without angle brackets
    references: tuple[str, ...]  # References, oldest first, without angle brackets
    subject: str
    sender: Address | None  # From (first mailbox)
    to: tuple[Address, ...]
    cc: tuple[Address, ...]
    reply_to: tuple[Address, ...]
    date: datetime | None  # Date header as an aware UTC datetime, None if missing/unparsable
    text: str  # text/plain body (the first non-attachment text part), "" if none
    html: str  # text/html body, "" if none (NOT sanitised: the webmail sanitises)
    attachments: tuple[ParsedAttachment, ...]
    headers: tuple[tuple[str, str], ...]  # every top-level header, decoded, in order
    defects: tuple[str, ...]  # human-readable parse problems; empty when clean
    engine: str  # "mail-parser" or "email" (the standard-library fallback)
