"""`casella rules import FILE.yaml` and `casella rules export`: the rules as a file an
admin writes by hand.

    rules:
      - name: fatture-fornitori
        account: ufficio          # leave out for a rule over every account
        match: all                # all | any
        conditions:
          - {field: subject, op: contains, value: fattura}
          - {field: from, op: domain-is, value: edilnord.it}
        actions:
          - {action: assign-group, group: amministrazione}
          - {action: link-pratica, from-subject: 'Pratica (\\d{4}-\\d+)'}
        stop: true

Import validates the whole file (syntax, fields, operators, regexes, and that the named
accounts, groups and users exist) before it changes anything, then, in one transaction,
replaces the rules of every account the file names (and the rules for every account if
the file has any). The order in the file is the evaluation order.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml
from sqlalchemy.orm import Session

from routing.errors import InvalidRules
from routing.rule import Rule
from routing.stored_rules import ordered_rules, replace_rules
from routing.validate import parse_rules

HEADER = ("# Casella routing rules, in evaluation order (each account's own, then those for every account).\n"
          "# Edit and load back with `casella rules import FILE`; fields, operators and actions:\n"
          "# routing/conditions.py and routing/validate.py.\n")


@dataclass(frozen=True, slots=True)
class ImportReport:
    written: dict[str, int]  # rules per account ("*": the rules for every account)
    replaced: tuple[str, ...]  # the scopes whose previous rules were removed


def read_rules(text: str) -> list[Rule]:
    """Parse and validate a rules file; raise InvalidRules naming every problem."""
    try:
        data: Any = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InvalidRules([f"not valid YAML: {exc}"]) from None
    if data is None:
        data = {"rules": []}
    if not isinstance(data, dict) or "rules" not in data:
        raise InvalidRules(["the file must be a mapping with a `rules:` list at the top"])
    extra = sorted(str(k) for k in data if k != "rules")
    if extra:
        raise InvalidRules([f"unknown top-level key(s) {', '.join(extra)}; only `rules:` is read"])
    items = data["rules"] or []
    if not isinstance(items, list):
        raise InvalidRules(["`rules:` must be a list of rules"])
    return parse_rules(items)


def import_rules(session: Session, text: str, *, replace_all: bool = False) -> ImportReport:
    rules = read_rules(text)
    scopes: set[str | None] | None = None if replace_all else {r.account for r in rules}
    written = replace_rules(session, rules, scopes)
    replaced = ("every account",) if scopes is None else tuple(
        sorted(s or "* (every account)" for s in scopes))
    return ImportReport(written, replaced)


class _Dumper(yaml.SafeDumper):
    """Conditions and actions on one line each, as a person would write them."""


def _flow_dict(dumper: yaml.SafeDumper, data: dict[str, Any]) -> yaml.Node:
    return dumper.represent_mapping("tag:yaml.org,2002:map", data, flow_style=True)


class _Flow(dict[str, Any]):
    pass


_Dumper.add_representer(_Flow, _flow_dict)


def dump_rules(rules: list[Rule]) -> str:
    data = []
    for rule in rules:
        item = rule.as_dict()
        item["conditions"] = [_Flow(c) for c in item["conditions"]]
        item["actions"] = [_Flow(a) for a in item["actions"]]
        data.append(item)
    body = yaml.dump({"rules": data}, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=120)
    return HEADER + body


def export_rules(session: Session) -> str:
    return dump_rules(ordered_rules(session))
