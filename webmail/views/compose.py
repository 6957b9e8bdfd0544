"""Writing mail: compose, reply, reply all, forward (inline or as an attachment), drafts
saved as the user types, and sending through mailserver/compose.py — the same checks and
the same store-and-queue path as SMTP submission, with no SMTP connection to ourselves.

    GET  /compose                  new; ?reply= ?reply_all= ?forward= ?forward_attached= ?draft=
    GET  /compose/signature        the resolved signature for a From address (preview)
    POST /compose/draft            save the form as a draft (compose.js, every few seconds)
    POST /compose/send             check, submit, delete the draft, show where it went
    GET  /compose/sent/{id}        the sent message's protocol number and queue state
    GET  /drafts                   the user's drafts; POST /drafts/{id}/delete
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from email import policy
from email.parser import BytesHeaderParser
from email.utils import getaddresses
from typing import Any

from markupsafe import escape
from sqlalchemy import select
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse, PlainTextResponse, Response

from casella.blobs import BlobStore
from casella.errors import CasellaError
from casella.models import (
    Account,
    Attachment,
    Draft,
    Message,
    Registration,
    format_protocol,
    utcnow,
)
from casella.models.outbound import OutboundMessage
from mailserver.signatures import html_to_text
from webmail.context import Ctx, route
from webmail.i18n import _
from webmail.mailbox import forget_counts, visible_message
from webmail.sanitize import sanitise_composed
from webmail.views.saved import saved_views_for

MODES = ("new", "reply", "reply-all", "forward", "forward-attached")
SOURCE_PARAMS = {"reply": "reply", "reply_all": "reply-all", "forward": "forward",
                 "forward_attached": "forward-attached"}
REPLY_PREFIX = re.compile(r"^\s*(re|r|aw|sv)\s*(\[\d+\])?\s*:", re.IGNORECASE)
FORWARD_PREFIX = re.compile(r"^\s*(fwd?|i|inoltro|wg|tr)\s*:", re.IGNORECASE)
ADDRESS = re.compile(r"^[^@\s<>(),;:\"]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9-]+)*$")


# ---------------------------------------------------------------- the form's values
@dataclass
class Form:
    draft_id: int | None = None
    mode: str = "new"
    source_id: int | None = None
    sender: str = ""
    to: str = ""
    cc: str = ""
    bcc: str = ""
    subject: str = ""
    body: str = ""
    body_html: str = ""  # written in the formatted editor, sanitised; empty: plain text
    receipt: bool = False
    signature: bool = True
    forwarded: list[dict[str, Any]] = field(default_factory=list)  # the original's attachments, by reference
    uploaded: list[dict[str, Any]] = field(default_factory=list)  # files saved with the draft (blob store)


def html_document(body: str) -> str:
    """The HTML part of a message written in the formatted editor."""
    return ('<!doctype html>\n<html><head><meta charset="utf-8"></head>\n'
            f'<body style="font-family: sans-serif">\n{body}\n</body></html>\n')


def senders(ctx: Ctx) -> list[tuple[str, int, str]]:
    """(address, account id, account name) the user may send as (mailserver/identities.py)."""
    from mailserver.identities import allowed_senders

    assert ctx.user is not None
    allowed = allowed_senders(ctx.db, ctx.user.id)
    names = dict(ctx.db.execute(select(Account.id, Account.name)).all())
    return sorted(((a, i, names.get(i, "")) for a, i in allowed.items()), key=lambda t: (t[2], t[0]))


def _source(ctx: Ctx, message_id: int | None) -> Message | None:
    """The original of a reply or forward; 404 when the user may not read it."""
    if message_id is None:
        return None
    assert ctx.grant is not None
    msg = visible_message(ctx.db, ctx.grant, message_id)
    if msg is None:
        raise HTTPException(404)
    return msg


def _int(value: str | None) -> int | None:
    return int(value) if value and value.isdigit() else None


def _person(name: str, addr: str) -> str:
    if not name or name == addr:
        return addr
    quoted = name.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{quoted}" <{addr}>' if any(c in name for c in ',;:<>@()[]"') else f"{name} <{addr}>"


def _people(items: list[dict[str, str]] | None) -> list[tuple[str, str]]:
    return [(p.get("name") or "", p.get("addr") or "") for p in items or [] if p.get("addr")]


def _raw_headers(ctx: Ctx, msg: Message) -> Any:
    try:
        raw = BlobStore(ctx.settings.blob_dir).get(msg.sha256)
    except (OSError, CasellaError):
        return None
    return BytesHeaderParser(policy=policy.default).parsebytes(raw)


def _reply_target(ctx: Ctx, msg: Message) -> list[tuple[str, str]]:
    """Who a reply goes to: Reply-To, else From; our own sent message: its recipients."""
    if msg.direction == "out":
        return _people(msg.to)
    headers = _raw_headers(ctx, msg)
    reply_to = headers.get_all("Reply-To") if headers is not None else None
    if reply_to:
        found = [(n, a) for n, a in getaddresses([str(v) for v in reply_to]) if a]
        if found:
            return found
    return [(msg.from_name, msg.from_addr)] if msg.from_addr else []


def _own_addresses(ctx: Ctx) -> set[str]:
    from mailserver.identities import allowed_senders, internal_addresses, normalise

    assert ctx.user is not None
    own = set(internal_addresses(ctx.db)) | set(allowed_senders(ctx.db, ctx.user.id))
    if ctx.user.email:
        own.add(normalise(ctx.user.email))
    return own


def _prefixed(prefix: str, subject: str, pattern: re.Pattern[str]) -> str:
    subject = subject.strip()
    return subject if pattern.match(subject) else f"{prefix} {subject}".strip()


def _original_text(msg: Message) -> str:
    if msg.body_text.strip():
        return msg.body_text
    if msg.body_html.strip():
        return html_to_text(msg.body_html)
    return ""


def _when(msg: Message) -> str:
    from webmail.context import _format_datetime

    return _format_datetime(msg.date or msg.stored_at, "long")


def _original_html(msg: Message) -> str:
    """The original's HTML as the formatted editor may hold it (sanitise_composed: text,
    structure and links; no images, styles or anything remote); "" for plain-text mail."""
    return sanitise_composed(msg.body_html) if msg.body_html.strip() else ""


def _wrote(msg: Message) -> str:
    return _("On %(date)s, %(who)s wrote:") % {"date": _when(msg), "who": _person(msg.from_name, msg.from_addr)}


def _quote(msg: Message) -> str:
    lines = _original_text(msg).replace("\r\n", "\n").rstrip("\n").split("\n")
    quoted = "\n".join(">" + (" " + line if line and not line.startswith(">") else line) for line in lines)
    return "\n\n" + _wrote(msg) + "\n" + quoted + "\n"


def _quote_html(msg: Message, original: str) -> str:
    """A reply's start in the formatted editor: an empty line to write on, then the
    original's HTML in a <blockquote> (the text alternative quotes it with "> ")."""
    return f"<p><br></p><p>{escape(_wrote(msg))}</p><blockquote>{original}</blockquote>"


def _forward_rows(msg: Message) -> list[str]:
    rows = [_("---------- Forwarded message ----------"),
            _("From: %(who)s") % {"who": _person(msg.from_name, msg.from_addr)},
            _("Date: %(date)s") % {"date": _when(msg)},
            _("Subject: %(subject)s") % {"subject": msg.subject}]
    if msg.to:
        rows.append(_("To: %(who)s") % {"who": ", ".join(_person(n, a) for n, a in _people(msg.to))})
    if msg.cc:
        rows.append(_("Cc: %(who)s") % {"who": ", ".join(_person(n, a) for n, a in _people(msg.cc))})
    return rows


def _forward_block(msg: Message) -> str:
    return ("\n\n" + "\n".join(_forward_rows(msg)) + "\n\n"
            + _original_text(msg).replace("\r\n", "\n").rstrip("\n") + "\n")


def _forward_html(msg: Message, original: str) -> str:
    head = "<br>".join(str(escape(row)) for row in _forward_rows(msg))
    return f"<p><br></p><p>{head}</p>{original}"


def _forwardable(ctx: Ctx, msg: Message) -> list[dict[str, Any]]:
    return [{"id": a.id, "name": a.filename, "type": a.content_type, "size": a.size, "sha256": a.sha256}
            for a in ctx.db.scalars(select(Attachment).where(Attachment.message_id == msg.id)
                                    .order_by(Attachment.position)) if not a.inline]


def prefill(ctx: Ctx, mode: str, msg: Message) -> Form:
    """The form of a reply, reply all or forward of `msg`."""
    form = Form(mode=mode, source_id=msg.id)
    if mode in ("reply", "reply-all"):
        target = _reply_target(ctx, msg)
        form.to = ", ".join(_person(n, a) for n, a in target)
        form.subject = _prefixed("Re:", msg.subject, REPLY_PREFIX)
        form.body = _quote(msg)
        original = _original_html(msg)
        if original:  # HTML mail is answered in the formatted editor, its HTML quoted
            form.body_html = _quote_html(msg, original)
        if mode == "reply-all":
            from mailserver.identities import normalise

            skip = _own_addresses(ctx) | {normalise(a) for _, a in target}
            others: list[str] = []
            for name, addr in _people(msg.to) + _people(msg.cc):
                if normalise(addr) not in skip:
                    skip.add(normalise(addr))
                    others.append(_person(name, addr))
            form.cc = ", ".join(others)
        # Reply from the address the original was sent to, when the user may send as it.
        mine = {a: a for a, _, _ in senders(ctx)}
        for _name, addr in _people(msg.to) + _people(msg.cc):
            if addr.lower() in mine:
                form.sender = addr.lower()
                break
    else:
        form.subject = _prefixed("Fwd:", msg.subject, FORWARD_PREFIX)
        if mode == "forward":
            form.body = _forward_block(msg)
            original = _original_html(msg)
            if original:
                form.body_html = _forward_html(msg, original)
            form.forwarded = _forwardable(ctx, msg)
    return form


def from_draft(ctx: Ctx, draft: Draft) -> Form:
    form = Form(draft_id=draft.id, mode=draft.mode if draft.mode in MODES else "new",
                source_id=draft.source_message_id, to=draft.to, cc=draft.cc, bcc=draft.bcc, subject=draft.subject,
                body=draft.body_text, body_html=sanitise_composed(draft.body_html or ""),
                receipt=draft.request_receipt)
    extra = [a for a in draft.attachments or [] if isinstance(a, dict)]
    form.sender = next((str(a.get("sender")) for a in extra if a.get("kind") == "meta" and a.get("sender")), "")
    form.signature = next((bool(a.get("signature")) for a in extra if a.get("kind") == "meta"), True)
    assert ctx.grant is not None
    if form.source_id is not None and visible_message(ctx.db, ctx.grant, form.source_id) is None:
        form.source_id, form.mode = None, "new"  # the original is gone, or no longer the user's to read
    if form.mode == "forward" and form.source_id is not None:
        msg = _source(ctx, form.source_id)
        assert msg is not None
        kept = {int(a["id"]) for a in extra if a.get("kind") == "forwarded" and str(a.get("id", "")).isdigit()}
        form.forwarded = [a for a in _forwardable(ctx, msg) if a["id"] in kept]
    form.uploaded = draft_uploads(draft)
    return form


def draft_uploads(draft: Draft | None) -> list[dict[str, Any]]:
    """Files uploaded with a draft: {name, type, sha256, size}."""
    if draft is None:
        return []
    return [{"name": str(a.get("name") or "attachment"), "type": str(a.get("type") or ""), "sha256": str(a["sha256"]),
             "size": int(a.get("size") or 0)}
            for a in draft.attachments or [] if isinstance(a, dict) and a.get("kind") == "upload" and a.get("sha256")]


def from_post(ctx: Ctx) -> Form:
    assert ctx.form is not None and ctx.user is not None
    mode = ctx.f("mode", "new")
    mode = mode if mode in MODES else "new"
    source = _int(ctx.f("source")) if mode != "new" else None
    form = Form(draft_id=_int(ctx.f("draft_id")), mode=mode, source_id=source, sender=ctx.f("from").strip().lower(),
                to=ctx.f("to"), cc=ctx.f("cc"), bcc=ctx.f("bcc"), subject=ctx.f("subject"),
                body=ctx.f("body").replace("\r\n", "\n"), receipt=ctx.f("receipt") == "1",
                signature=ctx.f("signature") == "1")
    if ctx.f("format") == "html":
        form.body_html = sanitise_composed(ctx.f("body_html"))
        if form.body_html:  # the text alternative comes from what will be sent, not from the browser
            form.body = html_to_text(form.body_html)
    if mode == "forward" and source is not None:
        msg = _source(ctx, source)
        assert msg is not None
        kept = {int(v) for v in ctx.form.getlist("forwarded") if isinstance(v, str) and v.isdigit()}
        form.forwarded = [a for a in _forwardable(ctx, msg) if a["id"] in kept]
    elif source is not None:
        _source(ctx, source)  # 404 for a message the user may not read
    if form.draft_id is not None:  # only the files of the user's own draft, never a blob named by hash alone
        draft = ctx.db.get(Draft, form.draft_id)
        kept = {v for v in ctx.form.getlist("uploaded") if isinstance(v, str)}
        if draft is not None and draft.user_id == ctx.user.id:
            form.uploaded = [a for a in draft_uploads(draft) if a["sha256"] in kept]
    return form


# ---------------------------------------------------------------- pages
def _render(ctx: Ctx, form: Form, *, error: str | None = None, status_code: int = 200) -> Response:
    from mailserver.signatures import render_for
    from webmail.mailbox import folder_tree

    assert ctx.user is not None and ctx.grant is not None
    choices = senders(ctx)
    chosen = next((c for c in choices if c[0] == form.sender), choices[0] if choices else None)
    signature = None
    if chosen is not None:
        try:
            signature = render_for(ctx.db, ctx.user.id, chosen[1], chosen[0])
        except CasellaError:
            signature = None
    source = visible_message(ctx.db, ctx.grant, form.source_id) if form.source_id else None
    return ctx.render("compose.html", status_code=status_code, form=form, senders=choices,
                      chosen=chosen[0] if chosen else "", signature=signature, source=source, error=error,
                      max_size=ctx.settings.smtp_max_size, tree=folder_tree(ctx.db, ctx.grant, ctx.user.id),
                      filters=None, saved_views=saved_views_for(ctx))


@route("/compose", ("GET",))
def compose(ctx: Ctx) -> Response:
    assert ctx.user is not None
    draft_id = _int(ctx.query.get("draft"))
    if draft_id is not None:
        draft = ctx.db.get(Draft, draft_id)
        if draft is None or draft.user_id != ctx.user.id:
            raise HTTPException(404)
        return _render(ctx, from_draft(ctx, draft))
    for param, mode in SOURCE_PARAMS.items():
        if param in ctx.query:
            msg = _source(ctx, _int(ctx.query.get(param)) or 0)
            assert msg is not None
            return _render(ctx, prefill(ctx, mode, msg))
    form = Form(to=ctx.query.get("to", ""), subject=ctx.query.get("subject", ""))
    return _render(ctx, form)


@route("/compose/signature", ("GET",))
def signature_preview(ctx: Ctx) -> Response:
    """The signature a message from this address would get, as plain text."""
    from mailserver.signatures import render_for

    assert ctx.user is not None
    sender = ctx.query.get("from", "").strip().lower()
    found = next((c for c in senders(ctx) if c[0] == sender), None)
    if found is None:
        return PlainTextResponse("", status_code=404)
    try:
        rendered = render_for(ctx.db, ctx.user.id, found[1], found[0])
    except CasellaError as exc:
        return PlainTextResponse(str(exc), status_code=400)
    return PlainTextResponse(rendered.text if rendered else "")


def _draft_attachments(form: Form) -> list[dict[str, Any]]:
    meta = {"kind": "meta", "sender": form.sender, "signature": form.signature}
    return [meta, *({"kind": "forwarded", "id": a["id"], "name": a["name"], "type": a["type"],
                     "sha256": a["sha256"], "size": a["size"]} for a in form.forwarded),
            *({"kind": "upload", **a} for a in form.uploaded)]


@route("/compose/draft", ("POST",))
def save_draft(ctx: Ctx) -> Response:
    """Save the form as the user's draft; answers {"id": …, "saved_at": …}."""
    assert ctx.user is not None
    form = from_post(ctx)
    limit = ctx.settings.smtp_max_size
    blobs = BlobStore(ctx.settings.blob_dir)
    total = sum(a["size"] for a in form.uploaded + form.forwarded)
    for upload in _uploads(ctx):
        data = upload.file.read()
        total += len(data)
        if total > limit:
            message = _("The attachments are %(size)s MB, more than the %(limit)s MB allowed; send fewer or "
                        "smaller files.") % {"size": f"{total / 1e6:.1f}", "limit": f"{limit / 1e6:.1f}"}
            return JSONResponse({"error": message}, status_code=413)
        form.uploaded.append({"name": upload.filename or "attachment", "type": upload.content_type or "",
                              "sha256": blobs.put(data), "size": len(data)})
    with ctx.write() as w:
        draft = w.get(Draft, form.draft_id) if form.draft_id is not None else None
        if form.draft_id is not None and (draft is None or draft.user_id != ctx.user.id):
            # Another user's, or gone (sent or deleted meanwhile): never saved again under a new id.
            raise HTTPException(404)
        if draft is None:
            draft = Draft(user_id=ctx.user.id)
            w.add(draft)
        account_id = next((i for a, i, _ in senders(ctx) if a == form.sender), None)
        draft.account_id = account_id
        draft.mode = form.mode
        draft.source_message_id = form.source_id
        draft.to, draft.cc, draft.bcc = form.to, form.cc, form.bcc
        draft.subject, draft.body_text, draft.request_receipt = form.subject, form.body, form.receipt
        draft.body_html = form.body_html
        draft.attachments = _draft_attachments(form)
        draft.updated_at = utcnow()
        w.flush()
        draft_id = draft.id
    if not ctx.request.headers.get("x-csrf-token"):  # the form's own button, without JavaScript
        return ctx.redirect(f"/compose?draft={draft_id}")
    return JSONResponse({"id": draft_id, "saved_at": utcnow().isoformat(),
                         "uploads": [{"name": a["name"], "size": a["size"], "sha256": a["sha256"]}
                                     for a in form.uploaded]})


@route("/drafts", ("GET",))
def drafts(ctx: Ctx) -> Response:
    from webmail.mailbox import folder_tree

    assert ctx.user is not None and ctx.grant is not None
    rows = list(ctx.db.scalars(select(Draft).where(Draft.user_id == ctx.user.id).order_by(Draft.updated_at.desc())))
    return ctx.render("compose.html", drafts=rows, tree=folder_tree(ctx.db, ctx.grant, ctx.user.id), filters=None,
                      saved_views=saved_views_for(ctx),
                      notice=_("Draft deleted.") if ctx.query.get("deleted") else None)


@route("/drafts/{draft_id:int}/delete", ("POST",))
def delete_draft(ctx: Ctx) -> Response:
    assert ctx.user is not None
    with ctx.write() as w:
        draft = w.get(Draft, ctx.params["draft_id"])
        if draft is None or draft.user_id != ctx.user.id:
            raise HTTPException(404)
        w.delete(draft)
    if ctx.request.headers.get("x-csrf-token"):
        return JSONResponse({"deleted": ctx.params["draft_id"]})
    return ctx.redirect("/drafts?deleted=1")


# ---------------------------------------------------------------- sending
def split_addresses(text: str) -> tuple[list[str], list[str]]:
    """Addresses typed in one field (comma or semicolon separated): (valid, invalid)."""
    good, bad = [], []
    pieces = [p.strip() for p in _split_outside_quotes(text) if p.strip()]
    for piece in pieces:
        parsed = getaddresses([piece])
        addr = parsed[0][1].strip() if len(parsed) == 1 else ""
        if addr and ADDRESS.match(addr) and "." in addr.rpartition("@")[2]:
            good.append(piece)
        else:
            bad.append(piece)
    return good, bad


def _split_outside_quotes(text: str) -> list[str]:
    out, cur, quoted, angle = [], [], False, False
    for c in text:
        if c == '"' and not angle:
            quoted = not quoted
        elif c == "<" and not quoted:
            angle = True
        elif c == ">" and not quoted:
            angle = False
        if c in ",;\n" and not quoted and not angle:
            out.append("".join(cur))
            cur = []
        else:
            cur.append(c)
    out.append("".join(cur))
    return out


def _uploads(ctx: Ctx) -> list[UploadFile]:
    assert ctx.form is not None
    return [u for u in ctx.form.getlist("attachments") if isinstance(u, UploadFile) and u.filename]


@route("/compose/send", ("POST",), heavy=True)
def send(ctx: Ctx) -> Response:
    from mailserver.compose import Compose, ComposeAttachment, submit
    from mailserver.errors import RecipientUnreachable, SenderNotAllowed

    assert ctx.user is not None and ctx.grant is not None
    form = from_post(ctx)
    problems: list[str] = []
    fields: dict[str, list[str]] = {}
    for name, label in (("to", _("To")), ("cc", _("Cc")), ("bcc", _("Bcc"))):
        good, bad = split_addresses(getattr(form, name))
        fields[name] = good
        for piece in bad:
            problems.append(_("%(field)s: “%(value)s” is not an e-mail address; write it as name@example.it")
                            % {"field": label, "value": piece})
    if not any(fields.values()) and not problems:
        problems.append(_("Add at least one recipient in To, Cc or Bcc."))
    choice = next((c for c in senders(ctx) if c[0] == form.sender), None)
    if choice is None:
        problems.append(_("Choose the address to send from; if there is none, ask an administrator to let you "
                          "send from a mailbox."))
    attachments: list[ComposeAttachment] = []
    total = 0
    limit = ctx.settings.smtp_max_size
    for upload in _uploads(ctx):
        data = upload.file.read()
        total += len(data)
        attachments.append(ComposeAttachment(upload.filename or "attachment", upload.content_type or "", data))
    blobs = BlobStore(ctx.settings.blob_dir)
    try:
        for ref in form.forwarded + form.uploaded:
            data = blobs.get(ref["sha256"])
            total += len(data)
            attachments.append(ComposeAttachment(ref["name"], ref["type"], data))
        if form.mode == "forward-attached" and form.source_id is not None:
            original = _source(ctx, form.source_id)
            assert original is not None
            data = blobs.get(original.sha256)
            total += len(data)
            name = re.sub(r"[^\w .-]+", "_", original.subject or "message").strip()[:80] or "message"
            attachments.append(ComposeAttachment(f"{name}.eml", "message/rfc822", data))
    except (OSError, CasellaError):
        problems.append(_("An attachment of the original message cannot be read; remove it and try again."))
    if total > limit:
        problems.append(_("The attachments are %(size)s MB, more than the %(limit)s MB allowed; send fewer or "
                          "smaller files.") % {"size": f"{total / 1e6:.1f}", "limit": f"{limit / 1e6:.1f}"})
    if problems:
        return _render(ctx, form, error="\n".join(problems), status_code=400)
    assert choice is not None
    compose_value = Compose(
        account_id=choice[1], from_address=choice[0], from_name=ctx.user.display_name or "",
        to=tuple(fields["to"]), cc=tuple(fields["cc"]), bcc=tuple(fields["bcc"]), subject=form.subject,
        text=form.body, html=html_document(form.body_html) if form.body_html else None,
        attachments=tuple(attachments),
        in_reply_to=form.source_id if form.mode in ("reply", "reply-all") else None,
        request_read_receipt=form.receipt, signature=form.signature)
    try:
        queued = submit(ctx.settings, ctx.app.db, ctx.user, compose_value)
    except SenderNotAllowed as exc:
        return _render(ctx, form, status_code=403,
                       error=_("You may not send from this address.") + " " + str(exc))
    except RecipientUnreachable as exc:
        return _render(ctx, form, status_code=400,
                       error=_("This mailbox can only write to Casella's own mailboxes.") + " " + str(exc))
    except CasellaError as exc:
        return _render(ctx, form, status_code=400, error=_("The message was not sent.") + " " + str(exc))
    with ctx.write() as w:
        if form.draft_id is not None:
            draft = w.get(Draft, form.draft_id)
            if draft is not None and draft.user_id == ctx.user.id:
                w.delete(draft)
        ctx.audit(w, "compose:send", f"message:{queued.message_id}", mode=form.mode, source=form.source_id,
                  outbound=queued.outbound_id)
    forget_counts()
    return ctx.redirect(f"/compose/sent/{queued.message_id}")


def sent_state(ctx: Ctx, message_id: int) -> dict[str, Any]:
    """Protocol number and queue state of a sent message (also for the message page)."""
    reg = ctx.db.scalar(select(Registration).where(Registration.message_id == message_id))
    out = ctx.db.scalar(select(OutboundMessage).where(OutboundMessage.message_id == message_id)
                        .order_by(OutboundMessage.id.desc()).limit(1))
    return {"protocol": format_protocol(reg.year, reg.number) if reg else None,
            "state": out.state if out else None, "error": out.last_error if out else None,
            "rcpt": out.rcpt_tos if out else []}


@route("/compose/sent/{message_id:int}", ("GET",))
def sent(ctx: Ctx) -> Response:
    from webmail.mailbox import folder_tree

    assert ctx.user is not None and ctx.grant is not None
    msg = visible_message(ctx.db, ctx.grant, ctx.params["message_id"])
    if msg is None:
        raise HTTPException(404)
    state = sent_state(ctx, msg.id)
    if ctx.query.get("format") == "json":
        return JSONResponse({**state, "label": state_label(state["state"])})
    return ctx.render("compose.html", sent=msg, state=state, state_label=state_label(state["state"]),
                      tree=folder_tree(ctx.db, ctx.grant, ctx.user.id), filters=None,
                      saved_views=saved_views_for(ctx))


def state_label(state: str | None) -> str:
    labels = {"queued": _("Queued"), "sending": _("Sending"), "sent": _("Sent"),
              "deferred": _("Deferred, will retry"), "failed": _("Failed")}
    return labels.get(state or "", state or _("Unknown"))


ROUTES = [compose, signature_preview, save_draft, drafts, delete_draft, send, sent]
