"""The decision, as a pure function: (message, rules) → which rules matched, why, and the
ordered actions. No database, no clock, no I/O; `routing/actions.py` does the acting.

- Rules are tried in the order given (the stage passes the account's rules by position,
  then the rules for every account). A disabled rule never matches.
- `match: all` needs every condition, `match: any` one of them; a rule without
  conditions matches every message.
- A matching rule with `stop` ends the evaluation: later rules are reported as not
  evaluated and none of their actions appear.
- Actions come out in rule order, then in the order each rule lists them; where two set
  the same thing (two assignments), `actions.py` applies both and the later one stays.
- What an action needs from the message is resolved here: the pratica code captured from
  the subject, the linked company's agent. When it cannot be resolved the action is
  left out and the rule's outcome says why.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from routing.conditions import ConditionOutcome, check
from routing.routable import RoutableMessage
from routing.rule import Action, Rule


@dataclass(frozen=True, slots=True)
class PlannedAction:
    rule: str
    action: Action  # resolved: link-pratica has its code, set-agent its agent


@dataclass(frozen=True, slots=True)
class RuleOutcome:
    rule: str
    account: str | None
    evaluated: bool  # False: disabled, or an earlier rule stopped the evaluation
    matched: bool
    reason: str
    conditions: tuple[ConditionOutcome, ...] = ()
    actions: tuple[PlannedAction, ...] = ()
    skipped: tuple[str, ...] = ()  # actions left out, each with its reason
    stopped: bool = False  # this rule matched and ends the evaluation


@dataclass(frozen=True, slots=True)
class Evaluation:
    rules: tuple[RuleOutcome, ...]
    actions: tuple[PlannedAction, ...]
    stopped_by: str | None = None

    @property
    def matched(self) -> tuple[str, ...]:
        return tuple(r.rule for r in self.rules if r.matched)


def _summary(rule: Rule, outcomes: Sequence[ConditionOutcome], matched: bool) -> str:
    if not outcomes:
        return "matched: the rule has no conditions, it matches every message"
    held = [o for o in outcomes if o.matched]
    failed = [o for o in outcomes if not o.matched]
    if rule.match == "all":
        if matched:
            return f"matched: all {len(outcomes)} condition(s) hold"
        return "not matched: " + "; ".join(f"{o.condition} does not hold ({o.reason})" for o in failed)
    if matched:
        return f"matched: {len(held)} of {len(outcomes)} condition(s) hold, any is enough: " + \
            "; ".join(o.condition for o in held)
    return f"not matched: none of the {len(outcomes)} condition(s) holds"


def _resolve(action: Action, msg: RoutableMessage) -> Action | str:
    """The action with what it needs from the message, or why it cannot be taken."""
    if action.kind == "set-agent" and action.agent is None:
        if msg.company is None:
            return "set-agent: the message is not linked to a company"
        if not msg.company.agent:
            return f"set-agent: the company {msg.company.name!r} has no agent"
        return replace(action, agent=msg.company.agent)
    if action.kind == "link-pratica" and action.from_subject is not None:
        found = action.from_subject.search(msg.subject)
        if found is None:
            return f"link-pratica: the subject does not match /{action.from_subject.pattern}/"
        groups = found.groupdict()
        code = groups.get("code") or next((g for g in found.groups() if g), None) or found.group(0)
        code = " ".join(code.split())[:120]
        if not code:
            return f"link-pratica: /{action.from_subject.pattern}/ captured an empty code"
        return replace(action, code=code, from_subject=None)
    return action


def evaluate_rule(rule: Rule, msg: RoutableMessage) -> RuleOutcome:
    if not rule.enabled:
        return RuleOutcome(rule.name, rule.account, evaluated=False, matched=False, reason="disabled")
    outcomes = tuple(check(c, msg) for c in rule.conditions)
    if not outcomes:
        matched = True
    elif rule.match == "all":
        matched = all(o.matched for o in outcomes)
    else:
        matched = any(o.matched for o in outcomes)
    planned: list[PlannedAction] = []
    skipped: list[str] = []
    if matched:
        for action in rule.actions:
            resolved = _resolve(action, msg)
            if isinstance(resolved, str):
                skipped.append(resolved)
            else:
                planned.append(PlannedAction(rule.name, resolved))
    return RuleOutcome(rule.name, rule.account, evaluated=True, matched=matched,
                       reason=_summary(rule, outcomes, matched), conditions=outcomes, actions=tuple(planned),
                       skipped=tuple(skipped), stopped=matched and rule.stop)


def evaluate(message: RoutableMessage, rules: Sequence[Rule]) -> Evaluation:
    """Which rules match `message`, why each one does or does not, and the actions."""
    results: list[RuleOutcome] = []
    stopped_by: str | None = None
    for rule in rules:
        if stopped_by is not None:
            results.append(RuleOutcome(rule.name, rule.account, evaluated=False, matched=False,
                                       reason=f"not evaluated: rule {stopped_by!r} matched and stops the evaluation"))
            continue
        outcome = evaluate_rule(rule, message)
        results.append(outcome)
        if outcome.stopped:
            stopped_by = rule.name
    actions = tuple(a for r in results for a in r.actions)
    return Evaluation(tuple(results), actions, stopped_by)
