"""Reading a message (webmail/views/message.py): read log and read state, the hostile
message in a real Chromium, remote images, attachments, raw source, what an agent may not
open, the conversation, PEC and delivery reports."""

from __future__ import annotations

import re
from typing import Any

import pytest
from sqlalchemy import func, select

from casella.blobs import BlobStore
from casella.models import (
    Account,
    Attachment,
    Message,
    MessagePec,
    MessageReport,
    MessageSeen,
    ReadLog,
    RemoteContentAllow,
    User,
    utcnow,
)
from tests.webmail.conftest import Office, inbox_unread, login, mail

pytestmark = pytest.mark.integration

PNG = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010806000000"
                    "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082")
PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"
SVG = b'<svg xmlns="http://www.w3.org/2000/svg" onload="window.__xss=9"><script>window.__xss=8</script></svg>'


def store(office: Office, *raws: bytes, folder: str = "INBOX") -> list[int]:
    """Ingest more messages through the real pipeline; their row ids, in order."""
    from ingest.service import make_storer
    from ingest.store import Incoming

    with office.db.reading() as s:
        account_id = s.scalar(select(Account.id).where(Account.name == office.account))
        before = set(s.scalars(select(Message.id)))
    make_storer(office.settings, office.db).store_batch(
        account_id, [Incoming(raw=raw, folder=folder) for raw in raws], source="test")
    with office.db.reading() as s:
        return sorted(set(s.scalars(select(Message.id))) - before)


def files_message() -> bytes:
    """From Tecnoservizi (agent bianchi): inline cid logo, PNG, PDF, SVG and HTML attachments."""
    from email.message import EmailMessage

    m = EmailMessage()
    m["From"] = "Paolo Verdi <paolo.verdi@tecnoservizi.com>"
    m["To"] = "info@studio.example"
    m["Subject"] = "Documenti impianto"
    m["Date"] = "Fri, 6 Nov 2026 09:00:00 +0100"
    m["Message-ID"] = "<docs@tecnoservizi.com>"
    m.set_content("Documenti in allegato. Dettagli su https://tecnoservizi.com/doc?a=1&b=<2>.")
    m.add_alternative('<p>Logo: <img src="cid:logo@tecnoservizi" alt="logo"></p>', subtype="html")
    m.get_payload()[1].add_related(PNG, maintype="image", subtype="png", cid="<logo@tecnoservizi>")
    m.add_attachment(PNG, maintype="image", subtype="png", filename="foto cantiere è.png")
    m.add_attachment(PDF, maintype="application", subtype="pdf", filename="offerta.pdf")
    m.add_attachment(SVG, maintype="image", subtype="svg+xml", filename="schema.svg")
    m.add_attachment(b"<script>window.__xss=7</script>", maintype="text", subtype="html", filename="pagina.html")
    return bytes(m)


def user_id(office: Office, username: str) -> int:
    with office.db.reading() as s:
        return s.scalar(select(User.id).where(User.username == username))


# ---------------------------------------------------------------- read log and read state
def test_opening_records_read_log_and_seen_and_unread_undoes_it(office: Office) -> None:
    client = office.http("olga")
    mid = office.ids["f118@edilnord.it"]
    olga = user_id(office, "olga")
    before = inbox_unread(client)
    status, _, html = client.get(f"/mail/{mid}")
    assert status == 200 and "Fattura 2026/118 cantiere Monza" in html
    assert inbox_unread(client) == before - 1
    client.get(f"/mail/{mid}")
    with office.db.reading() as s:
        reads = list(s.scalars(select(ReadLog).where(ReadLog.message_id == mid)))
        assert [r.user_id for r in reads] == [olga, olga]  # every opening, with its time
        assert all(r.at is not None for r in reads)
        assert s.scalar(select(func.count()).select_from(MessageSeen)
                        .where(MessageSeen.message_id == mid, MessageSeen.user_id == olga)) == 1
    status, headers, _ = client.post(f"/mail/{mid}/unread", {"back": "/mail?unread=1"})
    assert status == 303 and headers["location"] == "/mail?unread=1"
    assert inbox_unread(client) == before
    with office.db.reading() as s:
        assert s.get(MessageSeen, (olga, mid)) is None
    # Someone else's read state is theirs: the manager still has it unread.
    assert inbox_unread(office.http("direttore")) == before


def test_page_shows_headers_links_and_actions(office: Office) -> None:
    client = office.http("olga")
    mid = office.ids["f118@edilnord.it"]
    _, _, html = client.get(f"/mail/{mid}")
    assert "Giulia Neri" in html and "giulia.neri@edilnord.it" in html and "info@studio.example" in html
    assert re.search(r'<a href="/contacts/(company|contact)/\d+">', html)
    assert f'data-shortcut="reply" href="/compose?reply={mid}"' in html
    assert f'data-shortcut="reply-all" href="/compose?reply_all={mid}"' in html
    assert f'data-shortcut="forward" href="/compose?forward={mid}"' in html
    assert f'href="/compose?forward_attached={mid}"' in html
    assert re.search(r'<a data-back href="/mail\?mailbox=\d+&amp;folder=INBOX"', html)
    assert "fattura-118.txt" in html and f"/mail/{mid}/attachments/" in html
    assert "Message-ID" in html  # the headers, in a <details>
    # The text body (no HTML part) is shown as text, escaped.
    assert '<pre class="body-text">Buongiorno, in allegato la fattura del cantiere.' in html


def test_protocol_number_is_shown(office: Office) -> None:
    from casella.models import Registration, format_protocol

    mid = office.ids["f118@edilnord.it"]
    with office.db.reading() as s:
        reg = s.scalar(select(Registration).where(Registration.message_id == mid))
    assert reg is not None, "the office's mail is numbered when stored"
    _, _, html = office.http("olga").get(f"/mail/{mid}")
    assert format_protocol(reg.year, reg.number) in html


# ---------------------------------------------------------------- hostile mail in a browser
def test_xss_message_never_runs_in_the_page_nor_in_the_body(office: Office, page: Any) -> None:
    mid = office.ids["xss@edilnord.it"]
    login(page, office, "olga")
    page.goto(f"{office.url}/mail/{mid}")
    frame_el = page.wait_for_selector("iframe.body-frame")
    assert frame_el.get_attribute("sandbox") == "allow-popups allow-popups-to-escape-sandbox"
    frame = frame_el.content_frame()
    frame.wait_for_load_state()
    assert "hello" in frame.inner_text("body")
    page.wait_for_timeout(300)  # give any handler that slipped through the time to fire
    assert page.evaluate("typeof window.__xss") == "undefined"
    assert frame.evaluate("typeof window.__xss") == "undefined"
    # Nothing active survived in the body document.
    assert frame.locator("script, iframe, svg, object, embed, [onerror], [onload]").count() == 0
    assert all(not (a.get_attribute("href") or "").lower().startswith("javascript")
               for a in frame.locator("a").all())
    # Subject, sender name and attachment name are shown as text.
    assert "<script>window.__xss=2</script>" in page.inner_text("#msg-subject")
    assert "<img src=x onerror=" in page.inner_text(".msg-from .name")
    assert '<img src=x onerror="window.__xss=1">.txt' in page.inner_text(".att-name")
    assert page.locator("main img[onerror], main script:not([src]), main [onload]").count() == 0
    assert page.evaluate("typeof window.__xss") == "undefined"


def test_body_document_has_a_strict_policy_even_opened_directly(office: Office) -> None:
    client = office.http("olga")
    mid = office.ids["xss@edilnord.it"]
    status, headers, html = client.get(f"/mail/{mid}/body")
    assert status == 200
    csp = headers["content-security-policy"]
    assert "default-src 'none'" in csp and "script-src" not in csp and "sandbox" in csp
    assert "https:" not in csp
    assert "<script" not in html and "onerror" not in html and "javascript:" not in html and "<iframe" not in html


# ---------------------------------------------------------------- remote images
def test_remote_image_blocked_then_shown_for_message_then_for_sender(office: Office, page: Any) -> None:
    mid = office.ids["off1@tecnoservizi.com"]
    remote_requests: list[str] = []
    page.on("request", lambda r: remote_requests.append(r.url) if "tracker.example" in r.url else None)
    page.route(lambda url: "tracker.example" in url, lambda route: route.abort())
    login(page, office, "olga")
    page.goto(f"{office.url}/mail/{mid}")
    frame = page.wait_for_selector("iframe.body-frame").content_frame()
    frame.wait_for_load_state()
    src = frame.get_attribute("img", "src") or ""
    assert src.startswith("data:image/svg+xml")  # the local placeholder
    assert remote_requests == []
    notice = page.inner_text(".remote-notice")
    assert "1" in notice
    client = office.http("olga")
    _, headers, _ = client.get(f"/mail/{mid}/body")
    assert "https:" not in headers["content-security-policy"]

    page.click("button[name=scope][value=message]")
    page.wait_for_url(f"**/mail/{mid}?remote=1")
    frame = page.wait_for_selector("iframe.body-frame").content_frame()
    frame.wait_for_load_state()
    assert frame.get_attribute("img", "src") == "https://tracker.example/p.gif?u=1"
    _, headers, _ = client.get(f"/mail/{mid}/body?remote=1")
    assert "img-src 'self' data: https: http:" in headers["content-security-policy"]
    # Only for this message: the plain page blocks again, and nothing was stored.
    _, headers, _ = client.get(f"/mail/{mid}/body")
    assert "https:" not in headers["content-security-policy"]
    with office.db.reading() as s:
        assert s.scalar(select(func.count()).select_from(RemoteContentAllow)) == 0

    page.goto(f"{office.url}/mail/{mid}")
    page.click("button[name=scope][value=sender]")
    page.wait_for_url(f"**/mail/{mid}")
    frame = page.wait_for_selector("iframe.body-frame").content_frame()
    frame.wait_for_load_state()
    assert frame.get_attribute("img", "src") == "https://tracker.example/p.gif?u=1"
    with office.db.reading() as s:
        row = s.scalar(select(RemoteContentAllow))
        assert (row.user_id, row.sender) == (user_id(office, "olga"), "paolo.verdi@tecnoservizi.com")
    # Persisted: a new session of the same user gets it; another user does not.
    _, headers, _ = office.http("olga").get(f"/mail/{mid}/body")
    assert "https:" in headers["content-security-policy"]
    _, headers, html = office.http("direttore").get(f"/mail/{mid}/body")
    assert "https:" not in headers["content-security-policy"] and "tracker.example" not in html


# ---------------------------------------------------------------- attachments and raw source
def test_attachments_download_with_safe_headers_and_preview_only_safe_types(office: Office) -> None:
    (mid,) = store(office, files_message())
    with office.db.reading() as s:
        atts = {a.filename: a for a in s.scalars(select(Attachment).where(Attachment.message_id == mid))}
    client = office.http("olga")

    png = atts["foto cantiere è.png"]
    status, headers, data = client.get_bytes(f"/mail/{mid}/attachments/{png.id}")
    assert status == 200 and data == PNG
    assert headers["content-disposition"] == ("attachment; filename=\"foto cantiere _.png\"; "
                                              "filename*=UTF-8''foto%20cantiere%20%C3%A8.png")
    assert headers["x-content-type-options"] == "nosniff" and headers["content-type"] == "image/png"
    status, headers, data = client.get_bytes(f"/mail/{mid}/attachments/{png.id}?inline=1")
    assert status == 200 and headers["content-disposition"].startswith("inline;") and data == PNG

    pdf = atts["offerta.pdf"]
    status, headers, data = client.get_bytes(f"/mail/{mid}/attachments/{pdf.id}?inline=1")
    assert headers["content-disposition"].startswith("inline;") and headers["content-type"] == "application/pdf"

    for name in ("schema.svg", "pagina.html"):  # never inline, never their own type
        status, headers, data = client.get_bytes(f"/mail/{mid}/attachments/{atts[name].id}?inline=1")
        assert status == 200 and headers["content-disposition"].startswith("attachment;")
        assert headers["content-type"] == "application/octet-stream"
        assert headers["x-content-type-options"] == "nosniff"

    # An attachment of another message, through this message's URL: 404.
    other = office.ids["f118@edilnord.it"]
    status, _, _ = client.get_bytes(f"/mail/{other}/attachments/{png.id}")
    assert status == 404
    status, _, _ = client.get_bytes(f"/mail/{mid}/attachments/999999")
    assert status == 404

    # The page lists them (the inline logo is in the body, not in the list) with previews.
    _, _, html = client.get(f"/mail/{mid}")
    assert "foto cantiere è.png" in html and "offerta.pdf" in html and "schema.svg" in html
    assert f'<img src="/mail/{mid}/attachments/{png.id}?inline=1"' in html
    assert f'data-src="/mail/{mid}/attachments/{pdf.id}?inline=1"' in html
    assert f"/mail/{mid}/attachments/{atts['schema.svg'].id}?inline=1" not in html


def test_xss_attachment_name_is_escaped_in_the_download_header(office: Office) -> None:
    mid = office.ids["xss@edilnord.it"]
    client = office.http("olga")
    with office.db.reading() as s:
        att = s.scalar(select(Attachment).where(Attachment.message_id == mid, Attachment.filename.like("%.txt")))
    status, headers, _ = client.get_bytes(f"/mail/{mid}/attachments/{att.id}")
    disposition = headers["content-disposition"]
    assert status == 200 and disposition.startswith("attachment;")
    fallback = re.fullmatch(r'attachment; filename="([^"]*)"; filename\*=UTF-8\'\'(\S+)', disposition)
    assert fallback, disposition  # one quoted-string: the name's own quotes cannot end it
    assert '"' not in fallback.group(1)
    assert "%22" in fallback.group(2) and "%3C" in fallback.group(2)


def test_cid_image_loads_in_the_sandboxed_body(office: Office, page: Any) -> None:
    (mid,) = store(office, files_message())
    login(page, office, "olga")
    page.goto(f"{office.url}/mail/{mid}")
    frame = page.wait_for_selector("iframe.body-frame").content_frame()
    frame.wait_for_load_state()
    img = frame.locator("img[alt=logo]")
    # A data: URI: the sandboxed document's own requests carry no session cookie.
    assert (img.get_attribute("src") or "").startswith("data:image/png;base64,")
    img.evaluate("i => i.complete || new Promise(r => { i.onload = i.onerror = r; })")
    assert img.evaluate("i => i.naturalWidth") == 1


def test_plain_text_view_linkifies_safely(office: Office) -> None:
    (mid,) = store(office, files_message())
    _, _, html = office.http("olga").get(f"/mail/{mid}?text=1")
    assert 'class="body-frame"' not in html
    assert ('<a href="https://tecnoservizi.com/doc?a=1&amp;b=" target="_blank" rel="noopener noreferrer nofollow">'
            in html)
    assert "&lt;2&gt;" in html


def test_raw_source_is_byte_exact(office: Office) -> None:
    client = office.http("olga")
    blobs = BlobStore(office.settings.blob_dir)
    for msgid in ("f118@edilnord.it", "xss@edilnord.it"):
        mid = office.ids[msgid]
        with office.db.reading() as s:
            digest = s.get(Message, mid).sha256
        status, headers, data = client.get_bytes(f"/mail/{mid}/raw")
        assert status == 200 and data == blobs.get(digest)
        assert headers["content-type"] == "text/plain; charset=utf-8" and headers["x-content-type-options"] == "nosniff"
        status, headers, data = client.get_bytes(f"/mail/{mid}/raw?download=1")
        assert status == 200 and data == blobs.get(digest)
        assert headers["content-type"] == "message/rfc822"
        assert headers["content-disposition"].startswith(f'attachment; filename="message-{mid}.eml"')


# ---------------------------------------------------------------- what an agent may open
def test_agent_gets_404_on_another_agents_message_everywhere(office: Office) -> None:
    (docs,) = store(office, files_message())  # Tecnoservizi: bianchi's
    offer = office.ids["off1@tecnoservizi.com"]
    with office.db.reading() as s:
        att = s.scalar(select(Attachment.id).where(Attachment.message_id == docs))
    rossi, bianchi = office.http("rossi"), office.http("bianchi")
    for path in (f"/mail/{offer}", f"/mail/{offer}/body", f"/mail/{offer}/raw", f"/mail/{offer}/raw?download=1",
                 f"/mail/{docs}", f"/mail/{docs}/attachments/{att}", f"/mail/{docs}/attachments/{att}?inline=1"):
        assert rossi.get(path)[0] == 404, path
        assert bianchi.get(path)[0] == 200, path
    for path in (f"/mail/{offer}/unread", f"/mail/{offer}/remote"):
        assert rossi.post(path, {"scope": "sender"})[0] == 404, path
    with office.db.reading() as s:
        assert s.scalar(select(func.count()).select_from(ReadLog).where(ReadLog.message_id == offer,
                                                                        ReadLog.user_id == user_id(office, "rossi"))) == 0
        assert s.scalar(select(func.count()).select_from(RemoteContentAllow)) == 0
    # His own client's mail opens.
    assert rossi.get(f"/mail/{office.ids['f118@edilnord.it']}")[0] == 200


def test_thread_lists_only_visible_messages(office: Office) -> None:
    # Edilnord (rossi) replies in a conversation that began with Tecnoservizi (bianchi).
    reply = mail("Giulia Neri <giulia.neri@edilnord.it>", "Re: Offerta manutenzione impianti", "Interessa anche a noi.",
                 msgid="<re-off1@edilnord.it>", date="Sat, 7 Nov 2026 10:00:00 +0100",
                 extra_headers="In-Reply-To: <off1@tecnoservizi.com>\nReferences: <off1@tecnoservizi.com>")
    again = mail("Giulia Neri <giulia.neri@edilnord.it>", "Re: Offerta manutenzione impianti", "Confermo.",
                 msgid="<re2-off1@edilnord.it>", date="Sun, 8 Nov 2026 10:00:00 +0100",
                 extra_headers="In-Reply-To: <re-off1@edilnord.it>\n"
                               "References: <off1@tecnoservizi.com> <re-off1@edilnord.it>")
    first, second = store(office, reply, again)
    offer = office.ids["off1@tecnoservizi.com"]
    with office.db.reading() as s:
        threads = {s.get(Message, i).thread_id for i in (offer, first, second)}
    assert len(threads) == 1 and None not in threads

    _, _, html = office.http("olga").get(f"/mail/{second}")
    thread = html.split('class="thread"', 1)[1].split("</ol>", 1)[0]
    assert re.findall(r'href="/mail/(\d+)"', thread) == [str(offer), str(first)]  # oldest first

    _, _, html = office.http("rossi").get(f"/mail/{second}")
    thread = html.split('class="thread"', 1)[1].split("</ol>", 1)[0]
    assert re.findall(r'href="/mail/(\d+)"', thread) == [str(first)]
    assert "Paolo Verdi" not in html and f"/mail/{offer}" not in html


# ---------------------------------------------------------------- PEC and delivery reports
def test_delivery_reports_and_pec_panel(office: Office) -> None:
    sent = mail("Info <info@studio.example>", "Preventivo", "In allegato.", to="Giulia Neri <giulia.neri@edilnord.it>",
                msgid="<prev1@studio.example>")
    mdn = mail("giulia.neri@edilnord.it", "Letto: Preventivo", "letto", msgid="<mdn1@edilnord.it>")
    (sent_id,) = store(office, sent, folder="Sent")
    mdn_id, receipt_id = store(office, mdn, mail("posta-certificata@pec.example", "CONSEGNA: Preventivo", "consegnata",
                                                 msgid="<cons1@pec.example>"))
    now = utcnow()
    with office.db.session() as s:
        s.add(MessageReport(message_id=mdn_id, kind="mdn", refers_to_msgid="prev1@studio.example",
                            refers_to_id=sent_id, recipient="giulia.neri@edilnord.it", action="displayed", at=now))
        s.add(MessageReport(message_id=mdn_id, kind="dsn", refers_to_msgid="prev1@studio.example",
                            refers_to_id=sent_id, recipient="nessuno@edilnord.it", action="failed", status="5.1.1",
                            diagnostic="550 5.1.1 User unknown", at=now))
        s.add(MessagePec(message_id=office.ids["ri1@nuovo-cliente.example"], kind="posta-certificata",
                         sender="chi@pec.nuovo-cliente.example", signature={"status": "valid", "signer_subject": "CN=Gestore"},
                         problems=[]))
        s.add(MessagePec(message_id=receipt_id, kind="avvenuta-consegna", refers_to_msgid="prev1@studio.example",
                         refers_to_id=sent_id, at=now, daticert={"consegna": "giulia.neri@edilnord.it"}, problems=[]))
    client = office.http("direttore")
    _, _, html = client.get(f"/mail/{sent_id}")
    reports = html.split('class="reports"', 1)[1].split("</ul>", 1)[0]
    assert "giulia.neri@edilnord.it" in reports and "report-read" in reports
    assert "report-bounced" in reports and "5.1.1" in reports and "User unknown" in reports
    assert f'href="/mail/{mdn_id}"' in reports
    # The sent message's PEC panel: delivery per recipient and the receipt, linked.
    pec = html.split('class="card msg-pec"', 1)[1].split("</section>", 1)[0]
    assert '<tr class="delivery-delivered"><td>giulia.neri@edilnord.it</td>' in pec
    assert f'<a href="/mail/{receipt_id}">avvenuta-consegna</a>' in pec

    _, _, html = client.get(f"/mail/{office.ids['ri1@nuovo-cliente.example']}")
    pec = html.split('class="card msg-pec"', 1)[1].split("</section>", 1)[0]
    assert "posta-certificata" in pec and "chi@pec.nuovo-cliente.example" in pec
    assert "sig-valid" in pec and "CN=Gestore" in pec


# ---------------------------------------------------------------- keyboard
def test_u_goes_back_and_r_replies(office: Office, page: Any) -> None:
    mid = office.ids["ri1@nuovo-cliente.example"]
    login(page, office, "olga")
    page.goto(f"{office.url}/mail/{mid}")
    page.keyboard.press("u")
    page.wait_for_url("**/mail?mailbox=*&folder=INBOX")
    page.goto(f"{office.url}/mail/{mid}")
    page.keyboard.press("r")
    page.wait_for_url(f"**/compose?reply={mid}")
