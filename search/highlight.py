"""Snippets for the embedded engine: an HTML fragment per hit around its best match, every
matching word in <mark>, the rest escaped.

tantivy's SnippetGenerator picks the fragment and marks the terms it is given; which words
of a text match is decided here by the query's own rules (typos, the last word's prefix,
the other word forms), since tantivy only knows the exact terms of a query.
"""

from __future__ import annotations

import html

import tantivy

from search.query import ONE_TYPO_FROM, QueryPart, matches_token, typo_budget
from search.tantivy_schema import SNIPPET_FIELDS

SNIPPET_CHARS = 180
MIN_STEMMED = ONE_TYPO_FROM  # shorter words must match as typed (bara is not Bari)
NO_STEM = "\0"

Word = tuple[str, str, int, bool]  # token, its stem (or NO_STEM), typo budget, prefix


class Highlighter:
    def __init__(self, schema: tantivy.Schema, plain: tantivy.TextAnalyzer, stem: tantivy.TextAnalyzer) -> None:
        self.schema, self.plain, self.stem = schema, plain, stem

    def stem_of(self, token: str) -> str:
        stems = self.stem.analyze(token)
        return stems[0] if stems else token

    def snippets(self, searcher: tantivy.Searcher, parts: list[QueryPart], docs: list[tantivy.Document]) -> list[str]:
        words: list[Word] = [
            (t, self.stem_of(t) if p.kind == "word" and len(t) >= MIN_STEMMED else NO_STEM,
             typo_budget(t) if p.kind == "word" else 0, p.prefix)
            for p in parts if not p.negated and p.kind != "protocol" for t in self.plain.analyze(p.text)]
        verdicts: dict[tuple[str, str], bool] = {}  # (token, stem) -> matches; texts share words
        found = [{f: self._matching(" ".join(doc.get_all(f)), words, verdicts) for f in SNIPPET_FIELDS}
                 for doc in docs]
        generators = {}
        for f in SNIPPET_FIELDS:
            tokens = set().union(*(per_doc[f] for per_doc in found)) if found else set()
            if tokens:
                generators[f] = self._generator(searcher, f, tokens)
        out = []
        for doc, per_doc in zip(docs, found):
            snippet = ""
            for f in SNIPPET_FIELDS:
                if per_doc[f]:
                    snippet = render(generators[f].snippet_from_doc(doc), " ".join(doc.get_all(f)))
                    if "<mark>" in snippet:
                        break
            out.append(snippet or plain_start(" ".join(doc.get_all("body")) or " ".join(doc.get_all("subject"))))
        return out

    def _matching(self, text: str, words: list[Word], verdicts: dict[tuple[str, str], bool]) -> set[str]:
        """The distinct tokens of `text` that answer one of the query's words."""
        if not text or not words:
            return set()
        stems = {t.position: t.text for t in self.stem.pre_tokenize(text).tokens}
        found = set()
        for key in {(t.text, stems.get(t.position, t.text)) for t in self.plain.pre_tokenize(text).tokens}:
            verdict = verdicts.get(key)
            if verdict is None:
                token, stem = key
                verdict = verdicts[key] = any(stem == wstem or matches_token(token, w, budget, prefix)
                                              for w, wstem, budget, prefix in words)
            if verdict:
                found.add(key[0])
        return found

    def _generator(self, searcher: tantivy.Searcher, field: str, tokens: set[str]) -> tantivy.SnippetGenerator:
        q = tantivy.Query.term_set_query(self.schema, field, sorted(tokens))
        gen = tantivy.SnippetGenerator.create(searcher, q, self.schema, field)
        gen.set_max_num_chars(SNIPPET_CHARS)
        return gen


def render(snippet: tantivy.Snippet, text: str) -> str:
    """tantivy's fragment (its ranges are byte offsets) as escaped HTML with <mark>, and …
    where the text was cut."""
    fragment = snippet.fragment().encode("utf-8")
    out, pos = [], 0
    for r in snippet.highlighted():
        out.append(html.escape(fragment[pos:r.start].decode("utf-8", "ignore")))
        out.append("<mark>" + html.escape(fragment[r.start:r.end].decode("utf-8", "ignore")) + "</mark>")
        pos = r.end
    out.append(html.escape(fragment[pos:].decode("utf-8", "ignore")))
    body = " ".join("".join(out).split())
    if not body:
        return ""
    rng = snippet.fragment_range()
    return ("…" if rng.start > 0 else "") + body + ("…" if rng.end < len(text.encode("utf-8")) else "")


def plain_start(text: str) -> str:
    """The start of a text, escaped, when nothing in it matched (a hit by company or tag)."""
    words = " ".join(text.split())
    return html.escape(words[:SNIPPET_CHARS]) + ("…" if len(words) > SNIPPET_CHARS else "")
