"""Statistics for managers and admins: mail per day per mailbox, response times, work per
assignee, unknown senders and PEC still waiting for their delivery receipt.

Plain HTML tables with CSS-width bars, no chart library. Every count goes through
visible_clause (personal mailboxes stay private).
"""

from __future__ import annotations

import statistics
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from starlette.responses import Response

from casella.access import visible_clause
from casella.models import Account, Message, User
from webmail.context import Ctx, route
from webmail.mailbox import Filters, filter_clause

DEFAULT_DAYS = 30
MAX_DAYS = 3660


def _as_date(value: Any) -> date | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value)[:10])
    except ValueError:
        return None


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _duration(seconds: float) -> str:
    minutes = int(seconds // 60)
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes:02d} min"
    return f"{hours // 24} d {hours % 24} h"


def per_day(ctx: Ctx, since: datetime) -> dict[str, Any]:
    """{account name: {"days": [(day, in, out)], "in": n, "out": n}} with every day of the window."""
    assert ctx.grant is not None
    day = func.date(Message.date)
    rows = ctx.db.execute(select(Message.account_id, day, Message.direction, func.count())
                          .where(visible_clause(ctx.grant), Message.date >= since)
                          .group_by(Message.account_id, day, Message.direction)).all()
    names = dict(ctx.db.execute(select(Account.id, Account.name)).all())
    counts: dict[str, dict[date, dict[str, int]]] = {}
    for account_id, d, direction, n in rows:
        parsed = _as_date(d)
        if parsed is None:
            continue
        counts.setdefault(names.get(account_id, "?"), {}).setdefault(parsed, {"in": 0, "out": 0})[direction] = n
    first = since.date()
    today = datetime.now(UTC).date()
    out: dict[str, Any] = {}
    for name in sorted(counts):
        days = []
        d = first
        while d <= today:
            c = counts[name].get(d, {"in": 0, "out": 0})
            days.append((d, c.get("in", 0), c.get("out", 0)))
            d += timedelta(days=1)
        out[name] = {"days": days, "in": sum(x[1] for x in days), "out": sum(x[2] for x in days),
                     "peak": max([x[1] + x[2] for x in days] + [1])}
    return out


def response_times(ctx: Ctx, since: datetime) -> list[dict[str, Any]]:
    """Per mailbox: the median time from an inbound message to the first outbound message
    after it in the same thread (each inbound message counts once, answered or not)."""
    assert ctx.grant is not None
    rows = ctx.db.execute(select(Message.thread_id, Message.account_id, Message.direction, Message.date)
                          .where(visible_clause(ctx.grant), Message.date >= since, Message.thread_id.is_not(None))
                          .order_by(Message.thread_id, Message.date)).all()
    names = dict(ctx.db.execute(select(Account.id, Account.name)).all())
    threads: dict[int, list[Any]] = {}
    for r in rows:
        threads.setdefault(r.thread_id, []).append(r)
    waits: dict[int, list[float]] = {}
    unanswered: dict[int, int] = {}
    for msgs in threads.values():
        pending: list[Any] = []
        for m in msgs:
            if m.direction == "in":
                pending.append(m)
            elif pending:
                for p in pending:
                    waits.setdefault(p.account_id, []).append((_aware(m.date) - _aware(p.date)).total_seconds())
                pending = []
        for p in pending:
            unanswered[p.account_id] = unanswered.get(p.account_id, 0) + 1
    out = []
    for account_id in sorted(set(waits) | set(unanswered), key=lambda a: names.get(a, "")):
        w = waits.get(account_id, [])
        out.append({"account": names.get(account_id, "?"), "answered": len(w),
                    "unanswered": unanswered.get(account_id, 0),
                    "median": _duration(statistics.median(w)) if w else None})
    return out


def per_assignee(ctx: Ctx) -> list[dict[str, Any]]:
    assert ctx.grant is not None
    rows = ctx.db.execute(select(Message.assigned_user_id, Message.status, func.count())
                          .where(visible_clause(ctx.grant), Message.direction == "in")
                          .group_by(Message.assigned_user_id, Message.status)).all()
    names = {i: d or u for i, d, u in ctx.db.execute(select(User.id, User.display_name, User.username))}
    table: dict[int | None, dict[str, int]] = {}
    for user_id, status, n in rows:
        table.setdefault(user_id, {"open": 0, "pending": 0, "closed": 0})[status] = n
    return [{"user": names.get(u, "?") if u is not None else None, **c}
            for u, c in sorted(table.items(), key=lambda kv: (kv[0] is None, names.get(kv[0], "") if kv[0] else ""))]


def _count(ctx: Ctx, filters: Filters) -> int:
    assert ctx.grant is not None and ctx.user is not None
    return ctx.db.scalar(select(func.count(Message.id)).where(visible_clause(ctx.grant),
                                                              *filter_clause(filters, ctx.user.id))) or 0


@route("/stats", ("GET",), roles=("admin", "manager"), heavy=True)
def stats_page(ctx: Ctx) -> Response:
    raw = ctx.query.get("days", "")
    days = min(MAX_DAYS, max(1, int(raw))) if raw.isdigit() else DEFAULT_DAYS
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    since = today - timedelta(days=days - 1)
    return ctx.render("stats/index.html", days=days, since=since, mailboxes=per_day(ctx, since),
                      responses=response_times(ctx, since), assignees=per_assignee(ctx),
                      unknown=_count(ctx, Filters(unknown=True)), pec_pending=_count(ctx, Filters(pec_pending=True)))


ROUTES = [stats_page]
