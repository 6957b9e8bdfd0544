"""`casella rules …` and `casella pratica …` (registered in casella/cli.py)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from casella.blobs import BlobStore
from casella.db import Database
from casella.models import PRATICA_STATUSES
from casella.settings import get_settings


def _db() -> Database:
    return Database.from_settings(get_settings())


def _echo_json(data: Any) -> None:
    click.echo(json.dumps(data, ensure_ascii=False, indent=2, default=str))


@click.group()
def rules() -> None:
    """Routing rules: who gets a message, its agent, folder, tags, pratica."""


@rules.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--all", "replace_all", is_flag=True,
              help="Replace every rule, also those of accounts the file does not name.")
def rules_import(file: Path, replace_all: bool) -> None:
    """Load rules from a YAML file: the rules of each account it names are replaced."""
    from routing.yaml_io import import_rules

    with _db().session() as session:
        report = import_rules(session, file.read_text(encoding="utf-8-sig"), replace_all=replace_all)
    total = sum(report.written.values())
    per = ", ".join(f"{n} for {'every account' if s == '*' else s}" for s, n in sorted(report.written.items()))
    click.echo(f"{total} rule(s) imported" + (f" ({per})" if per else "")
               + (f"; replaced the rules of {', '.join(report.replaced)}" if report.replaced else ""))


@rules.command("export")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), help="Write to a file, not stdout.")
def rules_export(output: Path | None) -> None:
    """Write every rule as YAML, in evaluation order (the import format)."""
    from routing.yaml_io import export_rules

    with _db().session() as session:
        text = export_rules(session)
    if output is not None:
        output.write_text(text, encoding="utf-8")
    else:
        click.echo(text, nl=False)


@rules.command("list")
@click.option("--json", "as_json", is_flag=True)
def rules_list(as_json: bool) -> None:
    """Every rule in evaluation order, enabled or not."""
    from routing.stored_rules import ordered_rules

    with _db().session() as session:
        items = [r.as_dict() | {"account": r.account, "enabled": r.enabled, "stop": r.stop}
                 for r in ordered_rules(session)]
    if as_json:
        _echo_json(items)
        return
    if not items:
        click.echo("no rules: `casella rules import FILE.yaml` adds them")
    for r in items:
        state = "" if r["enabled"] else " (disabled)"
        click.echo(f"{r['account'] or '*':<16} {r['name']:<32} {len(r['conditions'])} condition(s), "
                   f"{len(r['actions'])} action(s){', stop' if r['stop'] else ''}{state}")


@rules.command("explain")
@click.argument("message_id", type=int)
@click.option("--json", "as_json", is_flag=True)
def rules_explain(message_id: int, as_json: bool) -> None:
    """Which rule matches a message and why, condition by condition (changes nothing)."""
    from routing.explain import explain, explain_lines

    settings = get_settings()
    with _db().session() as session:
        data = explain(session, BlobStore(settings.blob_dir), message_id)
    if as_json:
        _echo_json(data)
        return
    for line in explain_lines(data):
        click.echo(line)


@rules.command("replay")
@click.option("--since", required=True, type=click.DateTime(formats=["%Y-%m-%d"]),
              help="Messages dated on or after this day (YYYY-MM-DD, UTC).")
@click.option("--apply", "apply", is_flag=True, help="Apply the actions; without it nothing is changed.")
@click.option("--account", "account_name", help="Only this account's messages.")
@click.option("--json", "as_json", is_flag=True)
def rules_replay(since: datetime, apply: bool, account_name: str | None, as_json: bool) -> None:
    """Run today's rules over past mail: a dry run unless --apply."""
    from routing.replay import replay

    settings = get_settings()
    database = _db()
    with database.sessions() as session:
        session.begin()
        try:
            report = replay(session, BlobStore(settings.blob_dir), since.replace(tzinfo=UTC), apply=apply,
                            account=account_name)
        except BaseException:
            session.rollback()
            raise
        if apply:
            session.commit()
        else:
            session.rollback()
    if as_json:
        _echo_json(report.as_json())
        return
    for m in report.messages:
        click.echo(f"{m['id']:>7} {m['subject'][:50]!r}: {', '.join(m['rules'])}")
        for c in m["changes"]:
            click.echo(f"          {c['rule']}: {c['action']} {_detail(c['detail'])}")
    verb = "changed" if apply else "would change"
    click.echo(f"{report.examined} message(s) examined, {report.matched} matched a rule, {report.changed} {verb}"
               + ("" if apply else "; dry run, nothing was changed (add --apply)"))


def _detail(detail: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in detail.items() if v not in (None, "", []))


@click.group()
def pratica() -> None:
    """Pratiche (cases) that messages belong to."""


@pratica.command("list")
@click.option("--json", "as_json", is_flag=True)
@click.option("--status", type=click.Choice(PRATICA_STATUSES))
def pratica_list(as_json: bool, status: str | None) -> None:
    """Pratiche by code, with their number of messages."""
    from routing.pratiche import list_pratiche

    with _db().session() as session:
        rows = list_pratiche(session, status)
    if as_json:
        _echo_json(rows)
        return
    for r in rows:
        click.echo(f"{r['code']:<20} {r['status']:<9} {r['messages']:>5} msg  {(r['company'] or '-')[:30]:<30} "
                   f"{r['title'][:50]}")


@pratica.command("add")
@click.argument("code")
@click.option("--title", required=True)
@click.option("--company", help="The company's name, as in the anagrafica.")
@click.option("--owner", help="Username of the person in charge.")
def pratica_add(code: str, title: str, company: str | None, owner: str | None) -> None:
    """Open a pratica by hand (rules open them with `link-pratica`)."""
    from routing.pratiche import add_pratica

    with _db().session() as session:
        created = add_pratica(session, code, title, company=company, owner=owner)
        click.echo(f"pratica {created.code} added")


@pratica.command("show")
@click.argument("code")
@click.option("--json", "as_json", is_flag=True)
def pratica_show(code: str, as_json: bool) -> None:
    """One pratica with its messages."""
    from routing.pratiche import show_pratica

    with _db().session() as session:
        data = show_pratica(session, code)
    if as_json:
        _echo_json(data)
        return
    for key in ("code", "title", "company", "status", "owner", "created_at"):
        click.echo(f"{key:>10}: {data[key] or '-'}")
    for m in data["messages"]:
        click.echo(f"{m['id']:>7} {m['protocol'] or '-':<13} {(m['date'] or '')[:10]} {m['from'][:30]:<30} "
                   f"{m['subject'][:60]}")


COMMANDS: list[click.Command] = [rules, pratica]
