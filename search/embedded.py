"""The embedded engine: a tantivy index in a directory (no server to run).

A query word matches, in every text field, as typed, in its stemmed form (words of 5
letters or more), with the typos its length allows (Levenshtein automata), and — the last
word, while still being typed — as a prefix. Words are ANDed; per word the best field counts
(subject, names and anagrafica weigh more than the body). Filters and the access rules of
the user's Grant are clauses of the same boolean query, scored zero: nothing the user may
not read is ever a hit. Hits are ranked by BM25, then newest first.

Only one process writes at a time (tantivy's lock file): a writer is taken per batch and
released at once, so the daemon, `casella search` and `casella reindex` take turns.
"""

from __future__ import annotations

import heapq
import logging
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import tantivy

from casella.access import Grant
from search.errors import SearchError, SearchIndexOutdated, SearchUnavailable
from search.highlight import MIN_STEMMED, Highlighter
from search.index import SearchDocument, SearchFilters, SearchHit, SearchQuery, SearchResults, grant_sees_nothing
from search.query import QueryPart, parse_query, typo_budget
from search.tantivy_schema import (PLAIN, SCHEMA_VERSION, STEM, TEXT_FIELDS, build_analyzer, build_schema, display_of,
                                   timestamp, to_tantivy)

log = logging.getLogger(__name__)

VERSION_FILE = "casella-schema-version"
WRITER_HEAP_BYTES = 64_000_000
LOCK_WAIT_SECONDS = 30.0
MAX_CANDIDATES = 10_000  # hits collected at most to order equal scores by date
FIRST_CANDIDATES = 100  # hits a query without two-typo words collects first
FEW_TERMS = 16  # values of a filter or grant field matched by term queries; more, by a term set
FRESH_SECONDS = 2.0  # a meta.json younger than this is reloaded on every search
STEM_WEIGHT, TYPO_WEIGHT, PREFIX_WEIGHT = 0.7, 0.3, 0.4
PROTOCOL_BOOST = 3.0


class EmbeddedIndex:
    name = "embedded"

    def __init__(self, path: Path, *, rebuild: bool = False) -> None:
        self.path = Path(path)
        self.schema = build_schema()
        self.plain = build_analyzer(stem=False)
        self.stem = build_analyzer(stem=True)
        self.highlighter = Highlighter(self.schema, self.plain, self.stem)
        self._write_lock = threading.Lock()
        self._read_lock = threading.Lock()
        self._reader: tuple[tuple[int, int, int] | None, tantivy.Searcher] | None = None
        version_file = self.path / VERSION_FILE
        exists = self.path.is_dir() and any(self.path.iterdir())
        if exists and not (version_file.is_file() or (self.path / "meta.json").is_file()):
            raise SearchError(f"{self.path} holds other files, not a search index: point CASELLA_SEARCH_INDEX_DIR "
                              "at an empty or new directory")
        if exists and (not version_file.is_file() or version_file.read_text().strip() != SCHEMA_VERSION):
            if not rebuild:
                raise SearchIndexOutdated(f"the search index in {self.path} was built by another version of "
                                          "Casella; rebuild it with `casella reindex`")
            shutil.rmtree(self.path)
            exists = False
        self.path.mkdir(parents=True, exist_ok=True)
        try:
            self.index = tantivy.Index(self.schema, path=str(self.path), reuse=exists)
        except (OSError, ValueError) as exc:
            raise SearchUnavailable(f"cannot open the search index in {self.path}: {exc}") from exc
        self.index.register_tokenizer(PLAIN, self.plain)
        self.index.register_tokenizer(STEM, self.stem)
        if not exists:
            version_file.write_text(SCHEMA_VERSION + "\n")

    # ------------------------------------------------------------ writing
    def upsert(self, docs: Sequence[SearchDocument]) -> None:
        def work(writer: tantivy.IndexWriter) -> None:
            for doc in docs:
                writer.delete_documents_by_term("id", doc.id)
                writer.add_document(to_tantivy(doc))

        if docs:
            self._write(work)

    def delete(self, ids: Sequence[int]) -> None:
        def work(writer: tantivy.IndexWriter) -> None:
            for i in ids:
                writer.delete_documents_by_term("id", int(i))

        if ids:
            self._write(work)

    def clear(self) -> None:
        self._write(lambda writer: writer.delete_all_documents())

    def count(self) -> int:
        return int(self._searcher().num_docs)

    def close(self) -> None:
        return None

    def _write(self, work: Callable[[tantivy.IndexWriter], None]) -> None:
        """One writer, one commit (durable when it returns), the lock file released."""
        with self._write_lock:
            writer = self._writer()
            try:
                work(writer)
                writer.commit()
                self._reader = None  # the next search reloads
            except BaseException:
                writer.rollback()
                raise
            finally:
                writer.wait_merging_threads()

    def _writer(self) -> tantivy.IndexWriter:
        deadline = time.monotonic() + LOCK_WAIT_SECONDS
        while True:
            try:
                return self.index.writer(heap_size=WRITER_HEAP_BYTES, num_threads=1)
            except ValueError as exc:
                if "LockBusy" not in str(exc) or time.monotonic() > deadline:
                    raise SearchUnavailable(f"the search index in {self.path} is being written by another "
                                            f"process: {exc}") from exc
                time.sleep(0.1)

    # ------------------------------------------------------------ searching
    def search(self, query: SearchQuery, grant: Grant) -> SearchResults:
        if grant_sees_nothing(grant):
            return SearchResults((), 0, self.name)
        parts = parse_query(query.text)
        musts = [q for p in parts if not p.negated for q in [self._part_query(p)] if q is not None]
        clauses: list[tuple[tantivy.Occur, tantivy.Query]] = [(tantivy.Occur.Must, q) for q in musts]
        clauses += [(tantivy.Occur.Must, tantivy.Query.const_score_query(q, 0.0))
                    for q in (*self._filter_queries(query.filters), self._grant_query(grant)) if q is not None]
        if not clauses:  # no words, no filters, a grant that sees everything
            clauses.append((tantivy.Occur.Must, tantivy.Query.all_query()))
        clauses += [(tantivy.Occur.MustNot, q)
                    for p in parts if p.negated for q in [self._part_query(p, exact=True)] if q is not None]
        full = tantivy.Query.boolean_query(clauses)
        searcher = self._searcher()
        want = query.offset + query.limit
        if musts:
            ranked, total = self._ranked(searcher, full, want, costly=self._two_typos(parts))
        else:  # filters only: newest first
            res = searcher.search(full, limit=want, count=True, order_by_field="date_ts", order=tantivy.Order.Desc)
            ranked, total = [(0.0, addr) for _, addr in res.hits], int(res.count or 0)
        page = ranked[query.offset:want]
        docs = [searcher.doc(addr) for _, addr in page]
        snippets = self.highlighter.snippets(searcher, parts, docs)
        hits = tuple(_hit(doc, score, snippet) for (score, _), doc, snippet in zip(page, docs, snippets))
        return SearchResults(hits, total, self.name)

    def _searcher(self) -> tantivy.Searcher:
        """The searcher of the index's last commit. Reloading costs about a millisecond, so it
        is done only when meta.json (rewritten by every commit, ours or another process's)
        has changed since the last reload, or is so recent that a change within the file
        system's timestamp granularity could go unseen."""
        try:
            st = os.stat(self.path / "meta.json")
            key: tuple[int, int, int] | None = (st.st_ino, st.st_mtime_ns, st.st_size)
            fresh = time.time() - st.st_mtime < FRESH_SECONDS
        except OSError:
            key, fresh = None, True
        with self._read_lock:
            if self._reader is None or fresh or key != self._reader[0]:
                self.index.reload()
                self._reader = (key, self.index.searcher())
            return self._reader[1]

    def _ranked(self, searcher: tantivy.Searcher, q: tantivy.Query, want: int, *,
                costly: bool) -> tuple[list[Any], int]:
        """The first `want` hits by score, then newest first (then highest id): the hits as
        relevant as the page's last (a _bucket) are ordered by date, so that a newer equal hit
        is never cut off, and they must all be collected (up to MAX_CANDIDATES). Typo and
        prefix matches score as constants, so hundreds or thousands of hits often tie.
        A `costly` query (one building two-typo automata, which take longer than collecting
        every candidate) collects them all in its one search; any other first collects
        FIRST_CANDIDATES and searches again for them all only when the page's last bucket
        goes on past those."""
        first = MAX_CANDIDATES if costly else FIRST_CANDIDATES
        res = searcher.search(q, limit=max(want + 1, first), count=True)
        hits, total = res.hits, int(res.count or 0)
        if want < len(hits) < min(total, MAX_CANDIDATES) and _bucket(hits[-1][0]) >= _bucket(hits[want - 1][0]):
            hits = searcher.search(q, limit=min(total, MAX_CANDIDATES), count=False).hits
        if not hits or want <= 0:
            return [], total
        last = _bucket(hits[min(want, len(hits)) - 1][0])
        # Scores come in descending order, so buckets too: binary searches find where the
        # page's last bucket starts (those above it are all on the page) and where it ends.
        start = _first(hits, 0, min(want, len(hits)), lambda s: _bucket(s) <= last)
        end = _first(hits, want, len(hits), lambda s: _bucket(s) < last) if len(hits) > want else len(hits)
        addrs = [addr for _, addr in hits[:end]]
        dates = searcher.fast_field_values("date_ts", addrs)
        ids = searcher.fast_field_values("id", addrs)
        recency = [((d or 0) << 40) + (i or 0) for d, i in zip(dates, ids)]  # ids are far below 2**40
        above = sorted(range(start), key=lambda i: (-_bucket(hits[i][0]), -recency[i]))
        tied = heapq.nlargest(want - start, range(start, end), key=recency.__getitem__)
        return [hits[i] for i in (*above, *tied)], total

    # ------------------------------------------------------------ query building
    def _two_typos(self, parts: list[QueryPart]) -> bool:
        """Whether _word_query builds two-typo automata for one of these parts."""
        for part in parts:
            if part.kind == "word" and not part.negated:
                tokens = self.plain.analyze(part.text)
                if len(tokens) == 1 and typo_budget(tokens[0]) > 1:
                    return True
        return False

    def _part_query(self, part: QueryPart, *, exact: bool = False) -> tantivy.Query | None:
        """A word, phrase or protocol number, in any text field (the best field counts)."""
        Q = tantivy.Query
        tokens = list(self.plain.analyze(part.text))
        if part.kind == "protocol":
            return Q.disjunction_max_query(
                [Q.boost_query(Q.term_query(self.schema, "protocol", part.text), PROTOCOL_BOOST),
                 *(self._phrase(f, tokens, boost) for f, _, boost in TEXT_FIELDS)], 0.1)
        if not tokens:
            return None
        if part.kind == "phrase" or len(tokens) > 1:  # "a phrase", or mario.rossi@edilnord.it
            prefix = part.prefix and not exact
            return Q.disjunction_max_query([self._phrase(f, tokens, boost, prefix=prefix)
                                            for f, _, boost in TEXT_FIELDS], 0.1)
        return self._word_query(tokens[0], prefix=part.prefix and not exact, exact=exact)

    def _word_query(self, token: str, *, prefix: bool, exact: bool) -> tantivy.Query:
        Q, Should = tantivy.Query, tantivy.Occur.Should
        budget = 0 if exact else typo_budget(token)
        stem = self.highlighter.stem_of(token)
        per_field = []
        for plain, stemmed, boost in TEXT_FIELDS:
            subs = [Q.term_query(self.schema, plain, token)]
            if stemmed and not exact and len(token) >= MIN_STEMMED:
                subs.append(Q.boost_query(Q.term_query(self.schema, stemmed, stem), STEM_WEIGHT))
            if budget and not prefix:  # a prefix within `budget` typos also covers the whole word
                subs.append(Q.boost_query(Q.fuzzy_term_query(self.schema, plain, token, budget), TYPO_WEIGHT))
            if prefix:
                subs.append(Q.boost_query(Q.fuzzy_term_query(self.schema, plain, token, budget, prefix=True),
                                          PREFIX_WEIGHT))
            per_field.append(Q.boost_query(Q.boolean_query([(Should, q) for q in subs]), boost))
        return Q.disjunction_max_query(per_field, 0.1)

    def _phrase(self, field: str, tokens: list[str], boost: float, *, prefix: bool = False) -> tantivy.Query:
        Q = tantivy.Query
        if len(tokens) == 1:
            q = (Q.fuzzy_term_query(self.schema, field, tokens[0], 0, prefix=True) if prefix
                 else Q.term_query(self.schema, field, tokens[0]))
        elif prefix:
            q = Q.phrase_prefix_query(self.schema, field, tokens)
        else:
            q = Q.phrase_query(self.schema, field, tokens)
        return Q.boost_query(q, boost)

    def _filter_queries(self, f: SearchFilters) -> Iterable[tantivy.Query]:
        Q, s = tantivy.Query, self.schema
        if f.account_ids:
            yield self._any_of(("account_id", sorted(f.account_ids)))
        if f.folder is not None:
            yield Q.term_query(s, "folder", f.folder)
        if f.since is not None or f.until is not None:
            yield Q.range_query(s, "date_ts", tantivy.FieldType.Integer,
                                timestamp(f.since) if f.since else -(2**62), timestamp(f.until) if f.until else 2**62)
        if f.sender:
            sender = f.sender.strip().lower()
            yield (Q.term_query(s, "from_addr", sender) if "@" in sender.strip("@")
                   else Q.term_query(s, "from_domain", sender.strip("@.")))
        if f.has_attachment is not None:
            yield Q.term_query(s, "has_attachments", f.has_attachment)
        if f.pec_kind:
            yield Q.term_query(s, "pec_kind", f.pec_kind)
        if f.company_id is not None:
            yield Q.term_query(s, "company_id", f.company_id)
        if f.assigned_user_id is not None:
            yield Q.term_query(s, "assigned_user_id", f.assigned_user_id)
        if f.tag:
            yield Q.term_query(s, "tag", f.tag.lower())
        if f.pratica:
            yield Q.term_query(s, "pratica", f.pratica.lower())
        if f.unknown:
            yield Q.term_query(s, "link_kind", "unknown")

    def _grant_query(self, grant: Grant) -> tantivy.Query | None:
        """casella/access.py's visible_clause, as tantivy clauses; None when the grant sees
        everything (a clause matching every document would only cost time)."""
        Q, Occur = tantivy.Query, tantivy.Occur
        if grant.everything:
            if not grant.private_account_ids:
                return None
            mine = Q.all_query()
        elif grant.agent is not None:
            mine = self._any_of(("agent", [grant.agent]), ("company_id", sorted(grant.agent_company_ids)))
        else:
            mine = self._any_of(("account_id", sorted(grant.account_ids)),
                                ("assigned_user_id",
                                 [grant.user_id] if grant.user_id is not None and grant.role == "operator" else []),
                                ("assigned_group_id", sorted(grant.group_ids)))
        if not grant.private_account_ids:
            return mine
        hidden = Q.boolean_query([(Occur.Must, self._any_of(("account_id", sorted(grant.private_account_ids)))),
                                  (Occur.MustNot, Q.term_query(self.schema, "is_public", True))])
        return Q.boolean_query([(Occur.Must, mine), (Occur.MustNot, hidden)])

    def _any_of(self, *fields: tuple[str, Sequence[Any]]) -> tantivy.Query:
        """Documents with any of these values in any of these fields. A few values are term
        queries, which the search skips through by their posting lists; a term set query
        first collects every document of every value (all of an account's mail), which
        costs more unless there are many values."""
        Q, s = tantivy.Query, self.schema
        queries = [q for name, values in fields if values
                   for q in ([Q.term_set_query(s, name, list(values))] if len(values) > FEW_TERMS
                             else [Q.term_query(s, name, v) for v in values])]
        if not queries:
            return Q.empty_query()
        return queries[0] if len(queries) == 1 else Q.boolean_query([(tantivy.Occur.Should, q) for q in queries])


def _hit(doc: tantivy.Document, score: float, snippet: str) -> SearchHit:
    display = display_of(doc)
    date = display.get("date")
    return SearchHit(id=int(doc.get_first("id") or 0), message_id=_str(display.get("message_id")),
                     protocol=_str(display.get("protocol")), subject=" ".join(doc.get_all("subject")),
                     from_name=_str(display.get("from_name")) or "", from_addr=_str(display.get("from_addr")) or "",
                     date=datetime.fromisoformat(date).astimezone(UTC) if isinstance(date, str) else None,
                     snippet=snippet, account=_str(display.get("account")) or "",
                     folder=_str(display.get("folder")) or "", score=float(score))


def _str(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _first(hits: list[Any], lo: int, hi: int, past: Callable[[float], bool]) -> int:
    """The first index in [lo, hi) whose score is `past` (a predicate that, once true along the
    descending scores, stays true), or hi."""
    while lo < hi:
        mid = (lo + hi) // 2
        if past(hits[mid][0]):
            hi = mid
        else:
            lo = mid + 1
    return lo


def _bucket(score: float) -> float:
    """Scores equal to four significant digits count as equal relevance (then: newer first)."""
    return float(f"{score:.4g}")
