"""Reading a message: the page (GET /mail/{id}), its sanitised body as a document of its
own for a sandboxed iframe (/body), attachments, the raw source, "mark as unread" and
"show remote images".

Every route starts from `visible_message`: a message the user may not read answers 404 on
the page, the body, each attachment and the raw source alike, the same as a message that
does not exist. Opening the page records who read it (ReadLog) and marks it read for that
user (MessageSeen).
"""

from __future__ import annotations

import base64
import re
from datetime import datetime
from email.header import decode_header, make_header
from email.parser import BytesHeaderParser
from email.policy import compat32
from typing import Any
from urllib.parse import quote

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, load_only
from starlette.exceptions import HTTPException
from starlette.responses import Response

from casella.access import visible_clause
from casella.blobs import BlobStore
from casella.errors import NotFound
from casella.models import (
    Account,
    Attachment,
    Company,
    Contact,
    Message,
    MessageSeen,
    ReadLog,
    Registration,
    RemoteContentAllow,
)
from mailserver.report_stage import reports_for
from webmail.context import Ctx, route
from webmail.i18n import _
from webmail.mailbox import adjust_unread, bump_read_state, folder_tree, visible_message
from webmail.mentions import mark_seen
from webmail.presence import key_for
from webmail.sanitize import linkify_text, sanitise_html

# Shown in the browser (?inline=1) only for these types; everything else is downloaded.
INLINE_TYPES = {"image/png", "image/jpeg", "image/gif", "image/webp", "application/pdf"}
INLINE_IMAGE_TYPES = INLINE_TYPES - {"application/pdf"}
# Never sent with their own type, even as a download: the browser could render them.
_ACTIVE_TYPES = ("html", "xml", "svg", "javascript", "ecmascript", "xhtml")
_MIME = re.compile(r"[a-z0-9][a-z0-9!#$&^_.+-]*/[a-z0-9][a-z0-9!#$&^_.+-]*")
MAX_HEADER_BYTES = 256 << 10
THREAD_LIMIT = 200
MAX_INLINE_IMAGE_BYTES = 10 << 20  # per body, all cid: images together


def body_csp(remote_images: bool) -> str:
    """The policy of the body document: it may load nothing but its own images (and remote
    ones once the user asked), run nothing, submit nothing, frame nothing."""
    img = "'self' data:" + (" https: http:" if remote_images else "")
    return (f"default-src 'none'; img-src {img}; style-src 'unsafe-inline'; font-src 'none'; "
            "form-action 'none'; base-uri 'none'; frame-ancestors 'self'; sandbox allow-popups "
            "allow-popups-to-escape-sandbox")


def _message(ctx: Ctx) -> Message:
    assert ctx.grant is not None
    msg = visible_message(ctx.db, ctx.grant, int(ctx.params["message_id"]))
    if msg is None:
        raise HTTPException(404)
    return msg


def _blobs(ctx: Ctx) -> BlobStore:
    return BlobStore(ctx.settings.blob_dir)


def _blob(ctx: Ctx, digest: str) -> bytes:
    try:
        return _blobs(ctx).get(digest)
    except NotFound:
        raise HTTPException(503, _("The stored file is missing: ask an administrator to restore it from the "
                                   "backup.")) from None


def _remote_allowed(ctx: Ctx, msg: Message) -> tuple[bool, bool]:
    """(allowed for this view, allowed for the sender always)."""
    assert ctx.user is not None
    sender = (msg.from_addr or "").strip().lower()
    always = bool(sender) and ctx.db.get(RemoteContentAllow, (ctx.user.id, sender)) is not None
    return always or ctx.query.get("remote") == "1", always


def _cid_map(session: Session, msg: Message) -> dict[str, Attachment]:
    rows = session.scalars(select(Attachment).where(Attachment.message_id == msg.id, Attachment.content_id.is_not(None)))
    return {a.content_id.strip("<>").lower(): a for a in rows if a.content_id}


def _sanitised(ctx: Ctx, msg: Message, allow_remote: bool) -> Any:
    """The sanitised HTML body. Inline `cid:` images become data: URIs of the message's own
    inline attachments: the body document is sandboxed without allow-same-origin, so the
    browser treats its requests as cross-site and sends no (SameSite) session cookie with
    them: an attachment URL would answer the sign-in page, not the image."""
    cids = _cid_map(ctx.db, msg)
    budget = [MAX_INLINE_IMAGE_BYTES]

    def cid_url(cid: str) -> str | None:
        att = cids.get(cid.lower())
        if att is None or att.content_type.lower() not in INLINE_IMAGE_TYPES or att.size > budget[0]:
            return None
        try:
            data = _blobs(ctx).get(att.sha256)
        except NotFound:
            return None
        budget[0] -= len(data)
        return f"data:{att.content_type.lower()};base64,{base64.b64encode(data).decode()}"

    return sanitise_html(msg.body_html, allow_remote=allow_remote, cid_url=cid_url)


def _raw_headers(ctx: Ctx, msg: Message) -> list[tuple[str, str]]:
    """The header block of the raw message, read from the start of the blob only."""
    try:
        path = _blobs(ctx).path_for(msg.sha256)
        with path.open("rb") as fh:
            head = fh.read(MAX_HEADER_BYTES)
    except (NotFound, OSError):
        return []
    for sep in (b"\r\n\r\n", b"\n\n"):
        at = head.find(sep)
        if at >= 0:
            head = head[:at + len(sep)]
            break
    parsed = BytesHeaderParser(policy=compat32).parsebytes(head)
    return [(str(k), _readable(v)) for k, v in parsed.items()]


def _readable(value: Any) -> str:
    """A header value with its RFC 2047 encoded words decoded (as written when they cannot be)."""
    text = str(value)
    if "=?" not in text:
        return text
    try:
        return str(make_header(decode_header(text)))
    except (ValueError, LookupError, UnicodeError):
        return text


def _when(value: str | None) -> datetime | None:
    try:
        return datetime.fromisoformat(value) if value else None
    except ValueError:
        return None


def _reports(session: Session, message_id: int) -> list[dict[str, Any]]:
    """Bounces and read receipts about a sent message (mailserver's reports_for), each
    with `at_dt` (a datetime for the template)."""
    return [{**r, "at_dt": _when(r.get("at"))} for r in reports_for(session, message_id)]


def _pec(ctx: Ctx, msg: Message, account: Account | None) -> dict[str, Any] | None:
    from pec.status import pec_json

    assert ctx.grant is not None
    data = pec_json(ctx.db, msg, account, ctx.settings.pec_delivery_timeout_hours)
    if data is None:
        return None
    linked = [r["id"] for r in data["receipts"]] + ([data["refers_to"]] if data.get("refers_to") else [])
    data["visible"] = _visible_ids(ctx, linked)
    for row in [*data["deliveries"], *data["receipts"]]:
        row["at_dt"] = _when(row.get("at"))
    return data


def _visible_ids(ctx: Ctx, ids: list[int]) -> set[int]:
    assert ctx.grant is not None
    if not ids:
        return set()
    return set(ctx.db.scalars(select(Message.id).where(Message.id.in_(ids), visible_clause(ctx.grant))))


def _thread(ctx: Ctx, msg: Message) -> list[Message]:
    """The other messages of the conversation this user may read, oldest first."""
    assert ctx.grant is not None
    if msg.thread_id is None:
        return []
    return list(ctx.db.scalars(
        select(Message)  # only what templates/mail/_msg_thread.html shows, not every body
        .options(load_only(Message.id, Message.from_name, Message.from_addr, Message.subject, Message.date))
        .where(Message.thread_id == msg.thread_id, Message.id != msg.id, visible_clause(ctx.grant))
        .order_by(Message.date.asc().nulls_first(), Message.id.asc()).limit(THREAD_LIMIT)))


def _back(ctx: Ctx, msg: Message) -> str:
    back = ctx.query.get("back", "")
    if back.startswith("/mail") and not back.startswith("//") and "\\" not in back:
        return back
    return f"/mail?mailbox={msg.account_id}&folder={quote(msg.folder, safe='')}"


def _record_reading(ctx: Ctx, msg: Message) -> int | None:
    """One write, one commit: the read log row, the user's presence on the conversation
    (collision detection), and the read state when this user had not read it yet (two tabs
    opening it at once: the second finds the row the first just wrote). When the message
    went from unread to read, the user's new read-state version; else None."""
    assert ctx.user is not None
    user = ctx.user
    try:
        with ctx.write() as w:
            w.add(ReadLog(message_id=msg.id, user_id=user.id))
            mark_seen(w, user.id, msg.id)  # its @mentions of this user
            ctx.app.presence.touch(key_for(msg), user.username, "viewing", user.display_name or user.username,
                                   session=w)
            if w.get(MessageSeen, (user.id, msg.id)) is not None:
                return None
            w.add(MessageSeen(user_id=user.id, message_id=msg.id))
            version = bump_read_state(w, user.id)
        return version
    except IntegrityError:
        with ctx.write() as w:
            w.add(ReadLog(message_id=msg.id, user_id=user.id))
            mark_seen(w, user.id, msg.id)
            ctx.app.presence.touch(key_for(msg), user.username, "viewing", user.display_name or user.username,
                                   session=w)
        return None


@route("/mail/{message_id:int}", ("GET",))
def show(ctx: Ctx) -> Response:
    from webmail.work import panel

    assert ctx.user is not None and ctx.grant is not None
    msg = _message(ctx)
    version = _record_reading(ctx, msg)
    if version is not None:
        adjust_unread(ctx.user.id, msg.account_id, msg.folder, -1, version)
    # ctx.db may read from before the write above: the counts, when not kept, from a fresh
    # session, and the read-state version this request wrote or the one it started with.
    with ctx.app.db.reading() as fresh:
        tree = folder_tree(fresh, ctx.grant, ctx.user.id, ctx.user.seen_version if version is None else version)

    db = ctx.db
    account = db.get(Account, msg.account_id)
    reg = db.scalar(select(Registration).where(Registration.message_id == msg.id))
    contact = db.get(Contact, msg.contact_id) if msg.contact_id else None
    company = db.get(Company, msg.company_id) if msg.company_id else None
    work = panel(ctx, msg, present=True)  # its tags and pratiche are the header's too
    attachments = list(db.scalars(select(Attachment).where(Attachment.message_id == msg.id)
                                  .order_by(Attachment.position)))
    html_lower = msg.body_html.lower()
    in_body = {a.id for a in attachments if a.content_id and f"cid:{a.content_id.strip('<>').lower()}" in html_lower}
    allow_remote, always = _remote_allowed(ctx, msg)
    as_text = ctx.query.get("text") == "1" or not msg.body_html.strip()
    # Only the count is shown here (the body is its own document, /body): no inline images read.
    blocked = sanitise_html(msg.body_html).blocked if msg.body_html.strip() and not allow_remote else 0
    reports = _reports(db, msg.id)
    from webmail.views.compose import sent_state, state_label

    outbound = sent_state(ctx, msg.id) if msg.direction == "out" else None
    body_url = f"/mail/{msg.id}/body" + ("?remote=1" if allow_remote and not always else "")
    return ctx.render(
        "mail/message.html", msg=msg, account=account, registration=reg, contact=contact, company=company,
        pratiche=work["pratiche"], tags=work["tags"], attachments=attachments, in_body=in_body,
        inline_types=INLINE_TYPES, inline_images=INLINE_IMAGE_TYPES, pec=_pec(ctx, msg, account), reports=reports,
        report_links=_visible_ids(ctx, [r["report_message"] for r in reports if r.get("report_message")]),
        thread=_thread(ctx, msg), back=_back(ctx, msg), as_text=as_text, has_html=bool(msg.body_html.strip()),
        text_html=linkify_text(msg.body_text) if as_text else None, body_url=body_url, blocked=blocked,
        allow_remote=allow_remote, always_remote=always, headers=_raw_headers(ctx, msg),
        tree=tree, filters=None, work=work, outbound=outbound,
        outbound_label=state_label(outbound["state"]) if outbound else None)


@route("/mail/{message_id:int}/body", ("GET",), heavy=True)
def body(ctx: Ctx) -> Response:
    msg = _message(ctx)
    allow_remote, _always = _remote_allowed(ctx, msg)
    if msg.body_html.strip():
        content = _sanitised(ctx, msg, allow_remote).html
    else:
        allow_remote = False
        content = f'<pre class="body-text">{linkify_text(msg.body_text)}</pre>'
    ctx.remote_images = allow_remote
    response = ctx.render("mail/_msg_body.html", content=content)
    response.headers["Content-Security-Policy"] = body_csp(allow_remote)
    return response


@route("/mail/{message_id:int}/unread", ("POST",))
def mark_unread(ctx: Ctx) -> Response:
    assert ctx.user is not None
    msg = _message(ctx)
    with ctx.write() as w:
        gone = w.execute(delete(MessageSeen).where(MessageSeen.user_id == ctx.user.id,
                                                   MessageSeen.message_id == msg.id)).rowcount
        version = bump_read_state(w, ctx.user.id) if gone else None
    if version is not None:
        adjust_unread(ctx.user.id, msg.account_id, msg.folder, +1, version)
    back = ctx.f("back")
    if not (back.startswith("/mail") and not back.startswith("//") and "\\" not in back):
        back = _back(ctx, msg)
    return ctx.redirect(back)


@route("/mail/{message_id:int}/remote", ("POST",))
def allow_remote(ctx: Ctx) -> Response:
    """Show remote images: for this message (a query parameter, nothing stored) or for
    every message from this sender (a RemoteContentAllow row for this user)."""
    assert ctx.user is not None
    msg = _message(ctx)
    sender = (msg.from_addr or "").strip().lower()
    if ctx.f("scope") == "sender" and sender:
        with ctx.write() as w:
            if w.get(RemoteContentAllow, (ctx.user.id, sender[:320])) is None:
                w.add(RemoteContentAllow(user_id=ctx.user.id, sender=sender[:320]))
            ctx.audit(w, "remote-content:allow", f"sender:{sender[:200]}")
        return ctx.redirect(f"/mail/{msg.id}")
    return ctx.redirect(f"/mail/{msg.id}?remote=1")


@route("/mail/{message_id:int}/remote/forget", ("POST",))
def forget_remote(ctx: Ctx) -> Response:
    """Stop showing remote images from this sender."""
    assert ctx.user is not None
    msg = _message(ctx)
    sender = (msg.from_addr or "").strip().lower()
    with ctx.write() as w:
        w.execute(delete(RemoteContentAllow).where(RemoteContentAllow.user_id == ctx.user.id,
                                                   RemoteContentAllow.sender == sender[:320]))
    return ctx.redirect(f"/mail/{msg.id}")


def content_disposition(kind: str, filename: str) -> str:
    """RFC 6266: an ASCII fallback name (quotes, backslashes, controls and non-ASCII
    replaced) and the exact name as RFC 5987 `filename*`."""
    name = filename.replace("\r", " ").replace("\n", " ").strip() or "attachment"
    fallback = "".join(c if 32 <= ord(c) < 127 and c not in '"\\%;' else "_" for c in name)
    return f"{kind}; filename=\"{fallback}\"; filename*=UTF-8''{quote(name, safe='')}"


def _download_type(content_type: str) -> str:
    ctype = (content_type or "").strip().lower()
    if not _MIME.fullmatch(ctype) or any(t in ctype for t in _ACTIVE_TYPES):
        return "application/octet-stream"
    return ctype


@route("/mail/{message_id:int}/attachments/{attachment_id:int}", ("GET",), heavy=True)
def attachment(ctx: Ctx) -> Response:
    msg = _message(ctx)
    att = ctx.db.scalar(select(Attachment).where(Attachment.id == int(ctx.params["attachment_id"]),
                                                 Attachment.message_id == msg.id))
    if att is None:
        raise HTTPException(404)
    data = _blob(ctx, att.sha256)
    ctype = _download_type(att.content_type)
    inline = ctx.query.get("inline") == "1" and ctype in INLINE_TYPES
    headers = {
        "Content-Disposition": content_disposition("inline" if inline else "attachment", att.filename),
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "default-src 'none'; img-src 'self' data:; style-src 'unsafe-inline'; "
                                   "frame-ancestors 'self'" + ("" if ctype == "application/pdf" else "; sandbox"),
        "Cache-Control": "private, no-store",
    }
    return Response(data, media_type=ctype, headers=headers)


@route("/mail/{message_id:int}/raw", ("GET",), heavy=True)
def raw(ctx: Ctx) -> Response:
    """The message exactly as received: shown as text, or downloaded as an .eml file."""
    msg = _message(ctx)
    data = _blob(ctx, msg.sha256)
    headers = {"X-Content-Type-Options": "nosniff", "Content-Security-Policy": "default-src 'none'; sandbox",
               "Cache-Control": "private, no-store"}
    if ctx.query.get("download") == "1":
        headers["Content-Disposition"] = content_disposition("attachment", f"message-{msg.id}.eml")
        return Response(data, media_type="message/rfc822", headers=headers)
    response = Response(data, headers=headers)
    response.headers["content-type"] = "text/plain; charset=utf-8"
    return response


ROUTES = [show, body, mark_unread, allow_remote, forget_remote, attachment, raw]
