"""Webmail benchmark: with N messages stored, the latency of the inbox list, a message view
and a search under C concurrent clients, beside the floor of the same server sending a
static file, all measured in the same run.

1. Generates N messages (default 100000; ../shared/tools/gen_corpus.py, else
   casella.demo.corpus), imports them with the real `import_path` (full pipeline: stored,
   numbered, linked, routed) and builds the search index (`search.indexer.reindex`) in a
   temporary data dir (SQLite and the embedded index, as `casella serve` runs by default).
2. Starts the real `casella webmail` command (`--workers`, default 1 process) on a free loopback
   port, signs in over HTTP as an operator (access through a group grant, the common case;
   `--user admin` for the unrestricted view) and checks every URL answers 200.
3. For each kind, wrk (Debian package) runs C connections for D seconds (`--connections`,
   `--duration`) and reports p50/p95/p99 and requests/s:
     static   /static/casella.css                         (the floor: routing + a file)
     list     /mail?mailbox=..&folder=INBOX, first page   (folder tree + 50 rows)
     list-deep the same folder, a page ~10,000 rows down (keyset: should cost the same)
     message  /mail/<id> over 500 different messages      (also writes the read log)
     search   /search?q=<word> over a fixed word mix
4. Prints the table, the ratio of each p95 to the static floor's, and whether the issue's
   target holds (list p95 under 100 ms).

Everything happens in one temporary directory, removed at the end unless --keep DIR; the
whole run is bounded by --timeout seconds. No result here is asserted by the test suite
(tests/bench only checks that a tiny run completes and its URLs answered).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass
from http.cookiejar import CookieJar
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(ROOT))

from bench.harness import (
    BenchFailure,
    BenchTimeout,
    generate,
    note,
    remaining,
    start_clock,
)
from bench.search import DEFAULT_CONTACTS, import_mail, reindex_ours

CASELLA = ROOT / ".venv" / "bin" / "casella"
PASSWORD = "bench-password-1"
SEARCH_WORDS = ["fattura", "preventivo", "consegna", "ordine", "contratto", "pagamento", "riunione", "offerta"]
MESSAGE_SAMPLE = 500
KINDS = ("static", "list", "list-deep", "message", "search")

WRK_SCRIPT = """
local paths = {%(paths)s}
local i = math.random(0, #paths - 1)
wrk.headers["Cookie"] = "%(cookie)s"
request = function()
  i = (i + 1) %% #paths
  return wrk.format("GET", paths[i + 1])
end
done = function(summary, latency, requests)
  local errors = summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout
  io.write(string.format("RESULT %%d %%d %%d %%.3f %%.3f %%.3f %%.3f %%d\\n", summary.requests, summary.errors.status,
    errors, latency:percentile(50) / 1000, latency:percentile(95) / 1000, latency:percentile(99) / 1000,
    latency.mean / 1000, summary.duration))
end
"""


@dataclass
class Result:
    kind: str
    requests: int
    bad_status: int
    socket_errors: int
    p50: float
    p95: float
    p99: float
    mean: float
    seconds: float

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make_users(settings: Any) -> None:
    from bench.search import ACCOUNT
    from casella.db import Database
    from casella.users import add_group, add_user, grant_mailbox

    db = Database.from_settings(settings)
    try:
        with db.session() as s:
            add_group(s, "bench-team")
            add_user(s, "admin", "admin", password=PASSWORD)
            add_user(s, "operator", "operator", groups=["bench-team"], password=PASSWORD)
            s.flush()
            grant_mailbox(s, ACCOUNT, group="bench-team")
    finally:
        db.dispose()


def sample_ids(settings: Any, n: int, seed: int) -> tuple[int, list[int]]:
    from sqlalchemy import select

    from bench.search import ACCOUNT
    from casella.db import Database
    from casella.models import Account, Message

    db = Database.from_settings(settings)
    try:
        with db.reading() as s:
            account_id = s.scalar(select(Account.id).where(Account.name == ACCOUNT))
            ids = list(s.scalars(select(Message.id).where(Message.account_id == account_id)))
    finally:
        db.dispose()
    random.Random(seed).shuffle(ids)
    return int(account_id), ids[:n]


class Client:
    def __init__(self, base: str) -> None:
        self.base = base
        self.jar = CookieJar()

        class NoRedirect(urllib.request.HTTPRedirectHandler):
            def redirect_request(self, *a: Any, **k: Any) -> None:
                return None

        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar), NoRedirect())

    def fetch(self, path: str, data: dict[str, str] | None = None) -> tuple[int, str]:
        body = urllib.parse.urlencode(data).encode() if data is not None else None
        req = urllib.request.Request(self.base + path, data=body)
        try:
            with self.opener.open(req, timeout=60) as resp:
                return resp.status, resp.read().decode("utf-8", "replace")
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode("utf-8", "replace")

    def login(self, username: str) -> str:
        _, html = self.fetch("/login")
        token = re.search(r'name="csrf" value="([^"]*)"', html)
        if not token:
            raise BenchFailure("no CSRF token on /login")
        status, _ = self.fetch("/login", {"username": username, "password": PASSWORD, "csrf": token.group(1)})
        if status != 303:
            raise BenchFailure(f"login as {username} answered {status}")
        for cookie in self.jar:
            if cookie.name == "casella_session":
                return f"casella_session={cookie.value}"
        raise BenchFailure("no session cookie after login")


def start_webmail(env: dict[str, str], port: int, log: Path, workers: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen([str(CASELLA), "webmail", "--workers", str(workers)], env=env, stdout=log.open("wb"),
                            stderr=subprocess.STDOUT)
    deadline = time.monotonic() + min(120.0, remaining())
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise BenchFailure(f"casella webmail exited {proc.returncode}:\n{log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as resp:
                if resp.status == 200:
                    return proc
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise BenchFailure("casella webmail did not answer /healthz within 120 s")


def wrk(base: str, cookie: str, kind: str, paths: list[str], connections: int, duration: int, work: Path) -> Result:
    script = work / f"{kind}.lua"
    script.write_text(WRK_SCRIPT % {"paths": ", ".join(json.dumps(p) for p in paths), "cookie": cookie})
    threads = max(1, min(2, connections))
    cmd = ["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{duration}s", "--timeout", "30s",
           "-s", str(script), base]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False,
                          timeout=min(duration + 120, remaining()))
    match = re.search(r"^RESULT (.*)$", proc.stdout, re.MULTILINE)
    if proc.returncode != 0 or not match:
        raise BenchFailure(f"wrk failed for {kind}:\n{proc.stdout}\n{proc.stderr}")
    n, bad, errs, p50, p95, p99, mean, micros = match.group(1).split()
    return Result(kind, int(n), int(bad), int(errs), float(p50), float(p95), float(p99), float(mean),
                  int(micros) / 1e6)


def deep_cursor(client: Client, first: str, pages: int) -> str:
    """Follow `pages` "older messages" links from `first`; return that page's URL."""
    url = first
    for _ in range(pages):
        status, html = client.fetch(url)
        if status != 200:
            raise BenchFailure(f"{url} answered {status}")
        found = re.search(r'href="(/mail\?[^"]*after=[^"]*)" rel="next"', html)
        if not found:
            break
        url = found.group(1).replace("&amp;", "&")
    return url


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Webmail benchmark: list, message view and search under load, "
                                 "against a static file from the same server, same run.")
    ap.add_argument("--count", type=int, default=100_000, help="messages to store (default %(default)s)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--connections", type=int, default=20, help="concurrent clients (default %(default)s)")
    ap.add_argument("--duration", type=int, default=15, help="seconds per kind (default %(default)s)")
    ap.add_argument("--user", default="operator", choices=["operator", "admin"])
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                    help="`casella webmail --workers` (default: one per CPU core, %(default)s here, as the README "
                         "runs the webmail for an office; 1: one process, as `casella serve` runs it)")
    ap.add_argument("--deep-pages", type=int, default=200, help="how far down the deep list page is (50 rows each)")
    ap.add_argument("--keep", metavar="DIR", type=Path, help="work in DIR (new or empty) and keep it")
    ap.add_argument("--kinds", default=",".join(KINDS), help="which to measure, comma-separated (default: all; "
                    "static is always measured, it is the floor)")
    ap.add_argument("--json", action="store_true", help="also print the results as JSON")
    ap.add_argument("--timeout", type=float, default=3600.0)
    args = ap.parse_args(argv)
    wanted = {"static", *(k.strip() for k in args.kinds.split(",") if k.strip())}
    if not wanted <= set(KINDS):
        ap.error(f"--kinds: choose among {', '.join(KINDS)}")
    if shutil.which("wrk") is None:
        print("wrk is not installed: run scripts/test-deps.sh (Debian package wrk)", file=sys.stderr)
        return 2
    start_clock(args.timeout)
    work = args.keep or Path(tempfile.mkdtemp(prefix="casella-bench-webmail-"))
    work.mkdir(parents=True, exist_ok=True)
    proc: subprocess.Popen[bytes] | None = None
    try:
        from casella.settings import Settings

        port = free_port()
        env = {**os.environ, "CASELLA_DATA_DIR": str(work / "data"), "CASELLA_DEMO": "0",
               "CASELLA_WEB_LISTEN": f"127.0.0.1:{port}", "CASELLA_LOG_LEVEL": "WARNING"}
        settings = Settings.load(env)
        maildir = work / "maildir"
        if not (work / "data" / "casella.db").exists():
            note(f"generating {args.count} messages")
            generate(args.count, args.seed, maildir)
            import_s, stored = import_mail(settings, maildir, DEFAULT_CONTACTS)
            note(f"imported {stored} in {import_s:.1f} s; indexing")
            index_s, indexed = reindex_ours(settings)
            note(f"indexed {indexed} in {index_s:.1f} s")
            make_users(settings)
        account_id, ids = sample_ids(settings, MESSAGE_SAMPLE, args.seed)
        proc = start_webmail(env, port, work / "webmail.log", args.workers)
        base = f"http://127.0.0.1:{port}"
        client = Client(base)
        cookie = client.login(args.user)
        first = f"/mail?mailbox={account_id}&folder=INBOX"
        kinds = {
            "static": ["/static/casella.css"],
            "list": [first],
            "list-deep": [deep_cursor(client, first, args.deep_pages)] if "list-deep" in wanted else [],
            "message": [f"/mail/{i}" for i in ids],
            "search": [f"/search?q={urllib.parse.quote(w)}" for w in SEARCH_WORDS],
        }
        kinds = {k: paths for k, paths in kinds.items() if k in wanted}
        for kind, paths in kinds.items():
            for path in paths[:3]:
                status, _ = client.fetch(path)
                if status != 200:
                    raise BenchFailure(f"{kind}: {path} answered {status} before the run")
        results = []
        for kind, paths in kinds.items():
            note(f"{kind}: {args.connections} clients for {args.duration} s")
            results.append(wrk(base, cookie, kind, paths, args.connections, args.duration, work))
        floor = results[0]
        print(f"\nwebmail benchmark: {args.count} messages, {args.connections} concurrent clients, "
              f"{args.duration} s per kind, as {args.user}, SQLite + embedded index, `casella webmail --workers {args.workers}`")
        print(f"{'kind':<10} {'req/s':>8} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'p95/static':>11} {'non-2xx':>8}")
        for r in results:
            print(f"{r.kind:<10} {r.rate:>8.1f} {r.p50:>8.2f} {r.p95:>8.2f} {r.p99:>8.2f} "
                  f"{r.p95 / floor.p95 if floor.p95 else float('nan'):>10.1f}x {r.bad_status + r.socket_errors:>8}")
        list_p95 = next((r.p95 for r in results if r.kind == "list"), None)
        if list_p95 is not None:
            print(f"target (list p95 < 100 ms): {'met' if list_p95 < 100 else 'NOT met'} ({list_p95:.1f} ms)")
        if args.json:
            print(json.dumps([r.__dict__ | {"rate": r.rate} for r in results], indent=2))
        bad = [r.kind for r in results if r.bad_status or r.socket_errors]
        if bad:
            raise BenchFailure(f"errors during the run: {', '.join(bad)} (see {work / 'webmail.log'})")
        return 0
    except (BenchFailure, BenchTimeout) as exc:
        print(f"bench failed: {exc}", file=sys.stderr)
        return 1
    finally:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
