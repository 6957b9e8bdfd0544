"""`casella reports list [--orphans] [--json]`: bounces and read receipts as Casella read
them (mailserver/report_stage.py). Casella only reads reports; it never sends an MDN."""

from __future__ import annotations

import json

import click

from casella.db import Database
from casella.settings import get_settings


@click.group("reports")
def reports() -> None:
    """Delivery reports (bounces, DSN) and read receipts (MDN) about mail we sent."""


@reports.command("list")
@click.option("--orphans", is_flag=True, help="Only reports whose sent message is not stored (yet).")
@click.option("--limit", type=click.IntRange(1, 10000), default=200, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def reports_list(orphans: bool, limit: int, as_json: bool) -> None:
    """Newest first, one line per recipient a report speaks of; unreadable reports last,
    with their problems (see them with `casella message show ID`)."""
    from mailserver.report_stage import list_reports

    with Database.from_settings(get_settings()).reading() as session:
        rows = list_reports(session, orphans=orphans, limit=limit)
    if as_json:
        click.echo(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    for r in rows:
        about = f"message {r['refers_to']}" if r["refers_to"] else f"<{r['refers_to_msgid']}> (not stored)" \
            if r["refers_to_msgid"] else "an unknown message"
        problems = f" [{'; '.join(r['problems'])}]" if r["problems"] else ""
        click.echo(f"report {r['message']}: {r['text']} - about {about}{problems}")


COMMANDS = (reports,)
