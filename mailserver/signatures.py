"""Company signatures: render a template for a user and an account, and add it to a message.

Templates are plain text with `{variable}` fields (VARIABLES below); nothing else in them is
special, so CSS braces in an HTML template are left alone. Values are HTML-escaped in the
HTML version. A template with an unknown `{field}` is refused when it is added (the error
lists the known ones); one that reaches rendering anyway keeps the field visible, verbatim.

Which signature a message gets (`resolve`): the user's own for that account, else the
user's general one (no account), else the account's default (`--default`).

On SMTP submission the client asks with the header `X-Casella-Signature: yes` (or a
signature's name), or the account signs everything (`casella signature auto ACCOUNT --on`);
`X-Casella-Signature: no` opts out. The header is removed before the message is stored.
The text signature goes under a "-- " line at the end of the text body, the HTML one before
`</body>`; attachments, forwarded messages and S/MIME or PGP signed/encrypted messages are
never changed.
"""

from __future__ import annotations

import html
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from email import policy
from email.errors import MessageError
from email.message import EmailMessage, MIMEPart
from email.parser import BytesParser
from html.parser import HTMLParser
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from casella.errors import NotFound
from casella.models import Account, Signature, User, utcnow
from casella.users import get_user
from mailserver.errors import SignatureError
from mailserver.submit import strip_headers

log = logging.getLogger(__name__)

HEADER = "X-Casella-Signature"
VARIABLES = {
    "name": "the user's display name",
    "first_name": "the first word of the display name",
    "job_title": "the user's job title",
    "phone": "the user's phone number",
    "email": "the address the message is sent from",
    "account": "the account's name",
    "username": "the user's login name",
}
FIELD = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
YES = ("yes", "on", "true", "1", "")
NO = ("no", "off", "false", "0")
SEALED = ("multipart/signed", "multipart/encrypted", "application/pkcs7-mime", "application/x-pkcs7-mime")


@dataclass(frozen=True, slots=True)
class Rendered:
    name: str
    text: str
    html: str


# ---------------------------------------------------------------- rendering
def unknown_fields(template: str) -> list[str]:
    return sorted({m.group(1) for m in FIELD.finditer(template)} - VARIABLES.keys())


def render_template(template: str, values: Mapping[str, str], *, as_html: bool) -> str:
    def field(match: re.Match[str]) -> str:
        key = match.group(1)
        if key not in values:
            return match.group(0)
        return html.escape(values[key]) if as_html else values[key]

    return FIELD.sub(field, template)


def signature_values(user: User, account: Account, sender: str) -> dict[str, str]:
    name = (user.display_name or user.username).strip()
    return {"name": name, "first_name": name.split()[0] if name else "", "job_title": user.job_title or "",
            "phone": user.phone or "", "email": sender, "account": account.name, "username": user.username}


def render(signature: Signature, values: Mapping[str, str]) -> Rendered:
    """Both versions; a signature with only one of them gets the other derived from it."""
    text = render_template(signature.body_text, values, as_html=False).strip("\n") if signature.body_text.strip() else ""
    body = render_template(signature.body_html, values, as_html=True).strip() if signature.body_html.strip() else ""
    if not body and text:
        body = html.escape(text).replace("\n", "<br>\n")
    if not text and body:
        text = html_to_text(body)
    return Rendered(signature.name, text, body)


class _TextOfHtml(HTMLParser):
    """Lines of text, each with the number of <blockquote>s it sits in."""
    BREAKS = frozenset({"p", "div", "tr", "li", "table", "h1", "h2", "h3", "h4", "blockquote", "pre",
                        "ul", "ol"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.lines: list[list[Any]] = [[0, ""]]  # [quote depth, text]
        self.skip = 0
        self.depth = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("style", "script"):
            self.skip += 1
        elif tag == "br":
            self.lines.append([self.depth, ""])
        elif tag in self.BREAKS:
            self._block()
            if tag == "blockquote":
                self.depth += 1
                self.lines[-1][0] = self.depth

    def handle_endtag(self, tag: str) -> None:
        if tag in ("style", "script"):
            self.skip = max(0, self.skip - 1)
        elif tag in self.BREAKS:
            self._block()
            if tag == "blockquote":
                self.depth = max(0, self.depth - 1)
                self.lines[-1][0] = self.depth

    def _block(self) -> None:
        """A block starts or ends: a line break, unless the text is at a line start already."""
        if self.lines[-1][1]:
            self.lines.append([self.depth, ""])

    def handle_data(self, data: str) -> None:
        if not self.skip:
            # Runs of white space become one space, kept at the edges: "il <b>preventivo</b> è"
            # reads "il preventivo è" (the lines are stripped at the end).
            self.lines[-1][1] += re.sub(r"\s+", " ", data)


def html_to_text(markup: str) -> str:
    """The text of an HTML body, as a plain-text alternative reads: one line per block, and
    what was in a <blockquote> quoted with "> " as mail quotes are."""
    parser = _TextOfHtml()
    parser.feed(markup)
    parser.close()
    lines: list[str] = []
    for depth, text in parser.lines:
        text = text.strip()
        line = ">" * depth + (" " + text if depth and text else text)
        if not text and lines and lines[-1] == line:
            continue  # one blank line at most (blocks open and close with a break each)
        lines.append(line)
    return "\n".join(lines).strip("\n")


# ---------------------------------------------------------------- which signature
def resolve(session: Session, user_id: int, account_id: int, name: str | None = None) -> Signature | None:
    """The signature for this user sending through this account (None: there is none)."""
    if name:
        signature = session.scalar(select(Signature).where(Signature.name == name))
        if signature is None:
            raise SignatureError(f"no signature named {name!r}; `casella signature list` shows them")
        if signature.user_id not in (None, user_id) or signature.account_id not in (None, account_id):
            raise SignatureError(f"signature {name!r} belongs to another user or account; "
                                 "`casella signature list` shows whose it is")
        return signature
    mine = select(Signature).where(Signature.user_id == user_id).order_by(Signature.is_default.desc(), Signature.id)
    return (session.scalar(mine.where(Signature.account_id == account_id).limit(1))
            or session.scalar(mine.where(Signature.account_id.is_(None)).limit(1))
            or session.scalar(select(Signature).where(Signature.account_id == account_id,
                                                      Signature.user_id.is_(None), Signature.is_default.is_(True))
                              .order_by(Signature.id).limit(1)))


def render_for(session: Session, user_id: int, account_id: int, sender: str, name: str | None = None) -> Rendered | None:
    signature = resolve(session, user_id, account_id, name)
    if signature is None:
        return None
    user, account = session.get(User, user_id), session.get(Account, account_id)
    assert user is not None and account is not None
    return render(signature, signature_values(user, account, sender))


# ---------------------------------------------------------------- adding it to a message
def sign_message(msg: EmailMessage, signature: Rendered) -> int:
    """Add the signature to the message's body parts; the number of parts changed (0 for a
    signed or encrypted message, or one without a text body)."""
    if any(part.get_content_type() in SEALED for part in msg.walk()):
        log.info("message %s is signed or encrypted: no signature added", msg.get("Message-ID", "?"))
        return 0
    first = msg.get_body(("plain", "html"))
    if first is None:
        return 0
    parent = _parent_of(msg, first)
    if parent is not None and parent.get_content_type() == "multipart/alternative":
        bodies = [p if p.get_content_maintype() == "text" else p.get_body(("html",))
                  for p in parent.iter_parts() if not p.is_attachment()]
    else:
        bodies = [first]
    changed = 0
    for part in bodies:
        if part is None or part.get_content_type() not in ("text/plain", "text/html"):
            continue
        changed += _sign_part(part, signature)
    return changed


def _parent_of(root: MIMEPart, target: MIMEPart) -> MIMEPart | None:
    for part in root.iter_parts():
        if part is target:
            return root
        found = _parent_of(part, target)
        if found is not None:
            return found
    return None


def _sign_part(part: MIMEPart, signature: Rendered) -> int:
    charset = part.get_content_charset() or "us-ascii"
    try:
        content = part.get_content()
    except (LookupError, UnicodeError):
        log.warning("a body part in charset %r cannot be decoded: no signature added to it", charset)
        return 0
    if part.get_content_subtype() == "html":
        if not signature.html:
            return 0
        try:  # characters the part's charset lacks become character references
            addition = signature.html.encode(charset, "xmlcharrefreplace").decode(charset)
        except LookupError:
            addition = signature.html
        block = f'<div class="casella-signature">-- <br>\n{addition}</div>\n'
        ends = list(re.finditer(r"</body\s*>", content, re.IGNORECASE))
        at = ends[-1].start() if ends else len(content)
        new = content[:at] + block + content[at:]
    else:
        if not signature.text:
            return 0
        new = (content if content.endswith("\n") or not content else content + "\n") + "-- \n" + signature.text + "\n"
    try:
        new.encode(charset)
    except (UnicodeError, LookupError):
        charset = "utf-8"
    keep = [(k, v) for k, v in part.items()
            if k.lower().startswith("content-") and k.lower() not in ("content-type", "content-transfer-encoding")]
    params = {k: v for k, v in (part.get_params(header="content-type") or [])[1:] if k.lower() != "charset"}
    cte = part.get("Content-Transfer-Encoding", "7bit").strip().lower()
    had_version = "MIME-Version" in part
    if cte not in ("base64", "quoted-printable"):
        plain = new.isascii() and all(len(line) <= 900 for line in new.splitlines())
        cte = "7bit" if plain else "quoted-printable"
    part.set_content(new, subtype=part.get_content_subtype(), charset=charset, cte=cte, params=params or None)
    if not had_version:  # set_content adds one to every EmailMessage, nested parts included
        del part["MIME-Version"]
    for key, value in keep:
        del part[key]
        part[key] = value
    return 1


def signature_request(raw: bytes) -> tuple[bytes, str | None]:
    """The message without its X-Casella-Signature header, and the header's last value."""
    stripped, values = strip_headers(raw, (HEADER,))
    return stripped, values[-1] if values else None


def sign_submission(session: Session, raw: bytes, *, user_id: int, account_id: int, sender: str) -> bytes:
    """What the submission server stores: the header removed, and the signature added when
    the header or the account asks for one. SignatureError: the header names a signature
    this user may not use."""
    raw, request = signature_request(raw)
    choice = (request or "").strip()
    if request is None:
        account = session.get(Account, account_id)
        if account is None or not account.auto_signature:
            return raw
        choice = ""
    if choice.lower() in NO:
        return raw
    rendered = render_for(session, user_id, account_id, sender, None if choice.lower() in YES else choice)
    if rendered is None:
        log.info("no signature for user %d on account %d: sent unsigned", user_id, account_id)
        return raw
    try:
        msg = BytesParser(policy=policy.SMTP).parsebytes(raw)
        assert isinstance(msg, EmailMessage)
        return msg.as_bytes() if sign_message(msg, rendered) else raw
    except (MessageError, ValueError, TypeError, UnicodeError) as exc:  # a message the stdlib cannot rewrite
        log.warning("signature %s not added, the message cannot be rewritten (%s: %s); sent as submitted",
                    rendered.name, type(exc).__name__, exc)
        return raw


# ---------------------------------------------------------------- administration
def add_signature(session: Session, name: str, *, account_name: str | None, username: str | None, text: str,
                  html_body: str, default: bool) -> Signature:
    if not account_name and not username:
        raise SignatureError("a signature belongs to an account (--account) or to a user (--user)")
    if not text.strip() and not html_body.strip():
        raise SignatureError("a signature needs a text or an HTML version (--text-file, --html-file)")
    unknown = unknown_fields(text + html_body)
    if unknown:
        raise SignatureError(f"unknown field(s) {', '.join('{' + u + '}' for u in unknown)}; the known ones are "
                             + ", ".join("{" + v + "}" for v in VARIABLES))
    if session.scalar(select(Signature.id).where(Signature.name == name)) is not None:
        raise SignatureError(f"a signature named {name!r} exists already; choose another name")
    account = find_account(session, account_name) if account_name else None
    user = get_user(session, username) if username else None
    if default and user is None and account is not None:  # one default per account
        for other in session.scalars(select(Signature).where(Signature.account_id == account.id,
                                                             Signature.user_id.is_(None))):
            other.is_default = False
    signature = Signature(name=name, account_id=account.id if account else None, user_id=user.id if user else None,
                          body_text=text, body_html=html_body, is_default=default, updated_at=utcnow())
    session.add(signature)
    session.flush()
    return signature


def find_account(session: Session, name: str) -> Account:
    account = session.scalar(select(Account).where(Account.name == name))
    if account is None:
        raise NotFound(f"no account named {name!r}; `casella account list` shows them")
    return account


def list_signatures(session: Session) -> list[dict[str, object]]:
    accounts = dict(session.execute(select(Account.id, Account.name)).all())
    users = dict(session.execute(select(User.id, User.username)).all())
    return [{"id": s.id, "name": s.name, "account": accounts.get(s.account_id) if s.account_id else None,
             "user": users.get(s.user_id) if s.user_id else None, "default": s.is_default,
             "text": s.body_text, "html": s.body_html, "updated_at": s.updated_at.isoformat()}
            for s in session.scalars(select(Signature).order_by(Signature.id))]


def remove_signature(session: Session, name: str) -> None:
    signature = session.scalar(select(Signature).where(Signature.name == name))
    if signature is None:
        raise SignatureError(f"no signature named {name!r}; `casella signature list` shows them")
    session.delete(signature)
    session.flush()


def set_auto_signature(session: Session, account_name: str, on: bool) -> Account:
    account = find_account(session, account_name)
    account.auto_signature = on
    session.flush()
    return account


def set_user_details(session: Session, username: str, *, job_title: str | None, phone: str | None) -> User:
    user = get_user(session, username)
    if job_title is not None:
        user.job_title = job_title.strip() or None
    if phone is not None:
        user.phone = phone.strip() or None
    session.flush()
    return user
