#!/usr/bin/env python3
"""End-to-end ingest benchmark: a real Dovecot, the real `ingest_once`, two baselines.

    .venv/bin/python bench/ingest.py --count 10000 [--seed 1] [--workers W] [--batch B]
                                     [--keep DIR] [--json] [--cli] [--profile FILE]

1. Generates N messages (../shared/tools/gen_corpus.py when it exists, else
   casella.demo.corpus) into a Maildir, and writes the same bytes into a throwaway Dovecot
   (tests/servers/dovecot.py, loopback, a free port) as Maildir files in cur/.
2. Times, on the same mail and in this order:
     bare fetch   one imapclient connection, SELECT, then FETCH BODY.PEEK[] + INTERNALDATE
                  (what ingest/imap.py asks for) in batches of the ingest batch size: the
                  network and IMAP floor;
     ours         `ingest_once(settings, db)` (or `casella ingest --once` with --cli) for one
                  IMAP account made by `ingest.accounts.add_account`, SQLite and blobs in a
                  temporary data dir, default settings except --workers/--batch: fetched,
                  stored, parsed, threaded, numbered and linked;
     notmuch new  a fresh notmuch database (NOTMUCH_CONFIG in a temp dir) over the
                  generated Maildir; only `notmuch new` is timed.
   Dovecot has already indexed the folder before the first timing (one SELECT), and every
   file has just been written, so all three read from the page cache.
3. Checks ours: N messages stored (each with its blob and a thread), N protocol
   registrations, nothing quarantined; fails loudly (exit 1) otherwise.
4. Prints seconds and messages/s per row and the time ratios ours/notmuch and
   ours/bare fetch (> 1: ours takes longer).

Everything runs on 127.0.0.1 and in one temporary directory, removed at the end unless
--keep DIR; the whole run is bounded by --timeout seconds. The anagrafica is loaded from
casella/demo/contacts.csv (companies by domain) unless --contacts none, so that the link
stage finds companies as well as unknown senders.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# This file is bench/ingest.py: run as a script, its directory comes first on sys.path and
# `import ingest` would find this file instead of the ingest package of the repo root.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(ROOT))

DEFAULT_CONTACTS = ROOT / "casella" / "demo" / "contacts.csv"
USER, PASSWORD = "bench", "benchpw"
ACCOUNT = "bench"
FETCH_KEYS = [b"BODY.PEEK[]", b"INTERNALDATE"]  # what ingest/imap.py fetches


from bench.harness import (  # noqa: E402
    BenchFailure, BenchTimeout, generate, machine, note, notmuch_env, remaining, run, start_clock,
    work_dir,
)



def maildir_files(maildir: Path) -> list[Path]:
    return sorted(p for sub in ("cur", "new") for p in (maildir / sub).iterdir() if p.is_file())


def read_all(paths: list[Path]) -> Iterator[bytes]:
    for p in paths:
        yield p.read_bytes()


# ----------------------------------------------------------------- the rows
@dataclass
class Row:
    name: str
    seconds: float
    messages: int
    detail: str = ""

    @property
    def rate(self) -> float:
        return self.messages / self.seconds if self.seconds > 0 else float("inf")


def bare_fetch(host: str, port: int, batch: int) -> tuple[Row, int]:
    """One connection, SELECT, SEARCH, FETCH in batches; returns the row and the bytes read."""
    from imapclient import IMAPClient

    t0 = time.perf_counter()
    client = IMAPClient(host, port=port, ssl=False, timeout=60)
    try:
        client.login(USER, PASSWORD)
        client.select_folder("INBOX", readonly=True)
        uids = sorted(client.search(["UID", "1:*"]))
        count = size = 0
        for start in range(0, len(uids), batch):
            remaining()
            fetched = client.fetch(uids[start:start + batch], FETCH_KEYS)
            for data in fetched.values():
                body = data.get(b"BODY[]")
                if body is not None:
                    count += 1
                    size += len(body)
        client.logout()
    finally:
        with contextlib.suppress(Exception):
            client.shutdown()
    return Row("bare fetch", time.perf_counter() - t0, count, f"batches of {batch}, one connection"), size


def notmuch_new(maildir: Path, work: Path, expected: int) -> tuple[Row, str]:
    binary = shutil.which("notmuch")
    if binary is None:
        raise BenchFailure("notmuch is not installed (apt-get install notmuch; scripts/test-deps.sh)")
    env = notmuch_env(maildir, work, synchronize_flags=True)
    got = run([binary, "config", "get", "database.path"], env=env).stdout.strip()
    if Path(got).resolve() != maildir.resolve():
        raise BenchFailure(f"notmuch does not use the benchmark config (database.path is {got!r})")
    version = run([binary, "--version"], env=env).stdout.strip()
    t0 = time.perf_counter()
    run([binary, "new", "--quiet"], env=env)
    seconds = time.perf_counter() - t0
    indexed = int(run([binary, "count", "--output=files", "*"], env=env).stdout.strip())
    if indexed != expected:
        raise BenchFailure(f"notmuch indexed {indexed} files, expected {expected}")
    return Row("notmuch new", seconds, indexed, "fresh database, 1 process"), version


@dataclass
class OursResult:
    row: Row
    settings: dict[str, Any]
    checks: dict[str, Any] = field(default_factory=dict)


def casella_env(data_dir: Path, workers: int | None, batch: int | None) -> dict[str, str]:
    env = {"CASELLA_DATA_DIR": str(data_dir)}
    if workers is not None:
        env["CASELLA_INGEST_WORKERS"] = str(workers)
    if batch is not None:
        env["CASELLA_INGEST_BATCH_SIZE"] = str(batch)
    return env


def prepare_account(settings: Any, host: str, port: int, contacts: Path | None) -> None:
    """Schema, the anagrafica and the IMAP account; none of it is timed."""
    from casella.db import Database
    from ingest.accounts import add_account

    db = Database.from_settings(settings)
    try:
        with db.session() as session:
            if contacts is not None:
                from anagrafica.contacts_csv import import_csv

                with open(contacts, encoding="utf-8") as f:
                    import_csv(session, f, extra_freemail=settings.freemail_domains_extra)
            add_account(session, settings, name=ACCOUNT, imap_host=host, imap_port=port, username=USER,
                        password=PASSWORD, security="none", is_pec=False, folders=["INBOX"], sent_folders=None)
    finally:
        db.dispose()


def run_ours(env: dict[str, str], cli: bool, profile: Path | None) -> tuple[float, str]:
    """Time one ingest pass; returns (seconds, how it ran)."""
    if cli:
        casella = ROOT / ".venv" / "bin" / "casella"
        cmd = [str(casella) if casella.exists() else "casella", "ingest", "--once"]
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("CASELLA_")}
        full_env.update(env)
        t0 = time.perf_counter()
        proc = run(cmd, env=full_env)
        seconds = time.perf_counter() - t0
        note(f"casella ingest --once: {proc.stdout.strip()}")
        return seconds, "`casella ingest --once` (a new process: imports and schema check included)"

    from casella.db import Database
    from casella.settings import Settings
    from ingest.service import ingest_once, summary_lines

    settings = Settings.load(env)
    db = Database.from_settings(settings)  # migrations already applied: a no-op check, not timed
    try:
        profiler = None
        if profile is not None:
            import cProfile

            profiler = cProfile.Profile()
        t0 = time.perf_counter()
        if profiler is not None:
            profiler.enable()
        outcomes = ingest_once(settings, db)
        if profiler is not None:
            profiler.disable()
        seconds = time.perf_counter() - t0
    finally:
        db.dispose()
        with contextlib.suppress(Exception):
            from ingest import parse_pool

            parse_pool.shutdown()
    for line in summary_lines(outcomes):
        note(f"ingest_once: {line}")
    errors = [o.error for o in outcomes if o.error]
    if errors or len(outcomes) != 1:
        raise BenchFailure(f"ingest_once failed: {errors or outcomes}")
    how = "ingest_once(settings, db) in this process"
    if profiler is not None:
        assert profile is not None
        profiler.dump_stats(str(profile))
        how += " UNDER cProfile (slower than a plain run)"
    return seconds, how


def verify(env: dict[str, str], expected: int) -> dict[str, Any]:
    """Everything ours had to do, done for every message; raise otherwise."""
    from sqlalchemy import func, select

    from casella.blobs import BlobStore
    from casella.db import Database
    from casella.models import Account, Message, QuarantineEntry, Registration
    from casella.settings import Settings

    settings = Settings.load(env)
    db = Database(settings.database_url)
    try:
        with db.session() as session:
            account_id = session.scalar(select(Account.id).where(Account.name == ACCOUNT))
            stored = session.scalar(select(func.count(Message.id)).where(Message.account_id == account_id))
            threaded = session.scalar(select(func.count(Message.id)).where(Message.account_id == account_id,
                                                                           Message.thread_id.is_not(None)))
            registrations = session.scalar(select(func.count(Registration.id)).join(
                Message, Message.id == Registration.message_id).where(Message.account_id == account_id))
            numbers = session.execute(select(func.min(Registration.number), func.max(Registration.number))).one()
            quarantined = session.scalar(select(func.count(QuarantineEntry.id)))
            links = dict(session.execute(select(Message.link_kind, func.count(Message.id)).where(
                Message.account_id == account_id).group_by(Message.link_kind)).all())
            digests = list(session.scalars(select(Message.sha256).where(Message.account_id == account_id)))
    finally:
        db.dispose()
    blobs = BlobStore(settings.blob_dir)
    missing_blobs = sum(1 for d in digests if not blobs.exists(d))
    checks = {"stored": stored, "registrations": registrations, "threaded": threaded,
              "quarantined": quarantined, "missing_blobs": missing_blobs, "links": links,
              "protocol_numbers": list(numbers)}
    problems = []
    if stored != expected:
        problems.append(f"{stored} messages stored, expected {expected}")
    if registrations != expected:
        problems.append(f"{registrations} protocol registrations, expected {expected}")
    if threaded != expected:
        problems.append(f"{threaded} messages in a thread, expected {expected}")
    if quarantined:
        problems.append(f"{quarantined} messages quarantined")
    if missing_blobs:
        problems.append(f"{missing_blobs} stored messages without their blob")
    if problems:
        raise BenchFailure("ours did not ingest everything: " + "; ".join(problems) + f" ({checks})")
    return checks


# ----------------------------------------------------------------- report
def table(rows: list[Row]) -> str:
    lines = [f"{'':<12} {'seconds':>9} {'messages/s':>11}  ",
             f"{'-' * 12} {'-' * 9} {'-' * 11}"]
    for r in rows:
        lines.append(f"{r.name:<12} {r.seconds:>9.2f} {r.rate:>11.0f}   {r.detail}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="End-to-end IMAP ingest benchmark against a real Dovecot, "
                                             "with bare-fetch and notmuch-new baselines from the same run.")
    ap.add_argument("--count", type=int, required=True, help="messages to generate and ingest")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--keep", metavar="DIR", type=Path, help="work in DIR (new or empty) and keep it")
    ap.add_argument("--workers", type=int, help="CASELLA_INGEST_WORKERS (default: the settings' default)")
    ap.add_argument("--batch", type=int, help="CASELLA_INGEST_BATCH_SIZE (default: the settings' default)")
    ap.add_argument("--contacts", default=str(DEFAULT_CONTACTS),
                    help="anagrafica CSV loaded before the run, or 'none' (default: %(default)s)")
    ap.add_argument("--cli", action="store_true", help="time `casella ingest --once` instead of ingest_once()")
    ap.add_argument("--profile", metavar="FILE", type=Path,
                    help="run ours under cProfile and write the stats to FILE (its time is then inflated)")
    ap.add_argument("--json", action="store_true", help="print the figures as JSON instead of a table")
    ap.add_argument("--timeout", type=float, default=3600.0, help="stop after this many seconds (default 3600)")
    args = ap.parse_args(argv)
    if args.count < 1:
        ap.error("--count must be at least 1")
    if args.cli and args.profile:
        ap.error("--profile profiles ingest_once in this process; it does not go with --cli")

    start_clock(args.timeout)

    try:
        work = work_dir(args.keep, "casella-bench-")
    except BenchFailure as exc:
        ap.error(str(exc))
    contacts = None if args.contacts.lower() == "none" else Path(args.contacts)
    if contacts is not None and not contacts.is_file():
        ap.error(f"--contacts {contacts}: no such file")

    from casella.settings import Settings
    from tests.servers.dovecot import DovecotServer, make_traversable

    server: DovecotServer | None = None
    try:
        maildir = work / "maildir"
        t0 = time.perf_counter()
        generator = generate(args.count, args.seed, maildir)
        paths = maildir_files(maildir)
        if len(paths) != args.count:
            raise BenchFailure(f"the generator wrote {len(paths)} messages, expected {args.count}")
        total_bytes = sum(p.stat().st_size for p in paths)
        note(f"generated {len(paths)} messages, {total_bytes / 1e6:.1f} MB, in {time.perf_counter() - t0:.1f} s "
             f"({generator})")

        run_dir = work / "imap"
        run_dir.mkdir()
        make_traversable(run_dir)
        if not DovecotServer.available():
            raise BenchFailure("dovecot is not installed (apt-get install dovecot-imapd; scripts/test-deps.sh)")
        server = DovecotServer(run_dir, {USER: PASSWORD}).start()
        server.write_maildir(USER, read_all(paths))
        with server.client(USER) as c:  # Dovecot indexes the new files now, not in a timed run
            exists = int(c.select_folder("INBOX", readonly=True).get(b"EXISTS", 0))
        if exists != args.count:
            raise BenchFailure(f"Dovecot shows {exists} messages, expected {args.count}")
        note(f"Dovecot on {server.host}:{server.port} serves {exists} messages")

        env = casella_env(work / "data", args.workers, args.batch)
        settings = Settings.load(env)
        prepare_account(settings, server.host, server.port, contacts)

        note("timing: bare fetch")
        fetch_row, fetched_bytes = bare_fetch(server.host, server.port, settings.ingest_batch_size)
        if fetch_row.messages != args.count:
            raise BenchFailure(f"bare fetch got {fetch_row.messages} messages, expected {args.count}")

        note("timing: ours" + (" (under cProfile)" if args.profile else ""))
        ours_seconds, how = run_ours(env, args.cli, args.profile)
        checks = verify(env, args.count)
        ours_row = Row("ours", ours_seconds, checks["stored"],
                       f"workers={settings.ingest_workers}, batch={settings.ingest_batch_size}")
        note(f"verified: {checks}")

        note("timing: notmuch new")
        notmuch_row, notmuch_version = notmuch_new(maildir, work / "notmuch", args.count)

        rows = [ours_row, fetch_row, notmuch_row]
        ratios = {"ours/notmuch": ours_row.seconds / notmuch_row.seconds,
                  "ours/bare_fetch": ours_row.seconds / fetch_row.seconds}
        report = {
            "count": args.count, "seed": args.seed, "machine": machine(),
            "mail": {"generator": generator, "maildir_bytes": total_bytes, "imap_bytes": fetched_bytes},
            "ours": {"how": how, "workers": settings.ingest_workers, "batch": settings.ingest_batch_size,
                     "database": "sqlite", "checks": checks},
            "notmuch": notmuch_version,
            "rows": [{**asdict(r), "messages_per_second": r.rate} for r in rows],
            "ratios": ratios,
            "work_dir": str(work) if args.keep else None,
        }
        if args.json:
            print(json.dumps(report, indent=2, default=str))
        else:
            m = report["machine"]
            print(f"Casella ingest benchmark: N={args.count} messages (seed {args.seed}, "
                  f"{total_bytes / 1e6:.1f} MB as files, {fetched_bytes / 1e6:.1f} MB over IMAP)")
            print(f"machine: nproc={m['nproc']} (usable {m['usable_cpus']}, load {m['loadavg_1min_at_end']}), Python {m['python']}, {m['platform']}")
            print(f"ours: {how}; SQLite + blobs in a temp data dir; Dovecot on loopback; {notmuch_version}")
            print()
            print(table(rows))
            print()
            print(f"ours/notmuch    = {ratios['ours/notmuch']:.2f}x  (time ratio; > 1 means ours is slower)")
            print(f"ours/bare fetch = {ratios['ours/bare_fetch']:.2f}x")
            print(f"checked: {checks['stored']} stored (blobs present), {checks['registrations']} registrations "
                  f"(numbers {checks['protocol_numbers'][0]}..{checks['protocol_numbers'][1]}), "
                  f"{checks['threaded']} threaded, links {checks['links']}, {checks['quarantined']} quarantined")
            if args.profile:
                print(f"profile: {args.profile} (python -m pstats {args.profile})")
            if args.keep:
                print(f"kept: {work}")
        return 0
    except (BenchFailure, BenchTimeout) as exc:
        print(f"FAILED: {exc}", file=sys.stderr)
        if server is not None:
            tail = server.log_tail(20)
            if tail:
                print(f"--- dovecot.log ---\n{tail}", file=sys.stderr)
        return 1
    finally:
        signal.alarm(0)
        if server is not None:
            server.stop(fast=True)
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
