"""The protocol register: list and filter the registrations, open their message, cancel one
(admin, with a reason: the only change a registration ever allows — database triggers refuse
any other), and export the daily register as CSV or PDF.

Non-admins see only the registrations of messages they may read (visible_clause).
"""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, Select, and_, func, or_, select
from starlette.exceptions import HTTPException
from starlette.responses import Response

from casella.access import visible_clause
from casella.models import Message, ProtocolRegistry, Registration, format_protocol
from protocol_registry.assign import parse_number
from protocol_registry.errors import BadProtocolNumber
from protocol_registry.register import cancel
from webmail.context import Ctx, route
from webmail.i18n import _
from webmail.register_pdf import DailyEntry, list_hash, register_pdf
from webmail.security import csv_cell

PAGE = 100


def _zone(ctx: Ctx) -> ZoneInfo:
    return ZoneInfo(ctx.settings.timezone)


def _day(value: str) -> date | None:
    try:
        return date.fromisoformat(value) if value else None
    except ValueError:
        return None


def _day_start(day: date, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, time.min, tzinfo=zone).astimezone(UTC)


def _base(ctx: Ctx) -> Select[Any]:
    assert ctx.grant is not None
    return (select(Registration, ProtocolRegistry.code)
            .join(Message, Message.id == Registration.message_id)
            .join(ProtocolRegistry, ProtocolRegistry.id == Registration.registry_id)
            .where(visible_clause(ctx.grant)))


@route("/protocol", ("GET",))
def register_list(ctx: Ctx) -> Response:
    q = ctx.query
    zone = _zone(ctx)
    registry = q.get("registry") or ""
    direction = q.get("direction") if q.get("direction") in ("in", "out") else ""
    text = (q.get("q") or "").strip()
    since, until = _day(q.get("from", "")), _day(q.get("to", ""))
    page = int(q.get("page")) if (q.get("page") or "").isdigit() and int(q.get("page")) > 0 else 1
    where: list[ColumnElement[bool]] = []
    if registry:
        where.append(ProtocolRegistry.code == registry)
    if direction:
        where.append(Registration.direction == direction)
    if since:
        where.append(Registration.registered_at >= _day_start(since, zone))
    if until:
        where.append(Registration.registered_at < _day_start(until + timedelta(days=1), zone))
    if text:
        like = f"%{text.lower()}%"
        parts = [func.lower(Registration.subject).like(like), func.lower(Registration.correspondent).like(like)]
        if text.isdigit():  # a number, in any year
            parts.append(Registration.number == int(text))
        else:
            try:
                year, number = parse_number(text)  # 2026/0000042: that year's
                parts.append(and_(Registration.year == year, Registration.number == number))
            except BadProtocolNumber:
                pass
        where.append(or_(*parts))
    rows = ctx.db.execute(_base(ctx).where(*where)
                          .order_by(Registration.registered_at.desc(), Registration.id.desc())
                          .offset((page - 1) * PAGE).limit(PAGE + 1)).all()
    more = len(rows) > PAGE
    registries = list(ctx.db.scalars(select(ProtocolRegistry.code).order_by(ProtocolRegistry.code)))
    filters = {"registry": registry, "direction": direction, "q": text, "from": q.get("from", ""),
               "to": q.get("to", "")}
    today = datetime.now(zone).date().isoformat()
    return ctx.render("protocol/list.html", rows=rows[:PAGE], more=more, page=page, registries=registries,
                      filters=filters, today=today, format_protocol=format_protocol,
                      notice=q.get("notice"), zone=zone)


@route("/protocol/{reg_id:int}/cancel", ("POST",), roles=("admin",))
def register_cancel(ctx: Ctx) -> Response:
    assert ctx.user is not None
    reason = ctx.f("reason").strip()
    reg = ctx.db.scalar(_base(ctx).with_only_columns(Registration).where(Registration.id == ctx.params["reg_id"]))
    if reg is None:
        raise HTTPException(404)
    if not reason:
        return ctx.render("error.html", status_code=400, status=400,
                          message=_("Write the reason for the cancellation, then try again."))
    if reg.cancelled_at is not None:
        return ctx.render("error.html", status_code=400, status=400,
                          message=_("%(n)s is cancelled already.") % {"n": reg.label})
    with ctx.write() as w:
        row = w.get(Registration, reg.id)
        assert row is not None
        cancel(w, row, reason=reason, user=ctx.user.username)
        ctx.audit(w, "protocol-cancel", f"registration:{row.id}", number=row.label, reason=reason)
    return ctx.redirect("/protocol?notice=cancelled")


def daily_entries(ctx: Ctx, day: date, registry: str | None) -> list[DailyEntry]:
    zone = _zone(ctx)
    query = _base(ctx).where(Registration.registered_at >= _day_start(day, zone),
                             Registration.registered_at < _day_start(day + timedelta(days=1), zone))
    if registry:
        query = query.where(ProtocolRegistry.code == registry)
    out = []
    for reg, code in ctx.db.execute(query.order_by(ProtocolRegistry.code, Registration.year, Registration.number)):
        out.append(DailyEntry(
            registry=code, number=format_protocol(reg.year, reg.number),
            time=reg.registered_at.astimezone(zone).strftime("%H:%M:%S"), direction=reg.direction,
            correspondent=reg.correspondent, subject=reg.subject, sha256=reg.sha256,
            cancelled_at=reg.cancelled_at.astimezone(zone).strftime("%Y-%m-%d %H:%M") if reg.cancelled_at else "",
            cancelled_by=reg.cancelled_by or "", cancel_reason=reg.cancel_reason or ""))
    return out


CSV_HEADER = ["registry", "number", "date", "time", "direction", "correspondent", "subject", "sha256",
              "cancelled_at", "cancelled_by", "cancel_reason"]


@route("/protocol/daily", ("GET",), heavy=True)
def register_daily(ctx: Ctx) -> Response:
    zone = _zone(ctx)
    day = _day(ctx.query.get("date", "")) or datetime.now(zone).date()
    fmt = ctx.query.get("format", "csv")
    if fmt not in ("csv", "pdf"):
        raise HTTPException(400, _("Choose the format csv or pdf."))
    registry = ctx.query.get("registry") or None
    if registry is not None and not registry.replace("-", "").replace("_", "").isalnum():
        raise HTTPException(400, _("Choose a registry from the list."))
    entries = daily_entries(ctx, day, registry)
    with ctx.write() as w:
        ctx.audit(w, "protocol-export", f"daily:{day.isoformat()}", format=fmt, registry=registry,
                  entries=len(entries), hash=list_hash(entries))
    name = f"registro-protocollo-{registry + '-' if registry else ''}{day.isoformat()}"
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.writer(buf, delimiter=";")
        writer.writerow(CSV_HEADER)
        for e in entries:
            writer.writerow([csv_cell(v) for v in (
                e.registry, e.number, day.isoformat(), e.time, e.direction, e.correspondent, e.subject, e.sha256,
                e.cancelled_at, e.cancelled_by, e.cancel_reason)])
        return Response(("\ufeff" + buf.getvalue()).encode("utf-8"), media_type="text/csv; charset=utf-8",
                        headers={"Content-Disposition": f'attachment; filename="{name}.csv"'})
    pdf = register_pdf(entries, day=day, registry=registry or ", ".join(sorted({e.registry for e in entries})) or "—")
    return Response(pdf, media_type="application/pdf",
                    headers={"Content-Disposition": f'attachment; filename="{name}.pdf"'})


ROUTES = [register_list, register_cancel, register_daily]
