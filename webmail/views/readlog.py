"""The read log (GDPR): who opened which message, and when. Admin and manager only.

- GET /readlog?user=USERNAME   what that user opened, newest first (keyset pages);
- GET /readlog?message=ID      who opened that message;
- add `format=csv` to either for a CSV export, itself recorded in the audit log.

The rows come from `read_log`, written when a message is opened. A message the viewer
may not read (someone's personal mailbox) still shows as a row — the log is complete —
but without its subject or link.
"""

from __future__ import annotations

import base64
import csv
import io
import json
import re
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from sqlalchemy import and_, case, or_, select
from starlette.exceptions import HTTPException
from starlette.responses import Response, StreamingResponse

from casella.access import visible_clause
from casella.models import Account, Message, ReadLog, User
from webmail.context import Ctx, route
from webmail.i18n import _
from webmail.mailbox import visible_message
from webmail.security import csv_cell

ROLES = ("admin", "manager")
PAGE_SIZE = 100
CSV_LIMIT = 200_000


def _cursor(at: datetime, row_id: int) -> str:
    return base64.urlsafe_b64encode(json.dumps([at.isoformat(), row_id]).encode()).decode().rstrip("=")


def _decode(raw: str | None) -> tuple[datetime, int] | None:
    if not raw:
        return None
    try:
        at, row_id = json.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
        return datetime.fromisoformat(at), int(row_id)
    except (ValueError, TypeError):
        return None


def _query(ctx: Ctx, user: User | None, msg: Message | None) -> Any:
    assert ctx.grant is not None
    visible = visible_clause(ctx.grant)
    query = (select(ReadLog.id, ReadLog.at, ReadLog.message_id, User.username, User.display_name,
                    case((visible, Message.subject), else_=None).label("subject"),
                    case((visible, Account.name), else_=None).label("account"),
                    case((visible, Message.from_addr), else_=None).label("from_addr"),
                    visible.label("visible"))
             .join(User, User.id == ReadLog.user_id)
             .join(Message, Message.id == ReadLog.message_id)
             .join(Account, Account.id == Message.account_id))
    if user is not None:
        query = query.where(ReadLog.user_id == user.id)
    if msg is not None:
        query = query.where(ReadLog.message_id == msg.id)
    return query.order_by(ReadLog.at.desc(), ReadLog.id.desc())


@route("/readlog", ("GET",), roles=ROLES, heavy=True)
def readlog(ctx: Ctx) -> Response:
    assert ctx.grant is not None
    username = ctx.query.get("user", "").strip()
    message_raw = ctx.query.get("message", "").strip()
    user = msg = None
    if username:
        user = ctx.db.scalar(select(User).where(User.username == username))
        if user is None:
            raise HTTPException(404, _("There is no user %(user)s.") % {"user": username})
    if message_raw:
        if not message_raw.isdigit():
            raise HTTPException(404)
        msg = visible_message(ctx.db, ctx.grant, int(message_raw))
        if msg is None:
            raise HTTPException(404)
    users = list(ctx.db.execute(select(User.username, User.display_name).order_by(User.username)))
    if user is None and msg is None:
        return ctx.render("readlog/index.html", users=users, rows=[], chosen=None, msg=None, next_cursor=None)
    query = _query(ctx, user, msg)
    if ctx.query.get("format") == "csv":
        return _csv(ctx, query, user, msg)
    after = _decode(ctx.query.get("after"))
    if after is not None:
        at, last = after
        query = query.where(or_(ReadLog.at < at, and_(ReadLog.at == at, ReadLog.id < last)))
    rows = ctx.db.execute(query.limit(PAGE_SIZE + 1)).all()
    more = len(rows) > PAGE_SIZE
    rows = rows[:PAGE_SIZE]
    return ctx.render("readlog/index.html", users=users, rows=rows, chosen=user, msg=msg,
                      next_cursor=_cursor(rows[-1].at, rows[-1].id) if more and rows else None)


def _csv(ctx: Ctx, query: Any, user: User | None, msg: Message | None) -> Response:
    """The whole log of the user or message (at most CSV_LIMIT rows), streamed; the export
    is written to the audit log first."""
    target = f"user:{user.username}" if user is not None else f"message:{msg.id}" if msg is not None else ""
    with ctx.write() as w:
        ctx.audit(w, "readlog:export", target, format="csv")
    db = ctx.app.db
    private = _("(private message)")  # the stream runs after the view: translate now
    header = ["at", "username", "name", "message_id", "account", "from", "subject"]

    def lines() -> Iterator[str]:
        buf = io.StringIO()
        out = csv.writer(buf)
        out.writerow(header)
        with db.reading() as s:
            for r in s.execute(query.limit(CSV_LIMIT)).yield_per(1000):
                out.writerow([csv_cell(v) for v in (r.at.isoformat(), r.username, r.display_name, r.message_id,
                                                  r.account or "", r.from_addr or "",
                                                  r.subject if r.visible else private)])
                if buf.tell() > 64_000:
                    yield buf.getvalue()
                    buf.seek(0)
                    buf.truncate()
        yield buf.getvalue()

    name = re.sub(r"[^A-Za-z0-9._-]", "_", f"readlog-{target.replace(':', '-')}.csv")
    return StreamingResponse(lines(), media_type="text/csv; charset=utf-8",
                             headers={"Content-Disposition": f'attachment; filename="{name}"'})


ROUTES = [readlog]
