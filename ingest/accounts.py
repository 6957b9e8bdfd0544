"""Create and change accounts and report their fetch status (`casella account add/list`, the
admin page)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from casella.errors import CasellaError
from casella.models import Account, FolderState, Message, MessageLocation
from casella.models.account import DEFAULT_SENT_FOLDERS, MAILBOX_IDENTITY
from casella.secrets import SecretBox
from casella.settings import Settings
from protocol_registry.assign import ensure_registry


class AccountExists(CasellaError):
    """`casella account add` was given a name already in use."""


class InvalidAccount(CasellaError):
    """Account settings that cannot work. `reason` names the rule ("name", "security",
    "port", "username", "password", "folders", "move", "days") for callers that explain it
    in their own words (the admin page, in Italian)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


SECURITY = ("ssl", "starttls", "none")


def check_account(*, name: str, imap_host: str | None, imap_port: int | None, username: str | None,
                  has_password: bool, security: str, folders: list[str], move_to: str | None,
                  move_after_days: int | None) -> None:
    """Raise InvalidAccount when these settings cannot work (the one place these rules
    live: `add_account`, `update_account` and the admin form all check here)."""
    if not name.strip():
        raise InvalidAccount("name", "the account needs a name")
    if security not in SECURITY:
        raise InvalidAccount("security", f"security must be one of {', '.join(SECURITY)}, not {security!r}")
    if imap_port is not None and not 0 < imap_port < 65536:
        raise InvalidAccount("port", f"port {imap_port} is not a TCP port (1-65535)")
    if imap_host:
        if not username:
            raise InvalidAccount("username", "an account with an IMAP server needs the username to log in with")
        if not has_password:
            raise InvalidAccount("password", "an account with an IMAP server needs the password to log in with")
        if not folders:
            raise InvalidAccount("folders", "name at least one folder to read (usually INBOX)")
    if (move_to is None) != (move_after_days is None):
        raise InvalidAccount("move", "moving stored mail on the server needs both the folder and the number of days")
    if move_after_days is not None and move_after_days < 0:
        raise InvalidAccount("days", "the days before moving stored mail cannot be negative")


def _name_free(session: Session, name: str, account_id: int | None = None) -> None:
    clash = session.scalar(select(Account.id).where(Account.name == name, Account.id != (account_id or 0)))
    if clash is not None:
        raise AccountExists(f"an account named {name!r} exists already; choose another name")


def add_account(session: Session, settings: Settings, *, name: str, imap_host: str | None, imap_port: int | None,
                username: str | None, password: str | None, security: str, is_pec: bool, folders: list[str],
                sent_folders: list[str] | None, mark_seen: bool = False, move_to: str | None = None,
                move_after_days: int | None = None, registry: str | None = None) -> Account:
    check_account(name=name, imap_host=imap_host, imap_port=imap_port, username=username,
                  has_password=password is not None, security=security, folders=folders or ["INBOX"],
                  move_to=move_to, move_after_days=move_after_days)
    _name_free(session, name)
    registry_row = ensure_registry(session, registry or settings.default_registry)
    account = Account(
        name=name, imap_host=imap_host or None, imap_port=imap_port, username=username,
        password_encrypted=SecretBox(settings.secret_key_file).encrypt(password) if password is not None else None,
        security=security, is_pec=is_pec, folders=folders or ["INBOX"],
        sent_folders=sent_folders if sent_folders is not None else list(DEFAULT_SENT_FOLDERS),
        mark_seen=mark_seen, move_to_folder=move_to, move_after_days=move_after_days, registry_id=registry_row.id,
    )
    session.add(account)
    session.flush()
    return account


def update_account(session: Session, settings: Settings, account: Account, *, name: str, imap_host: str | None,
                   imap_port: int | None, username: str | None, password: str | None, security: str,
                   is_pec: bool, folders: list[str], sent_folders: list[str], mark_seen: bool,
                   move_to: str | None, move_after_days: int | None) -> list[str]:
    """Change an account's settings (`password` None keeps the stored one); the names of
    the settings that changed. When the server or the login changes, the folders' UID
    cursors and the stored messages' UIDs are dropped: the next pass reads the new mailbox
    from its start, and what is stored already is recognised (stored once). A running ingest
    daemon reconnects with the new settings within CASELLA_INGEST_ACCOUNTS_SECONDS."""
    name = name.strip()
    check_account(name=name, imap_host=imap_host, imap_port=imap_port, username=username,
                  has_password=password is not None or account.password_encrypted is not None, security=security,
                  folders=folders, move_to=move_to, move_after_days=move_after_days)
    _name_free(session, name, account.id)
    values: dict[str, Any] = {
        "name": name, "imap_host": imap_host or None, "imap_port": imap_port, "username": username or None,
        "security": security, "is_pec": is_pec, "folders": folders or ["INBOX"], "sent_folders": sent_folders,
        "mark_seen": mark_seen, "move_to_folder": move_to, "move_after_days": move_after_days,
    }
    changed = [key for key, value in values.items() if getattr(account, key) != value]
    if password is not None:
        changed.append("password")
        account.password_encrypted = SecretBox(settings.secret_key_file).encrypt(password)
    for key, value in values.items():
        setattr(account, key, value)
    if any(key in changed for key in MAILBOX_IDENTITY):
        # The account row is written first: its lock orders this against a pass that
        # is committing with the old mailbox (ingest.store.check_mailbox), which then
        # sees the new settings and stops instead of writing the old mailbox's cursor.
        session.flush()
        # Another mailbox may hand out the same UIDVALIDITY and UIDs for other messages:
        # the cursors go, and the stored locations keep their folder but lose their UIDs
        # (no server-side follow-up can then touch the wrong message).
        session.execute(delete(FolderState).where(FolderState.account_id == account.id))
        session.execute(update(MessageLocation).where(MessageLocation.account_id == account.id)
                        .values(uidvalidity=None, uid=None))
    session.flush()
    return changed


def account_status(session: Session) -> list[dict[str, Any]]:
    stored = dict(session.execute(select(Message.account_id, func.count(Message.id)).group_by(Message.account_id)).all())
    folder_rows = session.execute(select(FolderState).order_by(FolderState.id)).scalars().all()
    folders: dict[int, list[FolderState]] = {}
    for f in folder_rows:
        folders.setdefault(f.account_id, []).append(f)
    out = []
    for acc in session.scalars(select(Account).order_by(Account.id)):
        states = folders.get(acc.id, [])
        server = [f.server_count for f in states if f.server_count is not None]
        out.append({
            "id": acc.id,
            "name": acc.name,
            "kind": "pec" if acc.is_pec else "imap" if acc.imap_host else "local",
            "imap_host": acc.imap_host,
            "imap_port": acc.imap_port,
            "username": acc.username,
            "security": acc.security,
            "pec": acc.is_pec,
            "folders": acc.folders,
            "enabled": acc.enabled,
            "mark_seen": acc.mark_seen,
            "move_to_folder": acc.move_to_folder,
            "move_after_days": acc.move_after_days,
            "has_password": acc.password_encrypted is not None,
            "last_fetch_at": acc.last_fetch_at.isoformat() if acc.last_fetch_at else None,
            "last_error": acc.last_error,
            "last_error_at": acc.last_error_at.isoformat() if acc.last_error_at else None,
            "stored_count": stored.get(acc.id, 0),
            "server_count": sum(server) if server else None,
            "folder_status": [
                {"folder": f.name, "uidvalidity": f.uidvalidity, "last_uid": f.last_uid, "server_count": f.server_count,
                 "last_fetch_at": f.last_fetch_at.isoformat() if f.last_fetch_at else None}
                for f in states
            ],
        })
    return out
