"""Statistics: managers and admins only, with the office's real counts."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime

import pytest
from sqlalchemy import select, update

from casella.models import Message, User
from tests.webmail.conftest import Office

pytestmark = pytest.mark.integration


def window() -> int:
    """Days from the office's first message (2 November 2026) to today, both included."""
    return (datetime.now(UTC).date() - date(2026, 11, 2)).days + 1


def test_stats_are_for_managers_and_admins(office: Office) -> None:
    for who in ("olga", "rossi", "mara"):
        assert office.http(who).get("/stats")[0] == 403
    assert office.http("admin").get("/stats")[0] == 200


def test_stats_counts_for_the_office(office: Office) -> None:
    with office.db.session() as s:
        olga = s.scalar(select(User.id).where(User.username == "olga"))
        s.execute(update(Message).where(Message.id == office.ids["f118@edilnord.it"])
                  .values(assigned_user_id=olga, status="pending"))
        s.execute(update(Message).where(Message.id == office.ids["off1@tecnoservizi.com"])
                  .values(assigned_user_id=olga, status="closed"))
    status, _, html = office.http("direttore").get(f"/stats?days={window()}")
    assert status == 200
    assert re.search(r'id="stat-unknown">1<', html)
    assert re.search(r'id="stat-pec-pending">0<', html)
    assert re.search(r'data-stat="in-info">4<', html) and re.search(r'data-stat="out-info">0<', html)
    assert "02/11/2026" in html and "05/11/2026" in html
    rows = re.findall(r"<tr><td>([^<]*)</td><td>(\d+)</td><td>(\d+)</td><td>(\d+)</td></tr>",
                      html.split('id="stats-assignees"')[1])
    assert ("Olga Operatrice", "0", "1", "1") in rows
    assert any(r[1:] == ("2", "0", "0") for r in rows)  # the two unassigned, open
    assert "<script>window.__xss" not in html


def test_response_time_median(office: Office) -> None:
    """A reply 2 hours after the inbound message, in the same thread."""
    from datetime import timedelta

    from casella.models import Thread

    with office.db.session() as s:
        inbound = s.get(Message, office.ids["f118@edilnord.it"])
        assert inbound is not None and inbound.date is not None
        thread_id = inbound.thread_id
        if thread_id is None:
            t = Thread(subject=inbound.subject)
            s.add(t)
            s.flush()
            thread_id = t.id
            inbound.thread_id = thread_id
        s.add(Message(account_id=inbound.account_id, folder="Sent", direction="out", sha256="0" * 64, size=10,
                      subject="Re: " + inbound.subject, to=[{"name": "", "addr": "giulia.neri@edilnord.it"}],
                      date=inbound.date + timedelta(hours=2), thread_id=thread_id, link_kind="contact"))
    _, _, html = office.http("admin").get(f"/stats?days={window()}")
    table = html.split('id="stats-responses"')[1]
    assert "2 h 00 min" in table
    assert re.search(r'data-stat="out-info">1<', html)
