#!/usr/bin/env python3
"""Search benchmark: our search index against notmuch, on the same mail, in the same run.

    .venv/bin/python bench/search.py --count 100000 [--seed 1] [--queries 200] [--keep DIR]
                                     [--timeout SECONDS]

1. Generates N messages (../shared/tools/gen_corpus.py when it exists, else
   casella.demo.corpus) into a Maildir and imports them with the real `import_path` (the
   storer of `casella import`: stored, parsed, threaded, numbered, linked, search outbox
   rows written) into a temporary data dir (SQLite + blobs). The anagrafica is loaded
   first from casella/demo/contacts.csv, so that messages get companies and agents (the
   agent grant below has something to see). The import is timed and printed as "import",
   but is not part of the comparison.
2. Indexing, timed:
     ours         `search.indexer.reindex(settings, db)`: the configured engine (the embedded
                  tantivy index unless CASELLA_SEARCH_URL is set) emptied and every message's
                  document built from the database and blobs and written;
     notmuch new  a fresh notmuch database (NOTMUCH_CONFIG in the temp dir) over the Maildir.
   Checked: our index holds N documents, notmuch N files.
3. Queries, a fixed mix of five kinds repeated round-robin to K queries in all:
     single    fattura                    notmuch: fattura
     two       preventivo toner           notmuch: preventivo AND toner
     typo      spedizone (one typo)       notmuch: spedizione (no typo tolerance: the
                                          correctly spelled word)
     prefix    sollecito pagam            notmuch: sollecito AND pagam*
     filtered  invoice + has attachment   notmuch: invoice AND tag:attachment AND date:A..B
               + the newer half of dates
   Ours: `index.search(SearchQuery(text, filters, limit=20), grant)` in this process (what
   the webmail and `casella search` call: query building, reload, search, stored fields,
   snippets), timed per call, as the all-seeing admin grant, then as an operator (a granted
   account: a term-set clause) and as an agent (their agent field or their companies).
   notmuch: `notmuch search --output=messages --limit=20 QUERY`, one subprocess per query,
   timed from spawn to exit. Its process startup and database opening are measured on
   their own: the same search for a Message-ID that does not exist (the floor: spawn, open
   the database, look one term up, exit; run once per round of the mix, between the
   queries, so that it sees the same load), plus `notmuch count '*'` and `notmuch --version`
   for reference; notmuch's latencies are printed both raw and minus the floor's median,
   the fairer comparison with an index held open in-process.
   Each query kind is run once untimed first (both engines). Before any query is timed, the
   files written so far (notmuch's database last) are flushed to disk (os.sync), so that no
   write-back falls on whichever engine is timed first. Checked: every query returns
   at least one hit as admin and in notmuch; the hit counts are printed.
4. Prints indexing messages/s and the rate ratio ours/notmuch (> 1: ours indexes faster),
   p50/p95 latency in ms per kind and overall, and the latency ratios ours/notmuch
   (< 1: ours answers faster), against notmuch raw and minus its floor. The issue's target:
   our p95 below 50 ms and no worse than notmuch.

Everything happens in one temporary directory, removed at the end unless --keep DIR; the
whole run is bounded by --timeout seconds (exit 1 when exceeded).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import statistics
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# Run as a script, bench/ comes first on sys.path and would shadow packages of the repo root.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(ROOT))

DEFAULT_CONTACTS = ROOT / "casella" / "demo" / "contacts.csv"
ACCOUNT = "bench"
AGENT = "agente.rossi"  # an agent of casella/demo/contacts.csv
LIMIT = 20
NO_MATCH = "id:no-such-message@bench.invalid"  # notmuch's floor: spawn, open, one term, exit


from bench.harness import (  # noqa: E402
    BenchFailure, BenchTimeout, generate, machine, note, notmuch_env, remaining, run, start_clock,
    work_dir,
)



def count_files(maildir: Path) -> int:
    return sum(1 for sub in ("cur", "new") if (maildir / sub).is_dir()
               for p in (maildir / sub).iterdir() if p.is_file())


def import_mail(settings: Any, maildir: Path, contacts: Path | None) -> tuple[float, int]:
    """Schema, anagrafica and account (not timed), then `import_path` (timed)."""
    from casella.db import Database
    from ingest.accounts import add_account
    from ingest.importer import import_path
    from ingest.service import make_storer

    db = Database.from_settings(settings)
    try:
        with db.session() as session:
            if contacts is not None:
                from anagrafica.contacts_csv import import_csv

                with open(contacts, encoding="utf-8") as f:
                    import_csv(session, f, extra_freemail=settings.freemail_domains_extra)
            account_id = add_account(session, settings, name=ACCOUNT, imap_host=None, imap_port=None, username=None,
                                     password=None, security="none", is_pec=False, folders=["INBOX"],
                                     sent_folders=None).id
        storer = make_storer(settings, db)
        last = [0.0]

        def progress(result: Any) -> None:
            remaining()
            if time.monotonic() - last[0] > 15:
                last[0] = time.monotonic()
                note(f"import: {result.stored} stored")

        t0 = time.perf_counter()
        result = import_path(storer, account_id, maildir, batch_size=settings.ingest_batch_size, progress=progress)
        seconds = time.perf_counter() - t0
    finally:
        db.dispose()
        with contextlib.suppress(Exception):
            from ingest import parse_pool

            parse_pool.shutdown()
    return seconds, result.stored


# ----------------------------------------------------------------- indexing
def reindex_ours(settings: Any) -> tuple[float, int]:
    from casella.db import Database
    from search.indexer import reindex

    db = Database.from_settings(settings)
    last = [time.monotonic()]

    def progress(done: int, total: int) -> None:
        remaining()
        if time.monotonic() - last[0] > 15:
            last[0] = time.monotonic()
            note(f"reindex: {done}/{total}")

    try:
        t0 = time.perf_counter()
        done = reindex(settings, db, progress=progress)
        return time.perf_counter() - t0, done
    finally:
        db.dispose()


def notmuch_new(binary: str, maildir: Path, env: dict[str, str], expected: int) -> tuple[float, str]:
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
    return seconds, version


# ----------------------------------------------------------------- the query mix
@dataclass(frozen=True)
class Kind:
    name: str
    ours: str  # what the user types
    notmuch: str  # the equivalent notmuch query
    filtered: bool = False
    note: str = ""


def query_mix(since: datetime, until: datetime) -> list[Kind]:
    a, b = int(since.timestamp()), int(until.timestamp())
    return [
        Kind("single", "fattura", "fattura"),
        Kind("two", "preventivo toner", "preventivo AND toner"),
        Kind("typo", "spedizone", "spedizione", note="notmuch: the correct spelling"),
        Kind("prefix", "sollecito pagam", "sollecito AND pagam*"),
        Kind("filtered", "invoice", f"invoice AND tag:attachment AND date:@{a}..@{b}", filtered=True,
             note="has attachment + newer half of the dates"),
    ]


def date_window(settings: Any) -> tuple[datetime, datetime]:
    """The newer half of the messages' dates (by the index's own date rule, roughly: the
    Date header when there is one)."""
    from sqlalchemy import func, select

    from casella.db import Database
    from casella.models import Message

    db = Database(settings.database_url)
    try:
        with db.session() as session:
            col = func.coalesce(Message.date, Message.received_at) if hasattr(Message, "received_at") \
                else Message.date
            lo, hi = session.execute(select(func.min(col), func.max(col))).one()
    finally:
        db.dispose()
    lo = lo if lo.tzinfo else lo.replace(tzinfo=UTC)
    hi = hi if hi.tzinfo else hi.replace(tzinfo=UTC)
    return lo + (hi - lo) / 2, hi


def grants(settings: Any) -> dict[str, Any]:
    from sqlalchemy import select

    from casella.access import Grant
    from casella.db import Database
    from casella.models import Account, Company
    from search.filters import admin_grant

    db = Database(settings.database_url)
    try:
        with db.session() as session:
            account_id = session.scalar(select(Account.id).where(Account.name == ACCOUNT))
            companies = frozenset(session.scalars(select(Company.id).where(Company.agent == AGENT)))
    finally:
        db.dispose()
    return {
        "admin": admin_grant(),
        # user ids that exist nowhere: the clauses are built and evaluated all the same
        "operator": Grant("bench.operator", "operator", account_ids=frozenset({account_id}), user_id=10**6,
                          group_ids=frozenset({10**6})),
        "agent": Grant(AGENT, "agent", user_id=10**6 + 1, agent=AGENT, agent_company_ids=companies),
    }


@dataclass
class Timings:
    per_kind: dict[str, list[float]] = field(default_factory=dict)  # seconds
    hits: dict[str, int] = field(default_factory=dict)  # total matches per kind

    def all(self) -> list[float]:
        return [t for ts in self.per_kind.values() for t in ts]


def pct(values: list[float], p: float) -> float:
    """Nearest-rank percentile, in ms."""
    s = sorted(values)
    if not s:
        return float("nan")
    k = max(0, min(len(s) - 1, int(round(p / 100 * len(s) + 0.5)) - 1))
    return s[k] * 1000


def schedule(kinds: list[Kind], total: int) -> list[Kind]:
    return [kinds[i % len(kinds)] for i in range(total)]


def run_ours(index: Any, kinds: list[Kind], filters: Any, grant: Any, total: int) -> Timings:
    from search.index import SearchFilters, SearchQuery

    queries = {k.name: SearchQuery(k.ours, filters if k.filtered else SearchFilters(), limit=LIMIT) for k in kinds}
    out = Timings({k.name: [] for k in kinds})
    for k in kinds:  # warm-up, and the hit counts
        out.hits[k.name] = index.search(queries[k.name], grant).total
    for k in schedule(kinds, total):
        remaining()
        t0 = time.perf_counter()
        index.search(queries[k.name], grant)
        out.per_kind[k.name].append(time.perf_counter() - t0)
    return out


def run_notmuch(binary: str, env: dict[str, str], kinds: list[Kind], total: int) -> tuple[Timings, list[float]]:
    """The timed queries, and the floor (a search without hits) sampled between them, once
    per round of the mix, so that both see the same machine load."""
    out = Timings({k.name: [] for k in kinds})
    floor_cmd = [binary, "search", "--output=messages", f"--limit={LIMIT}", NO_MATCH]
    floor_times: list[float] = []
    run(floor_cmd, env=env)
    for k in kinds:
        out.hits[k.name] = int(run([binary, "count", k.notmuch], env=env).stdout.strip())
        run([binary, "search", "--output=messages", f"--limit={LIMIT}", k.notmuch], env=env)  # warm-up
    for i, k in enumerate(schedule(kinds, total)):
        cmd = [binary, "search", "--output=messages", f"--limit={LIMIT}", k.notmuch]
        t0 = time.perf_counter()
        proc = run(cmd, env=env)
        out.per_kind[k.name].append(time.perf_counter() - t0)
        if not proc.stdout.strip():
            raise BenchFailure(f"notmuch returned nothing for {k.notmuch!r}")
        if i % len(kinds) == len(kinds) - 1:
            t0 = time.perf_counter()
            if run(floor_cmd, env=env).stdout.strip():
                raise BenchFailure(f"notmuch found {NO_MATCH}")
            floor_times.append(time.perf_counter() - t0)
    return out, floor_times


def floor(binary: str, env: dict[str, str], cmd: list[str], n: int) -> list[float]:
    run([binary, *cmd], env=env)
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        run([binary, *cmd], env=env)
        times.append(time.perf_counter() - t0)
    return times


# ----------------------------------------------------------------- report
def latency_table(kinds: list[Kind], runs: dict[str, Timings], floor_s: float) -> str:
    cols = list(runs)
    head = f"{'kind':<9} {'query (ours)':<20}" + "".join(f" {c + ' p50/p95':>24}" for c in cols) \
        + f" {'notmuch-floor p50/p95':>24}"
    lines = [head, "-" * len(head)]

    def cell(ts: list[float], minus: float = 0.0) -> str:
        ts = [max(t - minus, 0.0) for t in ts]  # notmuch minus its floor: never below zero
        return f"{pct(ts, 50):8.2f} / {pct(ts, 95):8.2f}"

    for k in kinds:
        row = f"{k.name:<9} {k.ours:<20}" + "".join(f" {cell(runs[c].per_kind[k.name]):>24}" for c in cols)
        row += f" {cell(runs['notmuch'].per_kind[k.name], floor_s):>24}"
        lines.append(row)
    row = f"{'ALL':<9} {'(' + str(len(runs[cols[0]].all())) + ' queries)':<20}" \
        + "".join(f" {cell(runs[c].all()):>24}" for c in cols) + f" {cell(runs['notmuch'].all(), floor_s):>24}"
    lines.append(row)
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Search benchmark: our index (reindex + queries) against notmuch "
                                             "on the same generated Maildir, in the same run.")
    ap.add_argument("--count", type=int, default=100_000, help="messages to generate (default %(default)s)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--queries", type=int, default=200, help="timed queries per run, the mix round-robin "
                                                             "(default %(default)s)")
    ap.add_argument("--keep", metavar="DIR", type=Path, help="work in DIR (new or empty) and keep it")
    ap.add_argument("--contacts", default=str(DEFAULT_CONTACTS),
                    help="anagrafica CSV loaded before the import, or 'none' (default: %(default)s)")
    ap.add_argument("--timeout", type=float, default=3600.0, help="stop after this many seconds (default 3600)")
    args = ap.parse_args(argv)
    if args.count < 1:
        ap.error("--count must be at least 1")
    if args.queries < 5:
        ap.error("--queries must be at least 5 (one per kind)")

    start_clock(args.timeout)

    try:
        work = work_dir(args.keep, "casella-bench-search-")
    except BenchFailure as exc:
        ap.error(str(exc))
    contacts = None if args.contacts.lower() == "none" else Path(args.contacts)
    if contacts is not None and not contacts.is_file():
        ap.error(f"--contacts {contacts}: no such file")

    index = None
    try:
        binary = shutil.which("notmuch")
        if binary is None:
            raise BenchFailure("notmuch is not installed (apt-get install notmuch; scripts/test-deps.sh)")
        from casella.settings import Settings

        maildir = work / "maildir"
        t0 = time.perf_counter()
        generator = generate(args.count, args.seed, maildir)
        files = count_files(maildir)
        if files != args.count:
            raise BenchFailure(f"the generator wrote {files} messages, expected {args.count}")
        note(f"generated {files} messages in {time.perf_counter() - t0:.1f} s ({generator})")

        env = {"CASELLA_DATA_DIR": str(work / "data")}
        settings = Settings.load(env)
        note("import (timed on its own)")
        import_s, stored = import_mail(settings, maildir, contacts)
        if stored != args.count:
            raise BenchFailure(f"the import stored {stored} messages, expected {args.count}")

        note("timing: ours, reindex")
        ours_index_s, reindexed = reindex_ours(settings)
        from search.engine import open_index

        index = open_index(settings)
        indexed = index.count()
        if reindexed != args.count or indexed != args.count:
            raise BenchFailure(f"reindex wrote {reindexed} documents and the index holds {indexed}, "
                               f"expected {args.count}")

        note("timing: notmuch new")
        nm_env = notmuch_env(maildir, work / "notmuch")
        nm_index_s, nm_version = notmuch_new(binary, maildir, nm_env, args.count)
        # notmuch new leaves its fresh database's dirty pages to the kernel, whose write-back
        # may otherwise fall on the first queries timed (ours, as admin): flush them first.
        os.sync()

        since, until = date_window(settings)
        kinds = query_mix(since, until)
        from search.index import SearchFilters

        filters = SearchFilters(since=since, until=until, has_attachment=True)
        runs: dict[str, Timings] = {}
        for name, grant in grants(settings).items():
            note(f"timing: ours, {args.queries} queries as {name}")
            runs[f"ours/{name}"] = run_ours(index, kinds, filters, grant, args.queries)
        note(f"timing: notmuch, {args.queries} queries")
        floor_n = max(20, args.queries // 5)
        count_floor = floor(binary, nm_env, ["count", "*"], floor_n)
        version_floor = floor(binary, nm_env, ["--version"], floor_n)
        runs["notmuch"], empty_floor = run_notmuch(binary, nm_env, kinds, args.queries)
        floor_s = statistics.median(empty_floor)

        empty = [k.name for k in kinds if runs["ours/admin"].hits[k.name] < 1 or runs["notmuch"].hits[k.name] < 1]
        if empty:
            raise BenchFailure(f"queries without any hit: {empty} "
                               f"(ours {runs['ours/admin'].hits}, notmuch {runs['notmuch'].hits})")

        # ------------------------------------------------------------ print
        m = machine()
        n = args.count
        print(f"Casella search benchmark: N={n} messages (seed {args.seed}, {generator}), "
              f"{args.queries} timed queries per run, limit {LIMIT}")
        print(f"machine: nproc={m['nproc']} (usable {m['usable_cpus']}, load {m['loadavg_1min_at_end']}), "
              f"Python {m['python']}, {m['platform']}")
        print(f"ours: engine {index.name} via search.engine.open_index, SQLite + blobs in a temp data dir; "
              f"{nm_version}")
        print()
        print(f"{'indexing':<22} {'seconds':>9} {'messages/s':>11}")
        print(f"{'-' * 22} {'-' * 9} {'-' * 11}")
        print(f"{'import (not compared)':<22} {import_s:>9.2f} {n / import_s:>11.0f}   import_path, full pipeline")
        print(f"{'ours reindex':<22} {ours_index_s:>9.2f} {n / ours_index_s:>11.0f}   "
              f"search.indexer.reindex from scratch")
        print(f"{'notmuch new':<22} {nm_index_s:>9.2f} {n / nm_index_s:>11.0f}   fresh database")
        rate_ratio = nm_index_s / ours_index_s
        print(f"indexing rate ours/notmuch = {rate_ratio:.2f}x  (> 1 means ours indexes faster)")
        print()
        print(f"notmuch process floor: `notmuch search ... {NO_MATCH}` (no hit; {len(empty_floor)} runs between "
              f"the queries) p50 {pct(empty_floor, 50):.2f} ms p95 {pct(empty_floor, 95):.2f} ms; for reference "
              f"({floor_n} runs each) `notmuch count '*'` p50 {pct(count_floor, 50):.2f} ms, `notmuch --version` "
              f"p50 {pct(version_floor, 50):.2f} ms; "
              f"'notmuch-floor' subtracts the no-hit search's median, {floor_s * 1000:.2f} ms")
        print("latency in ms (ours: in-process engine search; notmuch: one `notmuch search --output=messages "
              f"--limit={LIMIT}` subprocess)")
        print(latency_table(kinds, runs, floor_s))
        print()
        for k in kinds:
            if k.note:
                print(f"  {k.name}: {k.note}")
        print("  notmuch queries: " + "; ".join(f"{k.name}={k.notmuch!r}" for k in kinds))
        print()
        nm = runs["notmuch"].all()
        nm_net = [max(t - floor_s, 0.0) for t in nm]

        def ratio(a: float, b: float) -> str:
            return f"{a / b:.2f}x" if b >= 0.05 else "n/a (notmuch at its floor)"

        print("latency ratios ours/notmuch (< 1 means ours answers faster):")
        for name in [r for r in runs if r.startswith("ours/")]:
            ours = runs[name].all()
            print(f"  {name:<15} p50 {pct(ours, 50):7.2f} ms, p95 {pct(ours, 95):7.2f} ms | raw: "
                  f"p50 {ratio(pct(ours, 50), pct(nm, 50))}, p95 {ratio(pct(ours, 95), pct(nm, 95))} | "
                  f"notmuch minus floor: p50 {ratio(pct(ours, 50), pct(nm_net, 50))}, "
                  f"p95 {ratio(pct(ours, 95), pct(nm_net, 95))}")
        p95 = pct(runs["ours/admin"].all(), 95)
        met = p95 < 50 and p95 <= pct(nm, 95)
        print(f"target (issue 3: p95 < 50 ms and no worse than notmuch as it is run, one command per query): "
              f"{'met' if met else 'NOT met'} - admin p95 {p95:.2f} ms vs notmuch p95 {pct(nm, 95):.2f} ms")
        print(f"engine only (notmuch minus its process floor, p95 {pct(nm_net, 95):.2f} ms): ours is "
              f"{ratio(p95, pct(nm_net, 95))} - {'no worse' if p95 <= pct(nm_net, 95) else 'slower'}")
        print()
        print(f"checked: our index holds {indexed} documents (= N), notmuch {n} files; hits (total matches) per kind:")
        for name, r in runs.items():
            print(f"  {name:<15} " + ", ".join(f"{k}={v}" for k, v in r.hits.items()))
        if args.keep:
            print(f"kept: {work}")
        return 0
    except (BenchFailure, BenchTimeout) as exc:
        print(f"FAILED: {exc}", file=sys.stderr)
        return 1
    finally:
        signal.alarm(0)
        if index is not None:
            with contextlib.suppress(Exception):
                index.close()
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
