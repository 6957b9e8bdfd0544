"""The Meilisearch engine's translations, checked without a server: the access rules and
filters it sends (and signs into tenant tokens) and the query text. The behaviour suite
(test_behaviour.py) checks what the server then does, when one is available."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime

import meilisearch
import pytest

from casella.access import Grant
from search.index import SearchFilters
from search.meili import grant_filter, meili_query_text, query_filters
from search.query import parse_query, typo_budget

pytestmark = pytest.mark.unit

KEY_UID = "6062abda-a5aa-4414-ac91-ecd7944c0f8d"


def test_grant_filters_mirror_access_rules() -> None:
    assert grant_filter(Grant("root", "admin", everything=True)) is None
    assert grant_filter(Grant("root", "admin", everything=True, private_account_ids=frozenset({7}))) == \
        "(NOT account_id IN [7] OR is_public = true)"
    assert grant_filter(Grant("al", "agent", agent="al", agent_company_ids=frozenset({3, 1}))) == \
        '(agent = "al" OR company_id IN [1, 3])'
    assert grant_filter(Grant('a"b', "agent", agent='a"b')) == '(agent = "a\\"b")'
    assert grant_filter(Grant("op", "operator", account_ids=frozenset({2}), user_id=5, group_ids=frozenset({9}),
                              private_account_ids=frozenset({4}))) == \
        "(account_id IN [2] OR assigned_user_id = 5 OR assigned_group_id IN [9]) AND " \
        "(NOT account_id IN [4] OR is_public = true)"
    # marketing: granted accounts only, never what is assigned to them
    assert grant_filter(Grant("mk", "marketing", account_ids=frozenset({2}), user_id=6)) == "(account_id IN [2])"


def test_query_filters() -> None:
    f = SearchFilters(account_ids=frozenset({1}), folder="Posta inviata", since=datetime(2026, 3, 1, tzinfo=UTC),
                      sender="Edilnord.it", has_attachment=False, tag="Urgente", pratica="PR-1", unknown=True)
    assert list(query_filters(f)) == [
        "account_id IN [1]", 'folder = "Posta inviata"', "date_ts >= 1772323200", 'from_domains = "edilnord.it"',
        "has_attachments = false", 'tag_keys = "urgente"', 'pratica_keys = "pr-1"', 'link_kind = "unknown"']
    assert list(query_filters(SearchFilters(sender="Mario@Edilnord.it"))) == ['from_addr = "mario@edilnord.it"']


def test_query_text() -> None:
    assert meili_query_text('fattura "ordine di acquisto" -spam 2026/0000042 prev') == \
        'fattura "ordine di acquisto" -spam "2026/42" prev'
    assert meili_query_text("fattura ") == "fattura "


def test_parse_query_and_typo_budget() -> None:
    parts = parse_query('-"non questo" 2026/7 città prev')
    assert [(p.kind, p.text, p.negated, p.prefix) for p in parts] == [
        ("phrase", "non questo", True, False), ("protocol", "2026/7", False, False),
        ("word", "città", False, False), ("word", "prev", False, True)]
    assert not parse_query("prev ")[-1].prefix
    assert [typo_budget(w) for w in ("casa", "fattura", "raccomandata", "0000042")] == [0, 1, 2, 0]


def test_tenant_token_carries_the_access_filter() -> None:
    client = meilisearch.Client("http://127.0.0.1:1", "master")
    acl = grant_filter(Grant("al", "agent", agent="al", agent_company_ids=frozenset({1})))
    token = client.generate_tenant_token(KEY_UID, {"casella_messages": {"filter": acl}}, api_key="search-key",
                                         expires_at=datetime(2099, 1, 1, tzinfo=UTC))
    payload = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))
    assert payload["searchRules"] == {"casella_messages": {"filter": '(agent = "al" OR company_id IN [1])'}}
    assert payload["apiKeyUid"] == KEY_UID
