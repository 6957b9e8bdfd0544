"""Ingest from a real Dovecot: every corpus message stored once, byte-exact, numbered and
listed; the server left untouched; failures reported per account."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select

from casella.blobs import BlobStore
from casella.models import MessageLocation, Registration
from pec.classify import RECEIPT_KINDS
from tests.conftest import CORPUS, Cli, crlf

pytestmark = pytest.mark.integration


def corpus_messages() -> list[tuple[str, bytes]]:
    """Every single-message file of the real corpus (mbox files and notes excluded)."""
    out = []
    for path in sorted((CORPUS / "real").rglob("*")) + sorted((CORPUS / "pec").glob("*.eml")):
        if not path.is_file() or path.suffix in (".gz", ".md", ".html") or "mbox" in path.name:
            continue
        if path.name in ("README", "README.txt", "COPYING", "SOURCES.md", "ARTISTIC-LICENSE.txt") or path.name.startswith("COPYING"):
            continue
        out.append((str(path.relative_to(CORPUS)), path.read_bytes()))
    return out


def add_account(cli: Cli, dovecot, name: str, user: str = "alice", password: str | None = None, *extra: str,
                port: int | None = None) -> None:
    cli("account", "add", name, "--imap-host", dovecot.host, "--imap-port", str(port or dovecot.port),
        "--username", user, "--password-env", "IMAP_PW", "--security", "none", *extra,
        extra_env={"IMAP_PW": password if password is not None else dovecot.users[user]})


def server_bodies(dovecot, user: str, folder: str = "INBOX") -> dict[int, bytes]:
    with dovecot.client(user, folder) as c:
        uids = c.search(["ALL"])
        data = c.fetch(uids, [b"BODY.PEEK[]"])
    return {uid: bytes(d[b"BODY[]"]) for uid, d in data.items()}


def test_whole_corpus_stored_once_byte_exact_and_listed(dovecot, cli, database, settings) -> None:
    corpus = corpus_messages()
    assert len(corpus) > 350
    raws = [crlf(raw) for _, raw in corpus]
    dovecot.append_many("alice", raws)
    served = server_bodies(dovecot, "alice")
    assert len(served) == len(raws)

    add_account(cli, dovecot, "ufficio")
    first = cli("ingest", "--once")
    assert "ufficio:" in first.stdout

    listed = cli("message", "list", "--json").json()
    distinct = {r for r in raws}
    assert len(listed) == len(distinct)  # identical bytes in one account are one message
    blobs = BlobStore(settings.blob_dir)
    stored = {blobs.get(item["sha256"]) for item in listed}
    assert stored == set(served.values())  # exactly what the server gave, byte for byte
    for item in listed:
        assert {"id", "account", "folder", "message_id", "subject", "from", "date", "sha256", "thread_id",
                "protocol", "link"} <= item.keys()
        assert item["account"] == "ufficio" and item["folder"] == "INBOX"
        if item["pec_kind"] not in RECEIPT_KINDS:  # PEC receipts take no protocol number
            assert item["protocol"] and len(item["protocol"].split("/")[1]) == 7
        else:
            assert item["protocol"] is None
        assert item["link"]["kind"] in ("contact", "company", "unknown")

    # `casella message raw` writes the stored bytes back exactly.
    for item in listed[:: max(1, len(listed) // 5)]:
        out = Path(settings.data_dir) / f"raw-{item['id']}.eml"
        cli("message", "raw", str(item["id"]), "-o", str(out))
        assert out.read_bytes() in served.values()
        assert out.read_bytes() == blobs.get(item["sha256"])

    # A second pass stores nothing new, and the numbers are gapless 1..N.
    again = cli("ingest", "--once")
    assert "0 new" in again.stdout
    with database.session() as s:
        numbers = sorted(s.scalars(select(Registration.number)))
        assert numbers == list(range(1, len(distinct) - sum(i["pec_kind"] in RECEIPT_KINDS for i in listed) + 1))
        assert s.scalar(select(func.count(MessageLocation.id))) == len(raws)


def test_server_mailbox_untouched_by_default(dovecot, cli) -> None:
    raws = [crlf(raw) for _, raw in corpus_messages()[:20]]
    dovecot.append_many("alice", raws)
    add_account(cli, dovecot, "ufficio")
    cli("ingest", "--once")
    with dovecot.client("alice", "INBOX") as c:
        flags = c.get_flags(c.search(["ALL"]))
    assert len(flags) == 20
    assert all(b"\\Seen" not in f and b"\\Deleted" not in f for f in flags.values())


def test_mark_seen_and_move_only_when_asked(dovecot, cli) -> None:
    raws = [crlf(raw) for _, raw in corpus_messages()[:10]]
    dovecot.append_many("alice", raws)
    dovecot.append_many("bob", raws)
    dovecot.create_folder("bob", "Archivio")
    add_account(cli, dovecot, "seen", "alice", None, "--mark-seen")
    add_account(cli, dovecot, "moved", "bob", None, "--move-to", "Archivio", "--move-after-days", "0")
    cli("ingest", "--once")
    with dovecot.client("alice", "INBOX") as c:
        flags = c.get_flags(c.search(["ALL"]))
    assert len(flags) == 10 and all(b"\\Seen" in f for f in flags.values())
    assert server_bodies(dovecot, "bob", "INBOX") == {}
    assert sorted(server_bodies(dovecot, "bob", "Archivio").values()) == sorted(raws)
    listed = cli("message", "list", "--json", "--account", "moved").json()
    assert len(listed) == 10


def test_failing_account_reports_one_line_and_others_go_on(dovecot, cli) -> None:
    dovecot.append_many("bob", [crlf(raw) for _, raw in corpus_messages()[:5]])
    add_account(cli, dovecot, "sbagliata", "alice", "not-the-password")
    add_account(cli, dovecot, "irraggiungibile", "alice", None, port=1)
    add_account(cli, dovecot, "buona", "bob")
    result = cli("ingest", "--once", check=False)
    assert result.returncode != 0
    errors = [line for line in result.stderr.splitlines() if line.startswith("ERROR")]
    assert len(errors) == 2
    assert any("sbagliata" in e and "refused the login" in e for e in errors)
    assert any("irraggiungibile" in e and "cannot connect" in e for e in errors)
    assert "buona: 5 new" in result.stdout
    status = {a["name"]: a for a in cli("account", "list", "--json").json()}
    assert status["buona"]["last_error"] is None and status["buona"]["last_fetch_at"]
    assert status["buona"]["stored_count"] == 5 and status["buona"]["server_count"] == 5
    assert "refused the login" in status["sbagliata"]["last_error"]
    assert "not-the-password" not in cli("account", "list", "--json").stdout


def test_account_list_never_shows_passwords(dovecot, cli, settings) -> None:
    add_account(cli, dovecot, "ufficio")
    out = cli("account", "list", "--json")
    assert dovecot.users["alice"] not in out.stdout
    [acc] = out.json()
    assert acc["has_password"] is True and "password" not in acc
    db_file = Path(settings.data_dir) / "casella.db"
    if db_file.exists():
        assert dovecot.users["alice"].encode() not in db_file.read_bytes()


def test_several_folders_and_sent_mail_is_outgoing(dovecot, cli) -> None:
    msgs = corpus_messages()
    dovecot.append_many("alice", [crlf(r) for _, r in msgs[:4]])
    dovecot.append_many("alice", [crlf(r) for _, r in msgs[4:7]], folder="Sent")
    add_account(cli, dovecot, "ufficio", "alice", None, "--folders", "INBOX,Sent")
    cli("ingest", "--once")
    listed = cli("message", "list", "--json").json()
    by_folder = {f: [m for m in listed if m["folder"] == f] for f in ("INBOX", "Sent")}
    assert len(by_folder["INBOX"]) == 4 and len(by_folder["Sent"]) == 3
    assert {m["direction"] for m in by_folder["Sent"]} == {"out"}
    assert {m["direction"] for m in by_folder["INBOX"]} == {"in"}
