"""The notes that mention the user (webmail/mentions.py), newest first.

- GET /mentions[?before=NOTE_ID]   the list, unseen ones highlighted, PAGE_SIZE a page;
- POST /mentions/seen              mark them all seen (opening a message marks its own).

Only mentions on messages the user may read are listed: the others stay stored, out of
sight, and show up if the message becomes theirs to read.
"""

from __future__ import annotations

from starlette.responses import Response

from webmail.context import Ctx, route
from webmail.mentions import PAGE_SIZE, listing, mark_seen


@route("/mentions", ("GET",))
def mentions(ctx: Ctx) -> Response:
    assert ctx.user is not None and ctx.grant is not None
    raw = ctx.query.get("before", "")
    before = int(raw) if raw.isascii() and raw.isdigit() and len(raw) < 16 else None
    rows = listing(ctx.db, ctx.user.id, ctx.grant, before)
    older = rows[PAGE_SIZE - 1].note_id if len(rows) > PAGE_SIZE else None
    return ctx.render("mentions.html", mentions=rows[:PAGE_SIZE], older=older, paged=before is not None)


@route("/mentions/seen", ("POST",), name="mentions_seen")
def seen(ctx: Ctx) -> Response:
    assert ctx.user is not None
    with ctx.write() as w:
        mark_seen(w, ctx.user.id)
    return ctx.redirect("/mentions")


ROUTES = [mentions, seen]
