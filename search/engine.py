"""Pick the engine from the settings: Meilisearch when CASELLA_SEARCH_URL is set, else the
embedded index in CASELLA_SEARCH_INDEX_DIR."""

from __future__ import annotations

from casella.settings import Settings
from search.index import SearchIndex


def open_index(settings: Settings, *, rebuild: bool = False) -> SearchIndex:
    """The configured engine. `rebuild=True` (casella reindex) lets the embedded engine
    replace an index built with another schema instead of refusing it."""
    if settings.search_url:
        from search.meili import MeiliIndex

        return MeiliIndex(settings.search_url, settings.search_api_key, index_uid=settings.search_index_name)
    from search.embedded import EmbeddedIndex

    return EmbeddedIndex(settings.search_index_dir, rebuild=rebuild)
