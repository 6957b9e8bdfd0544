"""Threads against ground truth: the fedora-devel archive (Jan 2010, ~290 messages) with the
archive's own thread tree (MHonArc's thread.html), plus the Outlook References-only case."""

from __future__ import annotations

import gzip
import re
from pathlib import Path

import pytest

from tests.conftest import CORPUS, Cli
from tests.mailgen import make_message, write_eml_folder

pytestmark = pytest.mark.integration
FEDORA = CORPUS / "real" / "fedora-devel-threading"


def truth_threads() -> list[set[int]]:
    """Top-level <li> of thread.html are thread roots; msgNNNNN is the message's position
    in the mbox (MHonArc numbers messages in the order it read them)."""
    html = gzip.open(FEDORA / "2010-January_thread.html.gz", "rt", encoding="latin-1").read()
    body = html.split("<HR>", 1)[1]
    threads: list[set[int]] = []
    depth = 0
    for token in re.finditer(r"<(/?)(ul|li)\b[^>]*>|href=\"msg(\d+)\.html\"", body, re.IGNORECASE):
        closing, tag, num = token.group(1), (token.group(2) or "").lower(), token.group(3)
        if tag == "ul":
            depth += -1 if closing else 1
        elif num is not None:
            if depth == 1:
                threads.append({int(num)})
            else:
                threads[-1].add(int(num))
    return threads


def test_fedora_threads_match_the_archive(cli: Cli) -> None:
    truth = truth_threads()
    total = sum(len(t) for t in truth)
    cli("account", "add", "lista")
    cli("import", str(FEDORA / "2010-January.txt.gz"), "--account", "lista")
    listed = cli("message", "list", "--json").json()
    assert len(listed) == total
    ours: dict[int, set[int]] = {}
    for position, message in enumerate(listed):  # ids follow the mbox order
        ours.setdefault(message["thread_id"], set()).add(position)
    ours_sets = {frozenset(s) for s in ours.values()}
    exact = [t for t in truth if frozenset(t) in ours_sets]
    in_exact = sum(len(t) for t in exact)
    multi = [t for t in truth if len(t) > 1]
    print(f"fedora: {len(exact)} of {len(truth)} threads identical, {in_exact} of {total} messages")
    assert len(exact) >= 0.95 * len(truth), f"{len(exact)} of {len(truth)} threads identical"
    assert in_exact >= 0.95 * total
    assert sum(1 for t in multi if frozenset(t) in ours_sets) >= 0.9 * len(multi)


def test_outlook_reply_with_only_references_joins_its_thread(cli: Cli, tmp_path: Path) -> None:
    cli("account", "add", "ufficio")
    first = make_message(0, "ol", subject="Offerta fornitura")
    # Outlook: no In-Reply-To, only References; and a subject it rewrote.
    reply = make_message(1, "ol", subject="R: Offerta fornitura (aggiornata)",
                         extra_headers="References: <ol-0@example.test>\r\n")
    # A reply that arrives before its parent still joins once the parent comes.
    late_child = make_message(3, "ol", subject="Re: listino", extra_headers="In-Reply-To: <ol-2@example.test>\r\n")
    late_parent = make_message(2, "ol", subject="listino")
    # No references at all: the subject fallback joins a reply-looking subject only.
    by_subject = make_message(4, "ol", subject="RE: Offerta fornitura")
    unrelated = make_message(5, "ol", subject="Offerta fornitura")
    for n, raws in enumerate(([first, reply, late_child], [late_parent], [by_subject], [unrelated])):
        cli("import", str(write_eml_folder(tmp_path / f"b{n}", raws)), "--account", "ufficio")
    t = {m["message_id"].split("@")[0]: m["thread_id"] for m in cli("message", "list", "--json").json()}
    assert t["ol-1"] == t["ol-0"]
    assert t["ol-3"] == t["ol-2"] and t["ol-2"] != t["ol-0"]
    assert t["ol-4"] == t["ol-0"]
    assert t["ol-5"] != t["ol-0"]
