"""Commands of the mailserver package, registered in casella/cli.py:
`casella mailserver`, `casella outbox list`, `casella smtp-upstream`, `casella identity add`,
`casella signature add|list|show|remove|auto|details`, `casella sent-copy`."""

from __future__ import annotations

import json
import signal
import threading
from pathlib import Path

import click

from casella.db import Database
from casella.errors import CasellaError
from casella.secrets import SecretBox
from casella.settings import get_settings, read_secret_env


def _fail(exc: CasellaError) -> None:
    raise click.ClickException(str(exc))


@click.command("mailserver")
def mailserver_cmd() -> None:
    """Run the SMTP submission server and the relay worker (until Ctrl-C)."""
    from mailserver.server import MailService

    settings = get_settings()
    try:
        service = MailService(settings, Database.from_settings(settings)).start()
    except CasellaError as exc:
        _fail(exc)
        return
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    click.echo(f"SMTP submission on {service.server.host}:{service.server.port}; Ctrl-C stops it.")
    stop.wait()
    service.stop()


@click.group("outbox")
def outbox() -> None:
    """The outbound queue."""


@outbox.command("list")
@click.option("--state", type=click.Choice(["queued", "sending", "sent", "deferred", "failed"]))
@click.option("--account", help="Only this account.")
@click.option("--limit", type=click.IntRange(1, 10000), default=200, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def outbox_list(state: str | None, account: str | None, limit: int, as_json: bool) -> None:
    """Each queued message: queued, sending, sent, deferred (next attempt) or failed (reason)."""
    from mailserver.outbox import list_outbox

    with Database.from_settings(get_settings()).reading() as session:
        rows = list_outbox(session, state=state, account=account, limit=limit)
    if as_json:
        click.echo(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    for r in rows:
        when = r["next_attempt_at"] and f" next {r['next_attempt_at']}" or ""
        error = r["last_error"] and f" ({r['last_error']})" or ""
        click.echo(f"#{r['id']} {r['state']:<8} {r['account']} {r['mail_from']} -> {', '.join(r['rcpt_tos'])} "
                   f"{r['subject']!r}{when}{error}")


@click.command("smtp-upstream")
@click.argument("account_name", metavar="NAME")
@click.option("--host", required=True)
@click.option("--port", type=int, help="Default 465 for ssl, 587 for starttls, 25 for none.")
@click.option("--security", type=click.Choice(["ssl", "starttls", "none"]), default="starttls", show_default=True)
@click.option("--username")
@click.option("--password-env", metavar="VAR", help="Read the password from this environment variable.")
def smtp_upstream(account_name: str, host: str, port: int | None, security: str, username: str | None,
                  password_env: str | None) -> None:
    """Set the SMTP server an account's outgoing mail is relayed through."""
    from mailserver.upstream import set_upstream

    password = read_secret_env(password_env) if password_env else None
    if password_env and password is None:
        raise click.ClickException(f"environment variable {password_env} is not set")
    settings = get_settings()
    try:
        with Database.from_settings(settings).session() as session:
            config = set_upstream(session, SecretBox(settings.secret_key_file), account_name, host=host, port=port,
                                  security=security, username=username, password=password)
            click.echo(f"account {account_name}: relays through {config.host}:{config.port} ({config.security})")
    except CasellaError as exc:
        _fail(exc)


@click.group("identity")
def identity() -> None:
    """Addresses a user may send as."""


@identity.command("add")
@click.argument("username")
@click.argument("address")
@click.option("--account", "account_name", required=True, help="The account this address sends through.")
def identity_add(username: str, address: str, account_name: str) -> None:
    """Let USERNAME send as ADDRESS through an account."""
    from mailserver.identities import add_identity

    try:
        with Database.from_settings(get_settings()).session() as session:
            ident = add_identity(session, username, address, account_name)
            click.echo(f"{username} may send as {ident.address} (account {account_name})")
    except CasellaError as exc:
        _fail(exc)


@click.group("signature")
def signature() -> None:
    """Company signatures: per account (its default) and per user."""


def _read(path: Path | None) -> str:
    return path.read_text(encoding="utf-8") if path is not None else ""


@signature.command("add")
@click.argument("name")
@click.option("--account", "account_name", help="The account's signature, or (with --user) the user's for it.")
@click.option("--user", "username", help="A user's own signature (for every account unless --account).")
@click.option("--text-file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--html-file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--default", is_flag=True, help="The account's default signature (for users without their own).")
def signature_add(name: str, account_name: str | None, username: str | None, text_file: Path | None,
                  html_file: Path | None, default: bool) -> None:
    """Add a signature. Templates may use {name} {first_name} {job_title} {phone} {email}
    {account} {username}."""
    from mailserver.signatures import add_signature

    try:
        with Database.from_settings(get_settings()).session() as session:
            sig = add_signature(session, name, account_name=account_name, username=username, text=_read(text_file),
                                html_body=_read(html_file), default=default)
            owner = f"user {username}" if username else f"account {account_name}"
            scope = f" on account {account_name}" if username and account_name else ""
            click.echo(f"signature {sig.name} added for {owner}{scope}{' (default)' if sig.is_default else ''}")
    except CasellaError as exc:
        _fail(exc)


@signature.command("list")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def signature_list(as_json: bool) -> None:
    """Every signature and whose it is."""
    from mailserver.signatures import list_signatures

    with Database.from_settings(get_settings()).reading() as session:
        rows = list_signatures(session)
    if as_json:
        click.echo(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    for r in rows:
        owner = " ".join(part for part in (r["user"] and f"user {r['user']}", r["account"] and f"account {r['account']}")
                         if part)
        click.echo(f"{r['name']}: {owner}{' (default)' if r['default'] else ''}")


@signature.command("show")
@click.argument("name", required=False)
@click.option("--as", "username", required=True, help="The user who sends.")
@click.option("--account", "account_name", required=True, help="The account he sends through.")
@click.option("--from", "sender", help="The From address ({email}); default the account's address.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def signature_show(name: str | None, username: str, account_name: str, sender: str | None, as_json: bool) -> None:
    """Render a signature (without NAME: the one USERNAME's mail through ACCOUNT would get)."""
    from casella.users import get_user
    from mailserver.identities import account_address
    from mailserver.signatures import find_account, render_for

    try:
        with Database.from_settings(get_settings()).reading() as session:
            user, account = get_user(session, username), find_account(session, account_name)
            rendered = render_for(session, user.id, account.id, sender or account_address(account) or user.email or "",
                                  name)
    except CasellaError as exc:
        _fail(exc)
        return
    if rendered is None:
        raise click.ClickException(f"{username} has no signature for account {account_name}: add one with "
                                   f"`casella signature add NAME --user {username}` or an account default")
    if as_json:
        click.echo(json.dumps({"name": rendered.name, "text": rendered.text, "html": rendered.html},
                              ensure_ascii=False, indent=2))
    else:
        click.echo(f"{rendered.name}\n-- \n{rendered.text}\n\n{rendered.html}")


@signature.command("remove")
@click.argument("name")
def signature_remove(name: str) -> None:
    """Delete a signature."""
    from mailserver.signatures import remove_signature

    try:
        with Database.from_settings(get_settings()).session() as session:
            remove_signature(session, name)
    except CasellaError as exc:
        _fail(exc)
    click.echo(f"signature {name} removed")


@signature.command("auto")
@click.argument("account_name", metavar="ACCOUNT")
@click.option("--on/--off", "on", required=True, help="Sign every submission (a client opts out per message "
                                                      "with X-Casella-Signature: no).")
def signature_auto(account_name: str, on: bool) -> None:
    """Sign every message sent through ACCOUNT, or only those that ask."""
    from mailserver.signatures import set_auto_signature

    try:
        with Database.from_settings(get_settings()).session() as session:
            set_auto_signature(session, account_name, on)
    except CasellaError as exc:
        _fail(exc)
    click.echo(f"account {account_name}: " + ("every message is signed" if on else
                                              "signed only when X-Casella-Signature asks"))


@signature.command("details")
@click.argument("username")
@click.option("--job-title", help="{job_title}; an empty string clears it.")
@click.option("--phone", help="{phone}; an empty string clears it.")
def signature_details(username: str, job_title: str | None, phone: str | None) -> None:
    """Set a user's job title and phone, shown in signatures."""
    from mailserver.signatures import set_user_details

    try:
        with Database.from_settings(get_settings()).session() as session:
            user = set_user_details(session, username, job_title=job_title, phone=phone)
            click.echo(f"{username}: job title {user.job_title or '-'}, phone {user.phone or '-'}")
    except CasellaError as exc:
        _fail(exc)


@click.command("sent-copy")
@click.argument("account_name", metavar="ACCOUNT")
@click.option("--on/--off", "on", required=True, help="Append each relayed message to the server's Sent folder.")
def sent_copy(account_name: str, on: bool) -> None:
    """Copy mail sent through ACCOUNT to its IMAP server's Sent folder (IMAP APPEND), or stop."""
    from mailserver.relay import set_imap_append_sent

    try:
        with Database.from_settings(get_settings()).session() as session:
            set_imap_append_sent(session, account_name, on)
    except CasellaError as exc:
        _fail(exc)
    click.echo(f"account {account_name}: sent mail is " + ("copied to the server's Sent folder" if on else
                                                          "no longer copied to the server"))


COMMANDS: list[click.Command] = [mailserver_cmd, outbox, smtp_upstream, identity, signature, sent_copy]
