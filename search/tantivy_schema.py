"""The embedded engine's index layout: analyzers, fields, and a SearchDocument as a tantivy
document.

Every text is indexed twice: `plain` (split on anything not a letter or digit, lower-cased,
accents folded: città = citta) for exact, typo-tolerant and prefix matching, and `stem`
(the same, then the Italian and the English Snowball stemmers, in that order: fattura and
fatture → fattur, invoice and invoices → invoic). Filters and access fields are raw terms
and integers. Change anything here and bump SCHEMA_VERSION: an index of another version is
refused until `casella reindex` rebuilds it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, datetime

import tantivy

from search.index import SearchDocument, short_protocol

SCHEMA_VERSION = "casella-search-1"
PLAIN, STEM = "casella_plain", "casella_stem"

# Searchable text fields: (plain field, stemmed field or None, boost).
TEXT_FIELDS: tuple[tuple[str, str | None, float], ...] = (
    ("subject", "subject_st", 3.0),
    ("people", None, 2.0),  # sender and recipients, names and addresses
    ("meta", None, 2.0),  # company, contact, tags, pratica codes, protocol numbers
    ("body", "body_st", 1.0),
    ("attach", "attach_st", 0.8),  # attachment names and text
)
SNIPPET_FIELDS = ("body", "attach", "subject")  # stored, in the order snippets are looked for
RAW_FIELDS = ("protocol", "folder", "from_addr", "from_domain", "pec_kind", "tag", "pratica", "agent", "link_kind")
INT_FIELDS = ("id", "account_id", "company_id", "assigned_user_id", "assigned_group_id", "date_ts")
BOOL_FIELDS = ("has_attachments", "is_public")


def build_analyzer(*, stem: bool) -> tantivy.TextAnalyzer:
    builder = (tantivy.TextAnalyzerBuilder(tantivy.Tokenizer.simple())
               .filter(tantivy.Filter.remove_long(40))
               .filter(tantivy.Filter.lowercase())
               .filter(tantivy.Filter.ascii_fold()))
    if stem:
        builder = builder.filter(tantivy.Filter.stemmer("italian")).filter(tantivy.Filter.stemmer("english"))
    return builder.build()


def build_schema() -> tantivy.Schema:
    b = tantivy.SchemaBuilder()
    for plain, stem, _ in TEXT_FIELDS:
        b.add_text_field(plain, stored=plain in SNIPPET_FIELDS, tokenizer_name=PLAIN, index_option="position")
        if stem:
            b.add_text_field(stem, tokenizer_name=STEM, index_option="freq")
    for name in RAW_FIELDS:
        b.add_text_field(name, tokenizer_name="raw", index_option="basic")
    for name in INT_FIELDS:
        b.add_integer_field(name, stored=name == "id", indexed=True, fast=True)
    for name in BOOL_FIELDS:
        b.add_boolean_field(name, indexed=True)
    b.add_bytes_field("display", stored=True, indexed=False)  # what a hit shows, as JSON
    return b.build()


def to_tantivy(doc: SearchDocument) -> tantivy.Document:
    d = tantivy.Document()
    texts = {
        "subject": [doc.subject],
        "people": [doc.from_name, doc.from_addr, *doc.to, *doc.cc],
        "meta": [doc.company, doc.contact, *doc.tags, *doc.praticas, *doc.protocol_forms],
        "body": [doc.body],
        "attach": [*doc.attachment_names, doc.attachment_text],
    }
    for plain, stem, _ in TEXT_FIELDS:
        for value in texts[plain]:
            if value:
                d.add_text(plain, value)
                if stem:
                    d.add_text(stem, value)
    raws: dict[str, Iterable[str | None]] = {
        "protocol": [short_protocol(doc.protocol)] if doc.protocol else [],
        "folder": [doc.folder], "from_addr": [doc.from_addr], "from_domain": doc.from_domains,
        "pec_kind": [doc.pec_kind], "tag": [t.lower() for t in doc.tags], "pratica": [p.lower() for p in doc.praticas],
        "agent": [doc.agent], "link_kind": [doc.link_kind],
    }
    for name, values in raws.items():
        for value in values:
            if value:
                d.add_text(name, value)
    ints = {"id": doc.id, "account_id": doc.account_id, "company_id": doc.company_id,
            "assigned_user_id": doc.assigned_user_id, "assigned_group_id": doc.assigned_group_id,
            "date_ts": timestamp(doc.date) if doc.date else 0}
    for name, number in ints.items():
        if number is not None:
            d.add_integer(name, number)
    d.add_boolean("has_attachments", doc.has_attachments)
    d.add_boolean("is_public", doc.is_public)
    display = {"message_id": doc.message_id, "protocol": doc.protocol, "from_name": doc.from_name,
               "from_addr": doc.from_addr, "date": doc.date.isoformat() if doc.date else None,
               "account": doc.account, "folder": doc.folder}
    d.add_bytes("display", json.dumps(display, ensure_ascii=False).encode("utf-8"))
    return d


def display_of(doc: tantivy.Document) -> dict[str, object]:
    data: dict[str, object] = json.loads(bytes(doc.get_first("display") or b"{}").decode("utf-8"))
    return data


def timestamp(value: datetime) -> int:
    return int((value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp())
