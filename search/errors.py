"""Everything search/ raises on purpose; each class says when."""

from __future__ import annotations

from casella.errors import CasellaError


class SearchError(CasellaError):
    """Root of the search errors."""


class SearchUnavailable(SearchError):
    """The engine cannot be reached or written right now (Meilisearch down, the embedded
    index held by another writer); the outbox keeps the work, nothing is lost."""


class SearchIndexOutdated(SearchError):
    """The embedded index on disk was built with another schema; `casella reindex` rebuilds it."""


class InvalidSearch(SearchError):
    """A search was asked with an impossible filter (a date that is not a date, an unknown
    company or user); the message names the option."""
