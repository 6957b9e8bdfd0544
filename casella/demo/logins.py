"""Demo logins: one user per role, so a newcomer can see the webmail as each role sees it.

Made once, on the installation that got the demo mailbox, with random passwords written to
``<data dir>/demo-logins.txt`` (readable by the owner only) and printed by `casella serve`.
The agents are the ones named in the demo's contacts.csv: each sees only his companies.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from sqlalchemy import select

from casella.db import Database
from casella.demo.corpus import OWN_DOMAIN
from casella.models import Account, User
from casella.models.outbound import SenderIdentity
from casella.settings import Settings
from casella.users import add_group, add_user, grant_mailbox

LOGINS_FILE = "demo-logins.txt"
DEMO_ADDRESS = f"info@{OWN_DOMAIN}"
DEMO_GROUP = "segreteria"
DEMO_USERS = (
    ("admin", "admin", "Amministratore"),
    ("direttore", "manager", "Direttore"),
    ("operatore", "operator", "Operatore segreteria"),
    ("agente.rossi", "agent", "Mario Rossi (agente)"),
    ("agente.bianchi", "agent", "Luca Bianchi (agente)"),
    ("marketing", "marketing", "Ufficio marketing"),
)


def logins_path(settings: Settings) -> Path:
    return settings.data_dir / LOGINS_FILE


def ensure_demo_logins(settings: Settings, database: Database, account: str) -> list[tuple[str, str, str]]:
    """Create the demo users (if none of them exists yet) and return (username, role, password)."""
    path = logins_path(settings)
    with database.session() as session:
        if session.scalar(select(User.id).where(User.username.in_([u for u, _, _ in DEMO_USERS]))):
            return read_demo_logins(settings)
        add_group(session, DEMO_GROUP)
        made = []
        for username, role, name in DEMO_USERS:
            password = secrets.token_urlsafe(9)
            groups = [DEMO_GROUP] if role == "operator" else None
            add_user(session, username, role, groups=groups, password=password, display_name=name)
            made.append((username, role, password))
        session.flush()
        grant_mailbox(session, account, group=DEMO_GROUP)
        grant_mailbox(session, account, user="marketing", level="read")
        # Everyone may write as the office's shared address (the webmail's compose and SMTP
        # submission); with no upstream SMTP configured, mail to outside stays queued.
        account_id = session.scalar(select(Account.id).where(Account.name == account))
        for user in session.scalars(select(User).where(User.username.in_([u for u, _, _ in DEMO_USERS]))):
            session.add(SenderIdentity(user_id=user.id, account_id=account_id, address=DEMO_ADDRESS))
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write("# Casella demo logins (username role password). Delete the users when going live.\n")
        for row in made:
            fh.write(" ".join(row) + "\n")
    return made


def read_demo_logins(settings: Settings) -> list[tuple[str, str, str]]:
    path = logins_path(settings)
    if not path.exists():
        return []
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        parts = line.split()
        if len(parts) == 3 and not line.startswith("#"):
            rows.append((parts[0], parts[1], parts[2]))
    return rows
