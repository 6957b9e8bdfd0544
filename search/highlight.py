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
HIGHLIGHT_CHARS = 20_000  # of a field's text, the part a snippet is looked for in
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
        """Field by field in SNIPPET_FIELDS' order, and only for the hits that have no snippet
        with a match yet: a hit whose body matches is never tokenized again for its
        attachments or subject. Only the first HIGHLIGHT_CHARS of a text are looked at."""
        words: list[Word] = [
            (t, self.stem_of(t) if p.kind == "word" and len(t) >= MIN_STEMMED else NO_STEM,
             typo_budget(t) if p.kind == "word" else 0, p.prefix)
            for p in parts if not p.negated and p.kind != "protocol" for t in self.plain.analyze(p.text)]
        verdicts: dict[str, bool] = {}  # token -> matches; texts share words
        matcher = _Matcher(words)
        snippets = [""] * len(docs)
        pending = list(range(len(docs)))
        for f in SNIPPET_FIELDS:
            found: dict[int, tuple[set[str], str, str]] = {}
            for i in pending:
                text = " ".join(docs[i].get_all(f))
                window = _window(text)
                tokens = self._matching(window, matcher, verdicts)
                if tokens:
                    found[i] = (tokens, text, window)
            if not found:
                continue
            generator = self._generator(searcher, f, set().union(*(tokens for tokens, _, _ in found.values())))
            for i, (_, text, window) in found.items():
                doc = docs[i]
                if window is not text:
                    doc = tantivy.Document()
                    doc.add_text(f, window)
                snippets[i] = render(generator.snippet_from_doc(doc), text)
            pending = [i for i in pending if "<mark>" not in snippets[i]]
            if not pending:
                break
        return [snippet or plain_start(" ".join(doc.get_all("body")) or " ".join(doc.get_all("subject")))
                for doc, snippet in zip(docs, snippets)]

    def _matching(self, text: str, matcher: _Matcher, verdicts: dict[str, bool]) -> set[str]:
        """The distinct tokens of `text` that answer one of the query's words."""
        if not text or not matcher.words:
            return set()
        tokens = set(self.plain.analyze(text))
        new = [t for t in tokens if t not in verdicts]
        if new:
            # A stem starts with its word's first letter (neither Snowball stemmer touches
            # it), so only words starting like one of the query's stems need stemming.
            stemmable = [t for t in new if t[:1] in matcher.initials]
            stems = dict(zip(stemmable, self._stems(stemmable, text))) if stemmable else {}
            found = matcher.matching(new, stems)
            for token in new:
                verdicts[token] = token in found
        return {t for t in tokens if verdicts[t]}

    def _stems(self, tokens: list[str], text: str) -> list[str]:
        """Each (plain, already analyzed) token's stem. A plain ASCII token's stem depends on
        the token alone, so those are stemmed together, in one call; any other (ⅻ, or 1. from
        ⒈) is given the stem found at its place in the text."""
        simple = [t for t in tokens if t.isascii() and t.isalnum()]
        stemmed = self.stem.analyze(" ".join(simple)) if simple else []
        stems = dict(zip(simple, stemmed)) if len(stemmed) == len(simple) else {}
        if len(stems) < len(tokens):
            at = {t.position: t.text for t in self.stem.pre_tokenize(text).tokens}
            for t in self.plain.pre_tokenize(text).tokens:
                stems.setdefault(t.text, at.get(t.position, t.text))
        return [stems[t] for t in tokens]

    def _generator(self, searcher: tantivy.Searcher, field: str, tokens: set[str]) -> tantivy.SnippetGenerator:
        q = tantivy.Query.term_set_query(self.schema, field, sorted(tokens))
        gen = tantivy.SnippetGenerator.create(searcher, q, self.schema, field)
        gen.set_max_num_chars(SNIPPET_CHARS)
        return gen


class _Matcher:
    """Whether a token (with its stem) answers one of a query's words: matches_token's rules,
    with what depends only on the query worked out once."""

    def __init__(self, words: list[Word]) -> None:
        self.words = words
        self.stems = {wstem for _, wstem, _, _ in words if wstem != NO_STEM}
        self.initials = {wstem[:1] for wstem in self.stems}
        self.exact = {w for w, _, _, _ in words}
        self.prefixes = tuple(w for w, _, _, prefix in words if prefix)
        self.typos = [(w, budget, prefix, len(w), set(w)) for w, _, budget, prefix in words if budget]
        self.shortest = min((length - budget for _, budget, _, length, _ in self.typos), default=0)

    def matching(self, tokens: list[str], stems: dict[str, str]) -> set[str]:
        """The tokens (given with their stems, when they may have one of the query's) that
        answer a query word: what __call__ says of each, the cheap rules for all at once."""
        found = self.exact.intersection(tokens)
        found.update(t for t, stem in stems.items() if stem in self.stems)
        if self.prefixes:
            found.update(t for t in tokens if t.startswith(self.prefixes))
        if self.typos:
            shortest = self.shortest
            found.update(t for t in tokens if len(t) >= shortest and t not in found and self(t, NO_STEM))
        return found

    def __call__(self, token: str, stem: str) -> bool:
        if stem in self.stems or token in self.exact or (self.prefixes and token.startswith(self.prefixes)):
            return True
        n = len(token)
        for w, budget, prefix, length, letters in self.typos:
            if (length - n if prefix else abs(length - n)) > budget:  # damerau_distance's own first test
                continue
            if len(letters.difference(token)) <= budget and matches_token(token, w, budget, prefix):
                return True
        return False


def _window(text: str) -> str:
    """The part of a text that is highlighted: all of it, or its first HIGHLIGHT_CHARS cut at
    a space (a long attachment's text is not tokenized whole for a snippet)."""
    if len(text) <= HIGHLIGHT_CHARS:
        return text
    cut = text.rfind(" ", HIGHLIGHT_CHARS // 2, HIGHLIGHT_CHARS)
    return text[:cut if cut > 0 else HIGHLIGHT_CHARS]


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
