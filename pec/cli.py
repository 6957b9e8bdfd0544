"""`casella pec ...`: the trust store, a one-file check (classify + signature), and the stored
PEC that need a look: orphan receipts and sent PEC without delivery past the timeout."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from pec.errors import TrustStoreError
from pec.trust import TrustStore, fingerprint

__all__ = ["COMMANDS", "pec"]


def _echo_json(data: Any) -> None:
    click.echo(json.dumps(data, ensure_ascii=False, indent=2, default=str))


@click.group()
def pec() -> None:
    """PEC: trust store and message checks."""


@pec.group()
def trust() -> None:
    """The certificates PEC provider signatures are checked against."""


@trust.command("add")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def trust_add(file: Path) -> None:
    """Add the certificates of FILE.pem (a PEM bundle) to the PEC trust store."""
    store = TrustStore.from_settings()
    try:
        added = store.add_certificates(file.read_bytes(), source=str(file))
    except TrustStoreError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"{added} certificate(s) added to {store.pec_bundle}")


@trust.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def trust_list(as_json: bool) -> None:
    """The certificates an administrator added (the system CA bundle is used as well)."""
    store = TrustStore.from_settings()
    rows = [{"subject": c.subject.rfc4514_string(), "issuer": c.issuer.rfc4514_string(),
             "not_before": c.not_valid_before_utc.isoformat(),
             "not_after": c.not_valid_after_utc.isoformat(), "sha256": fingerprint(c)}
            for c in store.certificates()]
    if as_json:
        _echo_json({"store": str(store.pec_bundle),
                    "system_bundle": str(store.system_bundle), "certificates": rows})
        return
    click.echo(f"store: {store.pec_bundle} ({len(rows)} certificate(s)); "
               f"system bundle: {store.system_bundle}")
    for row in rows:
        click.echo(f"{row['sha256'][:16]}  {row['not_before'][:10]}..{row['not_after'][:10]}  "
                   f"{row['subject']}")


@pec.command("check")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def check(file: Path, as_json: bool) -> None:
    """Classify FILE.eml and check its provider signature."""
    from ingest.parse import parse_message
    from pec.classify import classify

    raw = file.read_bytes()
    info = classify(raw, parse_message(raw), TrustStore.from_settings())
    if as_json:
        _echo_json(None if info is None else info.as_json())
        return
    if info is None:
        click.echo("not a PEC message")
        return
    sig = info.signature
    click.echo(f"kind: {info.kind}" + (f" ({info.receipt_form})" if info.receipt_form else ""))
    click.echo(f"refers to: {info.refers_to_msgid or '-'}")
    click.echo(f"sender: {info.sender or '-'}")
    if sig is not None:
        click.echo(f"signature: {sig.status} - {sig.detail}")
        click.echo(f"signer: {sig.signer_subject or '-'} <{sig.signer_email or '-'}>")
        click.echo(f"signed at: {sig.signing_time or '-'}; certificate valid "
                   f"{sig.not_before or '-'} .. {sig.not_after or '-'}")
    for problem in info.problems:
        click.echo(f"problem: {problem}")


def _session_rows(fetch: Any) -> Any:
    from casella.db import Database
    from casella.settings import get_settings

    settings = get_settings()
    database = Database.from_settings(settings)
    try:
        with database.reading() as session:
            return fetch(session, settings)
    finally:
        database.dispose()


@pec.command("orphans")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def orphans(as_json: bool) -> None:
    """Receipts whose sent message is not stored (unknown or not read yet)."""
    from pec.status import orphan_receipts

    rows = _session_rows(lambda session, _settings: orphan_receipts(session))
    if as_json:
        _echo_json(rows)
        return
    for row in rows:
        click.echo(f"{row['id']:>7} {row['kind']:<26} {(row['at'] or '')[:16]:<16} <{row['refers_to_msgid'] or '-'}>")
    click.echo(f"{len(rows)} orphan receipt(s)")


@pec.command("overdue")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def overdue(as_json: bool) -> None:
    """Sent PEC with a recipient still without delivery after CASELLA_PEC_DELIVERY_TIMEOUT_HOURS."""
    from pec.status import overdue_sent

    rows = _session_rows(lambda session, settings: overdue_sent(session, settings.pec_delivery_timeout_hours))
    if as_json:
        _echo_json(rows)
        return
    for row in rows:
        click.echo(f"{row['id']:>7} {(row['sent_at'] or '')[:16]:<16} {row['subject'][:40]:<40} "
                   f"waiting: {', '.join(row['undelivered'])}")
    click.echo(f"{len(rows)} overdue sent PEC")


COMMANDS: list[click.Command] = [pec]
