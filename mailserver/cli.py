"""Commands of the mailserver package, registered in casella/cli.py:
`casella mailserver`, `casella outbox list`, `casella smtp-upstream`, `casella identity add`."""

from __future__ import annotations

import json
import signal
import threading

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


COMMANDS: list[click.Command] = [mailserver_cmd, outbox, smtp_upstream, identity]
