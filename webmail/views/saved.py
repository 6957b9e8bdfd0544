"""Saved views: a named list filter or search a user keeps at hand, next to the built-in
ones every user has ("Assigned to me", "Unknown senders", "PEC without delivery receipt").

    POST /views                   name + path (/mail or /search) + the query string: save (or
                                  replace the user's view of that name)
    GET  /views                   the list
    POST /views/{id}/delete

`saved_views_for(ctx)` is what the sidebar (_tree.html) shows as `saved_views`.
A SavedView keeps the query-string parameters in `query`, with the page under "_path".
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode, urlsplit

from sqlalchemy import select
from starlette.exceptions import HTTPException
from starlette.responses import Response

from casella.models import SavedView
from webmail.context import Ctx, route
from webmail.i18n import _

PATHS = ("/mail", "/search")
MAX_NAME = 120
MAX_PARAMS = 30


@dataclass(frozen=True, slots=True)
class ViewLink:
    name: str
    url: str
    id: int | None = None  # None: built in, cannot be deleted


def builtin_views() -> list[ViewLink]:
    return [ViewLink(_("Assigned to me"), "/mail?mine=1"), ViewLink(_("Unknown senders"), "/mail?unknown=1"),
            ViewLink(_("PEC without delivery receipt"), "/mail?pec_pending=1")]


def view_url(query: dict[str, object]) -> str:
    path = query.get("_path")
    path = path if isinstance(path, str) and path in PATHS else "/mail"
    params = [(k, str(v)) for k, v in query.items() if k != "_path" and isinstance(v, (str, int))]
    return path + ("?" + urlencode(params) if params else "")


# What _tree.html links to by itself: the sidebar does not show these twice.
IN_TREE = ("/mail?mine=1", "/mail?unknown=1")


def saved_views_for(ctx: Ctx, *, sidebar: bool = True) -> list[ViewLink]:
    """The built-in views, then the user's own by name (each with .name and .url). For the
    sidebar (the default), without the views _tree.html links to already."""
    if ctx.user is None:
        return []
    own = ctx.db.scalars(select(SavedView).where(SavedView.user_id == ctx.user.id).order_by(SavedView.name))
    views = [*builtin_views(), *(ViewLink(v.name, view_url(v.query or {}), v.id) for v in own)]
    return for_sidebar(views) if sidebar else views


def for_sidebar(views: list[ViewLink]) -> list[ViewLink]:
    return [v for v in views if not (v.id is None and v.url in IN_TREE)]


def parse_target(path: str, query: str) -> dict[str, object] | None:
    """{"_path": …, param: value} from a page path and its query string; None when the page
    is not one a view can show. A full URL (/search?q=x) in `path` works too."""
    parts = urlsplit(path.strip())
    if parts.scheme or parts.netloc:
        return None
    path, query = parts.path or "/mail", query or parts.query
    if path not in PATHS:
        return None
    params: dict[str, object] = {"_path": path}
    for key, value in parse_qsl(query.lstrip("?"), keep_blank_values=False)[:MAX_PARAMS]:
        if key not in ("_path", "csrf", "after", "page", "partial") and value:
            params[key[:40]] = value[:500]
    return params


@route("/views", ("GET",))
def views(ctx: Ctx) -> Response:
    from webmail.mailbox import folder_tree

    assert ctx.user is not None and ctx.grant is not None
    notice = {"saved": _("View saved."), "deleted": _("View deleted.")}.get(ctx.query.get("done", ""))
    views = saved_views_for(ctx, sidebar=False)
    return ctx.render("search.html", views_page=True, views=views, notice=notice,
                      saved_views=for_sidebar(views), tree=folder_tree(ctx.db, ctx.grant, ctx.user.id),
                      filters=None, q="")


@route("/views", ("POST",))
def save_view(ctx: Ctx) -> Response:
    from webmail.mailbox import folder_tree

    assert ctx.user is not None and ctx.grant is not None
    name = " ".join(ctx.f("name").split())[:MAX_NAME]
    target = parse_target(ctx.f("path", "/mail"), ctx.f("query"))
    error = None
    if not name:
        error = _("Give the view a name.")
    elif target is None:
        error = _("Only a mail list or a search can be saved as a view.")
    if error is not None:
        views = saved_views_for(ctx, sidebar=False)
        return ctx.render("search.html", status_code=400, views_page=True, views=views, error=error,
                          saved_views=for_sidebar(views), tree=folder_tree(ctx.db, ctx.grant, ctx.user.id),
                          filters=None, q="")
    with ctx.write() as w:
        view = w.scalar(select(SavedView).where(SavedView.user_id == ctx.user.id, SavedView.name == name))
        if view is None:
            view = SavedView(user_id=ctx.user.id, name=name)
            w.add(view)
        view.query = target
    return ctx.redirect("/views?done=saved")


@route("/views/{view_id:int}/delete", ("POST",))
def delete_view(ctx: Ctx) -> Response:
    assert ctx.user is not None
    with ctx.write() as w:
        view = w.get(SavedView, ctx.params["view_id"])
        if view is None or view.user_id != ctx.user.id:
            raise HTTPException(404)
        w.delete(view)
    return ctx.redirect("/views?done=deleted")


ROUTES = [views, save_view, delete_view]
