"""Who may send as which address, and which addresses are Casella's own mailboxes.

A user may submit mail as:
- an address of a `sender_identity` granted to him (each bound to one account), or
- the address (login name, when it is an e-mail address) of an account he may *write*:
  a `mailbox_permission` with level "write" for him or one of his groups, or his own
  personal mailbox (account.owner_user_id).
Roles grant nothing by themselves: an admin sends only as what is granted to him too.

An address is internal when it is an account's address or any identity's address: mail
to it is stored in that account's INBOX by the relay, with no SMTP traffic.
"""

from __future__ import annotations

from sqlalchemy import false, or_, select
from sqlalchemy.orm import Session

from casella.errors import NotFound
from casella.models import Account, GroupMember, MailboxPermission
from casella.models.outbound import AccountSmtp, SenderIdentity
from casella.users import get_user
from mailserver.errors import IdentityError


def normalise(address: str) -> str:
    return address.strip().strip("<>").strip().lower()


def account_address(account: Account) -> str | None:
    login = account.username or ""
    return normalise(login) if "@" in login else None


def allowed_senders(session: Session, user_id: int) -> dict[str, int]:
    """Every address the user may send as, mapped to the account it sends through."""
    groups = list(session.scalars(select(GroupMember.group_id).where(GroupMember.user_id == user_id)))
    writable = set(session.scalars(select(MailboxPermission.account_id).where(
        MailboxPermission.level == "write",
        or_(MailboxPermission.user_id == user_id,
            MailboxPermission.group_id.in_(groups) if groups else false()))))
    writable |= set(session.scalars(select(Account.id).where(Account.owner_user_id == user_id)))
    allowed: dict[str, int] = {}
    for account in session.scalars(select(Account).where(Account.id.in_(writable)).order_by(Account.id)):
        address = account_address(account)
        if address is not None:
            allowed.setdefault(address, account.id)
    for address, account_id in session.execute(select(SenderIdentity.address, SenderIdentity.account_id)
                                               .where(SenderIdentity.user_id == user_id)
                                               .order_by(SenderIdentity.id)):
        allowed[normalise(address)] = account_id
    return allowed


def internal_addresses(session: Session) -> dict[str, int]:
    """Address → account for every mailbox Casella holds (accounts and identities)."""
    found: dict[str, int] = {}
    for address, account_id in session.execute(select(SenderIdentity.address, SenderIdentity.account_id)
                                               .order_by(SenderIdentity.id)):
        found.setdefault(normalise(address), account_id)
    for account in session.scalars(select(Account).order_by(Account.id)):
        address = account_address(account)
        if address is not None:
            found[address] = account.id  # the account's own address wins
    return found


def reachable(session: Session, account_id: int, rcpt: str) -> bool:
    """Whether mail from this account can reach `rcpt`: a Casella mailbox, or any address
    when the account has an upstream SMTP server."""
    return normalise(rcpt) in internal_addresses(session) or session.get(AccountSmtp, account_id) is not None


def add_identity(session: Session, username: str, address: str, account_name: str) -> SenderIdentity:
    address = normalise(address)
    if address.count("@") != 1 or address.startswith("@") or address.endswith("@"):
        raise IdentityError(f"{address!r} is not an e-mail address")
    user = get_user(session, username)
    account = session.scalar(select(Account).where(Account.name == account_name))
    if account is None:
        raise NotFound(f"no account named {account_name!r}; `casella account list` shows them")
    if session.scalar(select(SenderIdentity.id).where(SenderIdentity.user_id == user.id,
                                                      SenderIdentity.address == address)) is not None:
        raise IdentityError(f"{username} may already send as {address}")
    identity = SenderIdentity(user_id=user.id, account_id=account.id, address=address)
    session.add(identity)
    session.flush()
    return identity
