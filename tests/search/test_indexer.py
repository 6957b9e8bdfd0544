"""The outbox → index path on SQLite and PostgreSQL: ingest fills the outbox in its own
transaction, the indexer drains it only after the engine committed, a crash in between
re-indexes the same documents, and `casella reindex` rebuilds the same answers from the
database alone (even with the index directory gone)."""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from casella.db import Database
from casella.models import SearchOutbox
from casella.settings import Settings
from search import indexer
from search.engine import open_index
from search.filters import admin_grant
from search.index import SearchDocument, SearchQuery
from search.outbox import enqueue
from tests.conftest import Cli
from tests.mailgen import make_message, write_eml_folder

pytestmark = pytest.mark.integration

QUERIES = ["preventivo", "fatura", "Rossi", "verifica 7", "cantiere -Milano"]


def outbox_rows(database: Database) -> int:
    with database.session() as session:
        return session.scalar(select(func.count(SearchOutbox.id))) or 0


def import_mail(cli: Cli, tmp_path: Path, count: int = 30, tag: str = "idx") -> None:
    raws = [make_message(i, tag, subject=f"Preventivo cantiere {'Milano' if i % 3 else 'Torino'} {i}",
                         body=f"Buongiorno, la fattura numero {i} e la verifica {i % 10} del cantiere.")
            for i in range(count)]
    cli("account", "add", "ufficio", check=False)
    cli("import", str(write_eml_folder(tmp_path / f"mail-{tag}", raws)), "--account", "ufficio")


def answers(cli: Cli) -> dict[str, list[tuple[int, str]]]:
    return {q: [(h["id"], h["snippet"]) for h in cli("search", q, "--json", "--limit", "100").json()]
            for q in QUERIES}


def test_ingest_fills_the_outbox_and_search_drains_it(cli: Cli, database: Database, tmp_path: Path) -> None:
    import_mail(cli, tmp_path)
    assert outbox_rows(database) == 30  # written in the storing transaction
    hits = cli("search", "Torino", "--json", "--limit", "100").json()
    assert len(hits) == 10
    assert outbox_rows(database) == 0


def test_crash_after_engine_commit_reindexes_idempotently(cli: Cli, settings: Settings, database: Database,
                                                          tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import_mail(cli, tmp_path)
    index = open_index(settings)

    def crash(db: Database, row_ids: list[int]) -> None:
        raise RuntimeError("power cut after the engine committed")

    monkeypatch.setattr(indexer, "_delete_rows", crash)
    with pytest.raises(RuntimeError):
        indexer.drain(settings, database, index, batch_size=10)
    assert index.count() == 10  # the first batch is in the engine ...
    assert outbox_rows(database) == 30  # ... and still in the outbox
    monkeypatch.undo()
    report = indexer.drain(settings, database, index, batch_size=10)
    assert (report.rows, report.indexed) == (30, 30)
    assert index.count() == 30  # written again, not twice
    assert outbox_rows(database) == 0
    hits = index.search(SearchQuery("Torino", limit=100), admin_grant()).hits
    assert len(hits) == len({h.id for h in hits}) == 10
    index.close()


def test_a_message_the_database_lacks_leaves_the_index(settings: Settings, database: Database) -> None:
    index = open_index(settings)
    index.upsert([SearchDocument(id=999_999, account_id=1, account="x", folder="INBOX", date=None, message_id=None,
                                 subject="orfano", from_name="", from_addr="")])
    assert [h.id for h in index.search(SearchQuery("orfano"), admin_grant()).hits] == [999_999]
    with database.session() as session:
        enqueue(session, [999_999], op="delete")
    report = indexer.drain(settings, database, index)
    assert (report.rows, report.deleted) == (1, 1)
    assert index.search(SearchQuery("orfano"), admin_grant()).hits == ()
    index.close()


def test_reindex_rebuilds_the_same_answers(cli: Cli, database: Database, tmp_path: Path) -> None:
    import_mail(cli, tmp_path)
    before = answers(cli)
    assert all(before[q] for q in QUERIES)
    result = cli("reindex")
    assert "30 message(s) indexed" in result.stdout
    assert answers(cli) == before


def test_reindex_after_the_index_directory_is_gone(cli: Cli, settings: Settings, database: Database,
                                                   tmp_path: Path) -> None:
    if settings.search_url:
        pytest.skip("the embedded engine's directory")
    import_mail(cli, tmp_path)
    before = answers(cli)
    shutil.rmtree(settings.search_index_dir)
    lost = cli("search", "preventivo", "--json")
    assert lost.json() == []
    assert "run `casella reindex`" in lost.stderr
    cli("reindex")
    assert answers(cli) == before


def test_an_index_of_another_schema_asks_for_reindex(cli: Cli, settings: Settings, tmp_path: Path) -> None:
    import_mail(cli, tmp_path, count=5)
    cli("search", "preventivo")
    (settings.search_index_dir / "casella-schema-version").write_text("casella-search-0\n")
    refused = cli("search", "preventivo", check=False)
    assert refused.returncode == 2 and "casella reindex" in refused.stderr
    cli("reindex")
    assert len(cli("search", "preventivo", "--json").json()) == 5


def test_reindex_takes_the_outbox_rows_it_covers(cli: Cli, database: Database, tmp_path: Path) -> None:
    import_mail(cli, tmp_path, count=12)
    assert outbox_rows(database) == 12
    cli("reindex")
    assert outbox_rows(database) == 0


def test_run_forever_drains_until_stopped(cli: Cli, settings: Settings, database: Database, tmp_path: Path) -> None:
    stop = threading.Event()
    worker = threading.Thread(target=indexer.run_forever, args=(settings, database, stop, 0.2), daemon=True)
    worker.start()
    import_mail(cli, tmp_path, count=8)
    deadline = time.monotonic() + 30
    while outbox_rows(database) and time.monotonic() < deadline:
        time.sleep(0.1)
    stop.set()
    worker.join(10)
    assert not worker.is_alive()
    assert outbox_rows(database) == 0
    index = open_index(settings)
    assert index.count() == 8
    index.close()


def test_reindex_never_wipes_a_directory_that_is_not_an_index(tmp_path: Path) -> None:
    from search.embedded import EmbeddedIndex
    from search.errors import SearchError

    (tmp_path / "precious.txt").write_text("keep me")
    with pytest.raises(SearchError, match="not a search index"):
        EmbeddedIndex(tmp_path, rebuild=True)
    assert (tmp_path / "precious.txt").read_text() == "keep me"
