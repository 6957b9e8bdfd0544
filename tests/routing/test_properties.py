"""Properties of the evaluation over arbitrary messages and arbitrary valid rules."""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from ingest.parsed import Address
from routing.conditions import FIELDS, check
from routing.errors import InvalidRules
from routing.evaluate import evaluate
from routing.routable import AttachmentInfo, CompanyFacts, RoutableMessage
from routing.rule import Rule
from routing.validate import parse_rules
from routing.yaml_io import dump_rules, read_rules

pytestmark = pytest.mark.unit

HEADER_NAMES = ["X-Ricevuta", "X-Trasporto", "X-Priority", "Reply-To", "List-Id", "Received"]
NEVER = "X-Casella-Never"  # a header no generated message has
words = st.text(min_size=0, max_size=40)
some_text = st.text(alphabet=st.characters(exclude_categories=("Cs",)), min_size=0, max_size=60)
addresses = st.builds(Address, name=some_text, addr=st.one_of(some_text, st.emails().map(str.lower)))

messages = st.builds(
    RoutableMessage,
    subject=some_text, sender=st.none() | addresses, to=st.lists(addresses, max_size=3).map(tuple),
    cc=st.lists(addresses, max_size=2).map(tuple), body=st.text(max_size=300),
    attachments=st.lists(st.builds(AttachmentInfo, filename=some_text, content_type=some_text), max_size=3).map(tuple),
    headers=st.lists(st.tuples(st.sampled_from(HEADER_NAMES), some_text), max_size=5).map(tuple),
    direction=st.sampled_from(["in", "out"]), sender_unknown=st.booleans(),
    company=st.none() | st.builds(CompanyFacts, id=st.integers(1, 9), name=words,
                                  lifecycle=st.sampled_from(["suspect", "lead", "prospect", "customer"]),
                                  agent=st.none() | words),
)

value_text = st.text(alphabet=st.characters(exclude_categories=("Cs", "Cc")), min_size=1, max_size=20) \
    .filter(lambda s: s.strip() and len(s.strip()) <= 120)


@st.composite
def conditions(draw: st.DrawFn) -> dict[str, Any]:
    name = draw(st.sampled_from(sorted(FIELDS)))
    field = f"header:{draw(st.sampled_from(HEADER_NAMES))}" if name == "header" else name
    spec = FIELDS[name]
    op = draw(st.sampled_from(spec.ops))
    data: dict[str, Any] = {"field": field, "op": op, "negate": draw(st.booleans())}
    if op == "exists":
        return data
    if name == "sender-unknown":
        data["value"] = draw(st.booleans())
    elif op == "equals" and spec.choices:
        data["value"] = draw(st.sampled_from(spec.choices))
    elif op == "domain-is":
        data["value"] = draw(st.sampled_from(["edilnord.it", "pec.it", "example.com", "x.y.z"]))
    elif op == "regex":
        data["value"] = draw(st.one_of(value_text.map(lambda s: re.escape(s.strip())),
                                       st.sampled_from([r"\d+", r"^re:", r"fattura|preventivo", r"(a)(b)?", r".*"])))
    else:
        data["value"] = draw(st.one_of(value_text, st.lists(value_text, min_size=1, max_size=3)))
    return data


ACTIONS = [{"action": "add-tags", "tags": ["t"]}, {"action": "make-public"}, {"action": "set-agent"},
           {"action": "assign-user", "user": "anna"}, {"action": "assign-group", "group": "amministrazione"},
           {"action": "move", "folder": "Archivio"}, {"action": "link-pratica", "from-subject": r"(\d+)"},
           {"action": "link-pratica", "code": "P-1"}]


@st.composite
def rule_lists(draw: st.DrawFn) -> list[Rule]:
    count = draw(st.integers(0, 6))
    items = [{"name": f"rule-{n}", "match": draw(st.sampled_from(["all", "any"])),
              "enabled": draw(st.booleans()), "stop": draw(st.booleans()),
              "conditions": draw(st.lists(conditions(), max_size=4)),
              "actions": draw(st.lists(st.sampled_from(ACTIONS), min_size=1, max_size=3))} for n in range(count)]
    try:
        return parse_rules(items)
    except InvalidRules as exc:  # the strategy should only build valid rules
        raise AssertionError(exc.problems) from None


common = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@common
@given(messages, rule_lists())
def test_evaluation_is_deterministic_and_never_raises(msg: RoutableMessage, rules: list[Rule]) -> None:
    first = evaluate(msg, rules)
    assert first == evaluate(msg, rules)
    assert len(first.rules) == len(rules)
    for rule, outcome in zip(rules, first.rules, strict=True):
        assert outcome.rule == rule.name and outcome.reason
        assert all(c.reason and c.condition for c in outcome.conditions)


@common
@given(messages, rule_lists())
def test_disabled_rules_never_match(msg: RoutableMessage, rules: list[Rule]) -> None:
    ev = evaluate(msg, rules)
    disabled = {r.name for r in rules if not r.enabled}
    assert not any(o.matched for o in ev.rules if o.rule in disabled)
    assert not any(a.rule in disabled for a in ev.actions)


@common
@given(messages, rule_lists())
def test_stop_means_no_later_rule_acts(msg: RoutableMessage, rules: list[Rule]) -> None:
    ev = evaluate(msg, rules)
    names = [r.name for r in rules]
    if ev.stopped_by is not None:
        cut = names.index(ev.stopped_by)
        assert all(names.index(a.rule) <= cut for a in ev.actions)
        assert not any(o.matched or o.evaluated for o in ev.rules[cut + 1:])
        assert rules[cut].stop and ev.rules[cut].matched
    else:
        assert not any(o.matched and r.stop for o, r in zip(ev.rules, rules, strict=True))


@common
@given(messages, rule_lists())
def test_actions_follow_rule_order_then_action_order(msg: RoutableMessage, rules: list[Rule]) -> None:
    ev = evaluate(msg, rules)
    positions = {r.name: n for n, r in enumerate(rules)}
    order = [positions[a.rule] for a in ev.actions]
    assert order == sorted(order)
    for rule, outcome in zip(rules, ev.rules, strict=True):
        mine = [a.action.kind for a in ev.actions if a.rule == rule.name]
        assert mine == [a.action.kind for a in outcome.actions]
        if outcome.matched:  # every action of the rule, minus those that could not be resolved
            assert len(mine) + len(outcome.skipped) == len(rule.actions)
            kinds = iter(a.kind for a in rule.actions)
            assert all(k in kinds for k in mine)  # a subsequence, in order
        else:
            assert mine == []


@common
@given(messages, st.lists(conditions(), max_size=4))
def test_any_with_one_always_true_condition_matches(msg: RoutableMessage, others: list[dict[str, Any]]) -> None:
    assume(all(name != NEVER for name, _ in msg.headers))
    always = {"field": f"header:{NEVER}", "op": "exists", "negate": True}
    (rule,) = parse_rules([{"name": "any-rule", "match": "any", "conditions": [*others, always],
                            "actions": [{"action": "make-public"}]}])
    ev = evaluate(msg, [rule])
    assert ev.rules[0].matched and [a.action.kind for a in ev.actions] == ["make-public"]


@common
@given(messages, conditions())
def test_negate_turns_a_condition_round(msg: RoutableMessage, condition: dict[str, Any]) -> None:
    (plain, negated) = parse_rules([
        {"name": "plain", "conditions": [{**condition, "negate": False}], "actions": [{"action": "stop"}]},
        {"name": "negated", "conditions": [{**condition, "negate": True}], "actions": [{"action": "stop"}]}])
    assert check(plain.conditions[0], msg).matched != check(negated.conditions[0], msg).matched


@common
@given(rule_lists())
def test_export_reads_back_to_the_same_rules(rules: list[Rule]) -> None:
    assert read_rules(dump_rules(rules)) == rules
