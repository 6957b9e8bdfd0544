"""Administration (admins only): accounts (added, changed, their connection tested) and their
fetch status, users, groups and mailbox permissions, routing rules (edited as YAML, tested
against a message) and signatures.

Every change is audited; a deactivated user or one whose password is reset loses every
open session at once.
"""

from __future__ import annotations

from typing import Any

import yaml
from sqlalchemy import delete, func, select
from starlette.exceptions import HTTPException
from starlette.responses import Response

from casella.blobs import BlobStore
from casella.errors import CasellaError
from casella.models import (
    ROLES,
    Account,
    Group,
    GroupMember,
    MailboxPermission,
    Message,
    ProtocolRegistry,
    RoutingRule,
    Signature,
    User,
    utcnow,
)
from casella.models.account import DEFAULT_SENT_FOLDERS
from casella.models.outbound import SMTP_SECURITY, AccountSmtp
from casella.secrets import SecretBox
from casella.users import add_group, add_user, hash_password, list_users
from ingest.accounts import (
    SECURITY,
    AccountExists,
    InvalidAccount,
    account_status,
    add_account,
    check_account,
    update_account,
)
from mailserver.signatures import VARIABLES, render, signature_values
from routing.errors import InvalidRules
from routing.explain import explain
from routing.stored_rules import _row_dict, missing_references
from routing.validate import parse_rules
from routing.yaml_io import dump_rules, read_rules
from webmail.context import Ctx, route
from webmail.i18n import _
from webmail.mailbox import visible_message
from webmail.sanitize import sanitise_html
from webmail.security import close_sessions

ADMIN = ("admin",)
MIN_PASSWORD = 10


def _id(ctx: Ctx, name: str) -> int:
    return int(ctx.params[name])


# ---------------------------------------------------------------- accounts
@route("/admin", ("GET",), roles=ADMIN)
def admin_home(ctx: Ctx) -> Response:
    accounts = account_status(ctx.db)
    per_folder: dict[int, list[tuple[str, int]]] = {}
    for account_id, folder, n in ctx.db.execute(select(Message.account_id, Message.folder, func.count())
                                                .group_by(Message.account_id, Message.folder)
                                                .order_by(Message.account_id, Message.folder)):
        per_folder.setdefault(account_id, []).append((folder, n))
    return ctx.render("admin/accounts.html", accounts=accounts, per_folder=per_folder, section="accounts",
                      notice=ctx.query.get("notice"))


@route("/admin/accounts/{account_id:int}/enabled", ("POST",), roles=ADMIN)
def account_enabled(ctx: Ctx) -> Response:
    on = ctx.f("enabled") == "1"
    with ctx.write() as w:
        account = w.get(Account, _id(ctx, "account_id"))
        if account is None:
            raise HTTPException(404)
        account.enabled = on
        ctx.audit(w, "account-enable" if on else "account-disable", f"account:{account.name}")
    return ctx.redirect("/admin")


ACCOUNT_FIELDS = ("name", "imap_host", "imap_port", "security", "username", "folders", "sent_folders", "move_to",
                  "move_after_days", "registry", "smtp_host", "smtp_port", "smtp_security", "smtp_username")
ACCOUNT_FLAGS = ("is_pec", "mark_seen", "auto_signature", "imap_append_sent")


def _names(text: str) -> list[str]:
    return list(dict.fromkeys(f.strip() for f in text.split(",") if f.strip()))


def _account_page(ctx: Ctx, account: Account | None, *, form: dict[str, Any] | None = None, error: str | None = None,
                  check: dict[str, Any] | None = None, status_code: int = 200) -> Response:
    if form is None:
        form = {"security": "ssl", "folders": "INBOX", "registry": ctx.settings.default_registry,
                "sent_folders": ", ".join(DEFAULT_SENT_FOLDERS), "smtp_security": "starttls"}
        if account is not None:
            form = {"name": account.name, "imap_host": account.imap_host or "",
                    "imap_port": str(account.imap_port or ""), "security": account.security,
                    "username": account.username or "", "folders": ", ".join(account.folders or []),
                    "sent_folders": ", ".join(account.sent_folders or []), "move_to": account.move_to_folder or "",
                    "move_after_days": "" if account.move_after_days is None else str(account.move_after_days),
                    "is_pec": account.is_pec, "mark_seen": account.mark_seen,
                    "auto_signature": account.auto_signature, "imap_append_sent": account.imap_append_sent,
                    "smtp_security": "starttls"}
            smtp = ctx.db.get(AccountSmtp, account.id)
            if smtp is not None:
                form.update({"smtp_host": smtp.host, "smtp_port": str(smtp.port), "smtp_security": smtp.security,
                             "smtp_username": smtp.username or ""})
    return ctx.render("admin/account_edit.html", status_code=status_code, account=account, form=form, error=error,
                      check=check, registries=sorted(_account_registries(ctx)), securities=SECURITY,
                      smtp_securities=SMTP_SECURITY, section="accounts")


def _account_form(ctx: Ctx) -> dict[str, Any]:
    form: dict[str, Any] = {k: ctx.f(k).strip() for k in ACCOUNT_FIELDS}
    form.update({k: ctx.f(k) == "1" for k in ACCOUNT_FLAGS})
    return form


def _whole_number(text: str) -> int | None:
    return int(text) if text.isascii() and text.isdigit() and len(text) < 7 else None


def _account_error(exc: InvalidAccount | AccountExists) -> str:
    """ingest/accounts.py's rule, said in the user's language."""
    if isinstance(exc, AccountExists):
        return _("Another account has this name: choose another.")
    return {
        "name": _("The account needs a name."),
        "security": _("Choose the connection security from the list."),
        "port": _("The port is a number from 1 to 65535 (993 for SSL, 143 otherwise)."),
        "username": _("An account with an IMAP server needs the username to log in with."),
        "password": _("An account with an IMAP server needs the password to log in with."),
        "folders": _("Name at least one folder to read (usually INBOX)."),
        "move": _("Moving stored mail on the server needs both the folder and the number of days."),
        "days": _("The days before moving stored mail are a whole number."),
    }.get(exc.reason, str(exc))


def _stored_smtp_password(stored: AccountSmtp | None, username: str | None) -> bytes | None:
    """The outgoing server's stored password, kept when the form leaves it empty and the
    username is the same."""
    if stored is None or stored.username != username:
        return None
    return stored.password_encrypted


def _check_account_form(ctx: Ctx, form: dict[str, Any], account: Account | None,
                        password: str) -> tuple[str | None, dict[str, Any]]:
    """A translated error for what cannot work, else None and the values to store. The
    rules are ingest/accounts.py's `check_account`; here only the form's own text fields
    are read and the outgoing server checked."""
    values: dict[str, Any] = {
        "name": form["name"], "imap_host": form["imap_host"] or None, "username": form["username"] or None,
        "security": form["security"], "is_pec": form["is_pec"], "folders": _names(form["folders"]),
        "sent_folders": _names(form["sent_folders"]), "mark_seen": form["mark_seen"],
        "move_to": form["move_to"] or None, "imap_port": _whole_number(form["imap_port"]),
        "move_after_days": _whole_number(form["move_after_days"]),
    }
    if form["imap_port"] and values["imap_port"] is None:
        return _account_error(InvalidAccount("port", "")), values
    if form["move_after_days"] and values["move_after_days"] is None:
        return _account_error(InvalidAccount("days", "")), values
    try:
        check_account(name=values["name"], imap_host=values["imap_host"], imap_port=values["imap_port"],
                      username=values["username"], security=values["security"], folders=values["folders"],
                      has_password=bool(password) or (account is not None and account.password_encrypted is not None),
                      move_to=values["move_to"], move_after_days=values["move_after_days"])
    except InvalidAccount as exc:
        return _account_error(exc), values
    if form["imap_append_sent"] and not values["imap_host"]:
        return _("Copying sent mail to the server needs an IMAP server."), values
    if form["smtp_host"]:
        smtp_port = _whole_number(form["smtp_port"]) if form["smtp_port"] else None
        if form["smtp_port"] and (smtp_port is None or not 0 < smtp_port < 65536):
            return _("The outgoing server's port is a number from 1 to 65535 (587 for STARTTLS, 465 for SSL)."), values
        if form["smtp_security"] not in SMTP_SECURITY:
            return _("Choose the outgoing server's connection security from the list."), values
        stored = ctx.db.get(AccountSmtp, account.id) if account is not None else None
        if form["smtp_username"] and not ctx.f("smtp_password") \
                and _stored_smtp_password(stored, form["smtp_username"]) is None:
            return _("A username for the outgoing server needs its password."), values
    return None, values


def _save_upstream(ctx: Ctx, w: Any, account: Account, form: dict[str, Any]) -> bool:
    """The account's outgoing (SMTP) server as the form says: set, kept, or removed when
    the host is emptied (then only Casella's own mailboxes can be written to). Whether it
    changed."""
    from mailserver.upstream import DEFAULT_PORTS, set_upstream

    box = SecretBox(ctx.settings.secret_key_file)
    stored = w.get(AccountSmtp, account.id)
    if not form["smtp_host"]:
        if stored is None:
            return False
        w.delete(stored)
        return True
    username = form["smtp_username"] or None
    typed = ctx.f("smtp_password") or None
    kept = _stored_smtp_password(stored, username)
    password = typed if typed is not None else box.decrypt(kept) if kept is not None else None
    wanted = (form["smtp_host"], int(form["smtp_port"] or 0) or DEFAULT_PORTS[form["smtp_security"]],
              form["smtp_security"], username)
    changed = stored is None or (stored.host, stored.port, stored.security, stored.username) != wanted \
        or (typed is not None and username is not None)
    set_upstream(w, box, account.name, host=wanted[0], port=wanted[1], security=wanted[2], username=username,
                 password=password)
    return changed


def _connection_check(ctx: Ctx, values: dict[str, Any], account: Account | None, password: str) -> dict[str, Any]:
    """Log in to the server with the form's settings (the stored password when none was
    typed) and list its folders: nothing is stored, nothing changes on the server."""
    from ingest.errors import AccountError
    from ingest.imap import NETWORK_ERRORS, Connection, connect, imap_port

    if not values["imap_host"]:
        return {"ok": False, "message": _("A local account has no server to test: it is filled by casella import.")}
    if not password and account is not None and account.password_encrypted is not None:
        password = SecretBox(ctx.settings.secret_key_file).decrypt(account.password_encrypted)
    conn = Connection(host=values["imap_host"], port=imap_port(values["imap_port"], values["security"]),
                      username=values["username"] or "", password=password, security=values["security"],
                      timeout=min(ctx.settings.imap_timeout_seconds, 20.0))
    try:
        with connect(conn, values["name"] or "?") as client:
            folders = sorted(name for _flags, _sep, name in client.list_folders())
    except AccountError as exc:
        return {"ok": False, "message": str(exc)}
    except NETWORK_ERRORS as exc:
        return {"ok": False, "message": f"{type(exc).__name__}: {exc}"}
    missing = [f for f in values["folders"] if f not in folders]
    return {"ok": True, "folders": folders, "missing": missing}


def _save_account(ctx: Ctx, account_id: int | None) -> Response:
    account = ctx.db.get(Account, account_id) if account_id is not None else None
    if account_id is not None and account is None:
        raise HTTPException(404)
    form = _account_form(ctx)
    password = ctx.f("password")
    error, values = _check_account_form(ctx, form, account, password)
    if error:
        return _account_page(ctx, account, form=form, error=error, status_code=400)
    if ctx.f("action") == "test":
        return _account_page(ctx, account, form=form, check=_connection_check(ctx, values, account, password))
    registry = form["registry"] if form["registry"] in _account_registries(ctx) else ctx.settings.default_registry
    sending = {"auto_signature": form["auto_signature"], "imap_append_sent": form["imap_append_sent"]}
    try:
        with ctx.write() as w:
            if account_id is None:
                saved = add_account(w, ctx.settings, password=password or None, is_pec=values.pop("is_pec"),
                                    registry=registry, **values)
                saved.auto_signature, saved.imap_append_sent = sending["auto_signature"], sending["imap_append_sent"]
                _save_upstream(ctx, w, saved, form)
                ctx.audit(w, "account-add", f"account:{saved.name}", server=saved.imap_host, registry=registry,
                          smtp=form["smtp_host"] or None, **sending)
            else:
                row = w.get(Account, account_id)
                assert row is not None
                changed = update_account(w, ctx.settings, row, password=password or None, **values)
                for key, on in sending.items():
                    if getattr(row, key) != on:
                        setattr(row, key, on)
                        changed.append(key)
                if _save_upstream(ctx, w, row, form):
                    changed.append("smtp")
                ctx.audit(w, "account-edit", f"account:{row.name}", changed=changed)
    except (InvalidAccount, AccountExists) as exc:
        return _account_page(ctx, account, form=form, error=_account_error(exc), status_code=400)
    except CasellaError as exc:
        return _account_page(ctx, account, form=form, error=str(exc), status_code=400)
    return ctx.redirect("/admin?notice=saved")


def _account_registries(ctx: Ctx) -> set[str]:
    return {ctx.settings.default_registry, *ctx.db.scalars(select(ProtocolRegistry.code))}


@route("/admin/accounts/new", ("GET",), roles=ADMIN)
def account_new(ctx: Ctx) -> Response:
    return _account_page(ctx, None)


@route("/admin/accounts/new", ("POST",), roles=ADMIN, heavy=True)
def account_create(ctx: Ctx) -> Response:
    return _save_account(ctx, None)


@route("/admin/accounts/{account_id:int}", ("GET",), roles=ADMIN)
def account_page(ctx: Ctx) -> Response:
    account = ctx.db.get(Account, _id(ctx, "account_id"))
    if account is None:
        raise HTTPException(404)
    return _account_page(ctx, account)


@route("/admin/accounts/{account_id:int}", ("POST",), roles=ADMIN, heavy=True)
def account_save(ctx: Ctx) -> Response:
    return _save_account(ctx, _id(ctx, "account_id"))


# ---------------------------------------------------------------- users, groups, permissions
def _users_page(ctx: Ctx, *, error: str | None = None, notice: str | None = None, status_code: int = 200,
                form: dict[str, Any] | None = None) -> Response:
    groups = list(ctx.db.scalars(select(Group).order_by(Group.name)))
    members: dict[int, list[str]] = {}
    for gid, username in ctx.db.execute(select(GroupMember.group_id, User.username)
                                        .join(User, User.id == GroupMember.user_id).order_by(User.username)):
        members.setdefault(gid, []).append(username)
    accounts = dict(ctx.db.execute(select(Account.id, Account.name)).all())
    group_names = {g.id: g.name for g in groups}
    usernames = dict(ctx.db.execute(select(User.id, User.username)).all())
    permissions = [{"id": p.id, "account": accounts.get(p.account_id, "?"), "level": p.level,
                    "grantee": (_("group") + " " + group_names.get(p.group_id, "?")) if p.group_id
                    else (_("user") + " " + usernames.get(p.user_id or 0, "?"))}
                   for p in ctx.db.scalars(select(MailboxPermission).order_by(MailboxPermission.account_id,
                                                                              MailboxPermission.id))]
    return ctx.render("admin/users.html", status_code=status_code, users=list_users(ctx.db), groups=groups,
                      members=members, roles=ROLES, accounts=sorted(accounts.values()), permissions=permissions,
                      usernames=sorted(usernames.values()), section="users", error=error,
                      notice=notice or ctx.query.get("notice"), form=form or {})


@route("/admin/users", ("GET",), roles=ADMIN)
def users_page(ctx: Ctx) -> Response:
    return _users_page(ctx)


@route("/admin/users", ("POST",), roles=ADMIN)
def user_add(ctx: Ctx) -> Response:
    assert ctx.form is not None
    form = {k: ctx.f(k).strip() for k in ("username", "display_name", "email", "role")}
    groups = [g for g in ctx.form.getlist("groups") if isinstance(g, str) and g]
    password = ctx.f("password")
    error = None
    if not form["username"] or any(c.isspace() for c in form["username"]):
        error = _("Choose a username without spaces.")
    elif form["role"] not in ROLES:
        error = _("Choose a role from the list.")
    elif len(password) < MIN_PASSWORD:
        error = _("The password needs at least %(n)s characters.") % {"n": MIN_PASSWORD}
    if error:
        return _users_page(ctx, error=error, status_code=400, form=form)
    try:
        with ctx.write() as w:
            user = add_user(w, form["username"], form["role"], groups=groups, password=password,
                            display_name=form["display_name"], email=form["email"] or None)
            ctx.audit(w, "user-add", f"user:{user.username}", role=user.role, groups=groups)
    except CasellaError as exc:
        return _users_page(ctx, error=str(exc), status_code=400, form=form)
    return ctx.redirect("/admin/users?notice=user-added")


@route("/admin/users/{user_id:int}", ("POST",), roles=ADMIN)
def user_change(ctx: Ctx) -> Response:
    assert ctx.user is not None
    action = ctx.f("action")
    with ctx.write() as w:
        user = w.get(User, _id(ctx, "user_id"))
        if user is None:
            raise HTTPException(404)
        if action in ("deactivate", "role") and user.id == ctx.user.id:
            return _users_page(ctx, error=_("You cannot deactivate yourself or change your own role."),
                               status_code=400)
        if action == "deactivate":
            user.active = False
            close_sessions(w, user_id=user.id)
            ctx.audit(w, "user-deactivate", f"user:{user.username}")
        elif action == "activate":
            user.active = True
            ctx.audit(w, "user-activate", f"user:{user.username}")
        elif action == "password":
            password = ctx.f("password")
            if len(password) < MIN_PASSWORD:
                return _users_page(ctx, error=_("The password needs at least %(n)s characters.")
                                   % {"n": MIN_PASSWORD},
                                   status_code=400)
            user.password_hash = hash_password(password)
            close_sessions(w, user_id=user.id)
            ctx.audit(w, "user-password-reset", f"user:{user.username}")
        elif action == "role":
            role = ctx.f("role")
            if role not in ROLES:
                return _users_page(ctx, error=_("Choose a role from the list."), status_code=400)
            ctx.audit(w, "user-role", f"user:{user.username}", before=user.role, after=role)
            user.role = role
            close_sessions(w, user_id=user.id)
        else:
            raise HTTPException(400, _("Unknown action."))
    return ctx.redirect("/admin/users?notice=saved")


@route("/admin/groups", ("POST",), roles=ADMIN)
def group_add(ctx: Ctx) -> Response:
    name = ctx.f("name").strip()
    if not name:
        return _users_page(ctx, error=_("The group needs a name."), status_code=400)
    try:
        with ctx.write() as w:
            add_group(w, name, ctx.f("assignment") or "round-robin")
            ctx.audit(w, "group-add", f"group:{name}")
    except CasellaError as exc:
        return _users_page(ctx, error=str(exc), status_code=400)
    return ctx.redirect("/admin/users?notice=saved")


@route("/admin/groups/{group_id:int}/members", ("POST",), roles=ADMIN)
def group_members(ctx: Ctx) -> Response:
    username = ctx.f("username")
    action = ctx.f("action")
    with ctx.write() as w:
        group = w.get(Group, _id(ctx, "group_id"))
        user = w.scalar(select(User).where(User.username == username))
        if group is None:
            raise HTTPException(404)
        if user is None:
            return _users_page(ctx, error=_("Choose a user from the list."), status_code=400)
        present = w.get(GroupMember, (group.id, user.id))
        if action == "add" and present is None:
            w.add(GroupMember(group_id=group.id, user_id=user.id))
            ctx.audit(w, "group-member-add", f"group:{group.name}", user=user.username)
        elif action == "remove" and present is not None:
            w.delete(present)
            ctx.audit(w, "group-member-remove", f"group:{group.name}", user=user.username)
    return ctx.redirect("/admin/users?notice=saved")


@route("/admin/permissions", ("POST",), roles=ADMIN)
def permission_grant(ctx: Ctx) -> Response:
    grantee = ctx.f("grantee")  # "group:NAME" or "user:NAME"
    kind, _sep, name = grantee.partition(":")
    level = ctx.f("level") if ctx.f("level") in ("read", "write") else "write"
    with ctx.write() as w:
        account = w.scalar(select(Account).where(Account.name == ctx.f("account")))
        group = w.scalar(select(Group).where(Group.name == name)) if kind == "group" else None
        user = w.scalar(select(User).where(User.username == name)) if kind == "user" else None
        if account is None or (group is None and user is None):
            return _users_page(ctx, error=_("Choose a mailbox and a group or user from the lists."), status_code=400)
        w.add(MailboxPermission(account_id=account.id, group_id=group.id if group else None,
                                user_id=user.id if user else None, level=level))
        ctx.audit(w, "mailbox-grant", f"account:{account.name}", grantee=grantee, level=level)
    return ctx.redirect("/admin/users?notice=saved")


@route("/admin/permissions/{perm_id:int}/revoke", ("POST",), roles=ADMIN)
def permission_revoke(ctx: Ctx) -> Response:
    with ctx.write() as w:
        perm = w.get(MailboxPermission, _id(ctx, "perm_id"))
        if perm is None:
            raise HTTPException(404)
        ctx.audit(w, "mailbox-revoke", f"account:{perm.account_id}", group_id=perm.group_id, user_id=perm.user_id)
        w.delete(perm)
    return ctx.redirect("/admin/users?notice=saved")


# ---------------------------------------------------------------- routing rules
def _rule_yaml(row: RoutingRule, account: str | None) -> str:
    data = _row_dict(row, account)
    try:
        (rule,) = parse_rules([data], source=f"routing_rule id={row.id}")
        return dump_rules([rule])
    except InvalidRules:
        data = {k: v for k, v in data.items() if v not in (None, "")}
        return yaml.safe_dump({"rules": [data]}, sort_keys=False, allow_unicode=True)


NEW_RULE = """rules:
  - name: new-rule
    account: {account}
    match: all
    conditions:
      - {{field: subject, op: contains, value: fattura}}
    actions:
      - {{action: add-tags, tags: [fatture]}}
"""


@route("/admin/rules", ("GET",), roles=ADMIN)
def rules_page(ctx: Ctx) -> Response:
    accounts = dict(ctx.db.execute(select(Account.id, Account.name)).all())
    groups: dict[str, list[RoutingRule]] = {}
    for row in ctx.db.scalars(select(RoutingRule).order_by(RoutingRule.account_id, RoutingRule.position,
                                                           RoutingRule.id)):
        groups.setdefault(accounts.get(row.account_id, "") if row.account_id else "", []).append(row)
    ordered = sorted(groups.items(), key=lambda kv: (kv[0] == "", kv[0]))
    return ctx.render("admin/rules.html", groups=ordered, section="rules", notice=ctx.query.get("notice"),
                      message_id=ctx.query.get("message", ""))


def _rule_form(ctx: Ctx, row: RoutingRule | None, text: str, problems: list[str] | None = None,
               status_code: int = 200) -> Response:
    return ctx.render("admin/rule_edit.html", status_code=status_code, rule=row, text=text, problems=problems or [],
                      section="rules")


@route("/admin/rules/{rule_id:int}", ("GET",), roles=ADMIN)
def rule_edit_form(ctx: Ctx) -> Response:
    row = ctx.db.get(RoutingRule, _id(ctx, "rule_id"))
    if row is None:
        raise HTTPException(404)
    account = ctx.db.scalar(select(Account.name).where(Account.id == row.account_id)) if row.account_id else None
    return _rule_form(ctx, row, _rule_yaml(row, account))


@route("/admin/rules/new", ("GET",), roles=ADMIN)
def rule_new_form(ctx: Ctx) -> Response:
    first = ctx.db.scalar(select(Account.name).order_by(Account.name).limit(1)) or "info"
    return _rule_form(ctx, None, NEW_RULE.format(account=first))


def _save_rule(ctx: Ctx, row_id: int | None) -> Response:
    text = ctx.f("yaml")
    row = ctx.db.get(RoutingRule, row_id) if row_id is not None else None
    if row_id is not None and row is None:
        raise HTTPException(404)
    try:
        rules = read_rules(text)
        if len(rules) != 1:
            raise InvalidRules([_("Write exactly one rule here (found %(n)s).") % {"n": len(rules)}])
        (rule,) = rules
        problems = missing_references(ctx.db, [rule])
        if problems:
            raise InvalidRules(problems)
    except InvalidRules as exc:
        return _rule_form(ctx, row, text, exc.problems, status_code=400)
    account_id = ctx.db.scalar(select(Account.id).where(Account.name == rule.account)) if rule.account else None
    clash = ctx.db.scalar(select(RoutingRule.id).where(
        RoutingRule.name == rule.name,
        RoutingRule.account_id == account_id if account_id is not None else RoutingRule.account_id.is_(None),
        RoutingRule.id != (row_id or 0)))
    if clash is not None:
        return _rule_form(ctx, row, text, [_("Another rule of this account is named %(n)s: choose another name.") % {"n": rule.name}],
                          status_code=400)
    data = rule.as_dict()
    with ctx.write() as w:
        target = w.get(RoutingRule, row_id) if row_id is not None else None
        if target is None or target.account_id != account_id:
            last = w.scalar(select(func.max(RoutingRule.position)).where(
                RoutingRule.account_id == account_id if account_id is not None else RoutingRule.account_id.is_(None)))
            position = (last + 1) if last is not None else 0
        else:
            position = target.position
        if target is None:
            target = RoutingRule()
            w.add(target)
        before = _row_dict(target, None) if target.id else None
        target.account_id = account_id
        target.position = position
        target.name = rule.name
        target.description = rule.description
        target.enabled = rule.enabled
        target.match = rule.match
        target.conditions = data["conditions"]
        target.actions = data["actions"]
        target.stop = rule.stop
        w.flush()
        ctx.audit(w, "rule-edit" if before else "rule-add", f"rule:{target.id}", name=rule.name,
                  before=before, yaml=text)
    return ctx.redirect("/admin/rules?notice=saved")


@route("/admin/rules/{rule_id:int}", ("POST",), roles=ADMIN)
def rule_save(ctx: Ctx) -> Response:
    return _save_rule(ctx, _id(ctx, "rule_id"))


@route("/admin/rules/new", ("POST",), roles=ADMIN)
def rule_create(ctx: Ctx) -> Response:
    return _save_rule(ctx, None)


@route("/admin/rules/{rule_id:int}/enabled", ("POST",), roles=ADMIN)
def rule_enabled(ctx: Ctx) -> Response:
    on = ctx.f("enabled") == "1"
    with ctx.write() as w:
        row = w.get(RoutingRule, _id(ctx, "rule_id"))
        if row is None:
            raise HTTPException(404)
        row.enabled = on
        ctx.audit(w, "rule-enable" if on else "rule-disable", f"rule:{row.id}", name=row.name)
    return ctx.redirect("/admin/rules")


@route("/admin/rules/{rule_id:int}/delete", ("POST",), roles=ADMIN)
def rule_delete(ctx: Ctx) -> Response:
    with ctx.write() as w:
        row = w.get(RoutingRule, _id(ctx, "rule_id"))
        if row is None:
            raise HTTPException(404)
        ctx.audit(w, "rule-delete", f"rule:{row.id}", name=row.name, rule=_row_dict(row, None))
        w.delete(row)
    return ctx.redirect("/admin/rules?notice=deleted")


@route("/admin/rules/test", ("GET",), roles=ADMIN, heavy=True)
def rule_test(ctx: Ctx) -> Response:
    raw = (ctx.query.get("message") or "").strip()
    if not raw.isdigit():
        return ctx.render("admin/rule_test.html", data=None, error=_("Write the number of a message (the number in "
                                                                      "its address, /mail/NUMBER)."),
                          section="rules", message_id=raw, status_code=400)
    assert ctx.grant is not None
    if visible_message(ctx.db, ctx.grant, int(raw)) is None:  # e.g. someone's private mailbox
        return ctx.render("admin/rule_test.html", data=None, error=_("Message %(id)s not found.") % {"id": raw},
                          section="rules", message_id=raw, status_code=404)
    try:
        data = explain(ctx.db, BlobStore(ctx.settings.blob_dir), int(raw))
    except CasellaError as exc:
        return ctx.render("admin/rule_test.html", data=None, error=str(exc), section="rules", message_id=raw,
                          status_code=404)
    return ctx.render("admin/rule_test.html", data=data, error=None, section="rules", message_id=raw)


# ---------------------------------------------------------------- signatures
def _preview(ctx: Ctx, sig: Signature) -> dict[str, Any] | None:
    assert ctx.user is not None
    account = ctx.db.get(Account, sig.account_id) if sig.account_id else ctx.db.scalar(select(Account).limit(1))
    user = ctx.db.get(User, sig.user_id) if sig.user_id else ctx.user
    if account is None or user is None:
        return None
    rendered = render(sig, signature_values(user, account, user.email or f"{account.name}@example.invalid"))
    return {"text": rendered.text, "html": sanitise_html(rendered.html).html}


def _signatures_page(ctx: Ctx, *, edit: Signature | None = None, error: str | None = None,
                     form: dict[str, Any] | None = None, status_code: int = 200) -> Response:
    accounts = dict(ctx.db.execute(select(Account.id, Account.name).order_by(Account.name)).all())
    users = dict(ctx.db.execute(select(User.id, User.username).order_by(User.username)).all())
    sigs = list(ctx.db.scalars(select(Signature).order_by(Signature.name)))
    if form is None and edit is not None:
        form = {"name": edit.name, "account": accounts.get(edit.account_id, "") if edit.account_id else "",
                "user": users.get(edit.user_id, "") if edit.user_id else "", "text": edit.body_text,
                "html": edit.body_html, "default": edit.is_default}
    return ctx.render("admin/signatures.html", status_code=status_code, signatures=sigs, accounts=accounts,
                      users=users, edit=edit, form=form or {}, error=error, section="signatures",
                      preview=_preview(ctx, edit) if edit is not None else None, variables=VARIABLES,
                      notice=ctx.query.get("notice"))


@route("/admin/signatures", ("GET",), roles=ADMIN)
def signatures_page(ctx: Ctx) -> Response:
    return _signatures_page(ctx)


@route("/admin/signatures/{sig_id:int}", ("GET",), roles=ADMIN)
def signature_page(ctx: Ctx) -> Response:
    sig = ctx.db.get(Signature, _id(ctx, "sig_id"))
    if sig is None:
        raise HTTPException(404)
    return _signatures_page(ctx, edit=sig)


def _signature_form(ctx: Ctx) -> dict[str, Any]:
    return {"name": ctx.f("name").strip(), "account": ctx.f("account"), "user": ctx.f("user"),
            "text": ctx.f("text"), "html": ctx.f("html"), "default": ctx.f("default") == "1"}


def _check_signature(ctx: Ctx, form: dict[str, Any], sig_id: int | None) -> tuple[str | None, int | None, int | None]:
    from mailserver.signatures import VARIABLES, unknown_fields

    account_id = ctx.db.scalar(select(Account.id).where(Account.name == form["account"])) if form["account"] else None
    user_id = ctx.db.scalar(select(User.id).where(User.username == form["user"])) if form["user"] else None
    if not form["name"]:
        return _("The signature needs a name."), None, None
    if account_id is None and user_id is None:
        return _("Choose the mailbox or the user the signature belongs to."), None, None
    if not form["text"].strip() and not form["html"].strip():
        return _("Write the text or the HTML version of the signature."), None, None
    unknown = unknown_fields(form["text"] + form["html"])
    if unknown:
        return _("Unknown field(s) %(u)s; the known ones are %(k)s.") % {"u": ", ".join("{" + u + "}" for u in unknown),
                                                                  "k": ", ".join("{" + v + "}" for v in VARIABLES)}, None, None
    clash = ctx.db.scalar(select(Signature.id).where(Signature.name == form["name"], Signature.id != (sig_id or 0)))
    if clash is not None:
        return _("Another signature has this name: choose another."), None, None
    return None, account_id, user_id


def _store_signature(ctx: Ctx, sig_id: int | None) -> Response:
    form = _signature_form(ctx)
    edit = ctx.db.get(Signature, sig_id) if sig_id is not None else None
    if sig_id is not None and edit is None:
        raise HTTPException(404)
    error, account_id, user_id = _check_signature(ctx, form, sig_id)
    if error:
        return _signatures_page(ctx, edit=edit, error=error, form=form, status_code=400)
    with ctx.write() as w:
        sig = w.get(Signature, sig_id) if sig_id is not None else None
        if form["default"] and user_id is None and account_id is not None:  # one default per account
            for other in w.scalars(select(Signature).where(Signature.account_id == account_id,
                                                           Signature.user_id.is_(None),
                                                           Signature.id != (sig_id or 0))):
                other.is_default = False
        if sig is None:
            sig = Signature()
        sig.name, sig.account_id, sig.user_id = form["name"], account_id, user_id
        sig.body_text, sig.body_html, sig.is_default = form["text"], form["html"], form["default"]
        sig.updated_at = utcnow()
        w.add(sig)
        w.flush()
        ctx.audit(w, "signature-edit" if sig_id else "signature-add", f"signature:{sig.name}",
                  account=form["account"] or None, user=form["user"] or None, default=form["default"])
        new_id = sig.id
    return ctx.redirect(f"/admin/signatures/{new_id}?notice=saved")


@route("/admin/signatures", ("POST",), roles=ADMIN)
def signature_add(ctx: Ctx) -> Response:
    return _store_signature(ctx, None)


@route("/admin/signatures/{sig_id:int}", ("POST",), roles=ADMIN)
def signature_save(ctx: Ctx) -> Response:
    return _store_signature(ctx, _id(ctx, "sig_id"))


@route("/admin/signatures/{sig_id:int}/delete", ("POST",), roles=ADMIN)
def signature_delete(ctx: Ctx) -> Response:
    with ctx.write() as w:
        sig = w.get(Signature, _id(ctx, "sig_id"))
        if sig is None:
            raise HTTPException(404)
        ctx.audit(w, "signature-delete", f"signature:{sig.name}")
        w.execute(delete(Signature).where(Signature.id == sig.id))
    return ctx.redirect("/admin/signatures?notice=deleted")


# "/admin/rules/new" and "/admin/rules/test" come before "/admin/rules/{rule_id:int}" (Starlette
# matches in order; the int convertor would not match them anyway).
ROUTES = [admin_home, account_enabled, account_new, account_create, account_page, account_save, users_page, user_add,
          user_change, group_add, group_members, permission_grant, permission_revoke, rules_page, rule_new_form, rule_create, rule_test, rule_edit_form,
          rule_save, rule_enabled, rule_delete, signatures_page, signature_page, signature_add, signature_save,
          signature_delete]
