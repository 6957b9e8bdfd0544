"""The `casella` command. Each subcommand is a thin shell over a package's functions."""

from __future__ import annotations

import getpass
import json
import logging
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click
from sqlalchemy import func, select

from casella.db import Database, upgrade
from casella.errors import CasellaError, NotFound
from casella.settings import Settings, get_settings

F = TypeVar("F", bound=Callable[..., Any])


def _db() -> Database:
    return Database.from_settings(get_settings())


def _echo_json(data: Any) -> None:
    click.echo(json.dumps(data, ensure_ascii=False, indent=2, default=str))


class CasellaGroup(click.Group):
    """Turns Casella's own errors into one clear line and exit code 2."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except CasellaError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(2)


@click.group(cls=CasellaGroup)
@click.option("-v", "--verbose", is_flag=True, help="Log more.")
def main(verbose: bool) -> None:
    """Casella: shared mailboxes, PEC and protocollo informatico."""
    level = logging.DEBUG if verbose else getattr(logging, get_settings().log_level, logging.INFO)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


# ---------------------------------------------------------------- database
@main.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Apply every pending migration (also done on every start)."""
    upgrade(get_settings().database_url)
    click.echo("database is up to date")


# ---------------------------------------------------------------- accounts
@main.group()
def account() -> None:
    """Mail accounts Casella reads."""


@account.command("add")
@click.argument("name")
@click.option("--imap-host", help="IMAP server; leave out for a local account filled by `casella import`.")
@click.option("--imap-port", type=int, help="Default 993 for ssl, 143 otherwise.")
@click.option("--username")
@click.option("--password", help="Prefer --password-env or the prompt: a password here stays in shell history.")
@click.option("--password-env", metavar="VAR", help="Read the password from this environment variable.")
@click.option("--security", type=click.Choice(["ssl", "starttls", "none"]), default="ssl", show_default=True)
@click.option("--pec", is_flag=True, help="A PEC (posta elettronica certificata) mailbox.")
@click.option("--folders", default="INBOX", show_default=True, help="Comma-separated folders to read.")
@click.option("--sent-folders", help="Comma-separated folders holding sent mail (direction out).")
@click.option("--mark-seen", is_flag=True, help="Set \\Seen on the server after a message is stored here.")
@click.option("--move-to", help="Move stored messages to this server folder ...")
@click.option("--move-after-days", type=int, help="... this many days after they were stored here.")
@click.option("--registry", help="Protocol registry (AOO) code; default from CASELLA_DEFAULT_REGISTRY.")
def account_add(name: str, imap_host: str | None, imap_port: int | None, username: str | None, password: str | None,
                password_env: str | None, security: str, pec: bool, folders: str, sent_folders: str | None,
                mark_seen: bool, move_to: str | None, move_after_days: int | None, registry: str | None) -> None:
    """Add an account. Its password is stored encrypted and never printed."""
    from ingest.accounts import add_account

    settings = get_settings()
    if imap_host:
        if not username:
            raise click.UsageError("--username is required with --imap-host")
        if password is None and password_env:
            password = _env_password(password_env)
        if password is None:
            password = getpass.getpass(f"Password for {username}@{imap_host}: ")
    if (move_to is None) != (move_after_days is None):
        raise click.UsageError("--move-to and --move-after-days go together")
    database = _db()
    with database.session() as session:
        acc = add_account(session, settings, name=name, imap_host=imap_host, imap_port=imap_port, username=username,
                          password=password, security=security, is_pec=pec,
                          folders=[f.strip() for f in folders.split(",") if f.strip()],
                          sent_folders=[f.strip() for f in sent_folders.split(",")] if sent_folders else None,
                          mark_seen=mark_seen, move_to=move_to, move_after_days=move_after_days, registry=registry)
        click.echo(f"account {acc.name} added ({'IMAP ' + imap_host if imap_host else 'local, for casella import'})")


def _env_password(var: str) -> str:
    from casella.settings import read_secret_env

    value = read_secret_env(var)
    if value is None:
        raise click.UsageError(f"--password-env {var}: the variable {var} is not set")
    return value


@account.command("list")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def account_list(as_json: bool) -> None:
    """Accounts with their fetch status (never their passwords)."""
    from ingest.accounts import account_status

    database = _db()
    with database.session() as session:
        rows = account_status(session)
    if as_json:
        _echo_json(rows)
        return
    for r in rows:
        where = f"{r['imap_host']}:{r['imap_port']}" if r["imap_host"] else "local"
        err = f"  ERROR: {r['last_error']}" if r["last_error"] else ""
        click.echo(f"{r['name']:<20} {where:<30} stored {r['stored_count']:>7}  on server {r['server_count']}{err}")


@account.command("grant")
@click.argument("name")
@click.option("--group", "group_name", help="Grant to this group.")
@click.option("--user", "username", help="Grant to this user.")
@click.option("--level", type=click.Choice(["read", "write"]), default="write", show_default=True)
def account_grant(name: str, group_name: str | None, username: str | None, level: str) -> None:
    """Let a group or a user read (and work on) an account's mail."""
    from casella.users import grant_mailbox

    with _db().session() as session:
        grant_mailbox(session, name, group=group_name, user=username, level=level)
    click.echo(f"account {name}: {level} access for {group_name or username}")


# ---------------------------------------------------------------- users and groups
@main.group()
def user() -> None:
    """People who use Casella."""


@user.command("add")
@click.argument("username")
@click.option("--role", type=click.Choice(["admin", "manager", "operator", "agent", "marketing"]), required=True)
@click.option("--groups", default="", help="Comma-separated groups to join.")
@click.option("--password-env", metavar="VAR", help="Read the password from this environment variable.")
@click.option("--no-password", is_flag=True, help="Create the user without a password (cannot log in).")
@click.option("--name", "display_name", default="", help="Display name.")
@click.option("--email")
def user_add(username: str, role: str, groups: str, password_env: str | None, no_password: bool,
             display_name: str, email: str | None) -> None:
    """Add a user; the password is hashed with argon2id."""
    from casella.users import add_user

    password: str | None = None
    if password_env:
        password = _env_password(password_env)
    elif not no_password and sys.stdin.isatty():
        password = getpass.getpass(f"Password for {username}: ")
    with _db().session() as session:
        add_user(session, username, role, groups=[g.strip() for g in groups.split(",") if g.strip()],
                 password=password, display_name=display_name, email=email)
    click.echo(f"user {username} added ({role})")


@user.command("list")
@click.option("--json", "as_json", is_flag=True)
def user_list(as_json: bool) -> None:
    """Users with their role and groups (never their password hashes)."""
    from casella.users import list_users

    with _db().session() as session:
        rows = list_users(session)
    if as_json:
        _echo_json(rows)
        return
    for r in rows:
        click.echo(f"{r['username']:<20} {r['role']:<10} {','.join(r['groups'])}")


@main.group()
def group() -> None:
    """Groups of users (teams)."""


@group.command("add")
@click.argument("name")
@click.option("--assignment", type=click.Choice(["round-robin", "least-loaded"]), default="round-robin",
              show_default=True, help="How routing picks a member when it assigns to this group.")
def group_add(name: str, assignment: str) -> None:
    """Add a group."""
    from casella.users import add_group

    with _db().session() as session:
        add_group(session, name, assignment)
    click.echo(f"group {name} added")


# ---------------------------------------------------------------- ingest
@main.command()
@click.option("--once", is_flag=True, help="One pass over every account and folder, then exit.")
@click.option("--account", "account_name", help="Only this account.")
def ingest(once: bool, account_name: str | None) -> None:
    """Fetch new mail from the IMAP/PEC accounts (a daemon unless --once)."""
    from ingest.service import IngestDaemon, ingest_once, summary_lines

    settings = get_settings()
    database = _db()
    if account_name is not None:
        _require_account(database, account_name)
    if once:
        outcomes = ingest_once(settings, database, account_name)
        for line in summary_lines(outcomes):
            click.echo(line, err=line.startswith("ERROR"))
        if not outcomes:
            click.echo("no IMAP accounts to read: add one with `casella account add NAME --imap-host ...`")
        sys.exit(1 if any(o.error for o in outcomes) else 0)
    stop = _install_stop_handlers()
    daemon = IngestDaemon(settings, database)
    daemon.start(account_name)
    _wait_for_signal(stop)
    daemon.stop()


def _require_account(database: Database, name: str) -> int:
    from casella.models import Account

    with database.session() as session:
        acc_id = session.scalar(select(Account.id).where(Account.name == name))
    if acc_id is None:
        raise NotFound(f"no account named {name!r}; `casella account list` shows them")
    return acc_id


def _install_stop_handlers() -> threading.Event:
    """SIGINT/SIGTERM set the returned event; install before announcing that we run."""
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    return stop


def _wait_for_signal(stop: threading.Event) -> None:
    while not stop.wait(1.0):
        pass


@main.command("import")
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@click.option("--account", "account_name", required=True, help="The account the mail belongs to.")
@click.option("--folder", default="INBOX", show_default=True, help="Folder to file the messages in.")
def import_cmd(path: Path, account_name: str, folder: str) -> None:
    """Import a Maildir, an mbox (.gz too) or a folder of .eml files."""
    from ingest.importer import import_path
    from ingest.service import make_storer

    settings = get_settings()
    database = _db()
    account_id = _require_account(database, account_name)
    storer = make_storer(settings, database)
    result = import_path(storer, account_id, path, folder=folder, batch_size=settings.ingest_batch_size,
                         progress=lambda r: click.echo(f"\r{r.stored} stored, {r.duplicates} already here", nl=False, err=True))
    click.echo("", err=True)
    click.echo(f"imported {path}: {result.stored} new message(s), {result.duplicates} already stored")


# ---------------------------------------------------------------- messages
@main.group()
def message() -> None:
    """Stored messages."""


@message.command("list")
@click.option("--json", "as_json", is_flag=True)
@click.option("--account", "account_name")
@click.option("--unknown", is_flag=True, help="Only messages from unknown senders.")
def message_list(as_json: bool, account_name: str | None, unknown: bool) -> None:
    """List stored messages, oldest first."""
    from casella.messages import iter_summaries

    database = _db()
    with database.session() as session:
        if as_json:
            out = sys.stdout
            out.write("[")
            for n, item in enumerate(iter_summaries(session, account=account_name, unknown_only=unknown)):
                out.write(("," if n else "") + "\n  " + json.dumps(item, ensure_ascii=False, default=str))
            out.write("\n]\n")
            return
        for item in iter_summaries(session, account=account_name, unknown_only=unknown):
            click.echo(f"{item['id']:>7} {item['protocol'] or '-':<13} {(item['date'] or '')[:16]:<16} "
                       f"{item['from']['addr'][:30]:<30} {item['subject'][:60]}")


def _get_message(session: Any, message_id: int) -> Any:
    from casella.models import Message

    msg = session.get(Message, message_id)
    if msg is None:
        raise NotFound(f"no message {message_id}; `casella message list` shows them")
    return msg


@message.command("show")
@click.argument("message_id", type=int)
@click.option("--json", "as_json", is_flag=True)
def message_show(message_id: int, as_json: bool) -> None:
    """Everything about one message: bodies, attachments, defects, protocol, history."""
    from casella.messages import detail

    database = _db()
    with database.session() as session:
        data = detail(session, _get_message(session, message_id))
    if as_json:
        _echo_json(data)
        return
    for key in ("id", "protocol", "account", "folder", "date", "subject"):
        click.echo(f"{key:>10}: {data[key]}")
    click.echo(f"{'from':>10}: {data['from']['name']} <{data['from']['addr']}>")
    click.echo(f"{'link':>10}: {data['link']['kind']} {data['link']['name'] or ''}")
    click.echo("")
    click.echo(data["text"] or "(no text part)")


@message.command("raw")
@click.argument("message_id", type=int)
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), help="Write to a file, not stdout.")
def message_raw(message_id: int, output: Path | None) -> None:
    """The stored bytes, exactly as the server gave them."""
    from casella.blobs import BlobStore

    settings = get_settings()
    database = _db()
    with database.session() as session:
        digest = _get_message(session, message_id).sha256
    data = BlobStore(settings.blob_dir).get(digest, verify=True)
    if output is not None:
        output.write_bytes(data)
    else:
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()


# ---------------------------------------------------------------- protocol
@main.group()
def protocol() -> None:
    """The protocol register (protocollo informatico)."""


@protocol.command("list")
@click.option("--json", "as_json", is_flag=True)
@click.option("--year", type=int)
@click.option("--registry", help="Registry (AOO) code.")
def protocol_list(as_json: bool, year: int | None, registry: str | None) -> None:
    """Registrations in number order."""
    from casella.messages import registration_json
    from protocol_registry.register import list_registrations

    database = _db()
    with database.session() as session:
        rows = [registration_json(r) for r in list_registrations(session, year=year, registry=registry)]
    if as_json:
        _echo_json(rows)
        return
    for r in rows:
        mark = " ANNULLATA" if r["cancelled"] else ""
        click.echo(f"{r['protocol']}  {r['registered_at'][:19]}  {r['direction']:<3} {r['correspondent'][:40]:<40} {r['subject'][:50]}{mark}")


@protocol.command("show")
@click.argument("number")
@click.option("--json", "as_json", is_flag=True)
@click.option("--registry", help="Registry (AOO) code, when several number the same year.")
def protocol_show(number: str, as_json: bool, registry: str | None) -> None:
    """One registration, by number: 2026/42 or 2026/0000042."""
    from casella.messages import registration_json
    from protocol_registry.register import find_registration

    database = _db()
    with database.session() as session:
        data = registration_json(find_registration(session, number, registry))
    if as_json:
        _echo_json(data)
    else:
        for key, value in data.items():
            click.echo(f"{key:>14}: {value}")


@protocol.command("cancel")
@click.argument("number")
@click.option("--reason", required=True)
@click.option("--user", "username", default=lambda: getpass.getuser(), show_default="the OS user")
@click.option("--registry")
def protocol_cancel(number: str, reason: str, username: str, registry: str | None) -> None:
    """Cancel a registration: it stays in the register with the reason, user and time."""
    from protocol_registry.register import cancel, find_registration

    database = _db()
    with database.session() as session:
        reg = find_registration(session, number, registry)
        cancel(session, reg, reason=reason, user=username)
        click.echo(f"{reg.label} cancelled")


# ---------------------------------------------------------------- contacts
@main.group()
def contacts() -> None:
    """The shared contact registry (anagrafica)."""


@contacts.command("import")
@click.argument("file", type=click.File("r", encoding="utf-8-sig"))
def contacts_import(file: Any) -> None:
    """Import companies and contacts from a CSV (company_name,company_domain,contact_name,email,vat_number,...)."""
    from anagrafica.contacts_csv import import_csv

    settings = get_settings()
    database = _db()
    with database.session() as session:
        report = import_csv(session, file, extra_freemail=settings.freemail_domains_extra)
    for warning in report.warnings:
        click.echo(f"warning: {warning}", err=True)
    click.echo(f"{report.companies_created} companies and {report.contacts_created} contacts created, "
               f"{report.emails_added} addresses and {report.domains_added} domains added")


@contacts.command("export")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path))
def contacts_export(output: Path | None) -> None:
    """Write every company and contact as CSV (the import format)."""
    from anagrafica.contacts_csv import export_csv

    database = _db()
    with database.session() as session:
        text = export_csv(session)
    if output is not None:
        output.write_text(text, encoding="utf-8")
    else:
        click.echo(text, nl=False)


# ---------------------------------------------------------------- serve
@main.command()
@click.option("--no-demo", is_flag=True, help="Do not create the demo account on an empty installation.")
def serve(no_demo: bool) -> None:
    """Run Casella: the webmail, the ingest daemon, the submission server and its relay
    worker, and the search indexer."""
    from ingest.service import IngestDaemon
    from mailserver.server import MailService
    from search.indexer import run_forever as run_indexer
    from webmail.server import WebServer

    settings = get_settings()
    database = _db()
    if settings.demo and not no_demo:
        from casella.demo import ensure_demo

        ensure_demo(settings, database, echo=click.echo)
    _print_overview(settings, database)
    logins = _demo_logins(settings, database) if settings.demo and not no_demo else []
    stop = _install_stop_handlers()
    daemon = IngestDaemon(settings, database)
    daemon.start()
    mail = MailService(settings, database).start()
    indexer = threading.Thread(target=run_indexer, args=(settings, database, stop), name="search-indexer", daemon=True)
    indexer.start()
    try:
        web = WebServer(settings, database).start(settle_heap=True)
    except CasellaError as exc:
        mail.stop()
        daemon.stop()
        raise click.ClickException(str(exc)) from None
    click.echo(f"webmail: {web.url}/")
    for username, role, password in logins:
        click.echo(f"  demo login ({role}): {username} / {password}")
    click.echo(f"submission server (SMTP, authenticated) on {settings.smtp_listen}")
    click.echo(f"search: {'Meilisearch at ' + settings.search_url if settings.search_url else 'embedded index in ' + str(settings.search_index_dir)}")
    click.echo("Casella is running; Ctrl-C stops it.")
    _wait_for_signal(stop)
    click.echo("stopping...")
    web.stop()
    mail.stop()
    daemon.stop()
    indexer.join(timeout=10)


def _demo_logins(settings: Settings, database: Database) -> list[tuple[str, str, str]]:
    """One login per role on an installation that has the demo mailbox."""
    from casella.demo import DEMO_ACCOUNT
    from casella.demo.logins import ensure_demo_logins
    from casella.models import Account

    with database.reading() as session:
        if session.scalar(select(Account.id).where(Account.name == DEMO_ACCOUNT)) is None:
            return []
    return ensure_demo_logins(settings, database, DEMO_ACCOUNT)


def _print_overview(settings: Settings, database: Database) -> None:
    from casella.models import Account, Message, Registration

    with database.session() as session:
        accounts = session.scalar(select(func.count(Account.id)))
        messages = session.scalar(select(func.count(Message.id)))
        regs = session.scalar(select(func.count(Registration.id)))
    click.echo(f"data: {settings.data_dir}  database: {settings.database_url}")
    click.echo(f"{accounts} account(s), {messages} message(s), {regs} protocol registration(s)")
    click.echo('try: casella message list | casella protocol list | casella search "fattura" | casella message list --unknown')


def _register_domain_commands() -> None:
    """Commands that live with their domain package."""
    from mailserver.cli import COMMANDS as mailserver_commands
    from mailserver.report_cli import COMMANDS as report_commands
    from pec.cli import COMMANDS as pec_commands
    from routing.cli import COMMANDS as routing_commands
    from search.cli import COMMANDS as search_commands
    from webmail.cli import COMMANDS as webmail_commands

    for command in (*routing_commands, *search_commands, *mailserver_commands, *pec_commands, *webmail_commands,
                    *report_commands):
        main.add_command(command)


_register_domain_commands()

if __name__ == "__main__":
    main()
