"""Sign in, sign out, change password, choose the language."""

from __future__ import annotations

from urllib.parse import urlsplit

from sqlalchemy import func, select
from starlette.responses import Response

from casella.models import User
from casella.users import hash_password, verify_password
from webmail.context import Ctx, route
from webmail.i18n import LANGUAGES, _
from webmail.security import (
    LOGIN_CSRF_COOKIE,
    SESSION_COOKIE,
    clear_failures,
    close_sessions,
    new_token,
    open_session,
    record_failure,
    throttled,
)

MIN_PASSWORD = 10


def _safe_next(value: str) -> str:
    """Only local paths: never redirect to another site after login."""
    parts = urlsplit(value or "/")
    if parts.scheme or parts.netloc or not value.startswith("/") or value.startswith("//"):
        return "/mail"
    return value


def _set_cookie(ctx: Ctx, response: Response, name: str, value: str, max_age: int | None = None) -> None:
    response.set_cookie(name, value, max_age=max_age, httponly=True, samesite="lax", path="/",
                        secure=ctx.settings.web_secure_cookies)


@route("/login", ("GET",), public=True)
def login_form(ctx: Ctx) -> Response:
    if ctx.user is not None:
        return ctx.redirect(_safe_next(ctx.query.get("next", "/mail")))
    csrf = ctx.csrf or new_token()
    ctx.csrf = csrf
    response = ctx.render("login.html", next=_safe_next(ctx.query.get("next", "/mail")), error=None)
    _set_cookie(ctx, response, LOGIN_CSRF_COOKIE, csrf, max_age=3600)
    return response


@route("/login", ("POST",), public=True)
def login(ctx: Ctx) -> Response:
    username = ctx.f("username").strip().lower()
    password = ctx.f("password")
    nxt = _safe_next(ctx.f("next", "/mail"))
    if throttled(ctx.db, username, ctx.ip):
        return ctx.render("login.html", status_code=429, next=nxt, username=username,
                          error=_("Too many failed attempts. Wait 15 minutes and try again, or ask an administrator."))
    user = ctx.db.scalar(select(User).where(func.lower(User.username) == username))
    if user is None or not user.active or not verify_password(user.password_hash, password):
        with ctx.write() as w:
            record_failure(w, username, ctx.ip)
            ctx.audit(w, "login-failed", f"user:{username}")
        return ctx.render("login.html", status_code=401, next=nxt, username=username,
                          error=_("Wrong username or password."))
    with ctx.write() as w:
        opened = open_session(w, user, ip=ctx.ip, user_agent=ctx.request.headers.get("user-agent", ""))
        clear_failures(w, username)
        ctx.user = user
        ctx.audit(w, "login", f"user:{user.username}")
    response = ctx.redirect(nxt)
    _set_cookie(ctx, response, SESSION_COOKIE, opened.token, max_age=int(ctx.settings.web_session_hours * 3600))
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/")
    return response


@route("/logout", ("POST",))
def logout(ctx: Ctx) -> Response:
    with ctx.write() as w:
        close_sessions(w, token=ctx.request.cookies.get(SESSION_COOKIE))
        ctx.audit(w, "logout", f"user:{ctx.user.username}")
    response = ctx.redirect("/login")
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@route("/settings", ("GET",))
def settings_page(ctx: Ctx) -> Response:
    return ctx.render("settings.html", message=None, error=None)


@route("/settings/password", ("POST",))
def change_password(ctx: Ctx) -> Response:
    assert ctx.user is not None
    current, new, again = ctx.f("current"), ctx.f("new"), ctx.f("again")
    error = None
    if not verify_password(ctx.user.password_hash, current):
        error = _("The current password is wrong.")
    elif len(new) < MIN_PASSWORD:
        error = _("The new password must be at least 10 characters long.")
    elif new != again:
        error = _("The two new passwords differ.")
    if error:
        return ctx.render("settings.html", status_code=400, message=None, error=error)
    with ctx.write() as w:
        user = w.get(User, ctx.user.id)
        assert user is not None
        user.password_hash = hash_password(new)
        close_sessions(w, user_id=user.id, keep=ctx.request.cookies.get(SESSION_COOKIE))
        ctx.audit(w, "password-changed", f"user:{user.username}")
    return ctx.render("settings.html", message=_("Password changed. Your other sessions were signed out."),
                      error=None)


@route("/settings/language", ("POST",), public=True)
def set_language(ctx: Ctx) -> Response:
    lang = ctx.f("lang")
    if lang not in LANGUAGES:
        lang = "it"
    if ctx.user is not None:
        with ctx.write() as w:
            user = w.get(User, ctx.user.id)
            assert user is not None
            user.locale = lang
    response = ctx.redirect(_safe_next(ctx.f("next", "/mail")))
    response.set_cookie("lang", lang, max_age=365 * 86400, samesite="lax", path="/")
    return response


ROUTES = [login_form, login, logout, settings_page, change_password, set_language]
