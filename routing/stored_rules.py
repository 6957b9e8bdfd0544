"""Rules in the database (`routing_rule`): load them in evaluation order, replace them.

The order for a message of account A: A's enabled rules by position, then the enabled
rules for every account (account_id NULL) by position. One query loads the rules of every
account a batch touches.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field

from sqlalchemy import delete, insert, or_, select
from sqlalchemy.orm import Session

from casella.models import Account, Group, RoutingRule, User
from routing.errors import InvalidRules
from routing.rule import Rule
from routing.validate import parse_rules

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Rulebook:
    """Rules loaded for some accounts; `for_account` gives the evaluation order."""

    by_account: dict[int, tuple[Rule, ...]] = field(default_factory=dict)
    shared: tuple[Rule, ...] = ()  # the rules for every account

    def for_account(self, account_id: int) -> tuple[Rule, ...]:
        return self.by_account.get(account_id, ()) + self.shared

    def __bool__(self) -> bool:
        return bool(self.shared) or any(self.by_account.values())

    def all(self) -> tuple[Rule, ...]:
        return tuple(r for rules in self.by_account.values() for r in rules) + self.shared


def _row_dict(row: RoutingRule, account: str | None) -> dict[str, object]:
    return {"name": row.name, "description": row.description, "account": account, "enabled": row.enabled,
            "match": row.match, "conditions": row.conditions, "actions": row.actions, "stop": row.stop}


def load_rules(session: Session, account_ids: Collection[int] | None = None, *, enabled_only: bool = True) -> Rulebook:
    """One query. `account_ids=None`: every account's rules. A stored rule that no longer
    validates (edited by hand in the database) is logged and left out, never half-applied."""
    query = (select(RoutingRule, Account.name).outerjoin(Account, Account.id == RoutingRule.account_id)
             .order_by(RoutingRule.account_id, RoutingRule.position, RoutingRule.id))
    if account_ids is not None:
        query = query.where(or_(RoutingRule.account_id.in_(account_ids), RoutingRule.account_id.is_(None))
                            if account_ids else RoutingRule.account_id.is_(None))
    if enabled_only:
        query = query.where(RoutingRule.enabled.is_(True))
    by_account: dict[int, list[Rule]] = {}
    shared: list[Rule] = []
    for row, account in session.execute(query):
        try:
            (rule,) = parse_rules([_row_dict(row, account)], source=f"routing_rule id={row.id}")
        except InvalidRules as exc:
            log.error("routing rule %s (id %s) is invalid and is skipped: %s", row.name, row.id, exc)
            continue
        (shared if row.account_id is None else by_account.setdefault(row.account_id, [])).append(rule)
    return Rulebook({a: tuple(r) for a, r in by_account.items()}, tuple(shared))


def ordered_rules(session: Session) -> list[Rule]:
    """Every rule, enabled or not: accounts by name, each by position, then the shared ones."""
    book = load_rules(session, None, enabled_only=False)
    names = dict(session.execute(select(Account.id, Account.name)).all())
    accounts = sorted(book.by_account, key=lambda a: names.get(a, ""))
    return [r for a in accounts for r in book.by_account[a]] + list(book.shared)


def missing_references(session: Session, rules: Iterable[Rule]) -> list[str]:
    """Accounts, groups and users the rules name but the database lacks."""
    rules = list(rules)
    wanted: dict[str, set[str]] = {"account": set(), "group": set(), "user": set()}
    for rule in rules:
        if rule.account:
            wanted["account"].add(rule.account)
        for action in rule.actions:
            for kind, value in (("account", action.account), ("group", action.group), ("user", action.user)):
                if value:
                    wanted[kind].add(value)
    found = {
        "account": set(session.scalars(select(Account.name).where(Account.name.in_(wanted["account"])))),
        "group": set(session.scalars(select(Group.name).where(Group.name.in_(wanted["group"])))),
        "user": set(session.scalars(select(User.username).where(User.username.in_(wanted["user"])))),
    }
    hint = {"account": "casella account add", "group": "casella group add", "user": "casella user add"}
    problems = []
    for rule in rules:
        names = [("account", rule.account, "account")] + [
            (kind, value, f"actions[{n}].{kind}") for n, a in enumerate(rule.actions)
            for kind, value in (("account", a.account), ("group", a.group), ("user", a.user)) if value]
        for kind, value, where in names:
            if value and value not in found[kind]:
                problems.append(f"rule {rule.name!r} {where}: no {kind} named {value!r} (create it with "
                                f"`{hint[kind]}`)")
    return problems


def replace_rules(session: Session, rules: list[Rule], scopes: set[str | None] | None = None) -> dict[str, int]:
    """Replace the rules of `scopes` (account names; None for the shared rules; `scopes=None`:
    every rule) with `rules`, which are already validated. Returns rules written per scope."""
    problems = missing_references(session, rules)
    if problems:
        raise InvalidRules(problems)
    accounts = dict(session.execute(select(Account.name, Account.id)).all())
    if scopes is None:
        session.execute(delete(RoutingRule))
    else:
        ids = [accounts[s] for s in scopes if s is not None and s in accounts]
        if ids:
            session.execute(delete(RoutingRule).where(RoutingRule.account_id.in_(ids)))
        if None in scopes:
            session.execute(delete(RoutingRule).where(RoutingRule.account_id.is_(None)))
    counts: dict[str, int] = {}
    rows = []
    for rule in rules:
        scope = rule.account or "*"
        position = counts.get(scope, 0)
        counts[scope] = position + 1
        data = rule.as_dict()
        rows.append({"account_id": accounts[rule.account] if rule.account else None, "position": position,
                     "name": rule.name, "description": rule.description, "enabled": rule.enabled,
                     "match": rule.match, "conditions": data["conditions"], "actions": data["actions"],
                     "stop": rule.stop})
    if rows:
        session.execute(insert(RoutingRule), rows)
    session.flush()
    return counts
