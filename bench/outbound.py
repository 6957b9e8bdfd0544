#!/usr/bin/env python3
"""Outbound benchmark: N messages submitted to Casella and relayed to a local SMTP sink,
against plain smtplib sending the same messages to the same sink, in the same run.

    .venv/bin/python bench/outbound.py --count 1000 [--seed 1] [--connection reuse|per-message]
                                       [--db-url URL | --postgres] [--keep DIR] [--json]
                                       [--timeout SECONDS]

1. Generates N messages (../shared/tools/gen_corpus.py when it exists, else
   casella.demo.corpus) and turns each into a submission, as a mail client would send it
   from the shared mailbox: From: rewritten to the account's address, trace headers
   (Received, Return-Path, Delivered-To, X-Original-To) and Bcc dropped, line ends CRLF,
   text parts with lines over 998 octets (the generator writes some; SMTP refuses them)
   re-encoded quoted-printable;
   the envelope recipients are the To and Cc addresses (else the original sender). Every
   message keeps its own Message-ID. The same bytes and envelopes are used on both sides.
2. Starts, all on 127.0.0.1:
     the sink     an aiosmtpd server in its own process (this file, --serve-sink) that
                  accepts everything and reports each message (size, recipients,
                  Message-ID, whether it carries Casella's submission trace line) to this
                  process over a pipe;
     Casella      a temporary install made with the real CLI (`casella user add`,
                  `account add`, `account grant`, `smtp-upstream` pointing at the sink;
                  SQLite in a temp data dir, or --db-url / --postgres), then the real
                  `casella mailserver` (submission server + relay worker) as a subprocess.
3. Times, in this order:
     baseline     smtplib sends the N messages straight to the sink; timed from connecting
                  until the sink has reported all N;
     ours         smtplib submits the same N messages with AUTH to Casella's submission
                  port (each one stored in Sent, numbered, queued in one transaction, the
                  relay worker woken); "submission" is timed until the last 250 reply,
                  "end-to-end" until the sink has received all N relayed copies;
     baseline     again (after), to show the noise; the ratios use the faster baseline.
   Connection policy, the same for the bench client on both sides (--connection): one
   connection for all N messages (reuse, the default; AUTH once), or one connection per
   message (per-message; AUTH every time). Casella's relay opens one connection to the
   upstream per message whatever the policy: that is how it works, and it is counted.
4. Checks: the sink got exactly N relayed copies with N distinct Message-IDs, the
   submitted ones, and every recipient; no copy arrived twice (also during the second
   baseline); `casella outbox list --json` shows all N sent; N messages in the Sent folder
   with N protocol registrations; `casella mailserver` stopped cleanly on SIGTERM and
   logged no error. Fails loudly (exit 1) otherwise, and at once, with the queue's errors,
   when no relayed copy arrives for 30 s while the outbox shows deferred or failed rows.
5. Prints seconds and messages/s per row and the rate ratios ours/baseline (< 1: ours is
   slower), for submission and end-to-end.

Everything runs on loopback and in one temporary directory, removed at the end unless
--keep DIR; the whole run is bounded by --timeout seconds; the sink and `casella
mailserver` are stopped at the end (and die with this process if it is killed).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import re
import select
import shutil
import signal
import smtplib
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass
from email import encoders, message_from_bytes
from email.generator import BytesGenerator
from email.parser import BytesHeaderParser
from email.policy import compat32
from email.utils import getaddresses, make_msgid
from pathlib import Path
from typing import Any, TextIO

ROOT = Path(__file__).resolve().parent.parent
# Run as a script, bench/ comes first on sys.path and would shadow packages of the repo root.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(ROOT))

HOST = "127.0.0.1"
USER, PASSWORD = "bench", "bench-outbound-pw"
ACCOUNT = "segreteria"
ACCOUNT_ADDRESS = "segreteria@studioferrari.it"  # a shared box of the generated mail's own domain
FROM_HEADER = b"From: Segreteria Studio Ferrari <" + ACCOUNT_ADDRESS.encode() + b">"
DROPPED_HEADERS = {b"from", b"sender", b"received", b"return-path", b"delivered-to", b"x-original-to", b"bcc"}
# The trace line Casella's submission adds (mailserver/submit.py): tells relayed copies apart.
CASELLA_TRACE = b"(Casella) with ESMTPSA"
CASELLA = str(ROOT / ".venv" / "bin" / "casella") if (ROOT / ".venv" / "bin" / "casella").exists() else "casella"
OUTBOX_LIST_MAX = 10000  # `casella outbox list --limit` accepts at most this
MAX_LINE = 998
STATES = ("queued", "sending", "sent", "deferred", "failed")


from bench.harness import (
    BenchFailure,
    BenchTimeout,
    generate,
    machine,
    work_dir,
    note,
    remaining,
    run,
    start_clock,
)


# ----------------------------------------------------------------- the mail
@dataclass(frozen=True, slots=True)
class Outgoing:
    mail_from: str
    rcpt_tos: tuple[str, ...]
    data: bytes
    message_id: str


def header_fields(head: bytes) -> list[bytes]:
    """The header block as whole fields (continuation lines kept with their field)."""
    fields: list[bytes] = []
    for line in head.split(b"\n"):
        if line[:1] in (b" ", b"\t") and fields:
            fields[-1] += b"\n" + line
        elif line:
            fields.append(line)
    return fields


def too_long(text: bytes | str) -> bool:
    """A line longer than SMTP allows (998 octets before CRLF; RFC 5322 2.1.1, RFC 5321 4.5.3.1.6)."""
    lines = text.split(b"\n") if isinstance(text, bytes) else text.split("\n")
    return any(len(line) > MAX_LINE for line in lines)


def fold_long_lines(raw: bytes) -> bytes:
    """Re-encode as quoted-printable every 7bit/8bit part with a line too long for SMTP, as a
    mail client does (the generator writes some paragraphs as single lines; SMTP servers,
    aiosmtpd included, refuse them with 500). Other parts and the headers stay as they are."""
    msg = message_from_bytes(raw, policy=compat32)
    for part in msg.walk():
        payload = part.get_payload()
        cte = str(part.get("Content-Transfer-Encoding", "7bit")).strip().lower()
        if not part.is_multipart() and isinstance(payload, str) and cte in ("7bit", "8bit", "binary") \
                and too_long(payload):
            del part["Content-Transfer-Encoding"]
            encoders.encode_quopri(part)  # takes the raw bytes (no CTE now), sets the header
    out = io.BytesIO()
    BytesGenerator(out, mangle_from_=False, maxheaderlen=0, policy=compat32).flatten(msg, linesep="\n")
    return out.getvalue()


def as_submission(raw: bytes, seen_ids: set[str]) -> Outgoing:
    """One generated message as a mail client would submit it from the shared mailbox."""
    raw = raw.replace(b"\r\n", b"\n")
    if too_long(raw):
        raw = fold_long_lines(raw)
        if too_long(raw):
            raise BenchFailure("a generated message still has a line over 998 octets after re-encoding")
    head, sep, body = raw.partition(b"\n\n")
    parsed = BytesHeaderParser().parsebytes(head + b"\n\n")
    rcpts = [a for _, a in getaddresses([str(v) for v in (parsed.get_all("To") or []) + (parsed.get_all("Cc") or [])])
             if "@" in a and a.lower() != ACCOUNT_ADDRESS]
    if not rcpts:
        rcpts = [a for _, a in getaddresses([str(v) for v in parsed.get_all("From") or []]) if "@" in a]
    rcpts = list(dict.fromkeys(rcpts)) or ["cliente@example.com"]
    fields = [f for f in header_fields(head) if f.split(b":", 1)[0].strip().lower() not in DROPPED_HEADERS]
    message_id = str(parsed.get("Message-ID") or "").strip()
    if not message_id or message_id in seen_ids:
        message_id = make_msgid(idstring=f"bench{len(seen_ids)}", domain="bench.invalid")
        fields = [f for f in fields if f.split(b":", 1)[0].strip().lower() != b"message-id"]
        fields.append(b"Message-ID: " + message_id.encode())
    seen_ids.add(message_id)
    data = b"\n".join([FROM_HEADER, *fields]) + b"\n" + sep + body
    return Outgoing(ACCOUNT_ADDRESS, tuple(rcpts), data.replace(b"\n", b"\r\n"), message_id)


def load_mail(maildir: Path) -> list[Outgoing]:
    paths = sorted(p for sub in ("cur", "new") for p in (maildir / sub).iterdir() if p.is_file())
    seen: set[str] = set()
    return [as_submission(p.read_bytes(), seen) for p in paths]


# ----------------------------------------------------------------- the sink
MESSAGE_ID_RE = re.compile(rb"(?im)^message-id:[ \t]*(?:\r?\n[ \t]+)?(<[^>\r\n]*>)")


def serve_sink() -> int:
    """The sink process (--serve-sink): accept every message on a free loopback port and
    write one line per event to stdout; stop on SIGTERM or when stdin closes (the bench
    has gone)."""
    import asyncio

    from aiosmtpd.smtp import SMTP, Envelope, Session

    out = sys.stdout

    class Handler:
        async def handle_EHLO(self, server: SMTP, session: Session, envelope: Envelope, hostname: str,
                              responses: list[str]) -> list[str]:
            session.host_name = hostname
            out.write("connect\n")
            out.flush()
            return responses

        async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
            data = envelope.original_content or b""
            head = data.split(b"\r\n\r\n", 1)[0]
            tag = "casella" if CASELLA_TRACE in head else "direct"
            found = MESSAGE_ID_RE.search(head)
            mid = found.group(1).decode("ascii", "replace") if found else "-"
            out.write(f"message {tag} {len(data)} {len(envelope.rcpt_tos)} {mid}\n")
            out.flush()
            return "250 2.0.0 OK (bench sink)"

    loop = asyncio.new_event_loop()
    handler = Handler()
    server = loop.run_until_complete(loop.create_server(
        lambda: SMTP(handler, hostname="sink.bench.invalid", ident="bench sink", decode_data=False),
        HOST, 0))
    out.write(f"ready {server.sockets[0].getsockname()[1]}\n")
    out.flush()
    loop.add_signal_handler(signal.SIGTERM, loop.stop)
    loop.add_signal_handler(signal.SIGINT, loop.stop)
    loop.add_reader(sys.stdin.fileno(), lambda: os.read(sys.stdin.fileno(), 4096) or loop.stop())
    try:
        loop.run_forever()
    finally:
        server.close()
    return 0


@dataclass
class Event:
    at: float
    kind: str  # connect | message
    tag: str = ""  # direct | casella
    size: int = 0
    rcpts: int = 0
    message_id: str = ""


class Sink:
    """The sink process and what it reported, read by a thread into `events`."""

    def __init__(self, proc: subprocess.Popen[str], port: int) -> None:
        self.proc = proc
        self.port = port
        self.events: list[Event] = []
        self.cond = threading.Condition()
        self.thread = threading.Thread(target=self._read, name="bench-sink-reader", daemon=True)

    @classmethod
    def start(cls) -> Sink:
        proc = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--serve-sink"], cwd=ROOT,
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)  # stops at stdin EOF
        assert proc.stdout is not None
        line = read_line(proc, proc.stdout, 30, "the sink")
        if not line.startswith("ready "):
            proc.kill()
            raise BenchFailure(f"the sink said {line!r} instead of 'ready PORT'")
        return cls(proc, int(line.split()[1]))

    def listen(self) -> None:
        self.thread.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            now = time.perf_counter()
            parts = line.split()
            if not parts:
                continue
            if parts[0] == "connect":
                event = Event(now, "connect")
            else:
                event = Event(now, "message", parts[1], int(parts[2]), int(parts[3]), parts[4])
            with self.cond:
                self.events.append(event)
                self.cond.notify_all()

    def mark(self) -> int:
        with self.cond:
            return len(self.events)

    def since(self, mark: int, kind: str = "message", tag: str | None = None) -> list[Event]:
        with self.cond:
            return [e for e in self.events[mark:] if e.kind == kind and (tag is None or e.tag == tag)]

    def wait(self, mark: int, tag: str, count: int, watch: subprocess.Popen[str] | None = None,
             on_stall: Callable[[int], None] | None = None, stall: float = 30.0) -> float:
        """Until `count` messages tagged `tag` arrived after `mark`; the time of the last.
        `on_stall(got)` is called when nothing new arrived for `stall` seconds."""
        seen, got, last_change = mark, 0, time.perf_counter()
        while True:
            with self.cond:
                for e in self.events[seen:]:
                    if e.kind == "message" and e.tag == tag:
                        got += 1
                        last_change = e.at
                        if got == count:
                            return e.at
                seen = len(self.events)
                self.cond.wait(min(0.5, remaining()))
            if self.proc.poll() is not None:
                raise BenchFailure(f"the sink exited ({self.proc.returncode}) after {got} of {count} messages")
            if watch is not None and watch.poll() is not None:
                raise BenchFailure(f"`casella mailserver` exited ({watch.returncode}) after {got} of {count} "
                                   "relayed messages")
            if on_stall is not None and time.perf_counter() - last_change > stall:
                on_stall(got)
                last_change = time.perf_counter()

    def stop(self) -> None:
        stop_process(self.proc, signal.SIGTERM, 10)


# ----------------------------------------------------------------- processes
def die_with_parent() -> None:
    """In the child before exec (Linux): SIGTERM when the bench process dies, even by SIGKILL."""
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def read_line(proc: subprocess.Popen[str], stream: TextIO, timeout: float, what: str) -> str:
    """The first line a freshly started process writes, within `timeout` seconds."""
    ready, _, _ = select.select([stream], [], [], min(timeout, remaining()))
    if not ready:
        proc.kill()
        raise BenchFailure(f"{what} did not start within {timeout:.0f} s")
    line = stream.readline()
    if not line:
        proc.wait(5)
        raise BenchFailure(f"{what} exited ({proc.returncode}) before it was ready")
    return line.strip()


def stop_process(proc: subprocess.Popen[str], sig: int, grace: float) -> int | None:
    """Send `sig`, wait `grace` seconds, then SIGKILL; the exit code (None: had to be killed)."""
    if proc.poll() is not None:
        return proc.returncode
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(sig)
    try:
        return proc.wait(grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)
        return None


def casella_env(data_dir: Path, db_url: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CASELLA_")}
    env.update(CASELLA_DATA_DIR=str(data_dir), CASELLA_DEMO="0", CASELLA_SMTP_LISTEN=f"{HOST}:0")
    if db_url:
        env["CASELLA_DATABASE_URL"] = db_url
    return env


def casella(env: dict[str, str], *args: str, extra: dict[str, str] | None = None) -> str:
    return run([CASELLA, *args], env={**env, **(extra or {})}).stdout


def set_up_casella(env: dict[str, str], sink_port: int) -> None:
    """A user, a shared account he may write, its upstream = the sink; the real CLI, untimed."""
    casella(env, "user", "add", USER, "--role", "operator", "--password-env", "BENCH_PASSWORD",
            extra={"BENCH_PASSWORD": PASSWORD})
    casella(env, "account", "add", ACCOUNT, "--username", ACCOUNT_ADDRESS)
    casella(env, "account", "grant", ACCOUNT, "--user", USER, "--level", "write")
    casella(env, "smtp-upstream", ACCOUNT, "--host", HOST, "--port", str(sink_port), "--security", "none")


class Mailserver:
    """`casella mailserver` as a subprocess; its log (stderr) goes to a file."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.env = env
        self.log_path = log_path
        self.log = open(log_path, "w")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen([CASELLA, "mailserver"], env=env, stdout=subprocess.PIPE, stderr=self.log,
                                     text=True,
                                     preexec_fn=die_with_parent)  # noqa: PLW1509 - no other thread runs yet
        assert self.proc.stdout is not None
        line = read_line(self.proc, self.proc.stdout, 60, "`casella mailserver`")
        found = re.search(r" on (\S+):(\d+);", line)
        if found is None:
            self.stop()
            raise BenchFailure(f"`casella mailserver` said {line!r}; expected 'SMTP submission on HOST:PORT; ...'")
        self.host, self.port = found.group(1), int(found.group(2))
        self.exit_code: int | None = None

    def stop(self) -> int | None:
        if self.proc.poll() is None:
            self.exit_code = stop_process(self.proc, signal.SIGTERM, 30)
        else:
            self.exit_code = self.proc.returncode
        self.log.close()
        return self.exit_code

    def log_counts(self) -> tuple[dict[str, int], dict[str, int]]:
        """Lines per level above INFO (and tracebacks), and each distinct such message."""
        counts: Counter[str] = Counter()
        messages: Counter[str] = Counter()
        with contextlib.suppress(OSError):
            for line in self.log_path.read_text(errors="replace").splitlines():
                for level in ("WARNING", "ERROR", "CRITICAL"):
                    if f" {level} " in line:
                        counts[level.lower()] += 1
                        messages[re.sub(r"#\d+|\d+", "N", line.split(f" {level} ", 1)[1])[:200]] += 1
                if line.startswith("Traceback"):
                    counts["tracebacks"] += 1
        return dict(counts), dict(messages)

    def log_tail(self, lines: int = 30) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""


# ----------------------------------------------------------------- the client
def send_all(host: str, port: int, mail: list[Outgoing], policy: str, login: tuple[str, str] | None) -> None:
    """smtplib: every message, over one connection (reuse) or one each (per-message)."""

    def connect() -> smtplib.SMTP:
        client = smtplib.SMTP(host, port, timeout=60)
        if login is not None:
            client.login(*login)
        return client

    def send(client: smtplib.SMTP, m: Outgoing) -> None:
        refused = client.sendmail(m.mail_from, list(m.rcpt_tos), m.data)
        if refused:
            raise BenchFailure(f"{host}:{port} refused recipients of {m.message_id}: {refused}")

    try:
        if policy == "reuse":
            with connect() as client:
                for i, m in enumerate(mail):
                    if i % 50 == 0:
                        remaining()
                    send(client, m)
        else:
            for m in mail:
                remaining()
                with connect() as client:
                    send(client, m)
    except smtplib.SMTPException as exc:
        raise BenchFailure(f"sending to {host}:{port} failed: {type(exc).__name__}: {exc}") from exc


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


def time_baseline(sink: Sink, mail: list[Outgoing], policy: str, name: str) -> tuple[Row, list[Event]]:
    mark = sink.mark()
    t0 = time.perf_counter()
    send_all(HOST, sink.port, mail, policy, None)
    t_sent = time.perf_counter()
    last = sink.wait(mark, "direct", len(mail))
    seconds = max(last, t_sent) - t0
    return Row(name, seconds, len(mail), "smtplib → sink, no AUTH"), sink.since(mark)


@dataclass
class OursTiming:
    submission: Row
    end_to_end: Row
    relayed_by_last_submission: int
    drain_seconds: float
    mark: int
    end_mark: int


def time_ours(sink: Sink, server: Mailserver, mail: list[Outgoing], policy: str) -> OursTiming:
    mark = sink.mark()
    t0 = time.perf_counter()
    send_all(server.host, server.port, mail, policy, (USER, PASSWORD))
    t_sub = time.perf_counter()
    relayed_then = len(sink.since(mark, tag="casella"))
    last = sink.wait(mark, "casella", len(mail), watch=server.proc, on_stall=lambda got: check_queue(server, got))
    t_e2e = max(last, t_sub)
    n = len(mail)
    return OursTiming(
        Row("ours: submission", t_sub - t0, n, "smtplib → Casella (AUTH): stored, numbered, queued; 250"),
        Row("ours: end-to-end", t_e2e - t0, n, "… and relayed by the worker, all N at the sink"),
        relayed_then, t_e2e - t_sub, mark, sink.mark())


# ----------------------------------------------------------------- checks
def check_queue(server: Mailserver, got: int) -> None:
    """The relay made no progress for a while: fail at once if the queue shows why."""
    rows = json.loads(casella(server.env, "outbox", "list", "--json", "--limit", str(OUTBOX_LIST_MAX)))
    stuck = [r for r in rows if r["state"] in ("failed", "deferred")]
    states = Counter(r["state"] for r in rows)
    note(f"no relayed copy for a while ({got} at the sink); outbox {dict(states)}")
    if stuck:
        errors = Counter(str(r["last_error"]) for r in stuck).most_common(3)
        raise BenchFailure(f"the relay is stuck after {got} messages: outbox {dict(states)}; errors {errors}")


def verify(env: dict[str, str], mail: list[Outgoing], sink: Sink, ours: OursTiming,
           baselines: list[list[Event]], server_exit: int | None,
           log: tuple[dict[str, int], dict[str, int]]) -> dict[str, Any]:
    n = len(mail)
    expected_ids = {m.message_id for m in mail}
    expected_rcpts = sum(len(m.rcpt_tos) for m in mail)
    problems: list[str] = []

    relayed = sink.since(ours.mark, tag="casella")  # everything after ours started, to the end
    relayed_ids = Counter(e.message_id for e in relayed)
    duplicates = sum(c - 1 for c in relayed_ids.values() if c > 1)
    if len(relayed) != n:
        problems.append(f"the sink got {len(relayed)} relayed copies, expected {n}")
    if set(relayed_ids) != expected_ids:
        problems.append(f"relayed Message-IDs differ from the submitted ones: {len(set(relayed_ids) - expected_ids)} "
                        f"unknown, {len(expected_ids - set(relayed_ids))} missing")
    if duplicates:
        problems.append(f"{duplicates} relayed copies arrived twice")
    relayed_rcpts = sum(e.rcpts for e in relayed)
    if relayed_rcpts != expected_rcpts:
        problems.append(f"relayed to {relayed_rcpts} recipients, expected {expected_rcpts}")
    for i, events in enumerate(baselines):
        direct = [e for e in events if e.tag == "direct"]
        if len(direct) != n or {e.message_id for e in direct} != expected_ids:
            problems.append(f"baseline {i + 1}: the sink got {len(direct)} messages "
                            f"({len({e.message_id for e in direct})} distinct Message-IDs), expected {n}")
    with sink.cond:  # while ours ran, only the relay talked to the sink
        during = sink.events[ours.mark:ours.end_mark]
    relay_connections = sum(1 for e in during if e.kind == "connect")
    stray = sum(1 for e in during if e.kind == "message" and e.tag != "casella")
    if stray:
        problems.append(f"{stray} messages without Casella's trace line reached the sink while ours ran")

    # The queue, as `casella outbox list --json` shows it.
    rows = json.loads(casella(env, "outbox", "list", "--json", "--limit", str(min(n, OUTBOX_LIST_MAX))))
    states = Counter(r["state"] for r in rows)
    attempts = Counter(r["attempts"] for r in rows)
    outbox_ids = {r["message_id"] for r in rows}
    numbered = sum(1 for r in rows if r["protocol"])
    if len(rows) != min(n, OUTBOX_LIST_MAX) or states.get("sent", 0) != len(rows):
        problems.append(f"`casella outbox list` shows {len(rows)} rows, states {dict(states)}; expected all {n} sent")
    if numbered != len(rows):
        problems.append(f"{len(rows) - numbered} outbox rows without a protocol number")
    if n <= OUTBOX_LIST_MAX and outbox_ids != expected_ids:
        problems.append("the outbox's Message-IDs differ from the submitted ones")
    if n > OUTBOX_LIST_MAX:  # the list is capped: every other state must be empty
        for state in STATES:
            if state != "sent" and json.loads(casella(env, "outbox", "list", "--json", "--state", state)):
                problems.append(f"some outbox rows are {state}")

    # The store: N messages in Sent, direction out, each with a registration.
    stored = stored_counts(env)
    if stored["sent_folder"] != n or stored["registrations_out"] != n:
        problems.append(f"the store holds {stored['sent_folder']} messages in Sent and "
                        f"{stored['registrations_out']} outgoing registrations, expected {n}")
    if any(log[0].get(k) for k in ("error", "critical", "tracebacks")):
        problems.append(f"`casella mailserver` logged errors: {log[0]}; {log[1]}")
    if server_exit != 0:
        problems.append(f"`casella mailserver` did not stop cleanly on SIGTERM (exit {server_exit})")

    checks = {
        "sink_relayed": len(relayed), "sink_distinct_message_ids": len(relayed_ids),
        "sink_message_ids_match": set(relayed_ids) == expected_ids, "sink_duplicates": duplicates,
        "sink_recipients": relayed_rcpts, "expected_recipients": expected_rcpts,
        "sink_untraced_during_ours": stray,
        "relay_connections": relay_connections,
        "outbox_rows": len(rows), "outbox_states": dict(states), "outbox_attempts": dict(attempts),
        "outbox_numbered": numbered, **stored,
        "mailserver_exit": server_exit, "mailserver_log": log[0], "mailserver_log_messages": log[1],
    }
    if problems:
        raise BenchFailure("ours did not relay everything: " + "; ".join(problems) + f" ({checks})")
    return checks


def stored_counts(env: dict[str, str]) -> dict[str, Any]:
    from sqlalchemy import func, select

    from casella.db import Database
    from casella.models import Account, Message, Registration
    from casella.settings import Settings

    settings = Settings.load({k: v for k, v in env.items() if k.startswith("CASELLA_")})
    db = Database(settings.database_url)
    try:
        with db.reading() as s:
            account_id = s.scalar(select(Account.id).where(Account.name == ACCOUNT))
            in_sent = s.scalar(select(func.count(Message.id)).where(
                Message.account_id == account_id, Message.folder == "Sent", Message.direction == "out"))
            registrations = s.scalar(select(func.count(Registration.id)).join(
                Message, Message.id == Registration.message_id).where(
                Message.account_id == account_id, Registration.direction == "out"))
            numbers = s.execute(select(func.min(Registration.number), func.max(Registration.number))).one()
            total = s.scalar(select(func.count(Message.id)))
    finally:
        db.dispose()
    return {"sent_folder": in_sent, "registrations_out": registrations, "messages_total": total,
            "protocol_numbers": list(numbers)}


# ----------------------------------------------------------------- report
def table(rows: list[Row]) -> str:
    lines = [f"{'':<19} {'seconds':>8} {'messages/s':>11}",
             f"{'-' * 19} {'-' * 8} {'-' * 11}"]
    for r in rows:
        lines.append(f"{r.name:<19} {r.seconds:>8.2f} {r.rate:>11.1f}   {r.detail}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--serve-sink"]:
        return serve_sink()
    ap = argparse.ArgumentParser(description="Outbound benchmark: submission + relay through `casella mailserver` "
                                             "to a loopback SMTP sink, against plain smtplib to the same sink.")
    ap.add_argument("--count", type=int, default=1000, help="messages to generate and send (default %(default)s)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--connection", choices=("reuse", "per-message"), default="reuse",
                    help="bench client, both sides: one SMTP connection for all messages, or one per message "
                         "(default %(default)s)")
    db = ap.add_mutually_exclusive_group()
    db.add_argument("--db-url", help="an EMPTY database for Casella (e.g. postgresql+psycopg://...); default SQLite "
                                     "in the temp data dir. It is migrated and filled, and not cleaned up")
    db.add_argument("--postgres", action="store_true",
                    help="a throwaway PostgreSQL server (tests/servers/postgres.py) instead of SQLite")
    ap.add_argument("--keep", metavar="DIR", type=Path, help="work in DIR (new or empty) and keep it")
    ap.add_argument("--json", action="store_true", help="print the figures as JSON instead of a table")
    ap.add_argument("--timeout", type=float, default=1800.0, help="stop after this many seconds (default 1800)")
    args = ap.parse_args(argv)
    if args.count < 1:
        ap.error("--count must be at least 1")

    start_clock(args.timeout)
    try:
        work = work_dir(args.keep, "casella-bench-outbound-")
    except BenchFailure as exc:
        ap.error(str(exc))

    sink: Sink | None = None
    server: Mailserver | None = None
    pg: Any = None
    try:
        t0 = time.perf_counter()
        generator = generate(args.count, args.seed, work / "maildir")
        mail = load_mail(work / "maildir")
        if len(mail) != args.count:
            raise BenchFailure(f"the generator wrote {len(mail)} messages, expected {args.count}")
        total_bytes = sum(len(m.data) for m in mail)
        rcpts = sum(len(m.rcpt_tos) for m in mail)
        note(f"generated {len(mail)} messages, {total_bytes / 1e6:.1f} MB as submitted, {rcpts} recipients, "
             f"in {time.perf_counter() - t0:.1f} s ({generator})")

        db_url, database = args.db_url, "SQLite in the temp data dir"
        if args.postgres:
            from tests.servers.postgres import PostgresServer

            if not PostgresServer.available():
                raise BenchFailure("PostgreSQL is not installed (scripts/test-deps.sh)")
            pg = PostgresServer(work / "postgres").start()
            db_url = pg.create_database("bench_outbound")
            database = "PostgreSQL (throwaway server on loopback)"
        elif db_url:
            database = re.sub(r"//[^@/]*@", "//***@", db_url)

        sink = Sink.start()
        note(f"sink on {HOST}:{sink.port} (pid {sink.proc.pid})")
        env = casella_env(work / "data", db_url)
        set_up_casella(env, sink.port)
        server = Mailserver(env, work / "mailserver.log")
        note(f"`casella mailserver` on {server.host}:{server.port} (pid {server.proc.pid}), relaying to the sink")
        sink.listen()

        note(f"timing: baseline (smtplib → sink, connection {args.connection})")
        before, before_events = time_baseline(sink, mail, args.connection, "baseline (before)")
        note(f"timing: ours (smtplib → casella mailserver → sink, connection {args.connection})")
        ours = time_ours(sink, server, mail, args.connection)
        note("timing: baseline again")
        after, after_events = time_baseline(sink, mail, args.connection, "baseline (after)")
        server_exit = server.stop()
        checks = verify(env, mail, sink, ours, [before_events, after_events], server_exit, server.log_counts())
        note(f"verified: {checks}")

        best = min((before, after), key=lambda r: r.seconds)
        ratios = {"submission": ours.submission.rate / best.rate, "end_to_end": ours.end_to_end.rate / best.rate}
        rows = [before, ours.submission, ours.end_to_end, after]
        report = {
            "count": args.count, "seed": args.seed, "connection": args.connection, "machine": machine(),
            "mail": {"generator": generator, "bytes": total_bytes, "recipients": rcpts},
            "database": database,
            "rows": [{**asdict(r), "messages_per_second": r.rate} for r in rows],
            "baseline_used": best.name,
            "ratios_ours_over_baseline": ratios,
            "relayed_by_last_submission": ours.relayed_by_last_submission,
            "drain_seconds": ours.drain_seconds,
            "checks": checks, "ok": True,
            "work_dir": str(work) if args.keep else None,
        }
        if args.json:
            print(json.dumps(report, indent=2, default=str))
        else:
            m = report["machine"]
            conn = ("one SMTP connection for all N (AUTH once)" if args.connection == "reuse"
                    else "one SMTP connection per message (AUTH each time)")
            print(f"Casella outbound benchmark: N={args.count} messages (seed {args.seed}, "
                  f"{total_bytes / 1e6:.1f} MB, {rcpts} recipients)")
            print(f"machine: nproc={m['nproc']} (usable {m['usable_cpus']}, load {m['loadavg_1min_at_end']}), "
                  f"Python {m['python']}, {m['platform']}")
            print(f"ours: `casella mailserver` subprocess (submission server + relay worker), {database}; "
                  f"sink: aiosmtpd in its own process; all on loopback")
            print(f"bench client: smtplib, {conn}; the relay opens one connection per message to the sink")
            print()
            print(table(rows))
            print()
            print(f"ours/baseline submission = {ratios['submission']:.3f}x  (messages/s against the faster baseline, "
                  f"{best.name}; < 1: ours is slower, here {1 / ratios['submission']:.1f}x)")
            print(f"ours/baseline end-to-end = {ratios['end_to_end']:.3f}x  ({1 / ratios['end_to_end']:.1f}x slower)")
            print(f"relay: {ours.relayed_by_last_submission} of {args.count} already at the sink at the last "
                  f"submission, the rest {ours.drain_seconds:.2f} s later; {checks['relay_connections']} relay "
                  "connections")
            print(f"checked: sink got {checks['sink_relayed']} relayed copies, {checks['sink_distinct_message_ids']} "
                  f"distinct Message-IDs = the submitted ones, {checks['sink_recipients']} recipients, "
                  f"{checks['sink_duplicates']} duplicates; outbox {checks['outbox_rows']} rows "
                  f"{checks['outbox_states']} (attempts {checks['outbox_attempts']}); {checks['sent_folder']} in Sent, "
                  f"{checks['registrations_out']} registrations (numbers {checks['protocol_numbers'][0]}.."
                  f"{checks['protocol_numbers'][1]}); mailserver exit {checks['mailserver_exit']}, "
                  f"log {checks['mailserver_log'] or 'no warnings'}")
            print("OK")
            if args.keep:
                print(f"kept: {work}")
        return 0
    except (BenchFailure, BenchTimeout) as exc:
        print(f"FAILED: {exc}", file=sys.stderr)
        if server is not None:
            tail = server.log_tail(30)
            if tail:
                print(f"--- casella mailserver log (last lines) ---\n{tail}", file=sys.stderr)
        return 1
    finally:
        signal.alarm(0)
        if server is not None:
            server.stop()
        if sink is not None:
            sink.stop()
        if pg is not None:
            with contextlib.suppress(Exception):
                pg.stop()
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
