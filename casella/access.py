"""Who may read which message: one definition, used by every query (search engines
translate it into their own filters; the webmail into SQL).

- admin, manager: every message.
- operator: the accounts granted to them or to one of their groups, plus messages assigned
  to them or to their groups.
- agent: only messages whose agent is them (set by routing, by default the linked
  company's agent) or that are linked to a company they own — never another agent's clients.
- marketing: only the accounts explicitly granted to them.
- a personal mailbox (account.owner_user_id) is read by its owner; others see one of its
  messages only once it is made public (and they could see it otherwise).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from sqlalchemy import (
    ColumnElement,
    bindparam,
    false,
    literal_column,
    null,
    or_,
    select,
    true,
    union_all,
)
from sqlalchemy.orm import Session

from casella.models import (
    Account,
    Company,
    GroupMember,
    MailboxPermission,
    Message,
    User,
)


@dataclass(frozen=True)
class Grant:
    """What one user may read, resolved once per request."""

    username: str
    role: str
    everything: bool = False
    account_ids: frozenset[int] = frozenset()
    user_id: int | None = None
    group_ids: frozenset[int] = frozenset()
    agent: str | None = None  # agents: their own username
    agent_company_ids: frozenset[int] = frozenset()
    private_account_ids: frozenset[int] = frozenset()  # personal mailboxes of others
    own_account_ids: frozenset[int] = frozenset()  # personal mailboxes of this user


# Everything a grant depends on besides the user row, in one round trip (built once):
# (kind, id, owner) for personal mailboxes, the user's groups, the accounts granted to them
# or their groups, and — for an agent — their companies.
_FACTS = union_all(
    select(literal_column("'owner'"), Account.id, Account.owner_user_id).where(Account.owner_user_id.is_not(None)),
    select(literal_column("'group'"), GroupMember.group_id, null()).where(GroupMember.user_id == bindparam("user_id")),
    select(literal_column("'account'"), MailboxPermission.account_id, null()).where(or_(
        MailboxPermission.user_id == bindparam("user_id"),
        MailboxPermission.group_id.in_(select(GroupMember.group_id).where(GroupMember.user_id == bindparam("user_id"))))),
    select(literal_column("'company'"), Company.id, null()).where(Company.agent == bindparam("agent")),
)


def grant_for(session: Session, user: User) -> Grant:
    owned: dict[int, int] = {}
    facts: dict[str, set[int]] = {"group": set(), "account": set(), "company": set()}
    agent = user.username if user.role == "agent" else None
    for kind, ident, owner in session.execute(_FACTS, {"user_id": user.id, "agent": agent}):
        if kind == "owner":
            owned[ident] = owner
        else:
            facts[kind].add(ident)
    return _grant(user, owned, frozenset(facts["group"]), frozenset(facts["account"]), frozenset(facts["company"]))


def grants_for_users(session: Session, users: list[User],
                     memberships: list[tuple[int, int]] | None = None) -> dict[int, Grant]:
    """`grant_for` of many users with a fixed number of queries (the webmail's assignee
    choices); the same rules (`_grant`), checked equal by tests/webmail/test_access.py.
    `memberships`: (user id, group id) of at least these users, when the caller has them."""
    owned = dict(session.execute(select(Account.id, Account.owner_user_id)
                                 .where(Account.owner_user_id.is_not(None))).all())
    ids = [u.id for u in users]
    if memberships is None:
        memberships = [(u, g) for u, g in session.execute(select(GroupMember.user_id, GroupMember.group_id)
                                                           .where(GroupMember.user_id.in_(ids)))]
    groups: dict[int, set[int]] = {}
    for user_id, group_id in memberships:
        groups.setdefault(user_id, set()).add(group_id)
    perms = session.execute(select(MailboxPermission.account_id, MailboxPermission.user_id,
                                   MailboxPermission.group_id)).all()
    companies: dict[str, set[int]] = {}
    agents = [u.username for u in users if u.role == "agent"]
    if agents:
        for company_id, agent in session.execute(select(Company.id, Company.agent).where(Company.agent.in_(agents))):
            companies.setdefault(agent, set()).add(company_id)
    out: dict[int, Grant] = {}
    for user in users:
        mine = frozenset(groups.get(user.id, ()))
        accounts = frozenset(a for a, u, g in perms if u == user.id or (g is not None and g in mine))
        out[user.id] = _grant(user, owned, mine, accounts, frozenset(companies.get(user.username, ())))
    return out


def _grant(user: User, owned: dict[int, int], groups: frozenset[int], accounts: frozenset[int],
           companies: frozenset[int]) -> Grant:
    """The rules (see the module's docstring), from what the user's grant depends on: the
    personal mailboxes (account → owner), their groups, the accounts granted to them or
    their groups, and the companies whose agent they are."""
    private = frozenset(a for a, owner in owned.items() if owner != user.id)
    own = frozenset(a for a, owner in owned.items() if owner == user.id)
    if not user.active:
        return Grant(user.username, user.role)
    if user.role in ("admin", "manager"):
        return Grant(user.username, user.role, everything=True, user_id=user.id, private_account_ids=private,
                     own_account_ids=own)
    if user.role == "agent":
        return Grant(user.username, user.role, user_id=user.id, agent=user.username, agent_company_ids=companies,
                     private_account_ids=private, own_account_ids=own)
    if user.role == "marketing":
        return Grant(user.username, user.role, account_ids=accounts, user_id=user.id,
                     private_account_ids=private, own_account_ids=own)
    return Grant(user.username, user.role, account_ids=accounts | own, user_id=user.id, group_ids=groups,
                 private_account_ids=private, own_account_ids=own)


@lru_cache(maxsize=4096)
def visible_clause(grant: Grant) -> ColumnElement[bool]:
    """SQL condition on `Message` for what `grant` may read. Kept per grant (a grant is
    immutable, and so is a clause): every page asks for it, often more than once."""
    private_ok = or_(Message.account_id.not_in(grant.private_account_ids), Message.is_public.is_(True)) \
        if grant.private_account_ids else true()
    if grant.everything:
        return private_ok
    if grant.agent is not None:
        mine = or_(Message.agent == grant.agent,
                   Message.company_id.in_(grant.agent_company_ids) if grant.agent_company_ids else false())
        return mine & private_ok
    parts: list[ColumnElement[bool]] = []
    if grant.account_ids:
        parts.append(Message.account_id.in_(grant.account_ids))
    if grant.user_id is not None and grant.role == "operator":
        parts.append(Message.assigned_user_id == grant.user_id)
    if grant.group_ids:
        parts.append(Message.assigned_group_id.in_(grant.group_ids))
    return (or_(*parts) if parts else false()) & private_ok
