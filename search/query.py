"""What a user typed, split into the parts both engines understand the same way.

    fattura "ordine di acquisto" -spam 2026/42 prev

→ words (the last one, `prev`, also as a prefix: the user is still typing), a phrase, an
excluded word and a protocol number. The typo budget follows Meilisearch's defaults, which
the issue asks for: none under 5 letters, one from 5, two from 9.
"""

from __future__ import annotations

from dataclasses import dataclass

ONE_TYPO_FROM = 5
TWO_TYPOS_FROM = 9


@dataclass(frozen=True, slots=True)
class QueryPart:
    kind: str  # word | phrase | protocol
    text: str  # as typed (a protocol number in its short form: 2026/42)
    negated: bool = False
    prefix: bool = False  # the last word, still being typed


def typo_budget(token: str) -> int:
    """Edits allowed for a normalised token; numbers and codes get none."""
    if any(c.isdigit() for c in token):
        return 0
    if len(token) >= TWO_TYPOS_FROM:
        return 2
    return 1 if len(token) >= ONE_TYPO_FROM else 0


def protocol_number(text: str) -> str | None:
    """2026/42 and 2026/0000042 -> 2026/42; anything else -> None."""
    year, sep, number = text.partition("/")
    if sep and len(year) == 4 and year.isdigit() and number.isdigit() and 0 < len(number) <= 12 and int(number):
        return f"{int(year)}/{int(number)}"
    return None


def parse_query(text: str) -> list[QueryPart]:
    parts: list[QueryPart] = []
    i, n = 0, len(text)
    while i < n:
        if text[i].isspace():
            i += 1
            continue
        negated = text[i] == "-" and i + 1 < n and not text[i + 1].isspace()
        start = i + 1 if negated else i
        if start < n and text[start] == '"':
            end = text.find('"', start + 1)
            end = n if end < 0 else end
            phrase = text[start + 1:end].strip()
            if phrase:
                parts.append(QueryPart("phrase", phrase, negated))
            i = end + 1
            continue
        end = start
        while end < n and not text[end].isspace():
            end += 1
        word = text[start:end]
        proto = protocol_number(word)
        if proto is not None:
            parts.append(QueryPart("protocol", proto, negated))
        elif word:
            parts.append(QueryPart("word", word, negated))
        i = end
    if parts and parts[-1].kind == "word" and not parts[-1].negated and not text[-1:].isspace():
        last = parts[-1]
        parts[-1] = QueryPart("word", last.text, prefix=True)
    return parts


def damerau_distance(a: str, b: str, limit: int, *, prefix: bool = False) -> int:
    """Optimal string alignment distance from `b` to `a` (a swap counts once), capped at
    limit + 1; with prefix=True, from `b` to the closest prefix of `a`."""
    if (len(b) - len(a) if prefix else abs(len(a) - len(b))) > limit:
        return limit + 1
    prev2: list[int] = []
    prev = list(range(len(a) + 1))
    for i in range(1, len(b) + 1):
        cur = [i] + [0] * len(a)
        for j in range(1, len(a) + 1):
            cost = 0 if b[i - 1] == a[j - 1] else 1
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
            if i > 1 and j > 1 and b[i - 1] == a[j - 2] and b[i - 2] == a[j - 1]:
                cur[j] = min(cur[j], prev2[j - 2] + 1)
        if min(cur) > limit:
            return limit + 1
        prev2, prev = prev, cur
    return min(min(prev) if prefix else prev[-1], limit + 1)


def matches_token(token: str, word: str, budget: int, prefix: bool) -> bool:
    """Whether an indexed token answers a query word, by the engines' own rules (used to
    know which words of a text to highlight)."""
    if token == word or (prefix and token.startswith(word)):
        return True
    if budget == 0 or len(set(word) - set(token)) > budget:  # each edit loses one letter at most
        return False
    return damerau_distance(token, word, budget, prefix=prefix) <= budget
