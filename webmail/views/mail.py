"""The folder tree and the message list (GET /mail), and bulk actions on the list."""

from __future__ import annotations

from starlette.responses import Response

from webmail.context import Ctx, route
from webmail.mailbox import Filters, folder_tree, list_page
from webmail.views.saved import saved_views_for


@route("/", ("GET",))
def home(ctx: Ctx) -> Response:
    return ctx.redirect("/mail")


@route("/mail", ("GET",))
def mail_list(ctx: Ctx) -> Response:
    assert ctx.user is not None and ctx.grant is not None
    filters = Filters.from_query(ctx.query)
    page = list_page(ctx.db, ctx.grant, ctx.user.id, filters, ctx.query.get("after"))
    if ctx.request.headers.get("x-partial") == "rows":  # "older messages" appends rows: no sidebar
        return ctx.render("mail/rows.html", page=page, filters=filters)
    return ctx.render("mail/list.html", tree=folder_tree(ctx.db, ctx.grant, ctx.user.id), page=page,
                      filters=filters, saved_views=saved_views_for(ctx))


ROUTES = [home, mail_list]


BULK_LIMIT = 500


@route("/mail/bulk", ("POST",))
def bulk(ctx: Ctx) -> Response:
    """Apply one action to the selected messages (only those the user may see)."""
    from sqlalchemy import delete, select

    from casella.access import visible_clause
    from casella.models import Message, MessageEvent, MessageSeen
    from webmail.mailbox import bump_read_state, forget_counts

    assert ctx.user is not None and ctx.grant is not None and ctx.form is not None
    ids = [int(v) for v in ctx.form.getlist("ids") if isinstance(v, str) and v.isdigit()][:BULK_LIMIT]
    action = ctx.f("action")
    back = ctx.f("back", "/mail")
    if not back.startswith("/mail"):
        back = "/mail"
    with ctx.write() as w:
        allowed = list(w.scalars(select(Message.id).where(Message.id.in_(ids), visible_clause(ctx.grant))))
        if action == "read":
            have = set(w.scalars(select(MessageSeen.message_id).where(MessageSeen.user_id == ctx.user.id,
                                                                       MessageSeen.message_id.in_(allowed))))
            w.add_all(MessageSeen(user_id=ctx.user.id, message_id=m) for m in allowed if m not in have)
        elif action == "unread":
            w.execute(delete(MessageSeen).where(MessageSeen.user_id == ctx.user.id, MessageSeen.message_id.in_(allowed)))
        elif action.startswith("status:") and action[7:] in ("open", "pending", "closed"):
            for msg in w.scalars(select(Message).where(Message.id.in_(allowed))):
                if msg.status != action[7:]:
                    w.add(MessageEvent(message_id=msg.id, actor=ctx.user.username, action="status",
                                       detail={"from": msg.status, "to": action[7:]}))
                    msg.status = action[7:]
        elif action == "assign-me":
            for msg in w.scalars(select(Message).where(Message.id.in_(allowed))):
                if msg.assigned_user_id != ctx.user.id:
                    msg.assigned_user_id = ctx.user.id
                    w.add(MessageEvent(message_id=msg.id, actor=ctx.user.username, action="assigned",
                                       detail={"user": ctx.user.username}))
        if allowed:
            ctx.audit(w, f"bulk:{action}", "messages", ids=allowed)
        if allowed and action in ("read", "unread"):
            bump_read_state(w, ctx.user.id)  # this user's counts, in every process
    if action not in ("read", "unread"):
        forget_counts()  # status and assignment change what others count
    return ctx.redirect(back)


ROUTES.append(bulk)
