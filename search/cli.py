"""`casella search` and `casella reindex` (registered in casella/cli.py)."""

from __future__ import annotations

import html
import json
import time
from typing import Any
from zoneinfo import ZoneInfo

import click
from sqlalchemy import func, select

from casella.db import Database
from casella.settings import get_settings


@click.command("search")
@click.argument("query", required=False, default="")
@click.option("--as", "as_user", metavar="USERNAME", help="Search as this user sees the mail (default: everything).")
@click.option("--limit", type=click.IntRange(1, 1000), default=20, show_default=True)
@click.option("--offset", type=click.IntRange(0), default=0, help="Skip this many hits (paging).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--account", help="Only this account.")
@click.option("--folder", help="Only this folder.")
@click.option("--from", "sender", metavar="ADDRESS|DOMAIN", help="Only mail from this address or domain.")
@click.option("--since", metavar="DATE", help="From this day (2026-03-01) or moment on.")
@click.option("--until", metavar="DATE", help="Up to this day (included) or moment.")
@click.option("--has-attachment/--no-attachment", "has_attachment", default=None,
              help="With (or without) attachments.")
@click.option("--pec-kind", metavar="KIND", help="Only PEC messages of this kind (e.g. accettazione).")
@click.option("--company", metavar="NAME|ID", help="Only mail linked to this company.")
@click.option("--assigned", metavar="USERNAME", help="Only mail assigned to this user.")
@click.option("--tag", help="Only mail with this tag.")
@click.option("--pratica", metavar="CODE", help="Only mail filed in this pratica.")
@click.option("--unknown", is_flag=True, help="Only mail from unknown senders.")
def search_cmd(query: str, as_user: str | None, limit: int, offset: int, as_json: bool, account: str | None,
               folder: str | None, sender: str | None, since: str | None, until: str | None,
               has_attachment: bool | None, pec_kind: str | None, company: str | None, assigned: str | None,
               tag: str | None, pratica: str | None, unknown: bool) -> None:
    """Search the mail: words (typos forgiven), "a phrase", -excluded, 2026/42."""
    from casella.access import grant_for
    from casella.models import Message
    from casella.users import get_user
    from search.engine import open_index
    from search.errors import SearchUnavailable
    from search.filters import admin_grant, resolve_filters
    from search.index import SearchQuery
    from search.indexer import drain, pending

    settings = get_settings()
    database = Database.from_settings(settings)
    with database.session() as session:
        grant = grant_for(session, get_user(session, as_user)) if as_user else admin_grant()
        filters = resolve_filters(session, settings, account=account, folder=folder, sender=sender, since=since,
                                  until=until, has_attachment=has_attachment, pec_kind=pec_kind, company=company,
                                  assigned=assigned, tag=tag, pratica=pratica, unknown=unknown)
    index = open_index(settings)
    try:
        backlog = pending(database)
        if backlog > 1000:
            click.echo(f"indexing {backlog} newly stored messages first...", err=True)
        try:
            drain(settings, database, index)  # what was just stored is findable
        except SearchUnavailable as exc:
            click.echo(f"warning: newest mail may be missing from the results: {exc}", err=True)
        results = index.search(SearchQuery(query, filters, limit, offset), grant)
        if not results.hits and index.count() == 0:
            with database.session() as session:
                stored = session.scalar(select(func.count(Message.id))) or 0
            if stored:
                click.echo(f"warning: the search index is empty but {stored} messages are stored: "
                           "run `casella reindex`", err=True)
    finally:
        index.close()
    if as_json:
        click.echo(json.dumps([h.as_json() for h in results.hits], ensure_ascii=False, indent=2))
        return
    if as_user:
        click.echo(f"searching as {as_user} ({grant.role}): only the mail {as_user} may read")
    else:
        click.echo("searching as the command-line administrator: every message, personal mailboxes included "
                   "(--as USERNAME searches as that user)")
    tz = ZoneInfo(settings.timezone)
    shown = f"{offset + 1}-{offset + len(results.hits)} of " if results.hits else ""
    click.echo(f"{shown}{results.total} hit(s) [{results.engine}]")
    for h in results.hits:
        date = h.date.astimezone(tz).strftime("%Y-%m-%d %H:%M") if h.date else "-"
        click.echo(f"{h.id:>7} {h.protocol or '-':<13} {date:<16} {h.from_addr[:30]:<30} {h.subject[:70]}")
        if h.snippet:
            click.echo("        " + _terminal(h.snippet))


def _terminal(snippet: str) -> str:
    """<mark>…</mark> in bold, entities decoded."""
    out = []
    for n, piece in enumerate(snippet.replace("</mark>", "<mark>").split("<mark>")):
        text = html.unescape(piece)
        out.append(click.style(text, bold=True) if n % 2 else text)
    return "".join(out)


@click.command("reindex")
def reindex_cmd() -> None:
    """Rebuild the search index from the database (the index is derived data)."""
    from search.indexer import reindex

    settings = get_settings()
    database = Database.from_settings(settings)
    started = time.monotonic()
    state: dict[str, Any] = {}

    def progress(done: int, total: int) -> None:
        bar = state.get("bar")
        if bar is None:
            bar = state["bar"] = click.progressbar(length=max(total, 1), label="indexing", show_pos=True,
                                                   file=click.get_text_stream("stderr"))
            bar.__enter__()
        bar.update(done - state.get("done", 0))
        state["done"] = done

    try:
        count = reindex(settings, database, progress)
    finally:
        if "bar" in state:
            state["bar"].__exit__(None, None, None)
    engine = f"Meilisearch at {settings.search_url}" if settings.search_url \
        else f"embedded, {settings.search_index_dir}"
    click.echo(f"{count} message(s) indexed ({engine}) in {time.monotonic() - started:.1f}s")


COMMANDS: list[click.Command] = [search_cmd, reindex_cmd]
