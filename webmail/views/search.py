"""Finding mail: GET /search over every mailbox the user may read.

The engine is the one `casella search` uses (search/engine.py `open_index`), asked with the
user's own `Grant`: the access rules are clauses of the engine's query, so a hit the user
may not read is never produced (nothing is filtered afterwards). Filters are the engine's
`SearchFilters`, resolved by search/filters.py like the command line's options. A query
that is only a protocol number (2026/42 or 2026/0000042) opens that message.

    GET /search?q=…&mailbox=&folder=&since=&until=&from=&attachment=1&pec_kind=&company=
               &assigned=&tag=&pratica=&unknown=1&page=
    GET /search?q=…&partial=1     the results-as-you-type dropdown (an HTML fragment)
"""

from __future__ import annotations

import html
import re
import threading
from dataclasses import replace
from typing import Any
from urllib.parse import urlencode

from markupsafe import Markup
from starlette.responses import Response

from casella.errors import CasellaError
from search.index import (
    SearchFilters,
    SearchHit,
    SearchIndex,
    SearchQuery,
    SearchResults,
    short_protocol,
)
from search.query import parse_query
from webmail.context import Ctx, route
from webmail.i18n import _

PAGE_SIZE = 20
PARTIAL_SIZE = 8
MAX_PAGES = 50
FILTER_PARAMS = ("mailbox", "folder", "since", "until", "from", "attachment", "pec_kind", "company", "assigned",
                 "tag", "pratica", "unknown")
_index_lock = threading.Lock()
_MARK = re.compile(r"(</?mark>)")


def safe_snippet(snippet: str) -> Markup:
    """The engine's snippet as HTML in which only its <mark> and </mark> survive: every other
    piece is decoded and escaped again, so markup from a message can never become markup."""
    out = []
    for piece in _MARK.split(snippet or ""):
        if piece in ("<mark>", "</mark>"):
            out.append(piece)
        else:
            out.append(html.escape(html.unescape(piece), quote=True))
    text = "".join(out)
    # An unbalanced mark (a snippet cut inside one) is closed so it cannot run past the hit.
    if text.count("<mark>") > text.count("</mark>"):
        text += "</mark>" * (text.count("<mark>") - text.count("</mark>"))
    return Markup(text)


def search_index(ctx: Ctx) -> SearchIndex:
    """The configured engine, opened once per webmail process (it reloads by itself when the
    indexer commits)."""
    from search.engine import open_index

    with _index_lock:
        index = ctx.app.extras.get("search_index")
        if index is None:
            index = ctx.app.extras["search_index"] = open_index(ctx.settings)
        return index


def filters_from_query(ctx: Ctx) -> tuple[SearchFilters, dict[str, str]]:
    """The engine's filters from the query string (search/filters.py resolves names the same
    way as `casella search`'s options), and the values as given (for the form)."""
    from search.filters import resolve_filters

    q = ctx.query
    given = {k: q.get(k, "").strip() for k in FILTER_PARAMS}
    has_attachment = {"1": True, "0": False}.get(given["attachment"])
    filters = resolve_filters(ctx.db, ctx.settings, folder=given["folder"] or None, sender=given["from"] or None,
                              since=given["since"] or None, until=given["until"] or None,
                              has_attachment=has_attachment, pec_kind=given["pec_kind"] or None,
                              company=given["company"] or None, assigned=given["assigned"] or None,
                              tag=given["tag"] or None, pratica=given["pratica"] or None,
                              unknown=given["unknown"] == "1")
    if given["mailbox"].isdigit():
        filters = replace(filters, account_ids=frozenset({int(given["mailbox"])}))
    return filters, given


def protocol_only(text: str) -> str | None:
    """2026/42 when the query is nothing but a protocol number."""
    parts = parse_query(text)
    if len(parts) == 1 and parts[0].kind == "protocol" and not parts[0].negated:
        return parts[0].text
    return None


def run(ctx: Ctx, text: str, filters: SearchFilters, limit: int, offset: int) -> SearchResults:
    assert ctx.grant is not None
    return search_index(ctx).search(SearchQuery(text, filters, limit, offset), ctx.grant)


def _rows(hits: tuple[SearchHit, ...]) -> list[dict[str, Any]]:
    return [{"id": h.id, "subject": h.subject, "from_name": h.from_name, "from_addr": h.from_addr, "date": h.date,
             "protocol": h.protocol, "account": h.account, "folder": h.folder, "snippet": safe_snippet(h.snippet)}
            for h in hits]


@route("/search", ("GET",))
def search(ctx: Ctx) -> Response:
    from search.errors import SearchUnavailable
    from webmail.mailbox import folder_tree

    assert ctx.user is not None and ctx.grant is not None
    text = ctx.query.get("q", "").strip()
    partial = ctx.query.get("partial") == "1" or ctx.request.headers.get("x-partial") == "search"
    page = int(ctx.query.get("page", "1")) if ctx.query.get("page", "1").isdigit() else 1
    page = max(1, min(page, MAX_PAGES))
    error = None
    results: SearchResults | None = None
    given: dict[str, str] = {k: ctx.query.get(k, "") for k in FILTER_PARAMS}
    try:
        filters, given = filters_from_query(ctx)
        if text or filters != SearchFilters():
            limit = PARTIAL_SIZE if partial else PAGE_SIZE
            results = run(ctx, text, filters, limit, 0 if partial else (page - 1) * PAGE_SIZE)
    except SearchUnavailable as exc:
        error = _("Search is not available right now; try again in a minute.") + " " + str(exc)
    except CasellaError as exc:
        error = _("This search cannot be run:") + " " + str(exc)
    proto = protocol_only(text)
    exact = None
    if results is not None and proto is not None:
        exact = next((h for h in results.hits if h.protocol and short_protocol(h.protocol) == proto), None)
        if exact is not None and not partial and ctx.query.get("list") != "1":
            return ctx.redirect(f"/mail/{exact.id}")
    rows = _rows(results.hits) if results is not None else []
    params = {"q": text, **{k: v for k, v in given.items() if v}}
    if partial:
        return ctx.render("search/_dropdown.html", q=text, rows=rows, error=error,
                          total=results.total if results else 0, full_url="/search?" + urlencode(params))
    from webmail.views.saved import saved_views_for

    total = results.total if results else 0
    more = results is not None and page * PAGE_SIZE < total and page < MAX_PAGES
    return ctx.render(
        "search.html", q=text, rows=rows, total=total, error=error, given=given, page=page,
        searched=results is not None, tree=folder_tree(ctx.db, ctx.grant, ctx.user.id), filters=None,
        next_url="/search?" + urlencode({**params, "page": page + 1}) if more else None,
        prev_url="/search?" + urlencode({**params, "page": page - 1}) if page > 1 else None,
        query_string=urlencode(params), saved_views=saved_views_for(ctx), pec_kinds=_pec_kinds(),
        engine=results.engine if results else "")


def _pec_kinds() -> tuple[str, ...]:
    from pec.classify import KINDS

    return tuple(KINDS)


ROUTES = [search]
