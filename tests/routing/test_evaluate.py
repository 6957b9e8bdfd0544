"""The pure evaluation: every field, every operator, all/any, negate, stop, the reasons.
No database: rules go through the same validation as a YAML file."""

from __future__ import annotations

from typing import Any

import pytest

from ingest.parsed import Address
from routing.evaluate import evaluate
from routing.routable import AttachmentInfo, CompanyFacts, RoutableMessage, body_of
from routing.validate import parse_rules

pytestmark = pytest.mark.unit

EDILNORD = CompanyFacts(7, "Edilnord S.r.l.", "customer", "agente.rossi", "fornitore")
MSG = RoutableMessage(
    id=1, account="ufficio", subject="Fattura n. 12 — Pratica 2026-123 (caffè)",
    sender=Address("Mario Rossi", "mario.rossi@mail.edilnord.it"),
    to=(Address("Ufficio", "info@studioferrari.it"), Address("", "amministrazione@studioferrari.it")),
    cc=(Address("Lucia Verdi", "lucia@tecnoservizi.com"),),
    body="Buongiorno,\nin allegato la fattura di ottobre.\nCordiali saluti",
    attachments=(AttachmentInfo("Fattura_12.PDF", "application/pdf"), AttachmentInfo("foto.jpg", "image/jpeg")),
    headers=(("From", "Mario Rossi <mario.rossi@mail.edilnord.it>"), ("X-Ricevuta", "accettazione"),
             ("X-Priority", "1"), ("Reply-To", "Fatture <fatture@edilnord.it>"), ("Received", "a"),
             ("Received", "b")),
    direction="in", sender_unknown=False, company=EDILNORD)


def rule(conditions: list[dict[str, Any]], *, name: str = "r", actions: list[dict[str, Any]] | None = None,
         **extra: Any) -> Any:
    data = {"name": name, "conditions": conditions,
            "actions": actions if actions is not None else [{"action": "add-tags", "tags": [name]}], **extra}
    (parsed,) = parse_rules([data])
    return parsed


def holds(condition: dict[str, Any], msg: RoutableMessage = MSG) -> bool:
    return evaluate(msg, [rule([condition])]).rules[0].matched


@pytest.mark.parametrize(("condition", "expected"), [
    # contains / equals / starts-with: case-, accent- and white-space-insensitive
    ({"field": "subject", "op": "contains", "value": "FATTURA"}, True),
    ({"field": "subject", "op": "contains", "value": "caffe"}, True),
    ({"field": "subject", "op": "contains", "value": "pratica   2026-123"}, True),
    ({"field": "subject", "op": "contains", "value": "preventivo"}, False),
    ({"field": "subject", "op": "equals", "value": "fattura n. 12 — pratica 2026-123 (CAFFE)"}, True),
    ({"field": "subject", "op": "equals", "value": "fattura"}, False),
    ({"field": "subject", "op": "starts-with", "value": "fattura n"}, True),
    ({"field": "subject", "op": "starts-with", "value": "pratica"}, False),
    ({"field": "subject", "op": "contains", "value": ["preventivo", "fattura"]}, True),  # any value
    # regex: case-insensitive, also tried without accents
    ({"field": "subject", "op": "regex", "value": r"pratica \d{4}-\d+"}, True),
    ({"field": "subject", "op": "regex", "value": r"caffe\)$"}, True),
    ({"field": "subject", "op": "regex", "value": r"^pratica"}, False),
    # exists
    ({"field": "subject", "op": "exists"}, True),
    ({"field": "header:X-Priority", "op": "exists"}, True),
    ({"field": "header:X-Spam-Flag", "op": "exists"}, False),
    # addresses: the address or the display name; domain-is takes sub-domains
    ({"field": "from", "op": "domain-is", "value": "edilnord.it"}, True),
    ({"field": "from", "op": "domain-is", "value": "nord.it"}, False),
    ({"field": "from", "op": "equals", "value": "Mario Rossi"}, True),
    ({"field": "from", "op": "equals", "value": "MARIO.ROSSI@mail.edilnord.it"}, True),
    ({"field": "from", "op": "starts-with", "value": "mario"}, True),
    ({"field": "to", "op": "equals", "value": "amministrazione@studioferrari.it"}, True),
    ({"field": "to", "op": "domain-is", "value": "tecnoservizi.com"}, False),
    ({"field": "cc", "op": "domain-is", "value": "tecnoservizi.com"}, True),
    ({"field": "cc", "op": "contains", "value": "lucia verdi"}, True),
    # body
    ({"field": "body", "op": "contains", "value": "fattura di ottobre"}, True),
    ({"field": "body", "op": "regex", "value": r"^cordiali"}, False),  # no MULTILINE: Python's ^
    ({"field": "body", "op": "regex", "value": r"(?m)^cordiali"}, True),
    # attachments
    ({"field": "attachment-name", "op": "regex", "value": r"\.pdf$"}, True),
    ({"field": "attachment-name", "op": "equals", "value": "foto.jpg"}, True),
    ({"field": "attachment-type", "op": "equals", "value": "application/pdf"}, True),
    ({"field": "attachment-type", "op": "starts-with", "value": "video/"}, False),
    # any header, by name (case-insensitive), every occurrence, addresses inside for domain-is
    ({"field": "header:x-ricevuta", "op": "equals", "value": "accettazione"}, True),
    ({"field": "header:Received", "op": "equals", "value": "b"}, True),
    ({"field": "header:Reply-To", "op": "domain-is", "value": "edilnord.it"}, True),
    # PEC kind, direction, company, sender-unknown
    ({"field": "pec-kind", "op": "equals", "value": "accettazione"}, True),
    ({"field": "pec-kind", "op": "equals", "value": "avvenuta-consegna"}, False),
    ({"field": "pec-kind", "op": "exists"}, True),
    ({"field": "direction", "op": "equals", "value": "in"}, True),
    ({"field": "direction", "value": "out"}, False),  # op defaults to equals
    ({"field": "company-lifecycle", "op": "equals", "value": "customer"}, True),
    ({"field": "company-lifecycle", "op": "equals", "value": "lead"}, False),
    ({"field": "company-lifecycle", "op": "exists"}, True),
    ({"field": "company-agent", "op": "equals", "value": "agente.rossi"}, True),
    ({"field": "company-category", "op": "equals", "value": "Fornitore"}, True),
    ({"field": "company-category", "op": "equals", "value": "cliente"}, False),
    ({"field": "company-category", "op": "exists"}, True),
    ({"field": "company-agent", "op": "starts-with", "value": "agente."}, True),
    ({"field": "sender-unknown", "value": False}, True),
    ({"field": "sender-unknown", "op": "equals", "value": True}, False),
])
def test_fields_and_operators(condition: dict[str, Any], expected: bool) -> None:
    assert holds(condition) is expected
    assert holds({**condition, "negate": True}) is (not expected)


def test_plain_mail_unlinked_sender() -> None:
    plain = RoutableMessage(subject="ciao", sender=Address("", "chi@ignoto.example"), direction="out")
    assert holds({"field": "pec-kind", "op": "exists"}, plain) is False
    assert holds({"field": "company-lifecycle", "op": "exists"}, plain) is False
    assert holds({"field": "company-lifecycle", "op": "equals", "value": "customer", "negate": True}, plain)
    assert holds({"field": "sender-unknown", "value": True}, plain)
    assert holds({"field": "direction", "value": "out"}, plain)
    assert holds({"field": "cc", "op": "exists"}, plain) is False
    assert holds({"field": "attachment-name", "op": "contains", "value": "pdf"}, plain) is False
    # a PEC transport envelope without X-Ricevuta
    envelope = RoutableMessage(headers=(("X-Trasporto", "posta-certificata"),))
    assert holds({"field": "pec-kind", "op": "equals", "value": "posta-certificata"}, envelope)
    anomaly = RoutableMessage(headers=(("x-trasporto", " Errore "),))  # named as pec/classify.py names it
    assert holds({"field": "pec-kind", "op": "equals", "value": "anomalia"}, anomaly)
    # what the ingest's PEC classification found wins over the headers
    classified = RoutableMessage(headers=(("X-Ricevuta", "accettazione"),), pec="avvenuta-consegna")
    assert holds({"field": "pec-kind", "op": "equals", "value": "avvenuta-consegna"}, classified)


def test_all_and_any() -> None:
    yes = {"field": "subject", "op": "contains", "value": "fattura"}
    no = {"field": "subject", "op": "contains", "value": "preventivo"}
    assert evaluate(MSG, [rule([yes, yes])]).rules[0].matched
    assert not evaluate(MSG, [rule([yes, no])]).rules[0].matched
    assert evaluate(MSG, [rule([no, yes], match="any")]).rules[0].matched
    assert not evaluate(MSG, [rule([no, no], match="any")]).rules[0].matched
    catch_all = evaluate(MSG, [rule([])]).rules[0]
    assert catch_all.matched and "no conditions" in catch_all.reason


def test_reasons_name_the_condition_and_what_the_field_held() -> None:
    ev = evaluate(MSG, [rule([{"field": "subject", "op": "contains", "value": "fattura"},
                              {"field": "from", "op": "domain-is", "value": "gmail.com"},
                              {"field": "header:X-Spam", "op": "exists"}], name="fatture")])
    outcome = ev.rules[0]
    assert not outcome.matched
    first, second, third = outcome.conditions
    assert first.condition == 'subject contains "fattura"' and first.matched
    assert first.reason == 'subject is "Fattura n. 12 — Pratica 2026-123 (caffè)"'
    assert second.condition == 'from domain-is "gmail.com"' and not second.matched
    assert second.reason == 'from is "mario.rossi@mail.edilnord.it"'
    assert third.reason == "no X-Spam header"
    assert outcome.reason.startswith("not matched: ")
    assert 'from domain-is "gmail.com" does not hold (from is "mario.rossi@mail.edilnord.it")' in outcome.reason
    assert "subject contains" not in outcome.reason  # only what failed
    negated = evaluate(MSG, [rule([{"field": "to", "op": "domain-is", "value": "studioferrari.it",
                                    "negate": True}])]).rules[0].conditions[0]
    assert negated.condition == 'not (to domain-is "studioferrari.it")' and not negated.matched
    assert negated.reason == 'to includes "info@studioferrari.it"'
    matched = evaluate(MSG, [rule([{"field": "subject", "op": "contains", "value": "x"},
                                   {"field": "cc", "op": "exists"}], match="any")]).rules[0]
    assert matched.reason == 'matched: 1 of 2 condition(s) hold, any is enough: cc exists'


def test_disabled_rules_never_match_and_say_so() -> None:
    ev = evaluate(MSG, [rule([], name="spento", enabled=False)])
    assert not ev.rules[0].matched and not ev.rules[0].evaluated and ev.rules[0].reason == "disabled"
    assert ev.actions == ()


def test_stop_ends_the_evaluation_and_actions_follow_rule_order() -> None:
    rules = [
        rule([{"field": "subject", "op": "contains", "value": "preventivo"}], name="primo"),
        rule([], name="secondo", actions=[{"action": "add-tags", "tags": ["a"]}, {"action": "make-public"}]),
        rule([], name="terzo", actions=[{"action": "assign-user", "user": "anna"}, {"action": "stop"}]),
        rule([], name="quarto"),
    ]
    ev = evaluate(MSG, rules)
    assert [(a.rule, a.action.kind) for a in ev.actions] == [
        ("secondo", "add-tags"), ("secondo", "make-public"), ("terzo", "assign-user")]
    assert ev.stopped_by == "terzo" and ev.matched == ("secondo", "terzo")
    last = ev.rules[3]
    assert not last.evaluated and last.reason == "not evaluated: rule 'terzo' matched and stops the evaluation"
    # `stop: true` on the rule is the same as the stop action; a rule that does not match does not stop
    flagged = [rule([{"field": "direction", "value": "out"}], name="uscita", stop=True), rule([], name="dopo")]
    assert evaluate(MSG, flagged).matched == ("dopo",)


def test_set_agent_defaults_to_the_company_agent() -> None:
    default = rule([], actions=[{"action": "set-agent"}])
    (planned,) = evaluate(MSG, [default]).actions
    assert planned.action.agent == "agente.rossi"
    explicit = rule([], actions=[{"action": "set-agent", "agent": "agente.bianchi"}])
    assert evaluate(MSG, [explicit]).actions[0].action.agent == "agente.bianchi"
    orphan = evaluate(RoutableMessage(), [default])
    assert orphan.actions == () and orphan.rules[0].skipped == ("set-agent: the message is not linked to a company",)
    no_agent = RoutableMessage(company=CompanyFacts(1, "Acme", "lead", None))
    assert evaluate(no_agent, [default]).rules[0].skipped == ("set-agent: the company 'Acme' has no agent",)


@pytest.mark.parametrize(("pattern", "subject", "code"), [
    (r"Pratica (\d{4}-\d+)", "Re: Pratica 2026-123 documenti", "2026-123"),
    (r"pratica n\.\s*(?P<code>\S+)", "PRATICA N. ABC/7 sollecito", "ABC/7"),
    (r"\b\d{4}-\d{3}\b", "Rif. 2026-456", "2026-456"),  # no group: the whole match
    (r"Pratica (\d{4}-\d+)", "Preventivo", None),
])
def test_link_pratica_captures_the_code_from_the_subject(pattern: str, subject: str, code: str | None) -> None:
    r = rule([], actions=[{"action": "link-pratica", "from-subject": pattern}])
    ev = evaluate(RoutableMessage(subject=subject), [r])
    if code is None:
        assert ev.actions == () and "does not match" in ev.rules[0].skipped[0]
    else:
        assert ev.actions[0].action.code == code
    fixed = evaluate(RoutableMessage(subject=subject), [rule([], actions=[{"action": "link-pratica", "code": "P-1"}])])
    assert fixed.actions[0].action.code == "P-1"


def test_html_only_body_is_read_without_tags() -> None:
    body = body_of("", "<html><style>p{}</style><p>Gentile cliente,<br>la <b>fattura</b> &egrave; pronta</p></html>")
    assert "fattura" in body and "<b>" not in body and "è pronta" in body and "p{}" not in body
    msg = RoutableMessage(body=body)
    assert holds({"field": "body", "op": "contains", "value": "la fattura e pronta"}, msg)
