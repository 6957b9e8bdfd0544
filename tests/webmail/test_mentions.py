"""@mentions in internal notes: who is told, the top bar's count, the list, marking them
seen, and never a message the user may not read — through real HTTP and a real Chromium."""

from __future__ import annotations

import re
from typing import Any

import pytest
from sqlalchemy import create_engine, inspect, select, update

from casella.db import downgrade, upgrade
from casella.models import NoteMention, User
from tests.webmail.conftest import XSS, Office, WebClient, login

pytestmark = pytest.mark.integration

F118 = "f118@edilnord.it"  # Edilnord: agent rossi
OFFER = "off1@tecnoservizi.com"  # Tecnoservizi: agent bianchi
UNKNOWN = "ri1@nuovo-cliente.example"
HOSTILE = "xss@edilnord.it"  # XSS in the subject


def told(office: Office) -> list[tuple[str, int, bool]]:
    """(username, message id, seen) of every stored mention."""
    with office.db.reading() as s:
        return sorted((u, m, seen is not None) for u, m, seen in s.execute(
            select(User.username, NoteMention.message_id, NoteMention.seen_at)
            .join(User, User.id == NoteMention.user_id)))


def badge(client: WebClient, path: str = "/mail") -> str | None:
    """The number in the top bar's Mentions link, None when it shows none."""
    status, _, html = client.get(path)
    assert status == 200, (path, status)
    link = re.search(r'<a href="/mentions" id="mentions-link"[^>]*>(.*?)</a>', html, re.DOTALL)
    assert link, "no Mentions link in the top bar"
    count = re.search(r'class="badge mention-count" aria-hidden="true">(\d+)</span>', link.group(1))
    return count.group(1) if count else None


def listed(client: WebClient) -> str:
    status, _, html = client.get("/mentions")
    assert status == 200
    return html.split('<main id="main"')[1]


def test_a_mention_tells_the_active_colleagues_named_and_nobody_else(office: Office) -> None:
    with office.db.session() as s:
        s.execute(update(User).where(User.username == "mara").values(active=False))
    mid = office.ids[UNKNOWN]
    boss = office.http("direttore")
    body = "@olga richiama; @direttore promemoria per me, @nessuno non esiste, @mara non lavora più qui"
    assert boss.post(f"/mail/{mid}/notes", {"body": body})[0] == 303
    assert told(office) == [("olga", mid, False)]  # not the author, not unknown names, not inactive users
    page = listed(office.http("olga"))
    assert f'href="/mail/{mid}#work-notes"' in page and "Richiesta informazioni" in page
    assert "Dario Direttore" in page and '<strong class="mention">@olga</strong>' in page
    assert 'class="note unseen"' in page
    assert "Nessuno ti ha ancora menzionato" in listed(boss)
    assert badge(boss) is None


def test_the_count_shows_in_the_top_bar_until_opened_or_marked_seen(office: Office) -> None:
    boss = office.http("direttore")
    for key, name in ((UNKNOWN, "olga"), (F118, "Olga")):  # usernames are matched whatever their case
        assert boss.post(f"/mail/{office.ids[key]}/notes", {"body": f"@{name} guarda {key}"})[0] == 303
    olga = office.http("olga")
    assert badge(olga) == "2"
    assert "(2 menzioni non lette)" in olga.get("/mail")[2]
    # Opening one message marks its mentions seen: the page it opens already counts one.
    assert badge(olga, f"/mail/{office.ids[UNKNOWN]}") == "1"
    assert "(1 menzione non letta)" in olga.get("/contacts")[2]
    page = listed(olga)
    unseen = re.findall(r'<li class="note unseen" data-note="\d+">.*?</li>', page, re.DOTALL)
    assert len(unseen) == 1 and f'href="/mail/{office.ids[F118]}#work-notes"' in unseen[0]
    assert page.count('<li class="note"') == 1
    # "Mark all as seen": a form with its CSRF field; refused without it.
    form = page.split('action="/mentions/seen"')[1].split("</form>")[0]
    assert 'name="csrf"' in form
    assert olga.post("/mentions/seen", {}, csrf=False)[0] == 403
    status, headers, _ = olga.post("/mentions/seen", {})
    assert status == 303 and headers["location"] == "/mentions"
    assert badge(olga) is None
    assert [seen for _, _, seen in told(office)] == [True, True]
    assert 'action="/mentions/seen"' not in listed(olga)  # nothing left to mark


def test_a_mention_on_mail_the_user_cannot_read_is_neither_listed_nor_counted(office: Office) -> None:
    offer, f118 = office.ids[OFFER], office.ids[F118]
    boss = office.http("direttore")
    # Tecnoservizi is bianchi's client: rossi, an agent, may not read this message.
    assert boss.post(f"/mail/{offer}/notes", {"body": "@rossi @bianchi offerta riservata"})[0] == 303
    assert ("rossi", offer, False) in told(office)  # stored: it shows if the message becomes theirs
    rossi = office.http("rossi")
    assert rossi.get(f"/mail/{offer}")[0] == 404
    assert badge(rossi) is None
    page = listed(rossi)
    assert f"/mail/{offer}" not in page and "riservata" not in page and "Offerta manutenzione" not in page
    bianchi = office.http("bianchi")
    assert badge(bianchi) == "1" and f'href="/mail/{offer}#work-notes"' in listed(bianchi)
    # A mention on his own client's mail is counted and listed.
    assert boss.post(f"/mail/{f118}/notes", {"body": "@rossi fattura da controllare"})[0] == 303
    assert badge(rossi) == "1"
    page = listed(rossi)
    assert f'href="/mail/{f118}#work-notes"' in page and f"/mail/{offer}" not in page


def test_note_text_and_subject_are_shown_as_text(office: Office) -> None:
    mid = office.ids[HOSTILE]
    body = f"@olga {XSS}<script>window.__xss=9</script> & co."
    assert office.http("direttore").post(f"/mail/{mid}/notes", {"body": body})[0] == 303
    page = listed(office.http("olga"))
    entry = page.split('id="mentions"')[1].split("</ol>")[0]
    assert "<img" not in entry and "<script" not in entry
    assert "&lt;img src=x onerror=" in entry and "&lt;script&gt;window.__xss=9&lt;/script&gt; &amp; co." in entry
    assert '<strong class="mention">@olga</strong>' in entry
    assert "Ciao &lt;img" in entry  # the hostile subject, as text


def test_browser_a_colleague_sees_the_badge_and_the_note(office: Office, page: Any, browser: Any) -> None:
    mid = office.ids[UNKNOWN]
    login(page, office, "direttore")
    page.goto(f"{office.url}/mail/{mid}")
    page.fill("#work-note", "@olga richiama tu il cliente, grazie")
    page.get_by_role("button", name="Aggiungi nota").click()
    page.locator("#work-notes strong.mention", has_text="@olga").wait_for()
    other = browser.new_context(locale="it-IT")
    try:
        olga = other.new_page()
        olga.set_default_timeout(15000)
        login(olga, office, "olga")
        link = olga.get_by_role("link", name="Menzioni (1 menzione non letta)")
        assert link.locator(".mention-count").inner_text() == "1"
        link.click()
        entry = olga.locator("#mentions li.unseen", has_text="richiama tu il cliente")
        entry.get_by_role("link", name="Richiesta informazioni").click()
        olga.wait_for_url(f"**/mail/{mid}#work-notes")
        olga.locator("#work-notes strong.mention", has_text="@olga").wait_for()
        assert olga.locator("#mentions-link .mention-count").count() == 0
    finally:
        other.close()


def test_migration_0007_upgrades_and_downgrades(db_url: str) -> None:
    upgrade(db_url, "head")
    engine = create_engine(db_url)
    try:
        columns = {c["name"] for c in inspect(engine).get_columns("note_mention")}
        assert columns == {c.name for c in NoteMention.__table__.columns}
        assert "ix_note_mention_user_seen" in {i["name"] for i in inspect(engine).get_indexes("note_mention")}
        downgrade(db_url, "0006")
        assert "note_mention" not in inspect(engine).get_table_names()
        upgrade(db_url, "head")
        assert "note_mention" in inspect(engine).get_table_names()
    finally:
        engine.dispose()
