"""Working together on a message: assign, status, tags, notes, move, pratica, link, make
public and presence — through real HTTP (office.http) and a real Chromium (page)."""

from __future__ import annotations

import json
import re
from typing import Any

from sqlalchemy import select

from casella.models import (
    Account,
    Message,
    MessageEvent,
    MessageNote,
    MessagePratica,
    MessageTag,
    OutboundMessage,
    Pratica,
    Registration,
    User,
)
from tests.webmail.conftest import Office, audit_log, login, personal_mailbox

F118 = "f118@edilnord.it"  # Edilnord: agent rossi
OFFER = "off1@tecnoservizi.com"  # Tecnoservizi: agent bianchi
UNKNOWN = "ri1@nuovo-cliente.example"


def events(office: Office, message_id: int) -> list[tuple[str, str, dict[str, Any]]]:
    with office.db.reading() as s:
        return [(e.actor, e.action, e.detail) for e in s.scalars(
            select(MessageEvent).where(MessageEvent.message_id == message_id).order_by(MessageEvent.id))]


def row(office: Office, message_id: int) -> Message:
    with office.db.reading() as s:
        msg = s.get(Message, message_id)
        assert msg is not None
        s.expunge(msg)
        return msg


def test_assign_then_the_list_shows_the_assignee(office: Office) -> None:
    mid = office.ids[F118]
    olga = office.http("olga")
    status, headers, _ = olga.post(f"/mail/{mid}/assign", {"user": "olga", "group": "segreteria"})
    assert status == 303 and headers["location"] == f"/mail/{mid}"
    _, _, html = olga.get("/mail")
    line = next(tr for tr in html.split("<tr") if f'href="/mail/{mid}"' in tr)
    assert "@Olga Operatrice" in line
    assert ("olga", "assign-user", {"user": "olga", "previous": None}) in events(office, mid)
    assert ("olga", "assign-group", {"group": "segreteria", "previous": None}) in events(office, mid)
    audit = audit_log(office, "message:assign-user")
    assert audit and audit[-1].actor == "olga" and audit[-1].target == f"message:{mid}"
    # "Assigned to me" lists it; unassigning empties it.
    _, _, mine = olga.get("/mail?mine=1")
    assert f'href="/mail/{mid}"' in mine
    status, _, _ = olga.post(f"/mail/{mid}/assign", {"user": "", "group": "segreteria"})
    assert status == 303 and row(office, mid).assigned_user_id is None
    _, _, mine = olga.get("/mail?mine=1")
    assert f'href="/mail/{mid}"' not in mine


def test_only_users_who_could_see_it_can_be_assigned(office: Office) -> None:
    mid = office.ids[F118]  # Edilnord, rossi's client
    admin = office.http("admin")
    status, _, html = admin.post(f"/mail/{mid}/assign", {"user": "bianchi"})
    assert status == 400 and "Luca Bianchi" in html
    assert row(office, mid).assigned_user_id is None
    status, _, _ = admin.post(f"/mail/{mid}/assign", {"user": "rossi"})
    assert status == 303
    with office.db.reading() as s:
        rossi = s.scalar(select(User.id).where(User.username == "rossi"))
    assert row(office, mid).assigned_user_id == rossi
    status, _, _ = admin.post(f"/mail/{mid}/assign", {"user": "nobody-like-this"})
    assert status == 400
    # The panel offers rossi, not bianchi.
    _, _, page = admin.get(f"/mail/{mid}")
    select_html = page.split('id="work-assign-user"')[1].split("</select>")[0]
    assert 'value="rossi"' in select_html and 'value="bianchi"' not in select_html


def test_agents_act_only_on_their_clients_mail_and_only_as_their_role_allows(office: Office) -> None:
    rossi = office.http("rossi")
    offer = office.ids[OFFER]  # bianchi's client
    for path, data in (("status", {"status": "closed"}), ("notes", {"body": "x"}), ("tags", {"add": "x"}),
                       ("assign", {"user": "rossi"}), ("move", {"to": "1/Sent"}), ("presence", {"state": "viewing"})):
        status, _, _ = rossi.post(f"/mail/{offer}/{path}", data)
        assert status == 404, path
    assert row(office, offer).status == "open"
    assert rossi.get(f"/mail/{offer}/presence")[0] == 404
    own = office.ids[F118]
    assert rossi.post(f"/mail/{own}/status", {"status": "pending"})[0] == 303
    assert row(office, own).status == "pending"
    assert ("rossi", "status", {"from": "open", "to": "pending"}) in events(office, own)
    assert rossi.post(f"/mail/{own}/tags", {"add": "cantiere"})[0] == 303
    for path, data in (("assign", {"user": "rossi"}), ("move", {"to": "1/Sent"}), ("pratica", {"code": "P-1"}),
                       ("link", {"kind": "none"}), ("public", {"public": "1"})):
        assert rossi.post(f"/mail/{own}/{path}", data)[0] == 403, path
    # Marketing reads nothing here: every action is a 404.
    assert office.http("mara").post(f"/mail/{own}/notes", {"body": "ciao"})[0] == 404


def test_status_is_validated_and_shown_in_the_list(office: Office) -> None:
    mid = office.ids[UNKNOWN]
    olga = office.http("olga")
    assert olga.post(f"/mail/{mid}/status", {"status": "bogus"})[0] == 400
    assert olga.post(f"/mail/{mid}/status", {"status": "closed"})[0] == 303
    _, _, html = olga.get("/mail?status=closed")
    assert f'href="/mail/{mid}"' in html and "status-closed" in html


def test_tags_add_and_remove(office: Office) -> None:
    mid = office.ids[UNKNOWN]
    olga = office.http("olga")
    assert olga.post(f"/mail/{mid}/tags", {"add": "urgente, preventivo ,urgente"})[0] == 303
    with office.db.reading() as s:
        assert sorted(s.scalars(select(MessageTag.tag).where(MessageTag.message_id == mid))) == ["preventivo", "urgente"]
    _, _, html = olga.get("/mail?tag=urgente")
    assert f'href="/mail/{mid}"' in html
    assert olga.post(f"/mail/{mid}/tags", {"remove": "urgente"})[0] == 303
    with office.db.reading() as s:
        assert list(s.scalars(select(MessageTag.tag).where(MessageTag.message_id == mid))) == ["preventivo"]
    actions = [(a, d) for _, a, d in events(office, mid)]
    assert ("add-tags", {"tags": ["urgente", "preventivo"]}) in actions
    assert ("remove-tags", {"tags": ["urgente"]}) in actions
    assert olga.post(f"/mail/{mid}/tags", {"add": " , "})[0] == 400


def test_a_note_with_a_mention_is_stored_shown_and_never_mailed(office: Office) -> None:
    mid = office.ids[UNKNOWN]
    boss = office.http("direttore")
    body = "Per favore @olga richiama il cliente; @nessuno non esiste. <b>grassetto</b>"
    assert boss.post(f"/mail/{mid}/notes", {"body": body})[0] == 303
    with office.db.reading() as s:
        note = s.scalar(select(MessageNote).where(MessageNote.message_id == mid))
        assert note is not None and note.body == body and note.mentions == ["olga"]
        assert s.scalar(select(OutboundMessage.id)) is None  # nothing was queued for sending
    assert ("direttore", "note", {"note": note.id, "mentions": ["olga"]}) in events(office, mid)
    _, _, page = office.http("olga").get(f"/mail/{mid}")
    notes = page.split('id="work-notes"')[1].split("</section>")[0]
    assert '<strong class="mention">@olga</strong>' in notes and "Dario Direttore" in notes
    assert "&lt;b&gt;grassetto&lt;/b&gt;" in notes and "<b>grassetto" not in notes
    assert boss.post(f"/mail/{mid}/notes", {"body": "   "})[0] == 400


def test_move_to_another_folder_keeps_the_protocol_number(office: Office) -> None:
    mid = office.ids[F118]
    with office.db.reading() as s:
        account_id = s.scalar(select(Account.id).where(Account.name == "info"))
        before = s.scalar(select(Registration).where(Registration.message_id == mid))
        assert before is not None, "the office's mail is registered at ingest"
        label = before.label
    olga = office.http("olga")
    status, headers, _ = olga.post(f"/mail/{mid}/move", {"to": f"{account_id}/Sent"})
    assert status == 303, headers
    moved = row(office, mid)
    assert (moved.account_id, moved.folder, moved.id) == (account_id, "Sent", mid)
    with office.db.reading() as s:
        regs = list(s.scalars(select(Registration).where(Registration.message_id == mid)))
        assert [(r.id, r.label) for r in regs] == [(before.id, label)]
        assert s.scalar(select(OutboundMessage.id)) is None  # not a forward
    assert ("olga", "move", {"folder": "Sent", "from_folder": "INBOX", "account": "info"}) in events(office, mid)
    _, _, html = olga.get(f"/mail?mailbox={account_id}&folder=Sent")
    line = next(tr for tr in html.split("<tr") if f'href="/mail/{mid}"' in tr)
    assert label in line
    # A folder that is not there, a mailbox out of reach.
    assert olga.post(f"/mail/{mid}/move", {"to": f"{account_id}/Nowhere"})[0] == 400
    assert olga.post(f"/mail/{mid}/move", {"to": "999/INBOX"})[0] == 400


def test_move_to_another_mailbox(office: Office) -> None:
    from ingest.accounts import add_account

    with office.db.session() as s:
        add_account(s, office.settings, name="amministrazione", imap_host=None, imap_port=None, username=None,
                    password=None, security="none", is_pec=False, folders=["INBOX"], sent_folders=["Sent"])
    with office.db.reading() as s:
        other = s.scalar(select(Account.id).where(Account.name == "amministrazione"))
    mid = office.ids[UNKNOWN]
    # olga may write only to "info": the other mailbox is refused and not offered.
    olga = office.http("olga")
    assert olga.post(f"/mail/{mid}/move", {"to": f"{other}/INBOX"})[0] == 400
    assert f'value="{other}/INBOX"' not in olga.get(f"/mail/{mid}")[2]
    admin = office.http("admin")
    assert f'value="{other}/INBOX"' in admin.get(f"/mail/{mid}")[2]
    assert admin.post(f"/mail/{mid}/move", {"to": f"{other}/INBOX"})[0] == 303
    assert row(office, mid).account_id == other
    assert ("admin", "move", {"account": "amministrazione", "from_account": "info"}) in events(office, mid)
    # olga no longer reads it.
    assert olga.get(f"/mail/{mid}")[0] == 404


def test_pratica_create_link_unlink(office: Office) -> None:
    mid, other = office.ids[F118], office.ids[UNKNOWN]
    olga = office.http("olga")
    assert olga.post(f"/mail/{mid}/pratica", {"op": "create", "code": "CANT-MONZA", "title": "Cantiere Monza"})[0] == 303
    assert olga.post(f"/mail/{mid}/pratica", {"op": "create", "code": "CANT-MONZA", "title": "x"})[0] == 400
    assert olga.post(f"/mail/{other}/pratica", {"op": "link", "code": "CANT-MONZA"})[0] == 303
    assert olga.post(f"/mail/{other}/pratica", {"op": "link", "code": "NOPE"})[0] == 400
    with office.db.reading() as s:
        p = s.scalar(select(Pratica).where(Pratica.code == "CANT-MONZA"))
        assert p is not None and p.title == "Cantiere Monza" and p.owner == "olga" and p.company_id is not None
        assert sorted(s.scalars(select(MessagePratica.message_id).where(MessagePratica.pratica_id == p.id))) == \
            sorted([mid, other])
    _, _, html = olga.get("/mail?pratica=CANT-MONZA")
    assert f'href="/mail/{mid}"' in html and f'href="/mail/{other}"' in html
    assert olga.post(f"/mail/{other}/pratica", {"op": "unlink", "code": "CANT-MONZA"})[0] == 303
    actions = [(a, d) for _, a, d in events(office, other)]
    assert ("link-pratica", {"pratica": "CANT-MONZA", "created": False}) in actions
    assert ("unlink-pratica", {"pratica": "CANT-MONZA"}) in actions
    assert ("link-pratica", {"pratica": "CANT-MONZA", "created": True}) in [(a, d) for _, a, d in events(office, mid)]
    assert audit_log(office, "pratica:create")


def test_link_to_a_company_and_unlink(office: Office) -> None:
    mid = office.ids[UNKNOWN]
    olga = office.http("olga")
    assert olga.post(f"/mail/{mid}/link", {"kind": "company", "name": "edilnord s.r.l."})[0] == 303
    linked = row(office, mid)
    assert linked.link_kind == "company" and linked.company_id is not None and linked.contact_id is None
    _, _, html = olga.get("/mail")
    line = next(tr for tr in html.split("<tr") if f'href="/mail/{mid}"' in tr)
    assert "Edilnord S.r.l." in line
    # Now it is rossi's client's mail: rossi sees it.
    assert office.http("rossi").get(f"/mail/{mid}")[0] == 200
    assert olga.post(f"/mail/{mid}/link", {"kind": "contact", "name": "Giulia Neri"})[0] == 303
    assert row(office, mid).link_kind == "contact"
    assert olga.post(f"/mail/{mid}/link", {"kind": "company", "name": "Nessuna Spa"})[0] == 400
    assert olga.post(f"/mail/{mid}/link", {"kind": "none"})[0] == 303
    unlinked = row(office, mid)
    assert (unlinked.link_kind, unlinked.company_id, unlinked.contact_id) == ("unknown", None, None)
    kinds = [d.get("kind") for _, a, d in events(office, mid) if a == "link"]
    assert kinds == ["company", "contact", "unknown"]


def test_owner_makes_a_personal_message_public_to_a_group(office: Office) -> None:
    mid = personal_mailbox(office, "direttore", office.ids[UNKNOWN])
    boss, olga, admin = office.http("direttore"), office.http("olga"), office.http("admin")
    assert olga.get(f"/mail/{mid}")[0] == 404
    assert admin.get(f"/mail/{mid}")[0] == 404  # private even to the admin
    _, _, page = boss.get(f"/mail/{mid}")
    assert f'action="/mail/{mid}/public"' in page
    # Nobody but the owner may publish; a group assignment is refused while it is private.
    assert boss.post(f"/mail/{mid}/assign", {"group": "segreteria"})[0] == 400
    assert boss.post(f"/mail/{mid}/public", {"public": "1", "group": "segreteria"})[0] == 303
    assert row(office, mid).is_public
    assert olga.get(f"/mail/{mid}")[0] == 200  # segreteria has it now
    assert olga.post(f"/mail/{mid}/public", {"public": "0"})[0] == 403
    assert [a for _, a, _ in events(office, mid)][-2:] == ["make-public", "assign-group"]
    assert boss.post(f"/mail/{mid}/public", {"public": "0"})[0] == 303
    assert olga.get(f"/mail/{mid}")[0] == 404


def test_presence_over_http(office: Office) -> None:
    mid = office.ids[F118]
    olga, boss = office.http("olga"), office.http("direttore")
    assert olga.post(f"/mail/{mid}/presence", {"state": "replying"})[0] == 200
    others = boss.json(f"/mail/{mid}/presence")["others"]
    assert [(o["username"], o["state"]) for o in others] == [("olga", "replying")]
    assert olga.json(f"/mail/{mid}/presence")["others"] == []  # nobody but herself
    assert olga.post(f"/mail/{mid}/presence", {"state": "dancing"})[0] == 400
    status, _, body = olga.post(f"/mail/{mid}/presence", {"state": "leave"})
    assert status == 200 and json.loads(body) == {"others": []}
    assert boss.json(f"/mail/{mid}/presence")["others"] == []
    # Without the CSRF token: refused.
    assert olga.post(f"/mail/{mid}/presence", {"state": "viewing"}, csrf=False)[0] == 403


def test_panel_shows_history_and_read_log_to_managers_only(office: Office) -> None:
    mid = office.ids[F118]
    olga = office.http("olga")
    olga.post(f"/mail/{mid}/status", {"status": "pending"})
    assert olga.get(f"/mail/{mid}")[0] == 200  # her opening goes to the read log
    _, _, page = office.http("direttore").get(f"/mail/{mid}")
    history = page.split('id="work-history"')[1].split("</ol>")[0]
    assert "Olga Operatrice" in history and re.search(r"Stato cambiato da Aperto a In attesa", history), history
    reads = page.split('id="work-reads"')[1].split("</table>")[0]
    assert "/readlog?user=olga" in reads and "Olga Operatrice" in reads
    assert 'id="work-reads"' not in olga.get(f"/mail/{mid}")[2]
    # The panel renders for every message, the hostile one included, without running anything.
    admin = office.http("admin")
    for other in office.ids.values():
        status, _, html = admin.get(f"/mail/{other}")
        assert status == 200 and 'id="work-panel"' in html
        panel_html = html.split('id="work-panel"')[1]
        assert "<script>window.__xss" not in panel_html and 'onerror="window.__xss' not in panel_html


# -- in the browser ------------------------------------------------------------------------

def test_browser_assign_and_note_from_the_panel(office: Office, page: Any) -> None:
    mid = office.ids[F118]
    login(page, office, "olga")
    page.goto(f"{office.url}/mail/{mid}")
    page.select_option("#work-assign-user", "olga")
    page.get_by_role("button", name="Assegna", exact=True).click()
    page.locator("#work-assignee", has_text="Olga Operatrice").wait_for()
    page.fill("#work-note", "Chiamo io, @direttore sei avvisato")
    page.get_by_role("button", name="Aggiungi nota").click()
    page.locator("#work-notes strong.mention", has_text="@direttore").wait_for()
    # A refused action says why, next to the form, without leaving the page.
    page.get_by_role("button", name="Aggiungi", exact=True).click()
    page.locator("form .error[role=alert]", has_text="Scrivi un'etichetta").wait_for()
    assert page.url.endswith(f"/mail/{mid}")
    page.fill("#work-tag-add", "richiamare")
    page.get_by_role("button", name="Aggiungi", exact=True).click()
    page.locator("#work-tags .tag", has_text="richiamare").wait_for()
    page.get_by_role("button", name="Togli l'etichetta richiamare").click()
    page.locator("#work-tags .tag").wait_for(state="detached")
    history = page.locator("#work-history").inner_text()
    assert "Etichettato richiamare" in history and "Etichetta tolta: richiamare" in history
    page.goto(f"{office.url}/mail")
    row_ = page.locator(f'tr.msg[data-href="/mail/{mid}"]')
    assert "@Olga Operatrice" in row_.inner_text()
    with office.db.reading() as s:
        assert s.scalar(select(MessageNote.mentions).where(MessageNote.message_id == mid)) == ["direttore"]


def test_browser_collision_two_users_see_each_other(office: Office, page: Any, browser: Any) -> None:
    mid = office.ids[F118]
    login(page, office, "olga")
    page.goto(f"{office.url}/mail/{mid}")
    other = browser.new_context(locale="it-IT")
    try:
        boss = other.new_page()
        boss.set_default_timeout(15000)
        login(boss, office, "direttore")
        boss.goto(f"{office.url}/mail/{mid}")
        # The second to arrive sees the first at once; the first sees the second within a poll.
        boss.locator("#presence li[data-user=olga]", has_text="Olga Operatrice").wait_for()
        page.locator("#presence li[data-user=direttore]", has_text="Dario Direttore").wait_for(timeout=25000)
        assert "sta guardando" in page.locator("#presence li[data-user=direttore]").inner_text()
        # Olga starts replying (the compose page reports "replying"): the director sees it.
        office_olga = office.http("olga")
        office_olga.post(f"/mail/{mid}/presence", {"state": "replying"})
        boss.locator("#presence li[data-user=olga]", has_text="sta rispondendo").wait_for(timeout=25000)
        # The director leaves: Olga no longer sees him after her next poll.
        boss.close()
        page.locator("#presence li[data-user=direttore]").wait_for(state="detached", timeout=25000)
    finally:
        other.close()


def test_browser_works_on_a_phone(office: Office, browser: Any) -> None:
    ctx = browser.new_context(locale="it-IT", viewport={"width": 375, "height": 740})
    try:
        pg = ctx.new_page()
        pg.set_default_timeout(15000)
        login(pg, office, "olga")
        pg.goto(f"{office.url}/mail/{office.ids[UNKNOWN]}")
        pg.select_option("#work-status-select", "closed")
        pg.get_by_role("button", name="Imposta stato").click()
        pg.locator("#work-status", has_text="Chiuso").wait_for()
        width = pg.evaluate("document.documentElement.scrollWidth")
        assert width <= 380, f"the page scrolls sideways on a phone ({width}px)"
    finally:
        ctx.close()


def _list_row(client: Any, message_id: int) -> str:
    _, _, html = client.get("/mail")
    found = re.search(rf'<tr class="[^"]*" data-href="/mail/{message_id}">.*?</tr>', html, re.DOTALL)
    assert found, message_id
    return found.group(0)


def test_list_rows_kept_rendered_still_show_every_change(office: Office) -> None:
    """Rows are kept rendered (webmail/fragments.py) under everything they show: reading,
    tagging, a status, an assignee, a subject edited in the database and the language each
    show at once, and one user's read state never shows in another's list."""
    mid = office.ids[F118]
    olga, direttore = office.http("olga"), office.http("direttore")
    first = _list_row(olga, mid)
    assert 'class="msg unread"' in first and _list_row(direttore, mid).startswith('<tr class="msg unread"')
    assert _list_row(olga, mid) == first  # the kept fragment, unchanged
    olga.get(f"/mail/{mid}")
    assert _list_row(olga, mid).startswith('<tr class="msg"')
    assert _list_row(direttore, mid).startswith('<tr class="msg unread"')
    olga.post(f"/mail/{mid}/tags", {"add": "urgente"})
    olga.post(f"/mail/{mid}/status", {"status": "pending"})
    olga.post(f"/mail/{mid}/assign", {"user": "direttore"})
    row_now = _list_row(olga, mid)
    assert '<span class="tag">urgente</span>' in row_now and "status-pending" in row_now
    assert '<span class="assignee">@' in row_now
    with office.db.session() as s:
        s.get(Message, mid).subject = "Oggetto <b>cambiato</b>"
    row_now = _list_row(olga, mid)
    assert "Oggetto &lt;b&gt;cambiato&lt;/b&gt;" in row_now and "<b>" not in row_now
    olga.post("/settings/language", {"lang": "en", "next": "/mail"})
    assert "Pending" in _list_row(olga, mid) and "In attesa" not in _list_row(olga, mid)
    assert "Pending" not in _list_row(direttore, mid)


def test_suggestions_while_typing_follow_the_role_and_what_the_user_may_read(office: Office) -> None:
    """The panel's tag, pratica and link fields offer names fetched as the user types
    (/work/suggest), not thousands of options written into every message page."""
    olga, rossi = office.http("olga"), office.http("rossi")
    admin = office.http("admin")
    assert admin.post(f"/mail/{office.ids[F118]}/tags", {"add": "cantiere-monza"})[0] == 303  # rossi's client
    assert admin.post(f"/mail/{office.ids[OFFER]}/tags", {"add": "offerta-riservata"})[0] == 303  # bianchi's
    assert olga.post(f"/mail/{office.ids[F118]}/pratica",
                     {"op": "create", "code": "CANT-7", "title": "Cantiere Monza"})[0] == 303

    def suggest(client: Any, query: str) -> tuple[int, Any]:
        status, _, body = client.get("/work/suggest?" + query)
        return status, json.loads(body) if status == 200 else None

    assert suggest(olga, "list=links&q=EDIL") == (200, ["Edilnord S.r.l."])
    assert suggest(olga, "list=links&q=giulia&kind=contact") == (200, ["Giulia Neri"])
    assert suggest(olga, "list=links&q=giulia&kind=company") == (200, [])
    assert suggest(olga, "list=links&q=%25") == (200, [])  # a LIKE wildcard is a character like the others
    assert suggest(olga, "list=pratiche&q=monza") == (200, ["CANT-7"])  # by title too
    assert suggest(olga, "list=tags&q=") == (200, ["cantiere-monza", "offerta-riservata"])
    # An agent: tags only from his clients' mail; no links or pratiche (not his actions).
    assert suggest(rossi, "list=tags&q=") == (200, ["cantiere-monza"])
    assert suggest(rossi, "list=links&q=edil")[0] == 403
    assert suggest(rossi, "list=pratiche&q=")[0] == 403
    assert suggest(olga, "list=everything&q=")[0] == 400
    assert office.http().get("/work/suggest?list=tags&q=")[0] in (302, 303)  # signed out: to the login page
    _, _, page = olga.get(f"/mail/{office.ids[UNKNOWN]}")
    assert 'data-suggest="links"' in page and '<option value="Edilnord S.r.l.">' not in page


def test_browser_link_field_suggests_as_you_type(office: Office, page: Any) -> None:
    login(page, office, "olga")
    page.goto(f"{office.url}/mail/{office.ids[UNKNOWN]}")
    page.get_by_text("Collega all'anagrafica").click()
    page.locator("#work-link-name").press_sequentially("edil")
    page.locator('#work-link-names option[value="Edilnord S.r.l."]').wait_for(state="attached")
    page.locator("#work-link-name").fill("Edilnord S.r.l.")
    page.locator('form[action$="/link"] button[type=submit]').click()
    page.locator("#work-panel", has_text="Edilnord S.r.l.").wait_for()
    assert row(office, office.ids[UNKNOWN]).link_kind == "company"
