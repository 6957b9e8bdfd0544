"""Rules files: every mistake is reported at import, naming the rule and the field; the
export is the import format and reads back to the same rules."""

from __future__ import annotations

import pytest

from routing.errors import InvalidRules
from routing.yaml_io import dump_rules, read_rules

pytestmark = pytest.mark.unit

GOOD = r"""
rules:
  - name: fatture-fornitori
    description: Fatture dei fornitori all'amministrazione
    account: ufficio          # omit for a rule over every account
    match: all
    conditions:
      - {field: subject, op: contains, value: fattura}
      - {field: from, op: domain-is, value: [edilnord.it, tecnoservizi.com]}
      - {field: header:X-Priority, op: exists, negate: true}
    actions:
      - {action: assign-group, group: amministrazione}
      - {action: add-tags, tags: [fattura, fornitore]}
      - {action: link-pratica, from-subject: 'Pratica (\d{4}-\d+)'}
      - {action: set-agent}
    stop: true
  - name: ricevute-pec
    enabled: false
    match: any
    conditions:
      - {field: pec-kind, op: equals, value: accettazione}
      - {field: sender-unknown, value: true}
    actions:
      - {action: move, folder: Ricevute, account: archivio}
      - {action: add-tags, tags: ricevuta}
      - {action: make-public}
      - {action: stop}
"""


def problems_of(text: str) -> list[str]:
    with pytest.raises(InvalidRules) as info:
        read_rules(text)
    return info.value.problems


def test_a_good_file_reads_and_round_trips() -> None:
    rules = read_rules(GOOD)
    assert [r.name for r in rules] == ["fatture-fornitori", "ricevute-pec"]
    first, second = rules
    assert first.account == "ufficio" and first.stop and first.match == "all"
    assert first.conditions[1].values == ("edilnord.it", "tecnoservizi.com")
    assert first.conditions[2].negate and first.conditions[2].header == "X-Priority"
    assert second.account is None and not second.enabled and second.stop  # the stop action
    assert [a.kind for a in second.actions] == ["move", "add-tags", "make-public"]
    assert second.actions[1].tags == ("ricevuta",)
    text = dump_rules(rules)
    assert read_rules(text) == rules
    assert dump_rules(read_rules(text)) == text
    assert "- {field: subject, op: contains, value: fattura}" in text  # one line each, as written by hand
    assert r"from-subject: 'Pratica (\d{4}-\d+)'" in text


@pytest.mark.parametrize(("text", "expected"), [
    ("rules:\n  - name: a\n    conditions: [{field: subject, op: regex, value: 'Pratica ('}]\n"
     "    actions: [{action: make-public}]\n",
     "rule 'a' conditions[0].value: bad regex 'Pratica (': missing ), unterminated subpattern at position 8"),
    ("rules:\n  - name: a\n    actions: [{action: link-pratica, from-subject: '[0-9'}]\n",
     "rule 'a' actions[0].from-subject: bad regex '[0-9'"),
    ("rules:\n  - name: a\n    conditions: [{field: subjct, op: contains, value: x}]\n    actions: [{action: stop}]\n",
     "rule 'a' conditions[0].field: unknown field 'subjct'; one of attachment-name"),
    ("rules:\n  - name: a\n    conditions: [{field: subject, op: like, value: x}]\n    actions: [{action: stop}]\n",
     "rule 'a' conditions[0].op: unknown operator 'like'; subject takes contains, equals, starts-with, regex, exists"),
    ("rules:\n  - name: a\n    conditions: [{field: subject, op: domain-is, value: x.it}]\n    actions: [{action: stop}]\n",
     "rule 'a' conditions[0].op: subject takes contains"),
    ("rules:\n  - name: a\n    conditions: [{field: company-category, op: domain-is, value: x.it}]\n"
     "    actions: [{action: stop}]\n",
     "rule 'a' conditions[0].op: company-category takes contains"),
    ("rules:\n  - name: a\n    conditions: [{field: company-lifecycle, op: equals, value: vip}]\n"
     "    actions: [{action: stop}]\n",
     "rule 'a' conditions[0].value: company-lifecycle is one of suspect, lead, prospect, customer, not 'vip'"),
    ("rules:\n  - name: a\n    conditions: [{field: from, op: domain-is, value: mario@edilnord.it}]\n"
     "    actions: [{action: stop}]\n",
     "is not a domain"),
    ("rules:\n  - name: a\n    conditions: [{field: subject, op: exists, value: x}]\n    actions: [{action: stop}]\n",
     "exists takes no value"),
    ("rules:\n  - name: a\n    conditions: [{field: subject, op: contains}]\n    actions: [{action: stop}]\n",
     "rule 'a' conditions[0].value: required for contains"),
    ("rules:\n  - name: a\n    conditions: [{field: subject, op: contains, value: yes}]\n    actions: [{action: stop}]\n",
     "expected a text, got True (quote it in YAML)"),
    ("rules:\n  - name: a\n    conditions: [{field: sender-unknown, value: maybe}]\n    actions: [{action: stop}]\n",
     "sender-unknown takes true or false"),
    ("rules:\n  - name: Fatture Fornitori\n    actions: [{action: stop}]\n",
     "rules[0] name: required, kebab-case"),
    ("rules:\n  - name: a\n    actions: [{action: forward, to: x@y.it}]\n",
     "rule 'a' actions[0].action: unknown action 'forward'"),
    ("rules:\n  - name: a\n    actions: [{action: assign-group}]\n", "rule 'a' actions[0].group: required for assign-group"),
    ("rules:\n  - name: a\n    actions: [{action: move}]\n", "move needs a folder, an account, or both"),
    ("rules:\n  - name: a\n    actions: [{action: link-pratica}]\n", "link-pratica needs exactly one of code or"),
    ("rules:\n  - name: a\n    actions: [{action: add-tags, tags: []}]\n", "rule 'a' actions[0].tags: required"),
    ("rules:\n  - name: a\n    conditions: []\n", "a rule with no actions and no stop does nothing"),
    ("rules:\n  - name: a\n    stop: maybe\n    actions: [{action: stop}]\n", "rule 'a' stop: expected true or false"),
    ("rules:\n  - name: a\n    mach: any\n    actions: [{action: stop}]\n", "rule 'a' mach: unknown key"),
    ("rules:\n  - {name: a, actions: [{action: stop}]}\n  - {name: a, actions: [{action: stop}]}\n",
     "rule 'a': the name is used twice in the rules for every account"),
    ("rule:\n  - name: a\n", "the file must be a mapping with a `rules:` list"),
    ("rules: [\n", "not valid YAML"),
])
def test_mistakes_are_clear(text: str, expected: str) -> None:
    assert any(expected in p for p in problems_of(text)), problems_of(text)


def test_every_problem_is_reported_at_once() -> None:
    text = ("rules:\n  - name: a\n    conditions: [{field: subject, op: regex, value: '('}]\n"
            "    actions: [{action: assign-user}]\n  - name: b\n    actions: [{action: fly}]\n")
    problems = problems_of(text)
    assert len(problems) == 3
    assert str(InvalidRules(problems)).startswith("3 problem(s) in the rules, nothing was changed:")


def test_same_name_in_two_accounts_is_fine() -> None:
    text = ("rules:\n  - {name: a, account: x, actions: [{action: stop}]}\n"
            "  - {name: a, account: y, actions: [{action: stop}]}\n  - {name: a, actions: [{action: stop}]}\n")
    assert len(read_rules(text)) == 3
