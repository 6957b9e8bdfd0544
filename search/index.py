"""The one interface both engines implement, and the frozen values that cross it.

A `SearchDocument` is everything the index knows about a message (built from the database by
search/document.py); a `SearchQuery` is what a user asked; `search()` also takes the user's
`Grant` (casella/access.py) and turns it into the engine's own filter, so a hit the user
may not read is never produced, not filtered out afterwards.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from casella.access import Grant


@dataclass(frozen=True, slots=True)
class SearchDocument:
    id: int  # message.id
    account_id: int
    account: str
    folder: str
    date: datetime | None  # Date header, else when the server got it, else when stored
    message_id: str | None  # the Message-ID header
    subject: str
    from_name: str
    from_addr: str
    to: tuple[str, ...] = ()  # "Name <addr>"
    cc: tuple[str, ...] = ()
    body: str = ""
    attachment_names: tuple[str, ...] = ()
    attachment_text: str = ""
    protocol: str | None = None  # 2026/0000042
    company: str = ""
    contact: str = ""
    tags: tuple[str, ...] = ()
    praticas: tuple[str, ...] = ()  # pratica codes
    # Filters and access control (mirroring casella/access.py's visible_clause).
    direction: str = "in"
    link_kind: str = "unknown"
    company_id: int | None = None
    agent: str | None = None
    assigned_user_id: int | None = None
    assigned_group_id: int | None = None
    is_public: bool = False
    has_attachments: bool = False
    pec_kind: str = ""

    @property
    def from_domains(self) -> tuple[str, ...]:
        """mail.edilnord.it and edilnord.it for a@mail.edilnord.it (what --from DOMAIN matches)."""
        _, at, domain = self.from_addr.lower().rpartition("@")
        if not at or not domain:
            return ()
        labels = domain.strip(".").split(".")
        return tuple(".".join(labels[i:]) for i in range(max(len(labels) - 1, 1)))

    @property
    def protocol_forms(self) -> tuple[str, ...]:
        """Both spellings users type: 2026/42 and 2026/0000042."""
        if not self.protocol:
            return ()
        return (short_protocol(self.protocol), self.protocol)


def short_protocol(label: str) -> str:
    """2026/0000042 -> 2026/42 (the form both engines match on)."""
    year, _, number = label.partition("/")
    return f"{int(year)}/{int(number)}"


@dataclass(frozen=True, slots=True)
class SearchFilters:
    """Every filter is optional; those given must all hold."""

    account_ids: frozenset[int] = frozenset()
    folder: str | None = None
    since: datetime | None = None  # inclusive
    until: datetime | None = None  # inclusive
    sender: str | None = None  # an address, or a domain (its subdomains match too)
    has_attachment: bool | None = None
    pec_kind: str | None = None
    company_id: int | None = None
    assigned_user_id: int | None = None
    tag: str | None = None
    pratica: str | None = None
    unknown: bool = False  # only mail from unknown senders


@dataclass(frozen=True, slots=True)
class SearchQuery:
    """`text` in the usual syntax: words (the last one also as a prefix, unless the text ends
    with a space), "a phrase", -excluded, and protocol numbers like 2026/42."""

    text: str
    filters: SearchFilters = field(default_factory=SearchFilters)
    limit: int = 20
    offset: int = 0


@dataclass(frozen=True, slots=True)
class SearchHit:
    id: int
    message_id: str | None
    protocol: str | None
    subject: str
    from_name: str
    from_addr: str
    date: datetime | None
    snippet: str  # HTML: escaped text with <mark>…</mark> around the matches
    account: str
    folder: str
    score: float

    def as_json(self) -> dict[str, object]:
        return {"id": self.id, "message_id": self.message_id, "protocol": self.protocol, "subject": self.subject,
                "from": {"name": self.from_name, "addr": self.from_addr},
                "date": self.date.isoformat() if self.date else None, "snippet": self.snippet,
                "account": self.account, "folder": self.folder, "score": round(self.score, 6)}


@dataclass(frozen=True, slots=True)
class SearchResults:
    hits: tuple[SearchHit, ...]
    total: int  # matching documents (an estimate on Meilisearch)
    engine: str


class SearchIndex(Protocol):
    """A search engine holding one document per message. Writes are durable when they
    return (the indexer deletes outbox rows only afterwards)."""

    name: str

    def upsert(self, docs: Sequence[SearchDocument]) -> None:
        """Add or replace these documents (by id)."""

    def delete(self, ids: Sequence[int]) -> None:
        """Remove these documents; unknown ids are ignored."""

    def search(self, query: SearchQuery, grant: Grant) -> SearchResults:
        """Hits `grant` may read, by relevance, then newest first."""

    def clear(self) -> None:
        """Remove every document."""

    def count(self) -> int:
        """How many documents the index holds."""

    def close(self) -> None:
        """Release what the engine holds (files, connections)."""


def grant_sees_nothing(grant: Grant) -> bool:
    """True when no message can match `grant` (then no engine is asked at all)."""
    if grant.everything or grant.agent is not None:
        return False
    return not (grant.account_ids or grant.group_ids or (grant.user_id is not None and grant.role == "operator"))
