"""Routing end to end, on SQLite and PostgreSQL: rules loaded with `casella rules import`,
mail stored with `casella import`, the rows and the history checked afterwards."""

from __future__ import annotations

import email
import shutil
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, select

from casella.blobs import BlobStore, sha256_hex
from casella.db import Database
from casella.models import Account, Message, MessageTag, Registration, SearchOutbox, User
from casella.pipeline import StoredMessage
from casella.settings import Settings
from ingest.parse import parse_message
from routing.stage import RoutingStage
from tests.conftest import CORPUS, Cli
from tests.routing.office import (MARIO, RULES, by_subject, import_mail, load_rules, set_active, setup_office,
                                  usernames)

pytestmark = pytest.mark.integration


def test_rules_route_new_mail_and_record_it(cli: Cli, database: Database, tmp_path: Path) -> None:
    setup_office(cli, tmp_path)
    load_rules(cli, tmp_path, RULES)
    import_mail(cli, tmp_path, "in", [
        (MARIO, "Fattura Pratica 2026-123"),
        (MARIO, "Pratica 2026-123 sollecito"),
        ("Chi <chi@ignoto.example>", "Ciao"),
        (MARIO, "Fattura 2"),
        ("Tecnico <tecnico@tecnoservizi.com>", "Offerta"),
    ])
    msgs = by_subject(database)
    names = usernames(database)
    invoice = msgs["Fattura Pratica 2026-123"]
    assert names[invoice.assigned_user_id] == "anna" and invoice.agent == "agente.rossi"
    assert invoice.is_public is False  # stop: clienti-pubblici did not run
    assert names[msgs["Fattura 2"].assigned_user_id] == "bruno"  # round-robin
    reminder = msgs["Pratica 2026-123 sollecito"]
    assert reminder.is_public is True and names[reminder.assigned_user_id] == "dario"
    assert reminder.assigned_group_id is None and reminder.agent is None
    unknown = msgs["Ciao"]
    assert unknown.folder == "Sconosciuti"  # a rule for every account
    offer = msgs["Offerta"]  # a known company, not a customer: no rule
    assert (offer.folder, offer.assigned_user_id, offer.is_public) == ("INBOX", None, False)
    with database.sessions() as session:
        tags = sorted(tuple(r) for r in session.execute(select(MessageTag.message_id, MessageTag.tag)))
        outbox = set(session.scalars(select(SearchOutbox.message_id)))
    assert tags == sorted([(invoice.id, "fattura"), (invoice.id, "fornitore"), (msgs["Fattura 2"].id, "fattura"),
                           (msgs["Fattura 2"].id, "fornitore"), (unknown.id, "sconosciuto")])
    assert {invoice.id, unknown.id, reminder.id} <= outbox

    # The history says which rule did what, and when.
    history = cli("message", "show", str(invoice.id), "--json").json()["history"]
    assert history[0]["actor"] == "ingest"
    ruled = [(h["actor"], h["action"]) for h in history[1:]]
    assert ruled == [("rule:fatture-fornitori", a) for a in ("assign-group", "add-tags", "link-pratica", "set-agent")]
    assert history[1]["detail"] == {"group": "amministrazione", "policy": "round-robin", "user": "anna",
                                    "via": "ingest"}
    assert history[3]["detail"]["pratica"] == "2026-123" and history[3]["detail"]["created"] is True
    assert all(h["at"] for h in history)

    # The pratica was opened with the linked company; a second one is added by hand.
    cli("pratica", "add", "P-7", "--title", "Ristrutturazione", "--company", "Edilnord S.r.l.", "--owner", "anna")
    listed = {p["code"]: p for p in cli("pratica", "list", "--json").json()}
    assert listed["2026-123"] == {**listed["2026-123"], "title": "Fattura Pratica 2026-123",
                                  "company": "Edilnord S.r.l.", "status": "open", "owner": None, "messages": 1}
    assert listed["P-7"]["owner"] == "anna" and listed["P-7"]["messages"] == 0
    shown = cli("pratica", "show", "2026-123", "--json").json()
    assert [m["id"] for m in shown["messages"]] == [invoice.id] and shown["messages"][0]["protocol"]
    assert cli("pratica", "list", "--json", "--status", "closed").json() == []
    again = cli("pratica", "add", "P-7", "--title", "x", check=False)
    assert again.returncode == 2 and "exists already" in again.stderr

    # explain: which rule matched, and why
    text = cli("rules", "explain", str(invoice.id)).stdout
    assert "MATCH fatture-fornitori [ufficio]: matched: all 2 condition(s) hold" in text
    assert 'yes  from domain-is "edilnord.it"  (from is "mario.rossi@edilnord.it")' in text
    assert "clienti-pubblici [ufficio]: not evaluated: rule 'fatture-fornitori' matched and stops" in text
    data = cli("rules", "explain", str(offer.id), "--json").json()
    assert data["matched"] == [] and data["stopped_by"] is None
    reasons = {r["rule"]: r for r in data["rules"]}
    assert reasons["fatture-fornitori"]["reason"].startswith('not matched: subject contains "fattura" does not hold')
    assert reasons["clienti-pubblici"]["conditions"] == [{
        "condition": 'company-lifecycle equals "customer"', "matched": False,
        "reason": 'company-lifecycle is "prospect"'}]
    assert reasons["sconosciuti"]["account"] is None
    missing = cli("rules", "explain", "9999", check=False)
    assert missing.returncode == 2 and "no message 9999" in missing.stderr


def test_round_robin_alternates_among_active_members(cli: Cli, database: Database, tmp_path: Path) -> None:
    setup_office(cli, tmp_path)
    set_active(database, "carla", False)
    load_rules(cli, tmp_path, "rules:\n  - {name: tutti, actions: [{action: assign-group, group: amministrazione}]}\n")
    import_mail(cli, tmp_path, "first", [(MARIO, f"uno {i}") for i in range(5)])
    names = usernames(database)
    order = lambda prefix: [names[m.assigned_user_id] for s, m in by_subject(database).items()  # noqa: E731
                            if s.startswith(prefix)]
    assert order("uno") == ["anna", "bruno", "anna", "bruno", "anna"]
    set_active(database, "carla", True)  # back in turn, after the last one who got a message
    import_mail(cli, tmp_path, "second", [(MARIO, f"due {i}") for i in range(4)])
    assert order("due") == ["bruno", "carla", "anna", "bruno"]
    for name in ("anna", "bruno", "carla"):
        set_active(database, name, False)
    import_mail(cli, tmp_path, "third", [(MARIO, "tre")])
    lonely = by_subject(database)["tre"]
    assert lonely.assigned_user_id is None and lonely.assigned_group_id is not None
    (event,) = [h for h in cli("message", "show", str(lonely.id), "--json").json()["history"]
                if h["actor"] == "rule:tutti"]
    assert event["detail"]["note"] == "the group has no active member: assigned to the group only"


def test_least_loaded_picks_the_member_with_fewest_open_messages(cli: Cli, database: Database,
                                                                  tmp_path: Path) -> None:
    setup_office(cli, tmp_path)
    import_mail(cli, tmp_path, "old", [(MARIO, f"vecchio {i}") for i in range(4)])
    with database.session() as session:
        ids = dict(session.execute(select(User.username, User.id)).all())
        old = list(session.scalars(select(Message).order_by(Message.id)))
        for msg, user, status in zip(old, ("dario", "dario", "elena", "elena"), ("open", "open", "closed", "closed"),
                                     strict=True):
            msg.assigned_user_id, msg.status = ids[user], status
    load_rules(cli, tmp_path, "rules:\n  - {name: vendite, actions: [{action: assign-group, group: commerciale}]}\n")
    import_mail(cli, tmp_path, "new", [(MARIO, f"nuovo {i}") for i in range(4)])
    names = usernames(database)
    got = [names[m.assigned_user_id] for s, m in by_subject(database).items() if s.startswith("nuovo")]
    # dario has 2 open, elena 0 (closed ones do not count); ties go to the lowest id (dario)
    assert got == ["elena", "elena", "dario", "elena"]
    set_active(database, "elena", False)
    import_mail(cli, tmp_path, "later", [(MARIO, "dopo")])
    assert names[by_subject(database)["dopo"].assigned_user_id] == "dario"


def test_move_to_another_mailbox_keeps_the_protocol_number(cli: Cli, database: Database, tmp_path: Path) -> None:
    setup_office(cli, tmp_path)
    load_rules(cli, tmp_path, "rules:\n  - name: archivia\n    account: ufficio\n"
                              "    conditions: [{field: subject, op: starts-with, value: archivia}]\n"
                              "    actions: [{action: move, account: archivio, folder: Storico}]\n")
    import_mail(cli, tmp_path, "in", [(MARIO, "prima"), (MARIO, "Archivia: contratto"), (MARIO, "dopo")])
    register = {r["subject"]: r["protocol"] for r in cli("protocol", "list", "--json").json()}
    assert len(set(register.values())) == 3
    moved = by_subject(database)["Archivia: contratto"]
    shown = cli("message", "show", str(moved.id), "--json").json()
    assert (shown["account"], shown["folder"]) == ("archivio", "Storico")
    assert shown["protocol"] == register["Archivia: contratto"]
    assert shown["registration"]["message"] == moved.id
    assert [m["id"] for m in cli("message", "list", "--json", "--account", "archivio").json()] == [moved.id]
    (event,) = [h for h in shown["history"] if h["actor"] == "rule:archivia"]
    assert event["detail"] | {"at": None} == {"account": "archivio", "from_account": "ufficio", "folder": "Storico",
                                             "from_folder": "INBOX", "via": "ingest", "at": None}
    with database.sessions() as session:
        assert session.scalar(select(Registration.message_id).where(Registration.message_id == moved.id))


PEC_RULES = r"""
rules:
  - name: ricevute-pec
    account: pec
    conditions: [{field: pec-kind, op: equals, value: [accettazione, avvenuta-consegna]}]
    actions: [{action: add-tags, tags: ricevuta}, {action: move, folder: Ricevute}]
    stop: true
  - name: mancate-consegne
    account: pec
    conditions: [{field: pec-kind, op: equals, value: errore-consegna}]
    actions: [{action: add-tags, tags: mancata-consegna}, {action: make-public}]
  - name: buste
    account: pec
    conditions:
      - {field: pec-kind, op: equals, value: posta-certificata}
      - {field: header:X-Trasporto, op: equals, value: posta-certificata}  # the envelope's own header
    actions: [{action: add-tags, tags: busta}]
"""


def test_real_pec_mail_is_routed_by_kind_and_attachment(cli: Cli, database: Database, tmp_path: Path) -> None:
    cli("account", "add", "pec", "--pec")
    load_rules(cli, tmp_path, PEC_RULES)
    folder = tmp_path / "pec"
    folder.mkdir()
    expected: dict[str, set[str]] = {}
    for path in sorted((CORPUS / "pec").glob("*.eml")):
        shutil.copy(path, folder / path.name)
        raw = path.read_bytes()
        headers = email.message_from_bytes(raw)
        kind = (headers.get("X-Ricevuta") or headers.get("X-Trasporto") or "").strip()
        tags = {"accettazione": {"ricevuta"}, "avvenuta-consegna": {"ricevuta"},
                "errore-consegna": {"mancata-consegna"}}.get(kind, set())
        if kind == "posta-certificata":
            tags = {"busta"}
        expected[sha256_hex(raw)] = tags
    cli("import", str(folder), "--account", "pec")
    with database.sessions() as session:
        rows = {m.sha256: m for m in session.scalars(select(Message))}
        got: dict[str, set[str]] = {sha: set() for sha in rows}
        for mid, tag in session.execute(select(MessageTag.message_id, MessageTag.tag)):
            got[next(s for s, m in rows.items() if m.id == mid)].add(tag)
    assert got == expected
    assert {"ricevuta", "mancata-consegna", "busta"} <= set().union(*expected.values())
    for sha, msg in rows.items():
        assert (msg.folder == "Ricevute") == ("ricevuta" in expected[sha])
        assert msg.is_public == ("mancata-consegna" in expected[sha])
    receipt = next(m for s, m in rows.items() if "ricevuta" in expected[s])
    data = cli("rules", "explain", str(receipt.id), "--json").json()
    assert data["message"]["pec_kind"] in ("accettazione", "avvenuta-consegna")
    assert data["matched"] == ["ricevute-pec"] and data["stopped_by"] == "ricevute-pec"
    # Past mail is seen as new mail was: replaying the rules finds nothing left to do.
    replayed = cli("rules", "replay", "--since", "2000-01-01", "--apply", "--json").json()
    assert (replayed["examined"], replayed["matched"], replayed["changed"]) == (
        len(expected), sum(1 for tags in expected.values() if tags), 0)


def _queries(database: Database, run: Any) -> list[str]:
    seen: list[str] = []

    def count(*args: Any) -> None:
        seen.append(args[2])

    event.listen(database.engine, "before_cursor_execute", count)
    try:
        run()
    finally:
        event.remove(database.engine, "before_cursor_execute", count)
    return seen


def test_the_stage_costs_a_few_queries_per_batch(cli: Cli, database: Database, settings: Settings,
                                                 tmp_path: Path) -> None:
    setup_office(cli, tmp_path)
    import_mail(cli, tmp_path, "in", [(MARIO, f"Fattura Pratica 2026-{i}") for i in range(12)]
                + [("Chi <chi@ignoto.example>", f"Ciao {i}") for i in range(12)])
    blobs = BlobStore(settings.blob_dir)
    stage = RoutingStage(settings)

    def cost(n: int) -> list[str]:
        with database.sessions() as session:
            session.begin()
            account = session.scalar(select(Account).where(Account.name == "ufficio"))
            rows = list(session.scalars(select(Message).order_by(Message.id)))
            batch = [StoredMessage(r, parse_message(blobs.get(r.sha256)), account) for r in rows[:n // 2] + rows[-n // 2:]]
            queries = _queries(database, lambda: stage.process(batch, session))
            session.rollback()
        return queries

    assert len(cost(4)) == len(cost(24)) == 1  # no rules: one query per batch
    load_rules(cli, tmp_path, RULES)
    few, many = cost(4), cost(24)
    assert len(few) == len(many) <= 16, "\n".join(many)  # every kind of action, reads and writes
