"""`casella rules explain MESSAGE_ID`: which rule matches one message and why, condition
by condition, with today's rules (disabled ones too) on the message as it is now, and
what the rules did to it in the past (its `rule:*` history). Nothing is changed."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from casella.blobs import BlobStore
from casella.errors import NotFound
from casella.models import Message, MessageEvent
from routing.evaluate import Evaluation, RuleOutcome, evaluate
from routing.route import routables
from routing.stored_rules import load_rules


def _outcome_json(outcome: RuleOutcome) -> dict[str, Any]:
    return {
        "rule": outcome.rule, "account": outcome.account, "evaluated": outcome.evaluated,
        "matched": outcome.matched, "reason": outcome.reason, "stops": outcome.stopped,
        "conditions": [{"condition": c.condition, "matched": c.matched, "reason": c.reason}
                       for c in outcome.conditions],
        "actions": [p.action.describe() for p in outcome.actions],
        "skipped": list(outcome.skipped),
    }


def explain(session: Session, blobs: BlobStore | None, message_id: int) -> dict[str, Any]:
    row = session.get(Message, message_id)
    if row is None:
        raise NotFound(f"no message {message_id}; `casella message list` shows them")
    book = load_rules(session, [row.account_id], enabled_only=False)
    rules = book.for_account(row.account_id)
    (msg,) = routables(session, [row], blobs=blobs, rules=rules, all_headers=True)
    evaluation: Evaluation = evaluate(msg, rules)
    history = [{"at": e.at.isoformat(), "rule": e.actor.removeprefix("rule:"), "action": e.action, "detail": e.detail}
               for e in session.scalars(select(MessageEvent).where(MessageEvent.message_id == row.id,
                                                                   MessageEvent.actor.like("rule:%"))
                                        .order_by(MessageEvent.id))]
    return {
        "message": {"id": row.id, "account": msg.account, "subject": row.subject, "from": row.from_addr,
                    "direction": row.direction, "pec_kind": msg.pec_kind or None,
                    "company": msg.company.name if msg.company else None, "sender_unknown": msg.sender_unknown},
        "matched": list(evaluation.matched),
        "stopped_by": evaluation.stopped_by,
        "actions": [{"rule": p.rule, "action": p.action.describe()} for p in evaluation.actions],
        "rules": [_outcome_json(o) for o in evaluation.rules],
        "history": history,
    }


def explain_lines(data: dict[str, Any]) -> list[str]:
    """The explanation for a person reading a terminal."""
    m = data["message"]
    lines = [f"message {m['id']} in {m['account']}: {m['subject']!r} from {m['from'] or '(no sender)'}"]
    if not data["rules"]:
        lines.append("no rules for this account: `casella rules import FILE.yaml` adds them")
    for r in data["rules"]:
        mark = "MATCH" if r["matched"] else "  -  "
        scope = f" [{r['account']}]" if r["account"] else " [every account]"
        lines.append(f"{mark} {r['rule']}{scope}: {r['reason']}")
        for c in r["conditions"]:
            lines.append(f"        {'yes' if c['matched'] else 'no '}  {c['condition']}  ({c['reason']})")
        lines.extend(f"        ->   {a}" for a in r["actions"])
        lines.extend(f"        skip {s}" for s in r["skipped"])
        if r["stops"]:
            lines.append("        stop: later rules are not evaluated")
    if not data["matched"] and data["rules"]:
        lines.append("no rule matches this message")
    if data["history"]:
        lines.append("what rules did to it:")
        lines.extend(f"  {h['at'][:19]} {h['rule']}: {h['action']} {h['detail']}" for h in data["history"])
    return lines
