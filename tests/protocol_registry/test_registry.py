"""The protocol register: gapless, unique, immutable, cancellable; two processes at once."""

from __future__ import annotations

import pytest
from sqlalchemy import select, text, update
from sqlalchemy.exc import DBAPIError

from casella.models import Registration
from protocol_registry.assign import allocate_numbers, ensure_registry, parse_number
from protocol_registry.errors import BadProtocolNumber
from tests.conftest import Cli
from tests.mailgen import make_message, write_eml_folder

pytestmark = pytest.mark.integration


def test_two_processes_at_once_no_gap_no_duplicate(cli: Cli, tmp_path, database) -> None:
    n = 1000
    cli("account", "add", "uno")
    cli("account", "add", "due")
    a = write_eml_folder(tmp_path / "a", [make_message(i, "uno") for i in range(n)])
    b = write_eml_folder(tmp_path / "b", [make_message(i, "due") for i in range(n)])
    small = {**cli.env, "CASELLA_INGEST_BATCH_SIZE": "4"}
    procs = [Cli(small).popen("import", str(path), "--account", name, stdout=-1, stderr=-1)
             for path, name in ((a, "uno"), (b, "due"))]
    for p in procs:
        out, err = p.communicate(timeout=600)
        assert p.returncode == 0, err
    with database.session() as s:
        numbers = sorted(s.scalars(select(Registration.number)))
        assert numbers == list(range(1, 2 * n + 1))
        by_number = s.execute(text(
            "SELECT r.number, m.account_id FROM protocol_registration r JOIN message m ON m.id = r.message_id "
            "ORDER BY r.number")).all()
    owners = [acc for _, acc in by_number]
    switches = sum(1 for x, y in zip(owners, owners[1:]) if x != y)
    assert switches > 2, "the two imports never interleaved: the test did not exercise concurrency"


def test_registration_is_immutable_and_cancellation_is_kept(cli: Cli, tmp_path, database) -> None:
    cli("account", "add", "uno")
    cli("import", str(write_eml_folder(tmp_path / "a", [make_message(i, "imm") for i in range(3)])), "--account", "uno")
    with pytest.raises(DBAPIError, match="immutable"):
        with database.session() as s:
            s.execute(update(Registration).where(Registration.number == 2).values(subject="altro"))
    with pytest.raises(DBAPIError, match="immutable"):
        with database.session() as s:
            s.execute(text("DELETE FROM protocol_registration WHERE number = 1"))
    regs = cli("protocol", "list", "--json").json()
    assert [r["number"] for r in regs] == [1, 2, 3]
    label = regs[1]["protocol"]
    year = regs[1]["year"]
    assert cli("protocol", "show", f"{year}/2", "--json").json() == cli("protocol", "show", label, "--json").json()
    cli("protocol", "cancel", label, "--reason", "registrata per errore", "--user", "admin")
    shown = cli("protocol", "show", label, "--json").json()
    assert shown["cancelled"] and shown["cancel_reason"] == "registrata per errore" and shown["cancelled_by"] == "admin"
    again = cli("protocol", "cancel", label, "--reason", "ancora", check=False)
    assert again.returncode == 2 and "already cancelled" in again.stderr
    assert [r["number"] for r in cli("protocol", "list", "--json", "--year", str(year)).json()] == [1, 2, 3]
    assert cli("protocol", "list", "--json", "--year", str(year - 1)).json() == []
    missing = cli("protocol", "show", f"{year}/99", check=False)
    assert missing.returncode == 2 and "no registration" in missing.stderr


def test_numbers_restart_each_year_and_per_registry(database) -> None:
    with database.session() as s:
        reg = ensure_registry(s, "AOO")
        other = ensure_registry(s, "UFF2")
        assert list(allocate_numbers(s, reg.id, 2026, 3)) == [1, 2, 3]
        assert list(allocate_numbers(s, reg.id, 2027, 2)) == [1, 2]
        assert list(allocate_numbers(s, reg.id, 2026, 1)) == [4]
        assert list(allocate_numbers(s, other.id, 2026, 1)) == [1]


def test_rolled_back_allocation_leaves_no_gap(database) -> None:
    with database.session() as s:
        reg_id = ensure_registry(s, "AOO").id
    with pytest.raises(RuntimeError):
        with database.session() as s:
            allocate_numbers(s, reg_id, 2026, 5)
            raise RuntimeError("crash after taking numbers")
    with database.session() as s:
        assert list(allocate_numbers(s, reg_id, 2026, 1)) == [1]


@pytest.mark.unit
def test_parse_number_forms() -> None:
    assert parse_number("2026/42") == (2026, 42)
    assert parse_number("2026/0000042") == (2026, 42)
    with pytest.raises(BadProtocolNumber, match="YEAR/NUMBER"):
        parse_number("42")
