"""Acting on what `evaluate()` decided: rows change here, and only here.

Each planned action becomes a change on the message row (or a tag, a pratica link), a
`message_event` (actor `rule:<name>`, the action, the detail) and a search outbox entry.
An action that would change nothing (the tag is there, the user is already assigned) is
not repeated and not recorded, so replaying rules over mail is harmless. One that cannot
be taken (the group was deleted, the user is inactive, the other mailbox has the same
message) is recorded as `skipped` with the reason; the message goes on.

A batch costs a few queries whatever its size: targets are loaded once, events, tags and
links are inserted with one statement each.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from casella.models import (
    Account,
    Message,
    MessageEvent,
    MessagePratica,
    MessageTag,
    Pratica,
    User,
)
from routing.assignment import Pool, load_pools
from routing.evaluate import PlannedAction
from routing.rule import Action
from search.outbox import enqueue


@dataclass(frozen=True, slots=True)
class Change:
    """One action taken (or skipped) on one message; also what `rules replay` prints."""

    message_id: int
    rule: str
    action: str  # the action's kind, or "skipped"
    detail: dict[str, Any]


@dataclass(slots=True)
class _Targets:
    """Everything the batch's actions point at, loaded with one query per kind."""

    users: dict[str, tuple[int, bool]] = field(default_factory=dict)  # username → (id, active)
    usernames: dict[int, str] = field(default_factory=dict)
    pools: dict[str, Pool] = field(default_factory=dict)
    accounts: dict[str, int] = field(default_factory=dict)
    account_names: dict[int, str] = field(default_factory=dict)
    taken: set[tuple[int, str]] = field(default_factory=set)  # (account id, sha256) already stored
    pratiche: dict[str, int] = field(default_factory=dict)
    created: set[tuple[int, str]] = field(default_factory=set)  # (message id, code) that opened it
    tags: set[tuple[int, str]] = field(default_factory=set)
    links: set[tuple[int, int]] = field(default_factory=set)
    new_tags: list[dict[str, Any]] = field(default_factory=list)
    new_links: list[dict[str, Any]] = field(default_factory=list)


Outcome = dict[str, Any] | str | None  # detail of a change, the reason it was skipped, or no change
Handler = Callable[[_Targets, Message, Action], Outcome]


def _assign_user(t: _Targets, row: Message, a: Action) -> Outcome:
    assert a.user is not None
    if a.user not in t.users:
        return f"no user named {a.user!r}"
    uid, active = t.users[a.user]
    if not active:
        return f"user {a.user!r} is not active"
    if row.assigned_user_id == uid:
        return None
    previous = t.usernames.get(row.assigned_user_id) if row.assigned_user_id else None
    row.assigned_user_id = uid
    return {"user": a.user, "previous": previous}


def _assign_group(t: _Targets, row: Message, a: Action) -> Outcome:
    assert a.group is not None
    pool = t.pools.get(a.group)
    if pool is None:
        return f"no group named {a.group!r}"
    if row.assigned_group_id == pool.group.id and (pool.has(row.assigned_user_id) or not pool.members):
        return None
    pool.release(row.assigned_user_id)
    chosen = pool.pick()
    row.assigned_group_id = pool.group.id
    row.assigned_user_id = chosen[0] if chosen else None
    detail: dict[str, Any] = {"group": a.group, "policy": pool.policy, "user": chosen[1] if chosen else None}
    if chosen is None:
        detail["note"] = "the group has no active member: assigned to the group only"
    return detail


def _set_agent(t: _Targets, row: Message, a: Action) -> Outcome:
    agent = (a.agent or "")[:120]
    if row.agent == agent:
        return None
    previous, row.agent = row.agent, agent
    return {"agent": agent, "previous": previous}


def _move(t: _Targets, row: Message, a: Action) -> Outcome:
    detail: dict[str, Any] = {}
    if a.account is not None:
        target = t.accounts.get(a.account)
        if target is None:
            return f"no account named {a.account!r}"
        if target != row.account_id:
            if (target, row.sha256) in t.taken:
                return f"mailbox {a.account!r} already has this message (same bytes)"
            t.taken.discard((row.account_id, row.sha256))
            t.taken.add((target, row.sha256))
            detail.update(account=a.account, from_account=t.account_names.get(row.account_id))
            row.account_id = target  # the registration stays: a message is never renumbered
    if a.folder is not None and row.folder != a.folder[:255]:
        detail.update(folder=a.folder[:255], from_folder=row.folder)
        row.folder = a.folder[:255]
    return detail or None


def _add_tags(t: _Targets, row: Message, a: Action) -> Outcome:
    added = [tag for tag in a.tags if (row.id, tag) not in t.tags]
    for tag in added:
        t.tags.add((row.id, tag))
        t.new_tags.append({"message_id": row.id, "tag": tag})
    return {"tags": added} if added else None


def _link_pratica(t: _Targets, row: Message, a: Action) -> Outcome:
    assert a.code is not None
    pratica_id = t.pratiche[a.code]
    if (row.id, pratica_id) in t.links:
        return None
    t.links.add((row.id, pratica_id))
    t.new_links.append({"message_id": row.id, "pratica_id": pratica_id})
    return {"pratica": a.code, "created": (row.id, a.code) in t.created}


def _make_public(t: _Targets, row: Message, a: Action) -> Outcome:
    if row.is_public:
        return None
    row.is_public = True
    return {"public": True}


HANDLERS: dict[str, Handler] = {
    "assign-user": _assign_user, "assign-group": _assign_group, "set-agent": _set_agent, "move": _move,
    "add-tags": _add_tags, "link-pratica": _link_pratica, "make-public": _make_public,
}


def _load_targets(session: Session, work: Sequence[tuple[Message, Sequence[PlannedAction]]]) -> _Targets:
    t = _Targets()
    actions = [(row, p.action) for row, plan in work for p in plan]
    kinds = {a.kind for _, a in actions}
    ids = [row.id for row, plan in work if plan]
    if "assign-user" in kinds:
        names = {a.user for _, a in actions if a.user}
        previous = {row.assigned_user_id for row, _ in work if row.assigned_user_id}
        for uid, username, active in session.execute(select(User.id, User.username, User.active).where(
                (User.username.in_(names)) | (User.id.in_(previous)))):
            t.users[username] = (uid, active)
            t.usernames[uid] = username
    t.pools = load_pools(session, {a.group for _, a in actions if a.group})
    if any(a.kind == "move" and a.account for _, a in actions):
        t.accounts = dict(session.execute(select(Account.name, Account.id)).all())
        t.account_names = {i: n for n, i in t.accounts.items()}
        targets = {t.accounts[a.account] for _, a in actions if a.account in t.accounts}
        if targets:
            t.taken = set(session.execute(select(Message.account_id, Message.sha256).where(
                Message.account_id.in_(targets), Message.sha256.in_({row.sha256 for row, _ in work}))).all())
    if "add-tags" in kinds:
        t.tags = set(session.execute(select(MessageTag.message_id, MessageTag.tag).where(
            MessageTag.message_id.in_(ids))).all())
    if "link-pratica" in kinds:
        _prepare_pratiche(session, t, actions, ids)
    return t


def _prepare_pratiche(session: Session, t: _Targets, actions: list[tuple[Message, Action]], ids: list[int]) -> None:
    """Find the pratiche by code; open the missing ones, each with the company and subject
    of the first message that names it."""
    codes = {a.code for _, a in actions if a.kind == "link-pratica" and a.code}
    t.pratiche = dict(session.execute(select(Pratica.code, Pratica.id).where(Pratica.code.in_(codes))).all())
    opened: dict[str, dict[str, Any]] = {}
    for row, a in actions:
        if a.kind == "link-pratica" and a.code and a.code not in t.pratiche and a.code not in opened:
            opened[a.code] = {"code": a.code, "title": a.title or row.subject[:500] or a.code,
                              "company_id": row.company_id, "status": "open"}
            t.created.add((row.id, a.code))
    if opened:  # one statement, then their ids with one query (no RETURNING per row)
        session.execute(insert(Pratica), list(opened.values()))
        t.pratiche.update(session.execute(select(Pratica.code, Pratica.id).where(Pratica.code.in_(opened))).all())
    wanted = set(t.pratiche.values())
    t.links = {(m, p) for m, p in session.execute(select(MessagePratica.message_id, MessagePratica.pratica_id)
                                                   .where(MessagePratica.message_id.in_(ids))) if p in wanted}


def apply_for_person(session: Session, row: Message, action: Action) -> dict[str, Any] | str | None:
    """One action on one message on a person's behalf (the webmail), with exactly a rule's
    semantics but none of its bookkeeping: the caller records the event under the person's
    name. Returns what changed, None for nothing to do, or a str saying why it was skipped."""
    t = _load_targets(session, [(row, [PlannedAction("person", action)])])
    outcome = HANDLERS[action.kind](t, row, action)
    session.flush()
    if t.new_tags:
        session.execute(insert(MessageTag), t.new_tags)
    if t.new_links:
        session.execute(insert(MessagePratica), t.new_links)
    return outcome


def apply_actions(session: Session, work: Sequence[tuple[Message, Sequence[PlannedAction]]], *,
                  via: str = "ingest") -> list[Change]:
    """Apply each message's planned actions, in order; record and index every change."""
    if not any(plan for _, plan in work):
        return []
    t = _load_targets(session, work)
    changes: list[Change] = []
    for row, plan in work:
        for planned in plan:
            outcome = HANDLERS[planned.action.kind](t, row, planned.action)
            if isinstance(outcome, str):
                changes.append(Change(row.id, planned.rule, "skipped",
                                      {"action": planned.action.describe(), "reason": outcome}))
            elif outcome is not None:
                changes.append(Change(row.id, planned.rule, planned.action.kind, outcome))
    session.flush()
    if t.new_tags:
        session.execute(insert(MessageTag), t.new_tags)
    if t.new_links:
        session.execute(insert(MessagePratica), t.new_links)
    if changes:
        session.execute(insert(MessageEvent), [
            {"message_id": c.message_id, "actor": f"rule:{c.rule}", "action": c.action,
             "detail": {**c.detail, "via": via}} for c in changes])
        enqueue(session, sorted({c.message_id for c in changes if c.action != "skipped"}))
    return changes
