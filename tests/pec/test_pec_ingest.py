"""PEC through the whole ingest: real Dovecot, the real `casella` command, SQLite and PostgreSQL.

The real samples of tests/corpus/pec, and envelopes/receipts signed in the run by the test CA
of pec_testkit: stored byte-exact, classified, shown as the certified message they carry,
receipts linked to the sent message in either arrival order, per-recipient deliveries,
orphans, overdue, a tampered and a malformed envelope.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from email.utils import formatdate, make_msgid
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import create_engine, inspect

import pec_testkit as kit
from casella.blobs import BlobStore, sha256_hex
from casella.db import downgrade, upgrade
from casella.settings import Settings, get_settings
from pec.classify import RECEIPT_KINDS
from pec.stage import best_target
from pec.trust import TrustStore
from test_pec_corpus import EXPECTED
from tests.conftest import Cli, crlf

pytestmark = pytest.mark.integration

CORPUS = Path(__file__).resolve().parent.parent / "corpus" / "pec"
PROVIDER = "posta-certificata@pec.test"


# ---------------------------------------------------------------- helpers
@pytest.fixture
def pec_cli(cli: Cli) -> Cli:
    """The real command, checked to import the pec package (pyproject.toml must list "pec*")."""
    probe = subprocess.run([str(Path(sys.executable)), "-c", "import pec.stage"], cwd="/",
                           env={**os.environ, **cli.env}, capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.fail("the installed casella cannot import the pec package: add \"pec*\" to "
                    "[tool.setuptools.packages.find] include in pyproject.toml and reinstall "
                    f"(pip install -e .)\n{probe.stderr[-300:]}")
    return cli


def add_pec_account(cli: Cli, dovecot: Any) -> None:
    with dovecot.client("alice") as client:
        if not client.folder_exists("Sent"):
            client.create_folder("Sent")
    cli("account", "add", "pec", "--imap-host", dovecot.host, "--imap-port", str(dovecot.port),
        "--username", "alice", "--password-env", "IMAP_PW", "--security", "none", "--pec",
        "--folders", "INBOX,Sent", extra_env={"IMAP_PW": dovecot.users["alice"]})


def ingest(cli: Cli, **env: str) -> None:
    cli("ingest", "--once", extra_env=env or None)


def listing(cli: Cli, *args: str) -> list[dict[str, Any]]:
    return cli("message", "list", "--json", *args).json()


def show(cli: Cli, message_id: int, **env: str) -> dict[str, Any]:
    return cli("message", "show", str(message_id), "--json", extra_env=env or None).json()


def by_sha(cli: Cli) -> dict[str, dict[str, Any]]:
    return {item["sha256"]: item for item in listing(cli)}


def pec_cmd(cli: Cli, *args: str, **env: str) -> Any:
    """`casella pec ARGS --json`: the real command once casella/cli.py registers pec.cli,
    else the same click command through CliRunner with the same environment."""
    result = cli("pec", *args, "--json", check=False, extra_env=env or None)
    if result.returncode == 0:
        return result.json()
    assert "No such command" in result.stderr, result.stderr
    from pec.cli import pec

    get_settings.cache_clear()
    try:
        run = CliRunner().invoke(pec, [*args, "--json"], env={**cli.env, **env}, catch_exceptions=False)
    finally:
        get_settings.cache_clear()
    assert run.exit_code == 0, run.output
    return json.loads(run.output)


def sent_copy(msgid: str, to: list[str], cc: list[str] = (), subject: str = "Offerta") -> bytes:  # type: ignore[assignment]
    head = (f"From: Alice <mittente@pec.mittente.test>\r\nTo: {', '.join(to)}\r\n"
            + (f"Cc: {', '.join(cc)}\r\n" if cc else "")
            + f"Subject: {subject}\r\nMessage-ID: <{msgid}>\r\nDate: {formatdate(localtime=False)}\r\n"
            "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nIn allegato l'offerta.\r\n")
    return head.encode()


def trust_test_ca(settings: Settings) -> None:
    TrustStore.from_settings(settings).add_certificates(kit.root().pem)


# ---------------------------------------------------------------- the schema
def test_migration_0004_upgrade_downgrade(db_url: str) -> None:
    upgrade(db_url)
    engine = create_engine(db_url)
    try:
        assert "message_pec" in inspect(engine).get_table_names()
        indexes = {i["name"] for i in inspect(engine).get_indexes("message_pec")}
        assert {"ix_message_pec_refers_to_msgid", "ix_message_pec_refers_to_id"} <= indexes
        downgrade(db_url, "0003")
        assert "message_pec" not in inspect(engine).get_table_names()
        assert "message" in inspect(engine).get_table_names()
        upgrade(db_url)
        assert "message_pec" in inspect(engine).get_table_names()
    finally:
        engine.dispose()


@pytest.mark.unit
def test_best_target_prefers_the_sent_copy() -> None:
    assert best_target([(5, "in", 1), (7, "out", 2), (9, "out", 1)], 1) == 9
    assert best_target([(5, "in", 1), (7, "out", 2)], 1) == 7
    assert best_target([(5, "in", 1)], 1) == 5
    assert best_target([(5, "in", 2)], 1) is None  # someone else's received copy
    assert best_target([], 1) is None


# ---------------------------------------------------------------- the real samples
def test_real_samples_stored_byte_exact_classified_and_shown(pec_cli: Cli, dovecot: Any, settings: Settings) -> None:
    cli = pec_cli
    raws = {p.name: crlf(p.read_bytes()) for p in sorted(CORPUS.glob("*.eml"))}
    assert len(raws) == 15
    dovecot.append_many("alice", list(raws.values()))
    add_pec_account(cli, dovecot)
    ingest(cli)
    stored = by_sha(cli)
    assert len(stored) == 15
    blobs = BlobStore(settings.blob_dir)
    receipt_ids = set()
    for name, raw in raws.items():
        kind = EXPECTED[name][0]
        item = stored[sha256_hex(raw)]
        assert blobs.get(item["sha256"], verify=True) == raw, name  # the envelope, byte-exact
        assert item["pec_kind"] == kind, name
        data = show(cli, item["id"])
        pec = data["pec"]
        assert pec["kind"] == kind and pec["signature"]["status"] in ("valid", "invalid", "missing"), name
        assert (pec["daticert"] is not None or pec["problems"]) and pec["refers_to"] is None, name
        if kind in RECEIPT_KINDS:
            receipt_ids.add(item["id"])
            assert data["protocol"] is None and data["registration"] is None, name
            assert data["from"]["addr"].startswith("posta-certificata@"), name
        else:  # the envelope shows (and registers) the certified message inside it
            assert not data["from"]["addr"].startswith("posta-certificata@"), name
            assert data["from"]["addr"] == pec["sender"], name
            assert not data["subject"].upper().startswith("POSTA CERTIFICATA"), name
            reg = data["registration"]
            assert reg is not None and pec["sender"] in reg["correspondent"], name
            assert reg["subject"] == data["subject"] and reg["sha256"] == item["sha256"], name
    assert len(receipt_ids) == 9  # and 6 envelopes
    unknown = {item["id"] for item in listing(cli, "--unknown")}
    assert not unknown & receipt_ids
    # Their sent messages are not in this mailbox: every receipt is an orphan.
    orphans = pec_cmd(cli, "orphans")
    assert {o["id"] for o in orphans} == receipt_ids
    ingest(cli)  # a second pass changes nothing
    assert len(listing(cli)) == 15


# ---------------------------------------------------------------- sent PEC and receipts
def test_sent_pec_receipts_in_both_orders_deliveries_orphans_overdue(pec_cli: Cli, dovecot: Any,
                                                                     settings: Settings) -> None:
    cli = pec_cli
    trust_test_ca(settings)
    add_pec_account(cli, dovecot)
    d1, d2, d3, d4 = (f"d{n}@pec.dest.test" for n in range(1, 5))
    m1, m2, m3 = (make_msgid(f"sent{n}", "casella.test").strip("<>") for n in range(1, 4))
    s1 = sent_copy(m1, [d1, d2, d3], [d4], subject="Uno")
    s2 = sent_copy(m2, [d1], subject="Due")
    s3 = sent_copy(m3, [d1, d2], subject="Tre")
    r1 = [kit.receipt("accettazione", msgid=f"<{m1}>"),
          kit.receipt("avvenuta-consegna", form="completa", consegna=d1, msgid=f"<{m1}>", with_postacert=True),
          kit.receipt("errore-consegna", consegna=d2, errore="no-dest", msgid=f"<{m1}>",
                      errore_esteso="5.1.1 - Utente non riconosciuto"),
          kit.receipt("preavviso-errore-consegna", consegna=d3, errore="no-dest", msgid=f"<{m1}>",
                      errore_esteso="4.4.7 - Tempo scaduto")]
    r2 = [kit.receipt("accettazione", msgid=f"<{m2}>"),
          kit.receipt("avvenuta-consegna", form="breve", consegna=d1, msgid=f"<{m2}>")]
    stray = kit.receipt("avvenuta-consegna", consegna=d1, msgid="<nobody-sent-this@nowhere.test>")
    # Pass 1: S1 and S3 sent; S2's receipts and a stray receipt arrive before S2's sent copy.
    dovecot.append_many("alice", [s1, s3], folder="Sent")
    dovecot.append_many("alice", [*r2, stray])
    ingest(cli)
    ids = {sha: item["id"] for sha, item in by_sha(cli).items()}
    r2_ids = {ids[sha256_hex(r)] for r in r2}
    stray_id = ids[sha256_hex(stray)]
    assert {o["id"] for o in pec_cmd(cli, "orphans")} == r2_ids | {stray_id}
    # Pass 2: S1's receipts after its sent copy; S2's sent copy after its receipts.
    dovecot.append_many("alice", r1)
    dovecot.append_many("alice", [s2], folder="Sent")
    ingest(cli)
    ids = {sha: item["id"] for sha, item in by_sha(cli).items()}
    s1_id, s2_id, s3_id = (ids[sha256_hex(s)] for s in (s1, s2, s3))
    r1_ids = [ids[sha256_hex(r)] for r in r1]
    assert {o["id"] for o in pec_cmd(cli, "orphans")} == {stray_id}

    one = show(cli, s1_id)
    assert one["direction"] == "out" and one["protocol"] is not None
    pec = one["pec"]
    assert pec["kind"] is None and pec["overdue"] is False
    states = {d["recipient"]: d for d in pec["deliveries"]}
    assert {r: s["state"] for r, s in states.items()} == \
        {d1: "delivered", d2: "failed", d3: "warning", d4: "accepted"}
    assert "5.1.1" in states[d2]["error"] and "4.4.7" in states[d3]["error"]
    assert states[d1]["error"] is None and states[d1]["at"] is not None
    assert sorted(r["id"] for r in pec["receipts"]) == sorted(r1_ids)
    assert {r["kind"] for r in pec["receipts"]} == {"accettazione", "avvenuta-consegna", "errore-consegna",
                                                     "preavviso-errore-consegna"}
    pec_events = [(e["actor"], e["action"]) for e in one["history"] if e["actor"] == "pec"]
    assert sorted(a for _, a in pec_events) == sorted(r["kind"] for r in pec["receipts"])
    for rid in r1_ids:
        receipt = show(cli, rid)
        assert receipt["pec"]["refers_to"] == s1_id and receipt["protocol"] is None
        assert receipt["pec"]["signature"]["status"] == "valid"
    two = show(cli, s2_id)
    assert [(d["recipient"], d["state"]) for d in two["pec"]["deliveries"]] == [(d1, "delivered")]
    assert sorted(r["id"] for r in two["pec"]["receipts"]) == sorted(r2_ids)
    assert {e["action"] for e in two["history"] if e["actor"] == "pec"} == {"accettazione", "avvenuta-consegna"}
    three = show(cli, s3_id)
    assert [d["state"] for d in three["pec"]["deliveries"]] == ["pending", "pending"]
    assert three["pec"]["receipts"] == [] and three["pec"]["overdue"] is False  # sent just now

    # With no grace time: S1 (d4 only accepted) and S3 (nothing) are overdue, S2 is delivered.
    now = {"CASELLA_PEC_DELIVERY_TIMEOUT_HOURS": "0"}
    assert show(cli, s3_id, **now)["pec"]["overdue"] is True
    assert show(cli, s1_id, **now)["pec"]["overdue"] is True
    assert show(cli, s2_id, **now)["pec"]["overdue"] is False
    overdue = pec_cmd(cli, "overdue", **now)
    assert {o["id"] for o in overdue} == {s1_id, s3_id}
    assert {o["id"]: o["undelivered"] for o in overdue}[s1_id] == [d4]
    assert pec_cmd(cli, "overdue") == []
    unknown = {item["id"] for item in listing(cli, "--unknown")}
    assert not unknown & {*r1_ids, *r2_ids, stray_id}


# ---------------------------------------------------------------- tampered, malformed
def test_envelope_valid_tampered_and_malformed(pec_cli: Cli, dovecot: Any, settings: Settings) -> None:
    cli = pec_cli
    trust_test_ca(settings)
    add_pec_account(cli, dovecot)
    valid = kit.envelope()
    tampered = valid.replace(b"in allegato la fattura.", b"in allegato la fatturA.")
    assert tampered != valid
    other = kit.POSTACERT.replace(b"Fattura 42", b"Fattura 43").replace(b"orig-1@", b"orig-43@")
    malformed = kit.pec_message({"X-Trasporto": "posta-certificata", "Message-ID": "<opec.43@pec.test>"},
                                kit.signed_content(daticert=None, postacert=other), kit.provider())
    dovecot.append_many("alice", [valid, tampered, malformed])
    ingest(cli)
    stored = by_sha(cli)
    assert len(stored) == 3
    blobs = BlobStore(settings.blob_dir)
    for raw in (valid, tampered, malformed):
        assert blobs.get(sha256_hex(raw), verify=True) == raw

    good = show(cli, stored[sha256_hex(valid)]["id"])
    assert good["pec"]["kind"] == "posta-certificata" and good["pec"]["signature"]["status"] == "valid"
    assert good["pec"]["problems"] == [] and good["pec"]["receipt_form"] == "completa"
    assert good["from"] == {"name": "Mario Rossi", "addr": "mittente@pec.mittente.test"}
    assert good["subject"] == "Fattura 42" and "Gentile cliente" in good["text"]
    assert good["message_id"] == "orig-1@pec.mittente.test"
    assert good["registration"]["correspondent"] == "Mario Rossi <mittente@pec.mittente.test>"
    assert good["registration"]["subject"] == "Fattura 42"
    assert good["link"]["kind"] == "unknown" and good["pec"]["deliveries"] == []
    assert blobs.get(sha256_hex(kit.POSTACERT)) == kit.POSTACERT  # the certified message's blob too

    bad = show(cli, stored[sha256_hex(tampered)]["id"])
    assert bad["pec"]["kind"] == "posta-certificata"
    assert bad["pec"]["signature"]["status"] == "invalid"
    assert bad["from"]["addr"] == "mittente@pec.mittente.test" and "fatturA" in bad["text"]

    broken = show(cli, stored[sha256_hex(malformed)]["id"])
    assert broken["pec"]["kind"] == "posta-certificata" and broken["pec"]["daticert"] is None
    assert any("daticert" in p for p in broken["pec"]["problems"])
    assert broken["subject"] == "Fattura 43" and broken["protocol"] is not None
    assert {i["pec_kind"] for i in listing(cli)} == {"posta-certificata"}


def test_every_receipt_type_and_form_through_dovecot(pec_cli: Cli, dovecot: Any, settings: Settings) -> None:
    """Each receipt kind and avvenuta-consegna form, signed by the test CA, ingested from a
    real Dovecot: classified, signature valid, no protocol number, and linked to the sent PEC."""
    trust_test_ca(settings)
    add_pec_account(pec_cli, dovecot)
    cases = [(k, f) for k in sorted(RECEIPT_KINDS) for f in ({"avvenuta-consegna": ["completa", "breve", "sintetica"]}
                                                             .get(k, [None]))]
    raws = [crlf(kit.receipt(kind, form=form, consegna="dest@pec.dest.test", with_postacert=form == "completa"))
            for kind, form in cases]
    dovecot.append_many("alice", raws)
    dovecot.append_many("alice", [crlf(sent_copy("orig-1@pec.mittente.test", ["dest@pec.dest.test"]))], folder="Sent")
    ingest(pec_cli)
    items = by_sha(pec_cli)
    sent = next(i for i in items.values() if i["folder"] == "Sent")
    seen = set()
    for (kind, form), raw in zip(cases, raws, strict=True):
        item = items[sha256_hex(raw)]
        assert item["protocol"] is None
        pec = show(pec_cli, item["id"])["pec"]
        assert (pec["kind"], pec["receipt_form"]) == (kind, form)
        assert pec["signature"]["status"] == "valid"
        assert pec["refers_to"] == sent["id"]
        seen.add((kind, form))
    assert seen == set(cases)
    assert sent["protocol"] is not None
    linked = {r["kind"] for r in show(pec_cli, sent["id"])["pec"]["receipts"]}
    assert linked == {k for k, _ in cases}
