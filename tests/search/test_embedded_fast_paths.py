"""The embedded engine's fast paths keep its answers: ranking of large groups of equal
scores (all collected in one search, only the page's last group ordered by date), the
searcher reused until a commit (ours or another process's), grant clauses built from
term queries or a term set, and snippets looked for in a bounded window of long texts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from casella.access import Grant
from search import embedded
from search.embedded import EmbeddedIndex
from search.filters import admin_grant
from search.highlight import HIGHLIGHT_CHARS
from search.index import SearchDocument, SearchQuery

pytestmark = pytest.mark.unit

T0 = datetime(2026, 1, 1, 9, 0, tzinfo=UTC)


def doc(i: int, *, subject: str = "Verbale di sopralluogo", body: str = "Verbale di sopralluogo in allegato.",
        days: float = 0.0, account_id: int = 1, company_id: int | None = None, agent: str | None = None,
        is_public: bool = False) -> SearchDocument:
    return SearchDocument(id=i, account_id=account_id, account=f"a{account_id}", folder="INBOX",
                          date=T0 + timedelta(days=days), message_id=f"m{i}@test", subject=subject,
                          from_name="Geom. Bianchi", from_addr="geom.bianchi@studiobianchi.it", body=body,
                          company_id=company_id, agent=agent, is_public=is_public)


def ids(index: EmbeddedIndex, text: str, grant: Grant | None = None, **kw: int) -> list[int]:
    return [h.id for h in index.search(SearchQuery(text, **kw), grant or admin_grant()).hits]


def test_a_large_group_of_equal_scores_is_ordered_newest_first(tmp_path: Path) -> None:
    index = EmbeddedIndex(tmp_path / "ix")
    # 600 equal documents, dates shuffled against ids; two more relevant ones, old.
    days = [(i * 7919) % 600 for i in range(600)]
    index.upsert([doc(i + 1, days=days[i]) for i in range(600)])
    index.upsert([doc(1001, subject="Sopralluogo sopralluogo", days=-50),
                  doc(1002, subject="Sopralluogo sopralluogo", days=-40)])
    by_date = sorted(range(600), key=lambda i: -days[i])
    newest = [i + 1 for i in by_date]
    for text in ("sopralluogo", "sopralluogo "):  # the two more relevant first, then the newest
        res = index.search(SearchQuery(text, limit=20), admin_grant())
        assert res.total == 602, text
        assert [h.id for h in res.hits] == [1002, 1001, *newest[:18]], text
    for text in ("sopraluogo ", "sopral"):  # typo and prefix matches score as constants: all equal
        res = index.search(SearchQuery(text, limit=20), admin_grant())
        assert res.total == 602, text
        assert [h.id for h in res.hits] == newest[:20], text
    assert ids(index, "sopralluogo", limit=10, offset=25) == newest[23:33]


def test_equal_dates_are_ordered_by_id(tmp_path: Path) -> None:
    index = EmbeddedIndex(tmp_path / "ix")
    index.upsert([doc(i) for i in range(1, 41)])
    assert ids(index, "sopralluogo", limit=5) == [40, 39, 38, 37, 36]


def test_a_commit_by_another_index_object_is_seen(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    reader, writer = EmbeddedIndex(tmp_path / "ix"), EmbeddedIndex(tmp_path / "ix")
    writer.upsert([doc(1)])
    assert ids(reader, "sopralluogo") == [1]
    writer.upsert([doc(2, days=1)])  # a fresh meta.json: always reloaded
    assert ids(reader, "sopralluogo") == [2, 1]
    monkeypatch.setattr(embedded, "FRESH_SECONDS", -1.0)  # only a changed meta.json reloads now
    first = reader._searcher()
    assert reader._searcher() is first  # no commit, the same searcher
    writer.delete([1])
    assert ids(reader, "sopralluogo") == [2]
    assert reader.count() == 1


def test_grants_with_few_and_many_values(tmp_path: Path) -> None:
    index = EmbeddedIndex(tmp_path / "ix")
    index.upsert([doc(i, account_id=i % 40, company_id=i % 30, agent="alberto" if i == 7 else None)
                  for i in range(1, 121)])
    every = set(range(1, 121))
    for n in (1, 3, 30):  # term queries, and a term set beyond FEW_TERMS
        accounts = frozenset(range(n))
        operator = Grant("o", "operator", account_ids=accounts, user_id=999, group_ids=frozenset({999}))
        assert set(ids(index, "sopralluogo", operator, limit=200)) == {i for i in every if i % 40 in accounts}
        companies = frozenset(range(n))
        agent = Grant("alberto", "agent", user_id=998, agent="alberto", agent_company_ids=companies)
        assert set(ids(index, "sopralluogo", agent, limit=200)) == {i for i in every if i % 30 in companies} | {7}
    private = Grant("boss", "admin", everything=True, private_account_ids=frozenset(range(5, 40)))
    assert set(ids(index, "sopralluogo", private, limit=200)) == {i for i in every if i % 40 < 5}
    assert set(ids(index, "", private, limit=200)) == {i for i in every if i % 40 < 5}
    assert set(ids(index, "-sopralluogo", private, limit=200)) == set()


def test_only_negated_words_for_an_all_seeing_grant(tmp_path: Path) -> None:
    index = EmbeddedIndex(tmp_path / "ix")
    index.upsert([doc(1), doc(2, subject="Collaudo", body="Collaudo impianto.", days=1)])
    assert ids(index, "-sopralluogo") == [2]
    assert ids(index, "") == [2, 1]


def test_snippets_of_long_texts_look_in_a_window(tmp_path: Path) -> None:
    index = EmbeddedIndex(tmp_path / "ix")
    filler = "parola " * (HIGHLIGHT_CHARS // 7 + 100)
    index.upsert([doc(1, subject="Collaudo impianto", body="Il collaudo è fissato. " + filler),
                  doc(2, subject="Collaudo impianto", body=filler + "Il collaudo è fissato.", days=1)])
    hits = {h.id: h.snippet for h in index.search(SearchQuery("collaudo"), admin_grant()).hits}
    assert hits[1].startswith("Il <mark>collaudo</mark>") and hits[1].endswith("…")
    assert hits[2] == "<mark>Collaudo</mark> impianto"  # the body's match is past the window: the subject's
