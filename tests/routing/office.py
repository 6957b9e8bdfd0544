"""The office the routing tests work in: two mailboxes, two groups, five operators, a
small anagrafica, and the rules of a typical small company."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import select, update

from casella.db import Database
from casella.models import Group, Message, MessageEvent, MessagePratica, MessageTag, Pratica, SearchOutbox, User
from tests.conftest import Cli
from tests.mailgen import make_message, write_eml_folder

CONTACTS = """company_name,company_domain,contact_name,email,vat_number,lifecycle,agent,note
Edilnord S.r.l.,edilnord.it,Mario Rossi,mario.rossi@edilnord.it,01234567890,customer,agente.rossi,
Tecnoservizi S.p.A.,tecnoservizi.com,,,09876543210,prospect,,
"""

RULES = r"""
rules:
  - name: fatture-fornitori
    account: ufficio
    conditions:
      - {field: subject, op: contains, value: fattura}
      - {field: from, op: domain-is, value: edilnord.it}
    actions:
      - {action: assign-group, group: amministrazione}
      - {action: add-tags, tags: [fattura, fornitore]}
      - {action: link-pratica, from-subject: 'Pratica (\d{4}-\d+)'}
      - {action: set-agent}
    stop: true
  - name: clienti-pubblici
    account: ufficio
    conditions: [{field: company-lifecycle, op: equals, value: customer}]
    actions: [{action: make-public}, {action: assign-user, user: dario}]
  - name: sconosciuti
    conditions: [{field: sender-unknown, value: true}]
    actions: [{action: move, folder: Sconosciuti}, {action: add-tags, tags: sconosciuto}]
"""

MARIO = "Mario Rossi <mario.rossi@edilnord.it>"


def setup_office(cli: Cli, tmp_path: Path) -> None:
    contacts = tmp_path / "contacts.csv"
    contacts.write_text(CONTACTS, encoding="utf-8")
    cli("contacts", "import", str(contacts))
    cli("account", "add", "ufficio")
    cli("account", "add", "archivio")
    cli("group", "add", "amministrazione", "--assignment", "round-robin")
    cli("group", "add", "commerciale", "--assignment", "least-loaded")
    for name, groups in (("anna", "amministrazione"), ("bruno", "amministrazione"), ("carla", "amministrazione"),
                         ("dario", "commerciale"), ("elena", "commerciale")):
        cli("user", "add", name, "--role", "operator", "--groups", groups, "--no-password")


def load_rules(cli: Cli, tmp_path: Path, text: str, name: str = "rules.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    cli("rules", "import", str(path))
    return path


def import_mail(cli: Cli, tmp_path: Path, folder: str, mails: list[tuple[str, str]], account: str = "ufficio") -> None:
    raws = [make_message(i, folder, sender=sender, subject=subject) for i, (sender, subject) in enumerate(mails)]
    cli("import", str(write_eml_folder(tmp_path / folder, raws)), "--account", account)


def by_subject(database: Database) -> dict[str, Message]:
    with database.sessions() as session:
        return {m.subject: m for m in session.scalars(select(Message).order_by(Message.id))}


def usernames(database: Database) -> dict[int | None, str | None]:
    with database.sessions() as session:
        return {None: None, **dict(session.execute(select(User.id, User.username)).all())}


def set_active(database: Database, username: str, active: bool) -> None:
    with database.session() as session:
        session.execute(update(User).where(User.username == username).values(active=active))


def snapshot(database: Database) -> dict[str, Any]:
    with database.sessions() as session:
        return {
            "messages": [tuple(r) for r in session.execute(select(
                Message.id, Message.account_id, Message.folder, Message.assigned_user_id, Message.assigned_group_id,
                Message.agent, Message.is_public).order_by(Message.id))],
            "tags": sorted(tuple(r) for r in session.execute(select(MessageTag.message_id, MessageTag.tag))),
            "links": sorted(tuple(r) for r in session.execute(select(MessagePratica.message_id,
                                                                     MessagePratica.pratica_id))),
            "pratiche": list(session.scalars(select(Pratica.code))),
            "events": len(list(session.scalars(select(MessageEvent.id)))),
            "outbox": len(list(session.scalars(select(SearchOutbox.id)))),
            "groups": [tuple(r) for r in session.execute(select(Group.name, Group.last_assigned_user_id))],
        }
