"""Meilisearch through its official Python client, kept thin: index settings, documents,
filters, tenant tokens. Selected by `CASELLA_SEARCH_URL` (and `CASELLA_SEARCH_API_KEY`, the
master key, with which Casella creates the index and signs tenant tokens).

Access control: the user's `Grant` becomes a filter expression signed into a short-lived
tenant token (search rules), so Meilisearch itself refuses to return anything else; the
user's own filters go in the request and Meilisearch ANDs the two. Without an API key (a
development server) tenant tokens cannot exist, and the same filter goes in the request.
Typo tolerance keeps Meilisearch's defaults, which are the issue's (one typo from 5 letters,
two from 9); ties in relevance go to the newer message (a last ranking rule on the date).
"""

from __future__ import annotations

import html
import logging
import threading
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import meilisearch
from meilisearch.errors import MeilisearchApiError, MeilisearchCommunicationError, MeilisearchError

from casella.access import Grant
from search.errors import SearchError, SearchUnavailable
from search.index import SearchDocument, SearchFilters, SearchHit, SearchQuery, SearchResults, grant_sees_nothing
from search.query import parse_query

log = logging.getLogger(__name__)

INDEX_UID = "casella_messages"
WRITE_TIMEOUT_MS = 300_000
TOKEN_LIFETIME = timedelta(minutes=15)
PRE, POST = "\x02", "\x03"  # highlight marks, turned into <mark> after escaping the text
CROP_WORDS = 30

SETTINGS: dict[str, Any] = {
    "searchableAttributes": ["subject", "protocol", "from_name", "from_addr", "company", "contact", "tags",
                             "praticas", "to", "cc", "attachment_names", "body", "attachment_text"],
    "filterableAttributes": ["account_id", "folder", "date_ts", "from_addr", "from_domains", "has_attachments",
                             "pec_kind", "company_id", "assigned_user_id", "assigned_group_id", "tag_keys",
                             "pratica_keys", "agent", "is_public", "link_kind"],
    "sortableAttributes": ["date_ts"],
    "rankingRules": ["words", "typo", "proximity", "attribute", "sort", "exactness", "date_ts:desc"],
    "typoTolerance": {"enabled": True, "minWordSizeForTypos": {"oneTypo": 5, "twoTypos": 9}},
}
RETRIEVE = ["id", "message_id", "protocol_label", "subject", "from_name", "from_addr", "date", "account", "folder",
            "body", "attachment_text"]
SNIPPET_ATTRIBUTES = ("body", "attachment_text", "subject")


class MeiliIndex:
    name = "meilisearch"

    def __init__(self, url: str, api_key: str = "", *, index_uid: str = INDEX_UID) -> None:
        self.url, self.api_key, self.uid = url, api_key, index_uid
        self.client = meilisearch.Client(url, api_key or None, timeout=30)
        self._search_key: tuple[str, str] | None | bool = False  # False: not looked up yet
        self._lock = threading.Lock()
        self._call(self._ensure_index)

    # ------------------------------------------------------------ writing
    def upsert(self, docs: Sequence[SearchDocument]) -> None:
        if docs:
            self._call(lambda: self._wait(self.index.add_documents([to_meili(d) for d in docs], primary_key="id")))

    def delete(self, ids: Sequence[int]) -> None:
        if ids:
            self._call(lambda: self._wait(self.index.delete_documents([int(i) for i in ids])))

    def clear(self) -> None:
        self._call(lambda: self._wait(self.index.delete_all_documents()))

    def count(self) -> int:
        return int(self._call(lambda: self.index.get_stats().number_of_documents))

    def close(self) -> None:
        return None

    @property
    def index(self) -> Any:
        return self.client.index(self.uid)

    def _ensure_index(self) -> None:
        try:
            self.client.get_index(self.uid)
        except MeilisearchApiError as exc:
            if getattr(exc, "code", "") != "index_not_found":
                raise
            self._wait(self.client.create_index(self.uid, {"primaryKey": "id"}))
        self._wait(self.index.update_settings(dict(SETTINGS)))

    def _wait(self, info: Any) -> None:
        task = self.client.wait_for_task(info.task_uid, timeout_in_ms=WRITE_TIMEOUT_MS, interval_in_ms=50)
        if task.status != "succeeded":
            raise SearchError(f"Meilisearch task {task.uid} ({task.type}) {task.status}: {task.error}")

    def _call(self, fn: Any) -> Any:
        try:
            return fn()
        except MeilisearchCommunicationError as exc:
            raise SearchUnavailable(f"Meilisearch at {self.url} cannot be reached: {exc}") from exc
        except MeilisearchError as exc:
            raise SearchError(f"Meilisearch at {self.url}: {exc}") from exc

    # ------------------------------------------------------------ searching
    def search(self, query: SearchQuery, grant: Grant) -> SearchResults:
        if grant_sees_nothing(grant):
            return SearchResults((), 0, self.name)
        acl = grant_filter(grant)
        filters = list(query_filters(query.filters))
        key = self._call(self._key_for_tokens)
        if key and acl:
            uid, api_key = key
            token = self.client.generate_tenant_token(uid, {self.uid: {"filter": acl}}, api_key=api_key,
                                                      expires_at=datetime.now(UTC) + TOKEN_LIFETIME)
            index = meilisearch.Client(self.url, token, timeout=30).index(self.uid)
        else:
            index = self.index
            if acl:
                filters.insert(0, acl)
        params: dict[str, Any] = {
            "limit": query.limit, "offset": query.offset, "matchingStrategy": "all", "showRankingScore": True,
            "attributesToRetrieve": RETRIEVE, "attributesToCrop": ["body", "attachment_text"],
            "cropLength": CROP_WORDS, "attributesToHighlight": list(SNIPPET_ATTRIBUTES),
            "highlightPreTag": PRE, "highlightPostTag": POST,
        }
        if filters:
            params["filter"] = filters
        q = meili_query_text(query.text)
        if not q.strip():
            params["sort"] = ["date_ts:desc"]
        result = self._call(lambda: index.search(q, params))
        hits = tuple(_hit(h) for h in result.get("hits", []))
        total = int(result.get("estimatedTotalHits", result.get("totalHits", len(hits))))
        return SearchResults(hits, total, self.name)

    def _key_for_tokens(self) -> tuple[str, str] | None:
        """The uid and value of a search key to sign tenant tokens with (the master key
        cannot sign them); None when the server has no keys or ours may not list them."""
        with self._lock:
            if self._search_key is False:
                self._search_key = None
                if self.api_key:
                    try:
                        keys = self.client.get_keys({"limit": 1000}).results
                    except MeilisearchApiError as exc:
                        log.warning("cannot list Meilisearch keys (%s): access rules go in each request", exc)
                        keys = []
                    now = datetime.now(UTC)
                    usable = [k for k in keys
                              if ("search" in k.actions or "*" in k.actions)
                              and ("*" in k.indexes or self.uid in k.indexes)
                              and (k.expires_at is None or _aware(k.expires_at) > now + TOKEN_LIFETIME)]
                    usable.sort(key=lambda k: k.actions != ["search"])  # a search-only key first
                    if usable:
                        self._search_key = (usable[0].uid, usable[0].key)
            return self._search_key or None


def to_meili(doc: SearchDocument) -> dict[str, Any]:
    return {
        "id": doc.id, "account_id": doc.account_id, "account": doc.account, "folder": doc.folder,
        "date_ts": int(doc.date.timestamp()) if doc.date else 0, "date": doc.date.isoformat() if doc.date else None,
        "message_id": doc.message_id, "subject": doc.subject, "from_name": doc.from_name,
        "from_addr": doc.from_addr, "from_domains": list(doc.from_domains), "to": list(doc.to), "cc": list(doc.cc),
        "body": doc.body, "attachment_names": list(doc.attachment_names), "attachment_text": doc.attachment_text,
        "protocol": list(doc.protocol_forms), "protocol_label": doc.protocol, "company": doc.company,
        "contact": doc.contact, "tags": list(doc.tags), "tag_keys": [t.lower() for t in doc.tags],
        "praticas": list(doc.praticas), "pratica_keys": [p.lower() for p in doc.praticas],
        "direction": doc.direction, "link_kind": doc.link_kind, "company_id": doc.company_id, "agent": doc.agent,
        "assigned_user_id": doc.assigned_user_id, "assigned_group_id": doc.assigned_group_id,
        "is_public": doc.is_public, "has_attachments": doc.has_attachments, "pec_kind": doc.pec_kind,
    }


def meili_query_text(text: str) -> str:
    """The user's text in Meilisearch's syntax; a protocol number becomes the phrase of its
    short form, which every indexed protocol carries."""
    out = []
    for p in parse_query(text):
        neg = "-" if p.negated else ""
        if p.kind == "phrase":
            out.append(f'{neg}"{p.text}"')
        elif p.kind == "protocol":
            out.append(f'{neg}"{p.text}"')
        else:
            out.append(neg + p.text)
    joined = " ".join(out)
    return joined + " " if text[-1:].isspace() else joined


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _ints(values: Iterable[int]) -> str:
    return "[" + ", ".join(str(int(v)) for v in sorted(values)) + "]"


def grant_filter(grant: Grant) -> str | None:
    """casella/access.py's visible_clause as a Meilisearch filter; None: no restriction."""
    parts: list[str] = []
    if grant.everything:
        pass
    elif grant.agent is not None:
        mine = [f"agent = {_quote(grant.agent)}"]
        if grant.agent_company_ids:
            mine.append(f"company_id IN {_ints(grant.agent_company_ids)}")
        parts.append("(" + " OR ".join(mine) + ")")
    else:
        mine = []
        if grant.account_ids:
            mine.append(f"account_id IN {_ints(grant.account_ids)}")
        if grant.user_id is not None and grant.role == "operator":
            mine.append(f"assigned_user_id = {int(grant.user_id)}")
        if grant.group_ids:
            mine.append(f"assigned_group_id IN {_ints(grant.group_ids)}")
        parts.append("(" + " OR ".join(mine) + ")")
    if grant.private_account_ids:
        parts.append(f"(NOT account_id IN {_ints(grant.private_account_ids)} OR is_public = true)")
    return " AND ".join(parts) or None


def query_filters(f: SearchFilters) -> Iterable[str]:
    if f.account_ids:
        yield f"account_id IN {_ints(f.account_ids)}"
    if f.folder is not None:
        yield f"folder = {_quote(f.folder)}"
    if f.since is not None:
        yield f"date_ts >= {int(f.since.timestamp())}"
    if f.until is not None:
        yield f"date_ts <= {int(f.until.timestamp())}"
    if f.sender:
        sender = f.sender.strip().lower()
        yield (f"from_addr = {_quote(sender)}" if "@" in sender.strip("@")
               else f"from_domains = {_quote(sender.strip('@.'))}")
    if f.has_attachment is not None:
        yield f"has_attachments = {'true' if f.has_attachment else 'false'}"
    if f.pec_kind:
        yield f"pec_kind = {_quote(f.pec_kind)}"
    if f.company_id is not None:
        yield f"company_id = {int(f.company_id)}"
    if f.assigned_user_id is not None:
        yield f"assigned_user_id = {int(f.assigned_user_id)}"
    if f.tag:
        yield f"tag_keys = {_quote(f.tag.lower())}"
    if f.pratica:
        yield f"pratica_keys = {_quote(f.pratica.lower())}"
    if f.unknown:
        yield 'link_kind = "unknown"'


def _hit(h: dict[str, Any]) -> SearchHit:
    formatted = h.get("_formatted") or {}
    snippet = ""
    for attr in SNIPPET_ATTRIBUTES:
        value = formatted.get(attr)
        if isinstance(value, str) and PRE in value:
            snippet = _marked(value)
            break
    if not snippet:
        snippet = _marked(str(formatted.get("body") or h.get("body") or ""))
    date = h.get("date")
    return SearchHit(id=int(h["id"]), message_id=h.get("message_id"), protocol=h.get("protocol_label"),
                     subject=h.get("subject") or "", from_name=h.get("from_name") or "",
                     from_addr=h.get("from_addr") or "", date=datetime.fromisoformat(date) if date else None,
                     snippet=snippet, account=h.get("account") or "", folder=h.get("folder") or "",
                     score=float(h.get("_rankingScore") or 0.0))


def _marked(text: str) -> str:
    escaped = html.escape(" ".join(text.split()))
    return escaped.replace(PRE, "<mark>").replace(POST, "</mark>")


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)
