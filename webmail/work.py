"""Working together on a message: the side panel of the message view (assignment, status,
tags, notes, pratiche, links, visibility, history) and who else is looking at it.

`panel(ctx, msg)` returns what templates/mail/_work.html shows; the actions it offers are
the POST routes of webmail/views/work.py, which check `allowed()` and use the helpers here.

Who may do what (on a message they can see at all — casella/access.py):
- admin, manager, operator: everything but "make public";
- agent: status, tags and notes (their own clients' mail is all they see);
- marketing: tags and notes;
- the owner of a personal mailbox, whatever their role: make its messages public (or private
  again).
An assignee must be an active user who could see the message once assigned (an agent is
never given another agent's client, nobody is given an unpublished personal message).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import Column, bindparam, case, func, literal, null, or_, select
from sqlalchemy.orm import Session
from sqlalchemy.sql.visitors import replacement_traverse

from casella.access import Grant, grants_for_users, visible_clause
from casella.models import (
    Account,
    Company,
    Contact,
    Group,
    GroupMember,
    MailboxPermission,
    Message,
    MessageEvent,
    MessageNote,
    MessagePratica,
    MessageTag,
    Pratica,
    ReadLog,
    User,
)
from webmail.context import Ctx
from webmail.i18n import _
from webmail.presence import key_for

ACTIONS = ("assign", "status", "tags", "notes", "move", "pratica", "link", "public")
ROLE_ACTIONS = {
    "admin": {"assign", "status", "tags", "notes", "move", "pratica", "link"},
    "manager": {"assign", "status", "tags", "notes", "move", "pratica", "link"},
    "operator": {"assign", "status", "tags", "notes", "move", "pratica", "link"},
    "agent": {"status", "tags", "notes"},
    "marketing": {"tags", "notes"},
}
STATUSES = ("open", "pending", "closed")
MENTION = re.compile(r"(?<![\w@.])@([A-Za-z0-9][A-Za-z0-9._-]{0,119})")
MAX_NOTE = 10_000
MAX_TAG = 120


def allowed(user: User, msg: Message, action: str, owner_id: int | None) -> bool:
    """May `user` take `action` on `msg` (which they can already see)? `owner_id` is the
    owner of the message's account when it is a personal mailbox."""
    if action == "public":
        return owner_id is not None and owner_id == user.id
    return action in ROLE_ACTIONS.get(user.role, set())


def account_owner(session: Session, msg: Message) -> int | None:
    """The owner of `msg`'s mailbox when it is a personal one (the account is usually in
    the session already: the page shows it)."""
    account = session.get(Account, msg.account_id)
    return account.owner_user_id if account is not None else None


# -- who could see a message ---------------------------------------------------------------

def _as_if(clause: Any, assigned_user_id: int | None, assigned_group_id: int | None) -> Any:
    """`clause` with the message's assignee and group replaced by the given values: the
    visibility a message would have once assigned, with the one definition of access.py."""
    table = Message.__table__

    def replace(element: Any) -> Any:
        if isinstance(element, Column) and element.table is table:
            if element.key == "assigned_user_id":
                return literal(assigned_user_id) if assigned_user_id is not None else null()
            if element.key == "assigned_group_id":
                return literal(assigned_group_id) if assigned_group_id is not None else null()
        return None

    return replacement_traverse(clause, {}, replace)


def could_see(session: Session, grant: Grant, msg: Message, assigned_user_id: int | None,
              assigned_group_id: int | None) -> bool:
    clause = _as_if(visible_clause(grant), assigned_user_id, assigned_group_id)
    return session.scalar(select(Message.id).where(Message.id == msg.id, clause)) is not None


Case = tuple[Grant, int | None, int | None]


@lru_cache(maxsize=256)
def _could_see_statement(cases: tuple[Case, ...]) -> Any:
    """The query behind `_could_see_each`, the message id a parameter: kept per set of
    cases (the same users and grants on every message view), built and keyed once."""
    columns = [case((_as_if(visible_clause(g), uid, gid), 1), else_=0) for g, uid, gid in cases]
    return select(*columns).where(Message.id == bindparam("message_id"))


def _could_see_each(session: Session, msg: Message, cases: list[Case]) -> list[bool]:
    """For each (grant, assignee, group): could that grant see `msg` so assigned? One query
    for all of them (a CASE column each), not one per candidate."""
    out: list[bool] = []
    for first in range(0, len(cases), 500):
        statement = _could_see_statement(tuple(cases[first:first + 500]))
        row = session.execute(statement, {"message_id": msg.id}).one()
        out += [bool(v) for v in row]
    return out


def assignable(session: Session, msg: Message, groups: list[Group]) -> tuple[list[User], list[Group]]:
    """The assignee choices for `msg` among active users and `groups` (every group, read
    once by the panel): users who could see it once it is assigned to them, and groups
    with at least one active member who could see it assigned to the group. One grant
    computation and one visibility query for both lists."""
    users = list(session.scalars(select(User).where(User.active.is_(True)).order_by(User.display_name, User.username)))
    pairs = [(gid, uid) for gid, uid in session.execute(
        select(GroupMember.group_id, GroupMember.user_id).join(User, User.id == GroupMember.user_id)
        .where(User.active.is_(True)))]
    grants = grants_for_users(session, users, memberships=[(uid, gid) for gid, uid in pairs])
    ok = _could_see_each(session, msg, [(grants[u.id], u.id, msg.assigned_group_id) for u in users]
                         + [(grants[uid], None, gid) for gid, uid in pairs])
    good_groups = {gid for (gid, _), yes in zip(pairs, ok[len(users):], strict=True) if yes}
    return ([u for u, yes in zip(users, ok[:len(users)], strict=True) if yes],
            [g for g in groups if g.id in good_groups])


def writable_accounts(session: Session, user: User, grant: Grant) -> list[Account]:
    """Mailboxes `user` may move mail into: every shared one for admin and manager; for an
    operator those granted with level "write" (to them or a group of theirs); everyone
    their own personal mailbox. Nobody moves mail into someone else's personal mailbox."""
    query = select(Account).order_by(Account.name)
    if user.role in ("admin", "manager"):
        query = query.where(or_(Account.owner_user_id.is_(None), Account.owner_user_id == user.id))
    elif user.role == "operator":
        granted = select(MailboxPermission.account_id).where(MailboxPermission.level == "write", or_(
            MailboxPermission.user_id == user.id,
            MailboxPermission.group_id.in_(grant.group_ids) if grant.group_ids else literal(False)))
        query = query.where(or_(Account.id.in_(granted), Account.owner_user_id == user.id),
                            or_(Account.owner_user_id.is_(None), Account.owner_user_id == user.id))
    else:
        return []
    return list(session.scalars(query))


_folders_cache: dict[int, tuple[float, list[str]]] = {}
FOLDERS_TTL = 30.0


def forget_folders() -> None:
    _folders_cache.clear()


def folders_of(session: Session, account: Account) -> list[str]:
    """An account's folders: configured ones and those its messages are in (the latter
    cached half a minute per process: a DISTINCT over a big mailbox is not per-page work)."""
    now = time.monotonic()
    hit = _folders_cache.get(account.id)
    if hit is not None and now - hit[0] < FOLDERS_TTL:
        used = set(hit[1])
    else:
        used = set(session.scalars(select(Message.folder).where(Message.account_id == account.id).distinct()))
        _folders_cache[account.id] = (now, sorted(used))
    names = set(account.folders or []) | set(account.sent_folders or []) & used | used
    return sorted(names, key=lambda f: (f != "INBOX", not account.is_sent_folder(f), f.lower()))


# -- suggestions while typing ----------------------------------------------------------------

SUGGEST_LIMIT = 20
SUGGEST_ACTIONS = {"tags": "tags", "pratiche": "pratica", "links": "link"}  # list -> the action it serves


def suggestions(session: Session, grant: Grant, what: str, typed: str, kind: str = "") -> list[str]:
    """What the panel's tag, pratica and link fields offer while the user types: at most
    SUGGEST_LIMIT names containing `typed` (any case). Fetched as the user types rather than
    written into every message page: an office's registry has thousands of names. Tags
    come only from mail the user may read; `kind` ("company", "contact") narrows links."""
    needle = typed.strip().lower()[:100]

    def like(column: Any) -> Any:
        return func.lower(column).contains(needle, autoescape=True)

    if what == "tags":
        query = (select(MessageTag.tag).distinct().join(Message, Message.id == MessageTag.message_id)
                 .where(visible_clause(grant)))
        return list(session.scalars(query.where(like(MessageTag.tag)).order_by(MessageTag.tag).limit(SUGGEST_LIMIT)))
    if what == "pratiche":
        return list(session.scalars(select(Pratica.code).where(Pratica.status != "closed",
                                                               or_(like(Pratica.code), like(Pratica.title)))
                                    .order_by(Pratica.code).limit(SUGGEST_LIMIT)))
    if what == "links":
        names: list[str] = []
        for model in ((Company,) if kind == "company" else (Contact,) if kind == "contact" else (Company, Contact)):
            names += session.scalars(select(model.name).where(like(model.name)).order_by(model.name)
                                     .limit(SUGGEST_LIMIT))
        return sorted(set(names), key=str.lower)[:SUGGEST_LIMIT]
    return []


# -- notes ---------------------------------------------------------------------------------

def mentions(session: Session, body: str) -> list[str]:
    """The existing usernames named with @username in `body`, in order, once each."""
    named: list[str] = []
    for name in MENTION.findall(body):
        name = name.rstrip(".")
        if name.lower() not in (n.lower() for n in named):
            named.append(name)
    if not named:
        return []
    found = {u.lower(): u for u in session.scalars(
        select(User.username).where(func.lower(User.username).in_([n.lower() for n in named])))}
    return [found[n.lower()] for n in named if n.lower() in found]


def note_parts(body: str, mentioned: list[str]) -> list[tuple[str, bool]]:
    """The note's text cut into (text, is_mention) pieces, for the template to highlight
    mentions without ever marking user text safe."""
    known = {m.lower() for m in mentioned}
    parts: list[tuple[str, bool]] = []
    last = 0
    for match in MENTION.finditer(body):
        if match.group(1).rstrip(".").lower() not in known:
            continue
        end = match.start(1) + len(match.group(1).rstrip("."))
        parts.append((body[last:match.start()], False))
        parts.append((body[match.start():end], True))
        last = end
    parts.append((body[last:], False))
    return [p for p in parts if p[0]]


# -- history -------------------------------------------------------------------------------

def _where(detail: dict[str, Any]) -> str:
    folder = detail.get("folder")
    account = detail.get("account")
    if account and folder:
        return f"{account}/{folder}"
    return str(account or folder or "")


def describe(action: str, detail: dict[str, Any]) -> str:
    """A history event as a sentence in the user's language."""
    d = detail or {}
    if action == "stored":
        return _("Stored")
    if action == "submitted":
        return _("Sent from the mail server")
    if action == "status":
        return _("Status changed from %(old)s to %(new)s") % {"old": _(str(d.get("from", "")).capitalize()),
                                                              "new": _(str(d.get("to", "")).capitalize())}
    if action in ("assigned", "assign-user"):
        if d.get("user"):
            return _("Assigned to %(user)s") % {"user": d["user"]}
        return _("Assignment removed")
    if action == "assign-group":
        if d.get("group"):
            return _("Assigned to group %(group)s") % {"group": d["group"]}
        return _("Group removed")
    if action == "set-agent":
        return _("Agent set to %(agent)s") % {"agent": d.get("agent") or "—"}
    if action == "move":
        return _("Moved to %(where)s") % {"where": _where(d)}
    if action == "add-tags":
        return _("Tagged %(tags)s") % {"tags": ", ".join(d.get("tags", []))}
    if action == "remove-tags":
        return _("Tag removed: %(tags)s") % {"tags": ", ".join(d.get("tags", []))}
    if action == "link-pratica":
        if d.get("created"):
            return _("New pratica %(code)s opened for this message") % {"code": d.get("pratica", "")}
        return _("Added to pratica %(code)s") % {"code": d.get("pratica", "")}
    if action == "unlink-pratica":
        return _("Removed from pratica %(code)s") % {"code": d.get("pratica", "")}
    if action == "make-public":
        if d.get("group"):
            return _("Made public to group %(group)s") % {"group": d["group"]}
        return _("Made public")
    if action == "make-private":
        return _("Made private again")
    if action == "note":
        if d.get("mentions"):
            return _("Added a note for %(users)s") % {"users": ", ".join("@" + m for m in d["mentions"])}
        return _("Added a note")
    if action == "link":
        if d.get("kind") in ("contact", "company"):
            return _("Linked to %(name)s") % {"name": d.get("name", "")}
        return _("Link to the contact registry removed")
    if action == "skipped":
        return _("Rule action not taken: %(reason)s") % {"reason": d.get("reason", "")}
    if action.startswith("relay-"):
        return _("Delivery: %(state)s") % {"state": action[6:]}
    return action


# -- the panel -----------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Note:
    author: str
    at: datetime
    parts: list[tuple[str, bool]]
    mentions: list[str]


@dataclass(frozen=True, slots=True)
class Event:
    at: datetime
    actor: str
    text: str


def panel(ctx: Ctx, msg: Message, *, present: bool = False) -> dict[str, Any]:
    """Everything templates/mail/_work.html shows for `msg` (which the user may see).
    `present`: the request already marked the user present on it (opening the message)."""
    assert ctx.user is not None and ctx.grant is not None
    s = ctx.db
    user = ctx.user
    owner_id = account_owner(s, msg)
    can = {a: allowed(user, msg, a, owner_id) for a in ACTIONS}
    assignee = s.get(User, msg.assigned_user_id) if msg.assigned_user_id else None
    group = s.get(Group, msg.assigned_group_id) if msg.assigned_group_id else None
    tags = sorted(s.scalars(select(MessageTag.tag).where(MessageTag.message_id == msg.id)))
    pratiche = list(s.scalars(select(Pratica).join(MessagePratica, MessagePratica.pratica_id == Pratica.id)
                              .where(MessagePratica.message_id == msg.id).order_by(Pratica.code)))
    notes = [Note(author=(u.display_name or u.username) if u else _("(deleted user)"), at=n.created_at,
                  parts=note_parts(n.body, n.mentions or []), mentions=n.mentions or [])
             for n, u in s.execute(select(MessageNote, User).outerjoin(User, User.id == MessageNote.user_id)
                                   .where(MessageNote.message_id == msg.id).order_by(MessageNote.created_at,
                                                                                     MessageNote.id))]
    events = list(s.scalars(select(MessageEvent).where(MessageEvent.message_id == msg.id)
                            .order_by(MessageEvent.at, MessageEvent.id)))
    names = {u: d or u for u, d in s.execute(select(User.username, User.display_name)
                                             .where(User.username.in_({e.actor for e in events})))}
    history = [Event(at=e.at, actor=names.get(e.actor, e.actor), text=describe(e.action, e.detail)) for e in events]
    contact = s.get(Contact, msg.contact_id) if msg.contact_id else None
    company = s.get(Company, msg.company_id) if msg.company_id else None
    if msg.link_kind == "contact" and contact is not None:
        linked = {"kind": "contact", "name": contact.name, "company": company.name if company else None}
    elif msg.link_kind == "company" and company is not None:
        linked = {"kind": "company", "name": company.name, "company": None}
    else:
        linked = None
    # Opening the page is viewing it: the others see this user at once, not at the first poll.
    presence = ctx.app.presence
    if not present:
        presence.touch(key_for(msg), user.username, "viewing", user.display_name or user.username)
    out: dict[str, Any] = {
        "can": can, "assignee": assignee, "group": group, "status": msg.status, "statuses": STATUSES,
        "tags": tags, "pratiche": pratiche, "notes": notes, "history": history, "linked": linked,
        "is_public": msg.is_public, "personal": owner_id is not None,
        "others": presence.others(key_for(msg), user.username, session=s),
    }
    every_group = list(s.scalars(select(Group).order_by(Group.name))) if can["assign"] or can["public"] else []
    if can["assign"]:
        out["users"], out["groups"] = assignable(s, msg, every_group)
    if can["public"]:
        out["public_groups"] = every_group
    if can["move"]:
        out["destinations"] = [(a, folders_of(s, a)) for a in writable_accounts(s, user, ctx.grant)]
    if user.role in ("admin", "manager"):
        out["reads"] = s.execute(select(User.username, User.display_name, ReadLog.at)
                                 .join(User, User.id == ReadLog.user_id).where(ReadLog.message_id == msg.id)
                                 .order_by(ReadLog.at.desc(), ReadLog.id.desc()).limit(50)).all()
    return out
