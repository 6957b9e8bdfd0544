"""The webmail application: every view module's routes, static files, error pages and
security headers. `create_app(settings, db)` is all a server needs (webmail/server.py)."""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from casella.db import Database
from casella.settings import Settings
from webmail import i18n, views
from webmail.context import App, make_templates
from webmail.presence import Presence
from webmail.security import content_security_policy

STATIC = Path(__file__).parent / "static"

SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"x-frame-options", b"SAMEORIGIN"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=()"),
]


class SecurityHeaders:
    """Headers every response carries; a Content-Security-Policy where a view set none."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                names = {k.lower() for k, _ in headers}
                headers += [(k, v) for k, v in SECURITY_HEADERS if k not in names]
                if b"content-security-policy" not in names:
                    headers.append((b"content-security-policy", content_security_policy().encode()))
                if b"cache-control" not in names and not scope["path"].startswith("/static/"):
                    headers.append((b"cache-control", b"no-store"))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, with_headers)


def view_routes() -> list[BaseRoute]:
    """ROUTES of every module in webmail/views, in module-name order."""
    routes: list[BaseRoute] = []
    for info in sorted(pkgutil.iter_modules(views.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"webmail.views.{info.name}")
        routes.extend(getattr(module, "ROUTES", []))
    return routes


def create_app(settings: Settings, db: Database) -> Starlette:
    templates = make_templates()

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        if request.headers.get("x-partial") or request.url.path.startswith("/api/"):
            return PlainTextResponse(exc.detail or "", status_code=exc.status_code)
        html = templates.get_template("error.html").render(
            status=exc.status_code, message=exc.detail if exc.status_code != 404 else i18n._("Not found."),
            user=None, ctx=None, csrf="", lang=i18n.current_language.get(), languages=i18n.LANGUAGES)
        return HTMLResponse(html, status_code=exc.status_code)

    async def healthz(request: Request) -> Response:
        return PlainTextResponse("ok")

    routes: list[BaseRoute] = [
        Route("/healthz", healthz),
        Mount("/static", app=StaticFiles(directory=STATIC), name="static"),
        *view_routes(),
    ]
    app = Starlette(routes=routes, middleware=[Middleware(SecurityHeaders)],
                    exception_handlers={HTTPException: http_error})
    app.state.casella = App(settings=settings, db=db, templates=templates, presence=Presence(db))
    return app
