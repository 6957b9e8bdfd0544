"""`casella rules replay`, `export` and `import`, on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from casella.db import Database
from casella.models import Account, RoutingRule
from tests.conftest import Cli
from tests.routing.office import MARIO, RULES, import_mail, load_rules, setup_office, snapshot

pytestmark = pytest.mark.integration


def test_replay_is_a_dry_run_unless_apply(cli: Cli, database: Database, tmp_path: Path) -> None:
    setup_office(cli, tmp_path)
    import_mail(cli, tmp_path, "past", [(MARIO, "Fattura Pratica 2026-9"), (MARIO, "Fattura 10"),
                                        ("Chi <chi@ignoto.example>", "Ciao")])
    load_rules(cli, tmp_path, RULES)
    before = snapshot(database)
    dry = cli("rules", "replay", "--since", "2026-01-01", "--json").json()
    assert snapshot(database) == before
    assert (dry["applied"], dry["examined"], dry["matched"], dry["changed"]) == (False, 3, 3, 3)
    first = dry["messages"][0]
    assert first["rules"] == ["fatture-fornitori"]
    assert [c["action"] for c in first["changes"]] == ["assign-group", "add-tags", "link-pratica", "set-agent"]
    assert first["changes"][0]["detail"]["user"] == "anna"
    text = cli("rules", "replay", "--since", "2026-01-01").stdout
    assert "dry run, nothing was changed" in text and "fatture-fornitori: assign-group group=amministrazione" in text
    assert snapshot(database) == before

    applied = cli("rules", "replay", "--since", "2026-01-01", "--apply", "--json").json()
    assert (applied["applied"], applied["changed"]) == (True, 3)
    after = snapshot(database)
    assert after["pratiche"] == ["2026-9"] and len(after["tags"]) == 5 and after["outbox"] > before["outbox"]
    history = cli("message", "show", str(first["id"]), "--json").json()["history"]
    assert {h["detail"]["via"] for h in history if h["actor"].startswith("rule:")} == {"replay"}
    # Replaying again changes nothing: actions already done are not repeated.
    again = cli("rules", "replay", "--since", "2026-01-01", "--apply", "--json").json()
    assert (again["matched"], again["changed"]) == (3, 0) and snapshot(database)["events"] == after["events"]
    assert cli("rules", "replay", "--since", "2027-01-01", "--json").json()["examined"] == 0
    only = cli("rules", "replay", "--since", "2026-01-01", "--account", "archivio", "--json").json()
    assert only["examined"] == 0
    bad = cli("rules", "replay", "--since", "2026-01-01", "--account", "nessuno", check=False)
    assert bad.returncode == 2 and "no account named 'nessuno'" in bad.stderr


def test_export_round_trips_with_import(cli: Cli, database: Database, tmp_path: Path) -> None:
    setup_office(cli, tmp_path)
    load_rules(cli, tmp_path, RULES)
    exported = tmp_path / "export.yaml"
    cli("rules", "export", "-o", str(exported))
    first = exported.read_text(encoding="utf-8")
    assert first == cli("rules", "export").stdout
    assert "- name: fatture-fornitori\n  account: ufficio\n" in first
    assert first.index("clienti-pubblici") < first.index("sconosciuti")  # an account's own, then the shared
    cli("rules", "import", str(exported))
    assert cli("rules", "export").stdout == first
    listed = cli("rules", "list", "--json").json()
    assert [(r["name"], r["account"]) for r in listed] == [
        ("fatture-fornitori", "ufficio"), ("clienti-pubblici", "ufficio"), ("sconosciuti", None)]
    # Importing a file that names only one account leaves the others' rules alone ...
    load_rules(cli, tmp_path, "rules:\n  - {name: solo, account: archivio, actions: [{action: make-public}]}\n",
               "archivio.yaml")
    assert len(cli("rules", "list", "--json").json()) == 4
    # ... and replaces that account's rules, in the file's order.
    load_rules(cli, tmp_path, "rules:\n  - {name: b, account: ufficio, actions: [{action: make-public}]}\n"
                              "  - {name: a, account: ufficio, enabled: false, actions: [{action: stop}]}\n", "u.yaml")
    with database.sessions() as session:
        ufficio = session.scalar(select(Account.id).where(Account.name == "ufficio"))
        rows = session.execute(select(RoutingRule.name, RoutingRule.position, RoutingRule.enabled)
                               .where(RoutingRule.account_id == ufficio).order_by(RoutingRule.position)).all()
    assert [tuple(r) for r in rows] == [("b", 0, True), ("a", 1, False)]
    cli("rules", "import", "--all", str(load_rules(cli, tmp_path, "rules: []\n", "empty.yaml")))
    assert cli("rules", "list", "--json").json() == []


def test_bad_rules_are_refused_and_change_nothing(cli: Cli, tmp_path: Path) -> None:
    setup_office(cli, tmp_path)
    load_rules(cli, tmp_path, RULES)
    before = cli("rules", "export").stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text("rules:\n  - name: fatture\n    account: ufficio\n"
                   "    conditions: [{field: subject, op: regex, value: 'Pratica ('}]\n"
                   "    actions: [{action: assign-group, group: amministrazone}]\n", encoding="utf-8")
    result = cli("rules", "import", str(bad), check=False)
    assert result.returncode == 2
    assert "rule 'fatture' conditions[0].value: bad regex 'Pratica ('" in result.stderr
    assert "nothing was changed" in result.stderr
    assert cli("rules", "export").stdout == before
    bad.write_text("rules:\n  - {name: a, account: ufficio, actions: [{action: assign-group, group: amministrazone}]}\n"
                   "  - {name: b, account: magazzino, actions: [{action: assign-user, user: zoe}]}\n", encoding="utf-8")
    result = cli("rules", "import", str(bad), check=False)
    assert result.returncode == 2
    assert "rule 'a' actions[0].group: no group named 'amministrazone'" in result.stderr
    assert "rule 'b' account: no account named 'magazzino'" in result.stderr
    assert "rule 'b' actions[0].user: no user named 'zoe'" in result.stderr
    assert cli("rules", "export").stdout == before
