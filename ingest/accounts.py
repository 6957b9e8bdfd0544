"""Create accounts and report their fetch status (`casella account add/list`)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from casella.errors import CasellaError
from casella.models import Account, FolderState, Message
from casella.models.account import DEFAULT_SENT_FOLDERS
from casella.secrets import SecretBox
from casella.settings import Settings
from protocol_registry.assign import ensure_registry


class AccountExists(CasellaError):
    """`casella account add` was given a name already in use."""


def add_account(session: Session, settings: Settings, *, name: str, imap_host: str | None, imap_port: int | None,
                username: str | None, password: str | None, security: str, is_pec: bool, folders: list[str],
                sent_folders: list[str] | None, mark_seen: bool = False, move_to: str | None = None,
                move_after_days: int | None = None, registry: str | None = None) -> Account:
    if session.scalar(select(Account.id).where(Account.name == name)) is not None:
        raise AccountExists(f"an account named {name!r} exists already; choose another name")
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
