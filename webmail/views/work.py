"""Working together on a message: assign, status, tags, notes, move, pratica, link, make
public, and presence (who else is viewing or replying).

Every action answers 404 unless the user may see the message, 403 unless their role allows
it (webmail/work.py `allowed`), records a `message_event` (actor: the username) and an
audit-log row, and redirects back to the message (303) — or, asked by static/work.js with
the header `X-Partial: work`, answers the refreshed side panel.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse, Response

from casella.access import grant_for
from casella.errors import CasellaError
from casella.models import (
    Company,
    Contact,
    Group,
    Message,
    MessageEvent,
    MessageNote,
    MessagePratica,
    MessageTag,
    Pratica,
    User,
)
from routing import actions as routing_actions
from routing.rule import Action
from search.outbox import enqueue
from webmail.context import Ctx, route
from webmail.i18n import _
from webmail.mailbox import forget_counts, visible_message
from webmail.mentions import notify
from webmail.presence import STATES, key_for
from webmail.work import (
    MAX_NOTE,
    MAX_TAG,
    ROLE_ACTIONS,
    STATUSES,
    SUGGEST_ACTIONS,
    account_owner,
    allowed,
    could_see,
    folders_of,
    forget_folders,
    mentions,
    panel,
    suggestions,
    writable_accounts,
)


class WorkError(CasellaError):
    """An action on a message cannot be done as asked; the message says what to do."""


def _message(ctx: Ctx, action: str | None = None) -> Message:
    """The message of the URL if the user may see it (else 404) and take `action` (else 403)."""
    assert ctx.grant is not None and ctx.user is not None
    msg = visible_message(ctx.db, ctx.grant, ctx.params["message_id"])
    if msg is None:
        raise HTTPException(404)
    if action is not None and not allowed(ctx.user, msg, action, account_owner(ctx.db, msg)):
        raise HTTPException(403, _("You are not allowed to do this."))
    return msg


@contextmanager
def _acting(ctx: Ctx, msg: Message) -> Iterator[tuple[Session, Message]]:
    """A write transaction with the message row loaded in it."""
    with ctx.write() as w:
        row = w.get(Message, msg.id)
        if row is None:
            raise HTTPException(404)
        yield w, row


def _record(ctx: Ctx, w: Session, msg_id: int, action: str, detail: dict[str, Any], *, index: bool = True) -> None:
    assert ctx.user is not None
    w.add(MessageEvent(message_id=msg_id, actor=ctx.user.username, action=action, detail=detail))
    ctx.audit(w, f"message:{action}", f"message:{msg_id}", **detail)
    if index:
        enqueue(w, [msg_id])


def _done(ctx: Ctx, msg_id: int) -> Response:
    """Back to the message; the panel alone for static/work.js; the list if the message is
    now out of the user's sight (moved to a mailbox they do not read)."""
    assert ctx.grant is not None
    with ctx.app.db.reading() as s:
        msg = visible_message(s, ctx.grant, msg_id)
        if msg is None:
            return ctx.redirect("/mail")
        if ctx.request.headers.get("x-partial") == "work":
            ctx.db = s  # the panel reads what was just written
            return ctx.render("mail/_work.html", msg=msg, work=panel(ctx, msg))
    return ctx.redirect(f"/mail/{msg_id}")


def _routing(w: Session, row: Message, action: Action) -> dict[str, Any] | None:
    """Apply one routing action (routing/actions.py: the same semantics as rules) without its
    bookkeeping: the caller records the event under the user's name. Raises WorkError when
    routing would skip it."""
    outcome = routing_actions.apply_for_person(w, row, action)
    if isinstance(outcome, str):
        raise WorkError(_("This cannot be done: %(reason)s.") % {"reason": outcome})
    return outcome


# -- assign --------------------------------------------------------------------------------

@route("/mail/{message_id:int}/assign", ("POST",))
def assign(ctx: Ctx) -> Response:
    msg = _message(ctx, "assign")
    username = ctx.f("user").strip()
    group_name = ctx.f("group").strip()
    with _acting(ctx, msg) as (w, row):
        target = None
        if username:
            target = w.scalar(select(User).where(User.username == username, User.active.is_(True)))
            if target is None:
                raise WorkError(_("There is no active user %(user)s: pick one from the list.") % {"user": username})
        group = None
        if group_name:
            group = w.scalar(select(Group).where(Group.name == group_name))
            if group is None:
                raise WorkError(_("There is no group %(group)s: pick one from the list.") % {"group": group_name})
        user_id, group_id = (target.id if target else None), (group.id if group else None)
        if target is not None and not could_see(w, grant_for(w, target), row, user_id, group_id):
            raise WorkError(_("%(user)s may not read this message, so it cannot be assigned to them.")
                            % {"user": target.display_name or target.username})
        if group is not None and not row.is_public and account_owner(w, row) is not None:
            raise WorkError(_("This message is in a personal mailbox: its owner must make it public first."))
        if row.assigned_user_id != user_id:
            previous = w.get(User, row.assigned_user_id) if row.assigned_user_id else None
            row.assigned_user_id = user_id
            _record(ctx, w, row.id, "assign-user", {"user": target.username if target else None,
                                                    "previous": previous.username if previous else None})
        if row.assigned_group_id != group_id:
            previous_group = w.get(Group, row.assigned_group_id) if row.assigned_group_id else None
            row.assigned_group_id = group_id
            _record(ctx, w, row.id, "assign-group", {"group": group.name if group else None,
                                                     "previous": previous_group.name if previous_group else None})
    forget_counts()
    return _done(ctx, msg.id)


# -- status, tags, notes -------------------------------------------------------------------

@route("/mail/{message_id:int}/status", ("POST",))
def status(ctx: Ctx) -> Response:
    msg = _message(ctx, "status")
    new = ctx.f("status")
    if new not in STATUSES:
        raise WorkError(_("Choose a status: open, pending or closed."))
    with _acting(ctx, msg) as (w, row):
        if row.status != new:
            _record(ctx, w, row.id, "status", {"from": row.status, "to": new})
            row.status = new
    forget_counts()
    return _done(ctx, msg.id)


def _clean_tags(raw: str) -> list[str]:
    tags: list[str] = []
    for part in raw.split(","):
        tag = " ".join(part.split())
        if len(tag) > MAX_TAG:
            raise WorkError(_("A tag is at most %(n)s characters.") % {"n": MAX_TAG})
        if tag and tag not in tags:
            tags.append(tag)
    return tags


@route("/mail/{message_id:int}/tags", ("POST",))
def tags(ctx: Ctx) -> Response:
    """`add` (comma-separated tags) and/or `remove` (one tag per field)."""
    assert ctx.form is not None
    msg = _message(ctx, "tags")
    add = _clean_tags(ctx.f("add"))
    remove = [t for t in (v.strip() for v in ctx.form.getlist("remove") if isinstance(v, str)) if t]
    if not add and not remove:
        raise WorkError(_("Write a tag to add (several: separate them with commas)."))
    with _acting(ctx, msg) as (w, row):
        if remove:
            present = set(w.scalars(select(MessageTag.tag).where(MessageTag.message_id == row.id,
                                                                 MessageTag.tag.in_(remove))))
            if present:
                w.execute(delete(MessageTag).where(MessageTag.message_id == row.id, MessageTag.tag.in_(present)))
                _record(ctx, w, row.id, "remove-tags", {"tags": sorted(present)})
        if add:
            detail = _routing(w, row, Action(kind="add-tags", tags=tuple(add)))
            if detail:
                _record(ctx, w, row.id, "add-tags", detail)
    return _done(ctx, msg.id)


@route("/mail/{message_id:int}/notes", ("POST",))
def notes(ctx: Ctx) -> Response:
    """An internal note. It is stored, shown in the panel and in the history; it is never
    sent anywhere. The colleagues it names with @username are told (webmail/mentions.py)."""
    assert ctx.user is not None
    msg = _message(ctx, "notes")
    body = ctx.f("body").strip()
    if not body:
        raise WorkError(_("Write the note first."))
    if len(body) > MAX_NOTE:
        raise WorkError(_("A note is at most %(n)s characters: shorten it.") % {"n": MAX_NOTE})
    with _acting(ctx, msg) as (w, row):
        named = mentions(w, body)
        note = MessageNote(message_id=row.id, user_id=ctx.user.id, body=body, mentions=named)
        w.add(note)
        w.flush()
        notify(w, note)
        _record(ctx, w, row.id, "note", {"note": note.id, "mentions": named}, index=False)
    return _done(ctx, msg.id)


# -- move ----------------------------------------------------------------------------------

@route("/mail/{message_id:int}/move", ("POST",))
def move(ctx: Ctx) -> Response:
    """To another folder of its mailbox, or another mailbox the user may write to. Not a
    forward: the same row moves, its protocol registration stays as it is."""
    assert ctx.user is not None and ctx.grant is not None
    msg = _message(ctx, "move")
    account_raw, _sep, folder = ctx.f("to").partition("/")
    folder = folder.strip()
    if not account_raw.isdigit() or not folder:
        raise WorkError(_("Choose where to move the message."))
    with _acting(ctx, msg) as (w, row):
        target = next((a for a in writable_accounts(w, ctx.user, ctx.grant) if a.id == int(account_raw)), None)
        if target is None:
            raise WorkError(_("You may not move mail into that mailbox: choose another one."))
        if folder not in folders_of(w, target):
            raise WorkError(_("Mailbox %(account)s has no folder %(folder)s: choose one from the list.")
                            % {"account": target.name, "folder": folder})
        action = Action(kind="move", folder=folder, account=target.name if target.id != row.account_id else None)
        detail = _routing(w, row, action)
        if detail:
            detail.setdefault("account", target.name)
            _record(ctx, w, row.id, "move", detail)
    forget_counts()
    forget_folders()
    return _done(ctx, msg.id)


# -- pratica -------------------------------------------------------------------------------

@route("/mail/{message_id:int}/pratica", ("POST",))
def pratica(ctx: Ctx) -> Response:
    """`op=link` with `code` (an existing pratica), `op=create` with `code` and `title`,
    `op=unlink` with `code`."""
    assert ctx.user is not None
    msg = _message(ctx, "pratica")
    op = ctx.f("op", "link")
    code = " ".join(ctx.f("code").split())
    if not code or len(code) > 120:
        raise WorkError(_("Write the pratica's code (at most 120 characters)."))
    with _acting(ctx, msg) as (w, row):
        existing = w.scalar(select(Pratica).where(Pratica.code == code))
        if op == "unlink":
            if existing is not None and w.scalar(select(MessagePratica.pratica_id).where(
                    MessagePratica.message_id == row.id, MessagePratica.pratica_id == existing.id)) is not None:
                w.execute(delete(MessagePratica).where(MessagePratica.message_id == row.id,
                                                       MessagePratica.pratica_id == existing.id))
                _record(ctx, w, row.id, "unlink-pratica", {"pratica": code})
        elif op == "create":
            if existing is not None:
                raise WorkError(_("A pratica with code %(code)s exists already: link it instead.") % {"code": code})
            title = ctx.f("title").strip()[:500] or row.subject[:500] or code
            w.add(Pratica(code=code, title=title, company_id=row.company_id, status="open",
                          owner=ctx.user.username))
            w.flush()
            ctx.audit(w, "pratica:create", f"pratica:{code}", title=title, message=row.id)
        elif op != "link":
            raise WorkError(_("Choose what to do with the pratica: link, create or unlink."))
        elif existing is None:
            raise WorkError(_("There is no pratica %(code)s: check the code, or create it.") % {"code": code})
        if op in ("link", "create"):
            detail = _routing(w, row, Action(kind="link-pratica", code=code))
            if detail:
                detail["created"] = op == "create"
                _record(ctx, w, row.id, "link-pratica", detail)
    return _done(ctx, msg.id)


# -- link to the contact registry ----------------------------------------------------------

@route("/mail/{message_id:int}/link", ("POST",))
def link(ctx: Ctx) -> Response:
    """`kind=contact|company` with `name` (as in the registry), or `kind=none` to unlink."""
    msg = _message(ctx, "link")
    kind = ctx.f("kind")
    name = " ".join(ctx.f("name").split())
    with _acting(ctx, msg) as (w, row):
        if kind == "none":
            if (row.link_kind, row.contact_id, row.company_id) != ("unknown", None, None):
                row.link_kind, row.contact_id, row.company_id = "unknown", None, None
                _record(ctx, w, row.id, "link", {"kind": "unknown"})
        elif kind in ("contact", "company"):
            model: Any = Contact if kind == "contact" else Company
            found = list(w.scalars(select(model).where(func.lower(model.name) == name.lower()).limit(2)))
            if not found:
                raise WorkError(_("Nothing in the contact registry is called %(name)s: pick a name from the list.")
                                % {"name": name})
            if len(found) > 1:
                raise WorkError(_("Several entries are called %(name)s: tidy the contact registry first.")
                                % {"name": name})
            item = found[0]
            contact_id = item.id if kind == "contact" else None
            company_id = item.company_id if kind == "contact" else item.id
            if (row.link_kind, row.contact_id, row.company_id) != (kind, contact_id, company_id):
                row.link_kind, row.contact_id, row.company_id = kind, contact_id, company_id
                _record(ctx, w, row.id, "link", {"kind": kind, "name": item.name, "contact": contact_id,
                                                 "company": company_id})
        else:
            raise WorkError(_("Choose a contact or a company."))
    forget_counts()
    return _done(ctx, msg.id)


# -- make public ---------------------------------------------------------------------------

@route("/mail/{message_id:int}/public", ("POST",))
def public(ctx: Ctx) -> Response:
    """The owner of a personal mailbox makes one of its messages public (`public=1`,
    optionally to a `group`, which gets it assigned) or private again (`public=0`)."""
    msg = _message(ctx, "public")
    make_public = ctx.f("public", "1") == "1"
    group_name = ctx.f("group").strip()
    with _acting(ctx, msg) as (w, row):
        if make_public:
            group = None
            if group_name:
                group = w.scalar(select(Group).where(Group.name == group_name))
                if group is None:
                    raise WorkError(_("There is no group %(group)s: pick one from the list.") % {"group": group_name})
            if not row.is_public:
                _routing(w, row, Action(kind="make-public"))
                _record(ctx, w, row.id, "make-public", {"public": True, "group": group.name if group else None})
            if group is not None and row.assigned_group_id != group.id:
                previous = w.get(Group, row.assigned_group_id) if row.assigned_group_id else None
                row.assigned_group_id = group.id
                _record(ctx, w, row.id, "assign-group", {"group": group.name,
                                                         "previous": previous.name if previous else None})
        elif row.is_public:
            row.is_public = False
            _record(ctx, w, row.id, "make-private", {"public": False})
    forget_counts()
    return _done(ctx, msg.id)


# -- presence ------------------------------------------------------------------------------

def _presence_json(ctx: Ctx, msg: Message) -> JSONResponse:
    assert ctx.user is not None
    others = ctx.app.presence.others(key_for(msg), ctx.user.username)
    return JSONResponse({"others": [
        {"username": h.username, "name": h.name, "state": h.state,
         "text": (_("%(name)s is replying") if h.state == "replying" else _("%(name)s is viewing")) % {"name": h.name}}
        for h in others]})


@route("/mail/{message_id:int}/presence", ("GET", "POST"))
def presence(ctx: Ctx) -> Response:
    """POST `state=viewing|replying` (or `leave`): I am here; both answer who else is."""
    assert ctx.user is not None
    msg = _message(ctx)
    if ctx.request.method == "POST":
        state = ctx.f("state", "viewing")
        reg = ctx.app.presence
        if state == "leave":
            reg.leave(key_for(msg), ctx.user.username)
        elif state in STATES:
            reg.touch(key_for(msg), ctx.user.username, state, ctx.user.display_name or ctx.user.username)
        else:
            return JSONResponse({"error": _("Unknown state: use viewing or replying.")}, status_code=400)
    return _presence_json(ctx, msg)


# -- suggestions ---------------------------------------------------------------------------

@route("/work/suggest", ("GET",))
def suggest(ctx: Ctx) -> Response:
    """?list=tags|pratiche|links&q=…[&kind=company|contact]: the names the panel's field
    offers while the user types (JSON list), for users who may take that action."""
    assert ctx.user is not None and ctx.grant is not None
    what = ctx.query.get("list", "")
    if what not in SUGGEST_ACTIONS:
        return JSONResponse({"error": _("Unknown list: use tags, pratiche or links.")}, status_code=400)
    if SUGGEST_ACTIONS[what] not in ROLE_ACTIONS.get(ctx.user.role, set()):
        raise HTTPException(403)
    return JSONResponse(suggestions(ctx.db, ctx.grant, what, ctx.query.get("q", ""), ctx.query.get("kind", "")))


ROUTES = [assign, status, tags, notes, move, pratica, link, public, presence, suggest]
