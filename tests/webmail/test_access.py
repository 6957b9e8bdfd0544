"""Signing in and what each role may reach: sessions, CSRF, throttling, the list per role,
and hostile mail in the list, in a real Chromium."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.webmail.conftest import PASSWORDS, Office, login

pytestmark = pytest.mark.integration


def test_every_page_needs_a_session(office: Office) -> None:
    client = office.http()
    for path in ("/mail", "/settings", "/mail?mailbox=1&folder=INBOX"):
        status, headers, _ = client.get(path)
        assert status == 303 and headers["location"].startswith("/login?next=")
    status, _, _ = client.request("POST", "/mail/bulk", {"action": "read"})
    assert status in (401, 403)


def test_wrong_password_then_throttled_then_right_password_still_refused(office: Office) -> None:
    client = office.http()
    for _ in range(5):
        assert client.login("olga", "wrong") == 401
    assert client.login("olga", PASSWORDS["olga"]) == 429  # throttled, even with the right password
    status, _, _ = client.get("/mail")
    assert status == 303


def test_login_logout_and_session_cookie_flags(office: Office) -> None:
    client = office.http()
    token = client.csrf("/login")
    status, headers, _ = client.request("POST", "/login", {"username": "olga", "password": PASSWORDS["olga"],
                                                           "csrf": token, "next": "https://evil.example/"})
    assert status == 303 and headers["location"] == "/mail"  # never redirected off-site
    cookie = headers["set-cookie"]
    assert "casella_session=" in cookie and "HttpOnly" in cookie and "SameSite=lax" in cookie.replace("Lax", "lax")
    status, _, html = client.get("/mail")
    assert status == 200 and "Fattura 2026/118" in html
    status, _, _ = client.post("/logout", {})
    assert status == 303
    status, _, _ = client.get("/mail")
    assert status == 303  # the server forgot the session, not only the browser


def test_post_without_csrf_token_or_from_another_site_is_refused(office: Office) -> None:
    client = office.http("olga")
    status, _, body = client.post("/mail/bulk", {"action": "read", "ids": [1]}, csrf=False)
    assert status == 403 and "scaduto" in body  # Italian by default
    token = client.csrf()
    status, _, body = client.request("POST", "/mail/bulk", {"action": "read", "ids": [1], "csrf": token},
                                     headers={"Origin": "https://evil.example"})
    assert status == 403 and "Cross-site" in body
    status, _, _ = client.request("POST", "/mail/bulk", {"action": "read", "ids": [1], "csrf": token},
                                  headers={"Origin": office.url})
    assert status == 303


def test_security_headers(office: Office) -> None:
    status, headers, _ = office.http("olga").get("/mail")
    assert status == 200
    csp = headers["content-security-policy"]
    assert "script-src 'self'" in csp and "img-src 'self' data:" in csp and "https:" not in csp
    assert headers["x-content-type-options"] == "nosniff"


def _subjects(html: str) -> set[str]:
    return set(re.findall(r'<a href="/mail/\d+">([^<]*)</a>', html))


def test_each_role_lists_only_what_it_may_read(office: Office) -> None:
    everything = {"Fattura 2026/118 cantiere Monza", "Offerta manutenzione impianti", "Richiesta informazioni"}
    for user in ("admin", "direttore", "olga"):
        _, _, html = office.http(user).get("/mail")
        assert everything <= _subjects(html), user
    _, _, html = office.http("rossi").get("/mail")
    assert "Fattura 2026/118 cantiere Monza" in _subjects(html)
    assert "Offerta manutenzione impianti" not in html and "Richiesta informazioni" not in html
    _, _, html = office.http("bianchi").get("/mail")
    assert _subjects(html) == {"Offerta manutenzione impianti"}
    _, _, html = office.http("mara").get("/mail")
    assert not _subjects(html)  # marketing: no mailbox granted


def test_unknown_senders_view(office: Office) -> None:
    _, _, html = office.http("olga").get("/mail?unknown=1")
    assert _subjects(html) == {"Richiesta informazioni"}


def test_keyset_pages_cover_every_message_once(office: Office) -> None:
    from sqlalchemy import select

    from casella.access import grant_for
    from casella.models import Message, User
    from webmail.mailbox import Filters, list_page

    with office.db.reading() as s:
        admin = s.scalar(select(User).where(User.username == "admin"))
        grant = grant_for(s, admin)
        for order in ("desc", "asc"):
            seen: list[int] = []
            cursor = None
            while True:
                page = list_page(s, grant, admin.id, Filters(order=order), cursor, page_size=1)
                seen += [r.id for r in page.rows]
                cursor = page.next_cursor
                if cursor is None:
                    break
            assert sorted(seen) == sorted(office.ids.values()) and len(seen) == len(set(seen))
            dates = [s.get(Message, i).date for i in seen]
            assert dates == sorted(dates, reverse=order == "desc")


def test_keyset_pages_with_undated_and_equal_dates(office: Office) -> None:
    """Undated mail comes last (newest first) or first (oldest first), equal dates page by
    id, and a page's cursor (kept statement, cursor as parameters) never skips or repeats."""
    from sqlalchemy import select, update

    from casella.access import grant_for
    from casella.models import Message, User
    from webmail.mailbox import Filters, list_page

    ids = sorted(office.ids.values())
    with office.db.session() as s:
        s.execute(update(Message).where(Message.id.in_(ids[:2])).values(date=None))
        same = s.get(Message, ids[2]).date
        s.execute(update(Message).where(Message.id.in_(ids[3:5])).values(date=same))
    with office.db.reading() as s:
        admin = s.scalar(select(User).where(User.username == "admin"))
        grant = grant_for(s, admin)
        dates = {m.id: m.date for m in s.scalars(select(Message))}
        for order in ("desc", "asc"):
            seen: list[int] = []
            cursor = None
            while True:
                page = list_page(s, grant, admin.id, Filters(order=order), cursor, page_size=1)
                seen += [r.id for r in page.rows]
                if (cursor := page.next_cursor) is None:
                    break
            undated = sorted(ids[:2], reverse=order == "desc")
            dated = sorted((i for i in dates if dates[i] is not None), key=lambda i: (dates[i], i),
                           reverse=order == "desc")
            assert seen == (dated + undated if order == "desc" else undated + dated), order


def test_browser_login_list_and_hostile_names_never_run(office: Office, page: Any) -> None:
    login(page, office, "olga")
    assert page.locator("tr.msg").count() == 4
    assert page.locator("tr.msg", has_text="Fattura 2026/118").count() == 1
    # The hostile subject and sender name are shown as text, not run.
    assert page.locator("tr.msg", has_text="onerror").count() == 1
    assert page.evaluate("window.__xss === undefined")
    # Keyboard: j moves the cursor, Enter opens the message.
    page.keyboard.press("j")
    assert page.locator("tr.msg.cursor").count() == 1
    page.click("text=Esci") if page.locator("text=Esci").count() else page.click("button:has-text('Sign out')")
    page.wait_for_url("**/login**")


def test_batched_grants_equal_one_by_one(office: Office) -> None:
    """grants_for_users (the assignee choices) must say exactly what grant_for says."""
    from sqlalchemy import select

    from casella.access import grant_for, grants_for_users
    from casella.models import User

    with office.db.session() as s:
        s.add(User(username="ex", role="operator", active=False))
    with office.db.reading() as s:
        users = list(s.scalars(select(User)))
        batched = grants_for_users(s, users)
        assert len(users) == 7
        for user in users:
            assert batched[user.id] == grant_for(s, user), user.username


def test_bounces_are_not_unknown_senders(office: Office) -> None:
    from sqlalchemy import select

    from casella.models import Account, MessageReport
    from ingest.service import make_storer
    from ingest.store import Incoming
    from tests.conftest import CORPUS

    raw = (CORPUS / "reports" / "postfix-dsn.eml").read_bytes()
    with office.db.reading() as s:
        account_id = s.scalar(select(Account.id).where(Account.name == "info"))
    make_storer(office.settings, office.db).store_batch(account_id, [Incoming(raw=raw, folder="INBOX")],
                                                        source="test")
    with office.db.reading() as s:
        assert s.scalar(select(MessageReport.id).limit(1)) is not None  # it is a bounce, kept as an orphan
    _, _, html = office.http("olga").get("/mail?unknown=1")
    assert _subjects(html) == {"Richiesta informazioni"}
    _, _, html = office.http("olga").get("/mail")
    assert len(_subjects(html)) == 5  # still in the mailbox


def test_split_list_and_counts_match_the_plain_access_query(office: Office) -> None:
    """The list and the folder counts query whole accounts and the rest separately (for the
    indexes); they must show exactly what one query with visible_clause shows."""
    from sqlalchemy import func, select

    from casella.access import grant_for, visible_clause
    from casella.models import Account, Message, User
    from ingest.accounts import add_account
    from ingest.service import make_storer
    from ingest.store import Incoming
    from tests.webmail.conftest import mail
    from webmail.mailbox import Filters, _counts_cache, folder_tree, list_page

    with office.db.session() as s:
        other = add_account(s, office.settings, name="altro", imap_host=None, imap_port=None, username=None,
                            password=None, security="none", is_pec=False, folders=["INBOX"], sent_folders=[])
        other_id = other.id
    raws = [mail("X <x@altro.example>", f"altro {i}", "b", msgid=f"<a{i}@altro.example>",
                 date=f"Mon, {i + 1} Nov 2026 08:00:00 +0100") for i in range(6)]
    make_storer(office.settings, office.db).store_batch(other_id, [Incoming(raw=r, folder="INBOX") for r in raws],
                                                        source="test")
    with office.db.session() as s:
        olga = s.scalar(select(User).where(User.username == "olga"))
        for m in s.scalars(select(Message).where(Message.account_id == other_id, Message.subject.in_(["altro 1", "altro 4"]))):
            m.assigned_user_id = olga.id
    with office.db.reading() as s:
        for user in s.scalars(select(User)):
            grant = grant_for(s, user)
            for filters in (Filters(), Filters(order="asc"), Filters(account_id=other_id), Filters(unread=True)):
                seen, cursor = [], None
                while True:
                    page = list_page(s, grant, user.id, filters, cursor, page_size=2)
                    seen += [r.id for r in page.rows]
                    if (cursor := page.next_cursor) is None:
                        break
                expected = list(s.scalars(select(Message.id).where(
                    visible_clause(grant), *([Message.account_id == filters.account_id] if filters.account_id else []))
                    .order_by(Message.date.desc() if filters.order == "desc" else Message.date.asc())))
                assert seen == expected, (user.username, filters)
            _counts_cache.clear()
            counted = {(f.account_id, f.name): f.total for m in folder_tree(s, grant, user.id) for f in m.folders}
            plain = {(a, f): n for a, f, n in s.execute(select(Message.account_id, Message.folder, func.count())
                                                        .where(visible_clause(grant))
                                                        .group_by(Message.account_id, Message.folder))}
            assert counted == plain, user.username
            if user.username == "olga":
                assert counted[(other_id, "INBOX")] == 2 and s.get(Account, other_id) is not None
