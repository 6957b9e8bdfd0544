"""Users, groups and mailbox permissions (`casella user add/list`, `casella group add`).

Passwords are hashed with argon2id (argon2-cffi's defaults follow RFC 9106's recommended
parameters); a user without a password cannot log in (the webmail issue adds the login).
"""

from __future__ import annotations

from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from casella.errors import CasellaError, NotFound
from casella.models import ASSIGNMENT_POLICIES, ROLES, Account, Group, GroupMember, MailboxPermission, User

_hasher = PasswordHasher()


class UserError(CasellaError):
    """A user or group command was given something impossible (duplicate name, bad role)."""


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(stored_hash: str | None, password: str) -> bool:
    if not stored_hash:
        return False
    try:
        return _hasher.verify(stored_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def add_user(session: Session, username: str, role: str, *, groups: list[str] | None = None,
             password: str | None = None, display_name: str = "", email: str | None = None) -> User:
    if role not in ROLES:
        raise UserError(f"role {role!r} is not one of {', '.join(ROLES)}")
    if session.scalar(select(User.id).where(User.username == username)) is not None:
        raise UserError(f"a user named {username!r} exists already")
    user = User(username=username, role=role, display_name=display_name or username, email=email,
                password_hash=hash_password(password) if password else None)
    session.add(user)
    session.flush()
    for name in groups or []:
        session.add(GroupMember(group_id=get_group(session, name).id, user_id=user.id))
    session.flush()
    return user


def add_group(session: Session, name: str, assignment: str = "round-robin") -> Group:
    if assignment not in ASSIGNMENT_POLICIES:
        raise UserError(f"assignment {assignment!r} is not one of {', '.join(ASSIGNMENT_POLICIES)}")
    if session.scalar(select(Group.id).where(Group.name == name)) is not None:
        raise UserError(f"a group named {name!r} exists already")
    group = Group(name=name, assignment=assignment)
    session.add(group)
    session.flush()
    return group


def get_user(session: Session, username: str) -> User:
    user = session.scalar(select(User).where(User.username == username))
    if user is None:
        raise NotFound(f"no user named {username!r}; `casella user list` shows them")
    return user


def get_group(session: Session, name: str) -> Group:
    group = session.scalar(select(Group).where(Group.name == name))
    if group is None:
        raise NotFound(f"no group named {name!r}; create it with `casella group add {name}`")
    return group


def grant_mailbox(session: Session, account_name: str, *, group: str | None = None, user: str | None = None,
                  level: str = "write") -> MailboxPermission:
    account = session.scalar(select(Account).where(Account.name == account_name))
    if account is None:
        raise NotFound(f"no account named {account_name!r}")
    if (group is None) == (user is None):
        raise UserError("grant a mailbox to exactly one of --group or --user")
    perm = MailboxPermission(account_id=account.id, level=level,
                             group_id=get_group(session, group).id if group else None,
                             user_id=get_user(session, user).id if user else None)
    session.add(perm)
    session.flush()
    return perm


def list_users(session: Session) -> list[dict[str, Any]]:
    groups = {g.id: g.name for g in session.scalars(select(Group))}
    members: dict[int, list[str]] = {}
    for m in session.scalars(select(GroupMember)):
        members.setdefault(m.user_id, []).append(groups[m.group_id])
    return [{"id": u.id, "username": u.username, "display_name": u.display_name, "email": u.email, "role": u.role,
             "active": u.active, "groups": sorted(members.get(u.id, [])), "has_password": u.password_hash is not None}
            for u in session.scalars(select(User).order_by(User.id))]
