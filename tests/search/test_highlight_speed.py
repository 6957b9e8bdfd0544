"""The snippet highlighter's fast word matching (one analyze call per text, the tokens'
stems in one call, the query's rules worked out once) against the straightforward one:
every token of the text pre-tokenized twice, plain and stemmed, and checked by
matches_token. Both must find the same words, on plain and accented, folded and odd text."""

from __future__ import annotations

import random

import pytest

from search.highlight import MIN_STEMMED, NO_STEM, Highlighter, Word, _Matcher
from search.query import matches_token, parse_query, typo_budget
from search.tantivy_schema import build_analyzer, build_schema

pytestmark = pytest.mark.unit

VOCAB = ("fattura fatture fatturazione spedizione spedizioni spedizone preventivo preventivi toner "
         "sollecito solleciti pagamento pagamenti invoice invoices città CITTÀ Straße ﬁnanza Œuvre ½ ⑴ ⒈ 2024 "
         "naïve café consegna ristrutturazione Pontedera PONTEDERA bari bara happy happiness è À x_y "
         "mario.rossi@edilnord.it ÆSIR ǅemal ΑΘΗΝΑ москва 東京 ⅻ " + "a" * 45).split()
QUERIES = ("fattura", "preventivo toner", "spedizone", "sollecito pagam", "invoice", "citta", "cafe nai", "bara",
           "pontedra", "fatture consegn", "straße", "œuvre fin", "happi", "mosca москв", "2024 ½", "1. uno")


def reference(h: Highlighter, text: str, words: list[Word]) -> set[str]:
    if not text or not words:
        return set()
    stems = {t.position: t.text for t in h.stem.pre_tokenize(text).tokens}
    return {t.text for t in h.plain.pre_tokenize(text).tokens
            if any(stems.get(t.position, t.text) == wstem or matches_token(t.text, w, budget, prefix)
                   for w, wstem, budget, prefix in words)}


def test_fast_matching_finds_the_same_words() -> None:
    h = Highlighter(build_schema(), build_analyzer(stem=False), build_analyzer(stem=True))
    rnd = random.Random(7)
    texts = ["", " ", *(" ".join(rnd.choice(VOCAB) + rnd.choice(("", "s", "e", "i", ".", ",", "-x", "'"))
                                 for _ in range(rnd.randint(1, 300))) for _ in range(150))]
    for q in QUERIES:
        words: list[Word] = [
            (t, h.stem_of(t) if p.kind == "word" and len(t) >= MIN_STEMMED else NO_STEM,
             typo_budget(t) if p.kind == "word" else 0, p.prefix)
            for p in parse_query(q) if not p.negated and p.kind != "protocol" for t in h.plain.analyze(p.text)]
        matcher, verdicts = _Matcher(words), {}
        for text in texts:
            assert h._matching(text, matcher, verdicts) == reference(h, text, words), (q, text)
