"""What every view receives, and the decorator that builds it.

    @route("/mail/{message_id:int}")
    def show(ctx: Ctx) -> Response: ...

`route` resolves, in this order: the session cookie → the user → their `Grant` (what they
may read, casella/access.py) → the language; on POST it first refuses cross-site requests
and checks the CSRF token, and parses the form. Views are plain synchronous functions run
in Starlette's thread pool; `ctx.db` is a read-only session, `ctx.write()` a short writing
transaction (on SQLite, writes queue; reads never wait for them).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

import anyio
import anyio.to_thread
from jinja2 import Environment, FileSystemLoader, select_autoescape
from sqlalchemy.orm import Session
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from casella.access import Grant, grant_for
from casella.db import Database
from casella.errors import CasellaError
from casella.models import AuditLog, User, utcnow
from casella.settings import Settings
from webmail import i18n
from webmail.fragments import RowFragments
from webmail.presence import Presence
from webmail.security import (
    LOGIN_CSRF_COOKIE,
    SESSION_COOKIE,
    content_security_policy,
    cross_site,
    find_session,
    needs_touch,
    same_token,
)

log = logging.getLogger(__name__)
TEMPLATES = Path(__file__).parent / "templates"
MAX_UPLOAD_BYTES = 35 << 20


ZONE = ZoneInfo("Europe/Rome")


def _format_datetime(value: Any, fmt: str = "short") -> str:
    """Local time of day for today's dates, the date otherwise ("short"), or both ("long")."""
    if value is None:
        return ""
    local = value.astimezone(ZONE)
    if fmt == "short":
        return local.strftime("%H:%M") if local.date() == _today() else local.strftime("%d/%m/%Y")
    return local.strftime("%d/%m/%Y %H:%M")


_today_memo: tuple[int, Any] = (0, None)


def _today() -> Any:
    """Today in Rome (a list formats fifty dates: worked out once a second, not per date)."""
    global _today_memo
    second = int(time.time())
    if _today_memo[0] != second:
        _today_memo = (second, utcnow().astimezone(ZONE).date())
    return _today_memo[1]


def _filesize(n: int | None) -> str:
    n = n or 0
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return str(n)


def make_templates() -> Environment:
    # auto_reload off: templates are part of the release, not looked at on disk per request.
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html"]),
                      extensions=["jinja2.ext.i18n"], trim_blocks=True, lstrip_blocks=True, auto_reload=False)
    env.install_gettext_callables(i18n.gettext_, i18n.ngettext_, newstyle=True)  # type: ignore[attr-defined]
    env.filters["dt"] = _format_datetime
    env.filters["filesize"] = _filesize
    env.filters["urlquote"] = lambda s: quote(str(s), safe="")
    env.globals["row_html"] = RowFragments(env)
    return env


@dataclass
class App:
    """Process-wide state the views share (set on `app.state.casella`)."""

    settings: Settings
    db: Database
    templates: Environment
    presence: Presence
    extras: dict[str, Any] = field(default_factory=dict)
    _limiters: dict[bool, anyio.CapacityLimiter] = field(default_factory=dict)

    def view_limiter(self, heavy: bool = False) -> anyio.CapacityLimiter:
        """Pages run `web_threads` (1) at a time in this process, each in turn: Python runs
        one thread at a time, and threads that take turns on its lock serve fewer requests,
        later, than a queue does (bench/webmail.py). Heavy views (exports, downloads,
        statistics, sending) have their own `web_heavy_threads`, so that a long one never
        holds up the pages behind it. Made on first use, in the event loop."""
        if heavy not in self._limiters:
            self._limiters[heavy] = anyio.CapacityLimiter(
                self.settings.web_heavy_threads if heavy else self.settings.web_threads)
        return self._limiters[heavy]


@dataclass
class Ctx:
    request: Request
    app: App
    db: Session
    user: User | None
    grant: Grant | None
    csrf: str
    form: FormData | None
    lang: str
    remote_images: bool = False  # set by a view that shows remote content on purpose
    wrote: bool = False  # the request committed a write (ctx.db, read before, does not show it)

    @property
    def settings(self) -> Settings:
        return self.app.settings

    @property
    def params(self) -> Any:
        return self.request.path_params

    @property
    def query(self) -> Any:
        return self.request.query_params

    @property
    def ip(self) -> str:
        return self.request.client.host if self.request.client else ""

    @contextmanager
    def write(self) -> Iterator[Session]:
        with self.app.db.session() as session:
            yield session
        self.wrote = True

    def audit(self, session: Session, action: str, target: str = "", **detail: Any) -> None:
        session.add(AuditLog(actor=self.user.username if self.user else "anonymous", action=action,
                             target=target, ip=self.ip[:64], detail=detail))

    def f(self, name: str, default: str = "") -> str:
        """A form field (POST) as text."""
        if self.form is None:
            return default
        value = self.form.get(name)
        return value if isinstance(value, str) else default

    def render(self, template: str, status_code: int = 200, **values: Any) -> HTMLResponse:
        html = self.app.templates.get_template(template).render(
            ctx=self, user=self.user, grant=self.grant, csrf=self.csrf, lang=self.lang,
            languages=i18n.LANGUAGES, request=self.request, **values)
        return HTMLResponse(html, status_code=status_code)

    def redirect(self, url: str) -> RedirectResponse:
        return RedirectResponse(url, status_code=303)

    def require_role(self, *roles: str) -> None:
        if self.user is None or self.user.role not in roles:
            raise HTTPException(403, i18n._("You are not allowed to do this."))

    @property
    def unread_mentions(self) -> int:
        """The user's unseen @mentions (the top bar's badge), counted once, and only when a
        template asks."""
        if "_unread_mentions" not in self.__dict__:
            from webmail.mentions import unread_count

            count = 0
            if self.user is not None and self.grant is not None:
                if self.wrote:  # ctx.db predates this request's writes (opening a message marks its mentions seen)
                    with self.app.db.reading() as fresh:
                        count = unread_count(fresh, self.user.id, self.grant)
                else:
                    count = unread_count(self.db, self.user.id, self.grant)
            self.__dict__["_unread_mentions"] = count
        return int(self.__dict__["_unread_mentions"])


View = Callable[[Ctx], Response]


def route(path: str, methods: Sequence[str] = ("GET",), *, public: bool = False,
          roles: Sequence[str] | None = None, name: str | None = None,
          heavy: bool = False) -> Callable[[View], Route]:
    """Wrap a synchronous view into a Starlette route with auth, CSRF and i18n. `heavy`:
    a view that may take long (an export, a download, sending) runs beside the pages'
    queue, not in it (App.view_limiter)."""

    def decorate(view: View) -> Route:
        async def endpoint(request: Request) -> Response:
            form = None
            if request.method == "POST":
                if cross_site(request.headers.get("origin"), request.headers.get("referer"),
                              request.headers.get("host")):
                    return Response("Cross-site request refused.", status_code=403, media_type="text/plain")
                form = await request.form(max_files=20, max_fields=2000, max_part_size=MAX_UPLOAD_BYTES)
            try:
                return await anyio.to_thread.run_sync(partial(_run, view, request, form, public, roles),
                                                      limiter=request.app.state.casella.view_limiter(heavy))
            finally:
                if form is not None:
                    await form.close()

        return Route(path, endpoint, methods=list(methods), name=name or view.__name__)

    return decorate


def _run(view: View, request: Request, form: FormData | None, public: bool,
         roles: Sequence[str] | None) -> Response:
    app: App = request.app.state.casella
    lifetime = timedelta(hours=app.settings.web_session_hours)
    with app.db.reading() as db:
        found = find_session(db, request.cookies.get(SESSION_COOKIE), lifetime)
        user = found[1] if found else None
        lang = i18n.pick_language(user.locale if user else request.cookies.get("lang"),
                                  request.headers.get("accept-language", ""))
        token = i18n.current_language.set(lang)
        try:
            if user is None and not public:
                if request.method == "GET":
                    nxt = request.url.path + (f"?{request.url.query}" if request.url.query else "")
                    return RedirectResponse(f"/login?next={quote(nxt, safe='')}", status_code=303)
                return Response(i18n._("Sign in first."), status_code=401, media_type="text/plain")
            if found is not None:
                csrf = found[0].csrf_token
            else:
                csrf = request.cookies.get(LOGIN_CSRF_COOKIE) or ""
            if form is not None:
                sent = form.get("csrf") or request.headers.get("x-csrf-token")
                if not same_token(sent if isinstance(sent, str) else None, csrf):
                    return Response(i18n._("The form has expired: reload the page and try again."),
                                    status_code=403, media_type="text/plain")
            if roles is not None and (user is None or user.role not in roles):
                raise HTTPException(403, i18n._("You are not allowed to do this."))
            grant = grant_for(db, user) if user is not None else None
            if found is not None and needs_touch(found[0]):
                with app.db.session() as w:
                    row = w.get(type(found[0]), found[0].token_hash)
                    if row is not None:
                        row.last_seen_at = utcnow()
            ctx = Ctx(request=request, app=app, db=db, user=user, grant=grant, csrf=csrf, form=form, lang=lang)
            try:
                response = view(ctx)
            except CasellaError as exc:
                response = ctx.render("error.html", status_code=400, message=str(exc))
            response.headers.setdefault("Content-Security-Policy",
                                        content_security_policy(remote_images=ctx.remote_images))
            return response
        finally:
            i18n.current_language.reset(token)
