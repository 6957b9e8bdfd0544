"""Plain data (YAML, or the JSON stored in `routing_rule`) → validated `Rule`s.

Every problem is collected, not just the first, and each names the rule and the field:
`rule 'fatture' conditions[1].value: bad regex 'Pratica (': missing ), unterminated
subpattern at position 8`. A regex that does not compile is refused here, so evaluation
never meets one.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from routing.conditions import FIELDS, OPERATORS, fold
from routing.errors import InvalidRules
from routing.rule import ACTION_KINDS, Action, Condition, Rule

NAME = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
HEADER_NAME = re.compile(r"^[!-9;-~]+$")  # printable ASCII without ':' (RFC 5322 field name)
RULE_KEYS = ("name", "description", "account", "enabled", "match", "conditions", "actions", "stop")
CONDITION_KEYS = ("field", "op", "value", "negate")
ACTION_KEYS: dict[str, tuple[str, ...]] = {
    "assign-user": ("user",), "assign-group": ("group",), "set-agent": ("agent",),
    "move": ("folder", "account"), "add-tags": ("tags",), "link-pratica": ("code", "from-subject", "title"),
    "make-public": (), "stop": (),
}
DEFAULT_OP = {"sender-unknown": "equals", "direction": "equals"}
MAX_NAME = 120
FIELD_NAMES = ", ".join(sorted(f if f != "header" else "header:<Name>" for f in FIELDS))


class _Problems:
    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, where: str, text: str) -> None:
        self.items.append(f"{where}: {text}")


def _keys(data: dict[str, Any], allowed: Sequence[str], where: str, problems: _Problems, sep: str = ".") -> None:
    for key in data:
        if key not in allowed:
            problems.add(f"{where}{sep}{key}", f"unknown key; expected one of {', '.join(allowed) or '(none)'}")


def _text(value: Any, where: str, problems: _Problems, *, what: str = "a text") -> str | None:
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        problems.add(where, f"expected {what}, got {value!r} (quote it in YAML)")
        return None
    text = str(value).strip()
    if not text:
        problems.add(where, "must not be empty")
        return None
    if len(text) > MAX_NAME and what != "a regex":
        problems.add(where, f"longer than {MAX_NAME} characters")
        return None
    return text


def _regex(value: str, where: str, problems: _Problems) -> re.Pattern[str] | None:
    try:
        return re.compile(value, re.IGNORECASE)
    except re.error as exc:
        problems.add(where, f"bad regex {value!r}: {exc}")
        return None


def parse_condition(data: Any, where: str, problems: _Problems) -> Condition | None:
    if not isinstance(data, dict):
        problems.add(where, "expected a mapping like {field: subject, op: contains, value: fattura}")
        return None
    _keys(data, CONDITION_KEYS, where, problems)
    field = data.get("field")
    if not isinstance(field, str) or not field:
        problems.add(f"{where}.field", f"required; one of {FIELD_NAMES}")
        return None
    field = field.strip().lower() if not field.lower().startswith("header:") else "header:" + field[7:].strip()
    base = "header" if field.startswith("header:") else field
    if base not in FIELDS or field == "header":
        problems.add(f"{where}.field", f"unknown field {field!r}; one of {FIELD_NAMES}")
        return None
    if base == "header" and not HEADER_NAME.match(field[7:]):
        problems.add(f"{where}.field", f"{field[7:]!r} is not a header name")
        return None
    spec = FIELDS[base]
    op = data.get("op", DEFAULT_OP.get(base))
    if op not in spec.ops:
        known = "" if op in OPERATORS or op is None else f"unknown operator {op!r}; "
        problems.add(f"{where}.op", f"{known}{field} takes {', '.join(spec.ops)}" if op is not None
                     else f"required; {field} takes {', '.join(spec.ops)}")
        return None
    negate = data.get("negate", False)
    if not isinstance(negate, bool):
        problems.add(f"{where}.negate", f"expected true or false, got {negate!r}")
        return None
    raw = data.get("value")
    if op == "exists":
        if raw is not None:
            problems.add(f"{where}.value", "exists takes no value (use negate: true for 'does not exist')")
            return None
        return Condition(field, op, (), negate)
    if base == "sender-unknown":
        if isinstance(raw, str) and raw.strip().lower() in ("true", "false"):
            raw = raw.strip().lower() == "true"
        if not isinstance(raw, bool):
            problems.add(f"{where}.value", f"sender-unknown takes true or false, got {raw!r}")
            return None
        return Condition(field, op, ("true" if raw else "false",), negate)
    if raw is None:
        problems.add(f"{where}.value", f"required for {op}")
        return None
    items = raw if isinstance(raw, list) else [raw]
    if not items:
        problems.add(f"{where}.value", "an empty list matches nothing")
        return None
    values: list[str] = []
    for n, item in enumerate(items):
        at = f"{where}.value" + (f"[{n}]" if isinstance(raw, list) else "")
        text = _text(item, at, problems, what="a regex" if op == "regex" else "a text")
        if text is None:
            return None
        if op == "equals" and spec.choices and fold(text) not in spec.choices:
            problems.add(at, f"{field} is one of {', '.join(spec.choices)}, not {text!r}")
            return None
        if op == "domain-is":
            text = text.lower().lstrip("@")
            if "@" in text or " " in text or "." not in text.strip("."):
                problems.add(at, f"{text!r} is not a domain (e.g. edilnord.it)")
                return None
        values.append(text)
    patterns = tuple(p for p in (_regex(v, f"{where}.value", problems) for v in values) if p) if op == "regex" else ()
    if op == "regex" and len(patterns) != len(values):
        return None
    return Condition(field, op, tuple(values), negate, patterns)


def parse_action(data: Any, where: str, problems: _Problems) -> Action | None:
    if not isinstance(data, dict) or "action" not in data:
        problems.add(where, "expected a mapping like {action: add-tags, tags: [fattura]}")
        return None
    kind = data["action"]
    if kind not in ACTION_KINDS:
        problems.add(f"{where}.action", f"unknown action {kind!r}; one of {', '.join(ACTION_KINDS)}")
        return None
    _keys({k: v for k, v in data.items() if k != "action"}, ACTION_KEYS[kind], where, problems)
    args: dict[str, str] = {}
    for key in ACTION_KEYS[kind]:
        if key == "tags" or data.get(key) is None:
            continue
        text = _text(data[key], f"{where}.{key}", problems, what="a regex" if key == "from-subject" else "a text")
        if text is None:
            return None
        args[key] = text
    required = {"assign-user": "user", "assign-group": "group"}.get(kind)
    if required and required not in args:
        problems.add(f"{where}.{required}", f"required for {kind}")
        return None
    if kind == "move" and not args:
        problems.add(where, "move needs a folder, an account, or both")
        return None
    if kind == "add-tags":
        raw = data.get("tags")
        items = [raw] if isinstance(raw, str) else raw if isinstance(raw, list) and raw else None
        if items is None:
            problems.add(f"{where}.tags", "required: a tag or a list of tags")
            return None
        tags = [_text(t, f"{where}.tags[{n}]", problems) for n, t in enumerate(items)]
        if any(t is None for t in tags):
            return None
        return Action(kind, tags=tuple(dict.fromkeys(t for t in tags if t)))
    if kind == "link-pratica":
        if ("code" in args) == ("from-subject" in args):
            problems.add(where, "link-pratica needs exactly one of code or from-subject")
            return None
        pattern = _regex(args["from-subject"], f"{where}.from-subject", problems) if "from-subject" in args else None
        if "from-subject" in args and pattern is None:
            return None
        return Action(kind, code=args.get("code"), from_subject=pattern, title=args.get("title"))
    return Action(kind, user=args.get("user"), group=args.get("group"), agent=args.get("agent"),
                  folder=args.get("folder"), account=args.get("account"))


def parse_rule(data: Any, where: str, problems: _Problems) -> Rule | None:
    if not isinstance(data, dict):
        problems.add(where, "expected a mapping with name, conditions and actions")
        return None
    name = data.get("name")
    if isinstance(name, str) and NAME.match(name) and len(name) <= MAX_NAME:
        where = f"rule {name!r}"
    else:
        problems.add(f"{where} name", f"required, kebab-case (like fatture-fornitori), got {name!r}")
        name = None
    _keys(data, RULE_KEYS, where, problems, sep=" ")
    before = len(problems.items)
    match = data.get("match", "all")
    if match not in ("all", "any"):
        problems.add(f"{where} match", f"all or any, got {match!r}")
    flags = {k: data.get(k, default) for k, default in (("enabled", True), ("stop", False))}
    for key, value in flags.items():
        if not isinstance(value, bool):
            problems.add(f"{where} {key}", f"expected true or false, got {value!r}")
    description = data.get("description") or ""
    if not isinstance(description, str):
        problems.add(f"{where} description", "expected a text")
    account = data.get("account")
    if account is not None:
        account = _text(account, f"{where} account", problems)
    lists: dict[str, list[Any]] = {}
    for key in ("conditions", "actions"):
        value = data.get(key) or []
        if not isinstance(value, list):
            problems.add(f"{where} {key}", "expected a list")
            value = []
        lists[key] = value
    conditions = [parse_condition(c, f"{where} conditions[{n}]", problems) for n, c in enumerate(lists["conditions"])]
    actions = [parse_action(a, f"{where} actions[{n}]", problems) for n, a in enumerate(lists["actions"])]
    stop = flags["stop"] is True or any(a is not None and a.kind == "stop" for a in actions)
    kept = tuple(a for a in actions if a is not None and a.kind != "stop")
    if not kept and not stop and not lists["actions"]:
        problems.add(f"{where} actions", "a rule with no actions and no stop does nothing")
    if name is None or len(problems.items) != before:
        return None
    return Rule(name=name, conditions=tuple(c for c in conditions if c is not None), actions=kept, match=match,
                stop=stop, enabled=flags["enabled"] is True, account=account, description=description.strip())


def parse_rules(items: Sequence[Any], *, source: str = "rules") -> list[Rule]:
    """Validate every rule; raise InvalidRules listing every problem, or return them all."""
    problems = _Problems()
    rules = [parse_rule(item, f"{source}[{n}]", problems) for n, item in enumerate(items)]
    seen: set[tuple[str | None, str]] = set()
    for rule in rules:
        if rule is None:
            continue
        key = (rule.account, rule.name)
        if key in seen:
            scope = f"account {rule.account!r}" if rule.account else "the rules for every account"
            problems.add(f"rule {rule.name!r}", f"the name is used twice in {scope}")
        seen.add(key)
    if problems.items:
        raise InvalidRules(problems.items)
    return [r for r in rules if r is not None]
