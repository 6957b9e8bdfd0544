"""bench/outbound.py runs end to end on a few messages and checks itself (no timing asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from email import message_from_bytes
from email.parser import BytesHeaderParser
from pathlib import Path

import pytest

from bench.outbound import ACCOUNT_ADDRESS, MAX_LINE, as_submission

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.e2e
def test_outbound_bench_runs_and_reports_correctness() -> None:
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "outbound.py"), "--count", "20", "--json",
                           "--timeout", "300"], check=False, cwd=ROOT, capture_output=True, text=True, timeout=400)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout)
    assert report["ok"] is True
    checks = report["checks"]
    assert checks["sink_relayed"] == 20 and checks["sink_distinct_message_ids"] == 20
    assert checks["sink_message_ids_match"] is True and checks["sink_duplicates"] == 0
    assert checks["sink_recipients"] == checks["expected_recipients"] == report["mail"]["recipients"]
    assert checks["outbox_rows"] == 20 and checks["outbox_states"] == {"sent": 20}
    assert checks["sent_folder"] == 20 and checks["registrations_out"] == 20
    assert checks["mailserver_exit"] == 0
    names = [r["name"] for r in report["rows"]]
    assert names == ["baseline (before)", "ours: submission", "ours: end-to-end", "baseline (after)"]
    assert all(r["messages"] == 20 and r["seconds"] > 0 for r in report["rows"])
    assert set(report["ratios_ours_over_baseline"]) == {"submission", "end_to_end"}


@pytest.mark.unit
def test_generated_mail_becomes_a_submission_from_the_shared_box() -> None:
    long_line = ("Lorem ipsum dolor sit amet, è così. " * 60).strip()
    raw = ("Received: from mx.example.org by mx.studioferrari.it\n"
           "Return-Path: <mario@example.org>\n"
           "From: Mario Rossi <mario@example.org>\n"
           "To: Ufficio <info@studioferrari.it>, segreteria@studioferrari.it\n"
           "Cc: anna@example.com\n"
           "Subject: Preventivo\n"
           "Message-ID: <abc@example.org>\n"
           "MIME-Version: 1.0\n"
           'Content-Type: text/plain; charset="utf-8"\n'
           "Content-Transfer-Encoding: 8bit\n"
           "\n" + long_line + "\n").encode("utf-8")
    seen: set[str] = set()
    out = as_submission(raw, seen)
    assert out.mail_from == ACCOUNT_ADDRESS and out.message_id == "<abc@example.org>"
    assert out.rcpt_tos == ("info@studioferrari.it", "anna@example.com")  # the sending box itself is left out
    assert all(len(line) <= MAX_LINE for line in out.data.split(b"\r\n"))
    assert b"\n" not in out.data.replace(b"\r\n", b"")
    headers = BytesHeaderParser().parsebytes(out.data)
    assert headers.get_all("From") == [f"Segreteria Studio Ferrari <{ACCOUNT_ADDRESS}>"]
    assert headers["Received"] is None and headers["Return-Path"] is None
    body = message_from_bytes(out.data).get_payload(decode=True).decode("utf-8").strip()
    assert body == long_line  # re-encoded as quoted-printable, same text
    again = as_submission(raw, seen)  # a Message-ID already used gets a new one
    assert again.message_id != out.message_id and again.message_id.endswith("@bench.invalid>")
