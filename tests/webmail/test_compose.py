"""Writing mail in the webmail: compose, reply, reply all, forward, drafts saved as you type,
and sending through the real outbound queue (mailserver/compose.py → store_and_enqueue →
the relay worker) to a real SMTP server (tests/servers/smtp.py)."""

from __future__ import annotations

import re
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from typing import Any

import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from casella.models import Account, Draft, Message, Registration, User
from casella.models.outbound import OutboundMessage
from casella.secrets import SecretBox
from mailserver.relay import RelayWorker
from mailserver.signatures import add_signature
from mailserver.upstream import set_upstream
from tests.servers.smtp import SmtpSink
from tests.webmail.conftest import Office, WebClient, login

pytestmark = pytest.mark.integration

INFO = "info@studio.example"


@dataclass
class Mailroom:
    office: Office
    sink: SmtpSink

    def relay(self) -> int:
        return RelayWorker(self.office.settings, self.office.db).run_pending()

    def received(self) -> list[EmailMessage]:
        out = []
        for got in self.sink.messages:
            msg = BytesParser(policy=policy.default).parsebytes(got.data)
            assert isinstance(msg, EmailMessage)
            out.append(msg)
        return out

    def relayed_alternative(self) -> tuple[str, str]:
        """Relay the one queued message; its HTML and text parts (text with LF line ends)."""
        assert self.relay() == 1
        [msg] = self.received()
        assert msg.get_content_type() == "multipart/alternative", msg.get_content_type()
        html_part, text_part = msg.get_body(("html",)), msg.get_body(("plain",))
        assert html_part is not None and text_part is not None
        return html_part.get_content(), text_part.get_content().replace("\r\n", "\n")


@pytest.fixture
def mailroom(office: Office) -> Iterator[Mailroom]:
    """The office's `info` mailbox with its own address, an upstream SMTP server and a
    company signature; olga (segreteria, write access to info) may send from it."""
    sink = SmtpSink().start()
    with office.db.session() as s:
        account = s.scalar(select(Account).where(Account.name == "info"))
        assert account is not None
        account.username = INFO
        set_upstream(s, SecretBox(office.settings.secret_key_file), "info", host="127.0.0.1", port=sink.port,
                     security="none", username=None, password=None)
        add_signature(s, "studio", account_name="info", username=None, text="{name}\nStudio Esempio - {email}",
                      html_body="", default=True)
    yield Mailroom(office, sink)
    sink.stop()


def multipart_post(client: WebClient, path: str, fields: dict[str, Any],
                   files: list[tuple[str, str, str, bytes]] = ()) -> tuple[int, dict[str, str], str]:  # type: ignore[assignment]
    """POST multipart/form-data (the compose form with attachments) with the CSRF token."""
    boundary = uuid.uuid4().hex
    fields = {**fields, "csrf": client.csrf()}
    body = b""
    for name, value in fields.items():
        for v in value if isinstance(value, list) else [value]:
            body += (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{v}\r\n").encode()
    for field, filename, ctype, data in files:
        body += (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"{filename}\"\r\n"
                 f"Content-Type: {ctype}\r\n\r\n").encode() + data + b"\r\n"
    body += f"--{boundary}--\r\n".encode()
    req = urllib.request.Request(client.base + path, data=body, method="POST",
                                 headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    try:
        with client.opener.open(req, timeout=30) as resp:
            return resp.status, dict(resp.headers), resp.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read().decode("utf-8", "replace")


def compose_form(html: str) -> dict[str, str]:
    """The prefilled values of the compose page."""
    values = {}
    for name in ("to", "cc", "bcc", "subject", "mode", "source", "draft_id"):
        m = re.search(rf'name="{name}"[^>]*value="([^"]*)"', html)
        values[name] = _unescape(m.group(1)) if m else ""
    m = re.search(r'<textarea id="body" name="body"[^>]*>(.*?)</textarea>', html, re.DOTALL)
    values["body"] = _unescape(m.group(1)) if m else ""
    return values


def _unescape(text: str) -> str:
    import html

    return html.unescape(text)


def test_reply_with_attachment_receipt_and_signature_reaches_the_smtp_server(mailroom: Mailroom) -> None:
    office = mailroom.office
    client = office.http("olga")
    original = office.ids["f118@edilnord.it"]
    status, _, html = client.get(f"/compose?reply={original}")
    assert status == 200
    form = compose_form(html)
    assert form["to"] == "Giulia Neri <giulia.neri@edilnord.it>"
    assert form["subject"] == "Re: Fattura 2026/118 cantiere Monza"
    assert "> Buongiorno, in allegato la fattura del cantiere." in form["body"]
    assert "Studio Esempio - info@studio.example" in html  # the signature preview
    assert f'<option value="{INFO}" selected' in html
    status, headers, _ = multipart_post(client, "/compose/send", {
        **form, "from": INFO, "body": "Grazie, ricevuta.\n" + form["body"], "receipt": "1", "signature": "1"},
        files=[("attachments", "ricevuta.pdf", "application/pdf", b"%PDF-1.4 ricevuta")])
    assert status == 303, _
    location = headers["location"]
    assert re.fullmatch(r"/compose/sent/\d+", location)
    sent_id = int(location.rsplit("/", 1)[1])
    status, _, page = client.get(location)
    assert status == 200 and re.search(r"\d{4}/\d{7}", page)  # the protocol number
    assert mailroom.relay() == 1
    [msg] = mailroom.received()
    assert mailroom.sink.messages[0].rcpt_tos == ["giulia.neri@edilnord.it"]
    assert msg["In-Reply-To"] == "<f118@edilnord.it>"
    assert msg["Subject"] == "Re: Fattura 2026/118 cantiere Monza"
    assert msg["Disposition-Notification-To"] == INFO
    text = msg.get_body(("plain",))
    assert text is not None
    content = text.get_content().replace("\r\n", "\n")
    assert content.startswith("Grazie, ricevuta.")
    assert "-- \nOlga Operatrice\nStudio Esempio - info@studio.example" in content
    attachments = {a.get_filename(): a.get_payload(decode=True) for a in msg.iter_attachments()}
    assert attachments == {"ricevuta.pdf": b"%PDF-1.4 ricevuta"}
    with office.db.reading() as s:
        stored = s.get(Message, sent_id)
        assert stored is not None and stored.folder == "Sent" and stored.direction == "out"
        reg = s.scalar(select(Registration).where(Registration.message_id == sent_id))
        assert reg is not None
        row = s.scalar(select(OutboundMessage).where(OutboundMessage.message_id == sent_id))
        assert row is not None and row.state == "sent"
    status, _, page = client.get(location)
    assert f"{reg.year}/{reg.number:07d}" in page and "Inviato" in page  # protocol and state, in Italian
    status, _, page = client.get(f"/mail/{sent_id}")  # the sent message itself shows them too
    assert status == 200 and f"{reg.year}/{reg.number:07d}" in page
    assert re.search(r'class="state-sent">Inviato<', page)


def test_reply_all_adds_the_other_recipients_but_not_our_own_address(mailroom: Mailroom) -> None:
    office = mailroom.office
    from tests.webmail.conftest import mail

    raw = mail("Paolo Verdi <paolo.verdi@tecnoservizi.com>", "Re: Offerta", "Confermo.",
               to=f"Info <{INFO}>, Anna <anna@tecnoservizi.com>", msgid="<ra1@tecnoservizi.com>",
               extra_headers="Cc: ufficio@tecnoservizi.com, info@studio.example\nReply-To: ordini@tecnoservizi.com")
    from ingest.service import make_storer
    from ingest.store import Incoming

    with office.db.reading() as s:
        account_id = s.scalar(select(Account.id).where(Account.name == "info"))
    result = make_storer(office.settings, office.db).store_batch(account_id, [Incoming(raw=raw, folder="INBOX")])
    message_id = result.message_ids[0]
    client = office.http("olga")
    _, _, html = client.get(f"/compose?reply_all={message_id}")
    form = compose_form(html)
    assert form["to"] == "ordini@tecnoservizi.com"  # Reply-To wins over From
    assert form["cc"] == "Anna <anna@tecnoservizi.com>, ufficio@tecnoservizi.com"
    assert form["subject"] == "Re: Offerta"  # never "Re: Re:"
    status, _, _ = multipart_post(client, "/compose/send", {**form, "from": INFO, "signature": "1"})
    assert status == 303
    assert mailroom.relay() == 1
    assert sorted(mailroom.sink.messages[0].rcpt_tos) == ["anna@tecnoservizi.com", "ordini@tecnoservizi.com",
                                                          "ufficio@tecnoservizi.com"]


def test_forward_inline_keeps_the_attachments_and_forward_attached_sends_the_eml(mailroom: Mailroom) -> None:
    office = mailroom.office
    client = office.http("olga")
    original = office.ids["f118@edilnord.it"]
    _, _, html = client.get(f"/compose?forward={original}")
    form = compose_form(html)
    assert form["subject"] == "Fwd: Fattura 2026/118 cantiere Monza" and form["to"] == ""
    assert "Giulia Neri <giulia.neri@edilnord.it>" in form["body"] and "in allegato la fattura" in form["body"]
    kept = re.findall(r'name="forwarded" value="(\d+)" checked', html)
    assert len(kept) == 1
    status, _, _ = multipart_post(client, "/compose/send", {**form, "from": INFO, "to": "amministrazione@example.com",
                                                           "forwarded": kept, "signature": "1"})
    assert status == 303
    _, _, html = client.get(f"/compose?forward_attached={original}")
    form = compose_form(html)
    assert form["mode"] == "forward-attached"
    status, _, _ = multipart_post(client, "/compose/send", {**form, "from": INFO, "to": "amministrazione@example.com",
                                                           "body": "In allegato il messaggio.", "signature": "0"})
    assert status == 303
    assert mailroom.relay() == 2
    inline, attached = mailroom.received()
    assert {a.get_filename(): a.get_payload(decode=True) for a in inline.iter_attachments()} == \
        {"fattura-118.txt": b"Fattura 118: 1.200,00 EUR"}
    [eml] = list(attached.iter_attachments())
    assert eml.get_content_type() == "message/rfc822"
    assert eml.get_filename() == "Fattura 2026_118 cantiere Monza.eml"
    body = attached.get_body(("plain",))
    assert body is not None and body.get_content().strip() == "In allegato il messaggio."  # no signature


def test_bad_addresses_are_explained_and_nothing_is_sent(mailroom: Mailroom) -> None:
    client = mailroom.office.http("olga")
    status, _, html = multipart_post(client, "/compose/send", {"from": INFO, "to": "giulia.neri@, mario",
                                                              "subject": "x", "body": "y", "mode": "new"})
    assert status == 400
    assert "non è un indirizzo e-mail" in html and "giulia.neri@" in html and "mario" in html
    status, _, html = multipart_post(client, "/compose/send", {"from": INFO, "to": "", "subject": "x", "body": "y"})
    assert status == 400 and "almeno un destinatario" in html
    with mailroom.office.db.reading() as s:
        assert s.scalar(select(OutboundMessage.id)) is None


def test_agent_cannot_reply_to_or_forward_what_he_cannot_read(mailroom: Mailroom) -> None:
    office = mailroom.office
    rossi = office.http("rossi")
    theirs = office.ids["off1@tecnoservizi.com"]  # bianchi's client
    for param in ("reply", "reply_all", "forward", "forward_attached"):
        status, _, _ = rossi.get(f"/compose?{param}={theirs}")
        assert status == 404, param
    status, _, _ = multipart_post(rossi, "/compose/draft", {"mode": "forward-attached", "source": str(theirs),
                                                           "to": "x@example.com"})
    assert status == 404
    status, _, _ = multipart_post(rossi, "/compose/send", {"mode": "forward-attached", "source": str(theirs),
                                                          "to": "x@example.com", "from": INFO})
    assert status == 404
    status, _, _ = rossi.get(f"/compose?reply={office.ids['f118@edilnord.it']}")  # his own client's mail
    assert status == 200


def test_hostile_original_is_quoted_as_text(mailroom: Mailroom, page: Any) -> None:
    office = mailroom.office
    hostile = office.ids["xss@edilnord.it"]
    for param in ("reply", "reply_all", "forward"):
        status, _, html = office.http("olga").get(f"/compose?{param}={hostile}")
        assert status == 200 and "<img src=x" not in html and "<script>window" not in html
    login(page, office, "olga")
    page.goto(office.url + f"/compose?forward={hostile}")
    assert page.input_value("#subject").startswith("Fwd: Ciao <img src=x")  # kept as typed text
    assert "testo <img" in page.input_value("#body")
    assert page.evaluate("window.__xss") is None


def test_drafts_are_the_users_own(mailroom: Mailroom) -> None:
    office = mailroom.office
    olga = office.http("olga")
    status, headers, _ = multipart_post(olga, "/compose/draft", {"to": "a@example.com", "subject": "Bozza di olga",
                                                                 "body": "testo", "mode": "new", "from": INFO})
    assert status == 303  # without JavaScript: back to the form
    draft_id = int(headers["location"].rsplit("=", 1)[1])
    _, _, html = olga.get("/drafts")
    assert "Bozza di olga" in html
    rossi = office.http("rossi")
    assert rossi.get(f"/compose?draft={draft_id}")[0] == 404
    assert "Bozza di olga" not in rossi.get("/drafts")[2]
    assert rossi.post(f"/drafts/{draft_id}/delete", {})[0] == 404
    assert olga.post(f"/drafts/{draft_id}/delete", {})[0] == 303
    with office.db.reading() as s:
        assert s.get(Draft, draft_id) is None


def test_draft_autosave_in_the_browser_and_send_deletes_it(mailroom: Mailroom, page: Any) -> None:
    office = mailroom.office
    login(page, office, "olga")
    page.goto(office.url + "/compose")
    page.fill("#to", "cliente@example.com")
    page.fill("#subject", "Preventivo scritto nel browser")
    page.locator("#body").press_sequentially("Gentile cliente, ecco il preventivo.")
    expect(page.locator("#draft_id")).not_to_have_value("")  # saved by itself, no button pressed
    expect(page.locator("#draft-status")).to_contain_text("Bozza salvata")
    draft_id = page.input_value("#draft_id")
    page.wait_for_url(f"**/compose?draft={draft_id}")
    page.reload()  # the text is back
    assert page.input_value("#body") == "Gentile cliente, ecco il preventivo."
    page.set_input_files("#attachments", files=[{"name": "preventivo.txt", "mimeType": "text/plain",
                                                  "buffer": b"Preventivo: 900 EUR"}])
    expect(page.locator("#uploaded-list label")).to_have_text([re.compile("preventivo.txt")])
    expect(page.locator("#attachments")).to_have_value("")  # saved with the draft, not sent twice
    page.goto(office.url + "/drafts")
    page.click("text=Preventivo scritto nel browser")
    page.wait_for_url(f"**/compose?draft={draft_id}")
    assert page.input_value("#body") == "Gentile cliente, ecco il preventivo."
    assert page.input_value("#to") == "cliente@example.com"
    page.reload()
    assert page.input_value("#subject") == "Preventivo scritto nel browser"
    expect(page.locator("input[name=uploaded]")).to_be_checked()
    page.click("#compose button.primary[type=submit]")
    page.wait_for_url("**/compose/sent/**")
    expect(page.locator("#sent-state")).to_have_text(re.compile("In coda|Inviato"))
    with office.db.reading() as s:
        assert s.get(Draft, int(draft_id)) is None
        olga_id = s.scalar(select(User.id).where(User.username == "olga"))
        assert s.scalar(select(Draft.id).where(Draft.user_id == olga_id)) is None
    assert mailroom.relay() == 1
    expect(page.locator("#sent-state")).to_have_text("Inviato", timeout=15000)  # the page follows the queue
    [msg] = mailroom.received()
    assert msg["Subject"] == "Preventivo scritto nel browser"
    assert {a.get_filename(): a.get_payload(decode=True) for a in msg.iter_attachments()} == \
        {"preventivo.txt": b"Preventivo: 900 EUR"}


def test_reply_in_the_browser_announces_presence_and_quotes_the_original(mailroom: Mailroom, page: Any) -> None:
    office = mailroom.office
    login(page, office, "olga")
    source = office.ids["ri1@nuovo-cliente.example"]
    with page.expect_request(lambda r: r.url.endswith(f"/mail/{source}/presence") and r.method == "POST") as req:
        page.goto(office.url + f"/compose?reply={source}")
    assert "state=replying" in (req.value.post_data or "")
    assert page.input_value("#subject") == "Re: Richiesta informazioni"
    assert "> Vorrei sapere i vostri orari." in page.input_value("#body")
    expect(page.locator("#body")).to_be_focused()  # the cursor at the top, above the quote
    assert page.eval_on_selector("#body", "el => el.selectionStart") == 0
    assert "Studio Esempio" in page.inner_text("#signature-preview")
    page.uncheck("#signature")
    expect(page.locator("#signature-preview-box")).to_be_hidden()


def test_forward_attached_original_is_a_readable_message(mailroom: Mailroom) -> None:
    office = mailroom.office
    client = office.http("olga")
    _, _, html = client.get(f"/compose?forward_attached={office.ids['f118@edilnord.it']}")
    status, _, _ = multipart_post(client, "/compose/send", {**compose_form(html), "from": INFO,
                                                           "to": "amministrazione@example.com", "signature": "0"})
    assert status == 303 and mailroom.relay() == 1
    [eml] = list(mailroom.received()[0].iter_attachments())
    assert eml.get_content_type() == "message/rfc822"
    assert eml["Content-Transfer-Encoding"] in ("7bit", "8bit")  # RFC 2046 5.2.1: never base64
    inner = eml.get_content()
    assert isinstance(inner, EmailMessage) and inner["Message-ID"] == "<f118@edilnord.it>"
    assert "fattura del cantiere" in inner.get_body(("plain",)).get_content()


def test_a_file_is_attached_only_from_the_users_own_draft(mailroom: Mailroom) -> None:
    """Blobs are named by their hash: naming one that is not in one's own draft attaches nothing."""
    office = mailroom.office
    olga = office.http("olga")
    status, _, _ = multipart_post(olga, "/compose/draft", {"mode": "new", "from": INFO, "to": "x@example.com"},
                                  files=[("attachments", "mio.txt", "text/plain", b"il mio file")])
    assert status == 303
    with office.db.reading() as s:
        olga_draft = s.scalar(select(Draft).join(User, User.id == Draft.user_id).where(User.username == "olga"))
        assert olga_draft is not None
        [upload] = [a for a in olga_draft.attachments if a.get("kind") == "upload"]
        from casella.models import Attachment

        foreign = s.scalar(select(Attachment.sha256).where(Attachment.message_id == office.ids["f118@edilnord.it"]))
        assert foreign is not None
    fields = {"mode": "new", "from": INFO, "to": "x@example.com", "subject": "s", "body": "b", "signature": "0"}
    status, _, _ = multipart_post(olga, "/compose/send", {**fields, "uploaded": [upload["sha256"], foreign]})
    assert status == 303  # no draft named: neither hash is taken
    status, _, _ = multipart_post(olga, "/compose/send", {**fields, "draft_id": str(olga_draft.id),
                                                         "uploaded": [upload["sha256"], foreign]})
    assert status == 303
    assert mailroom.relay() == 2
    first, second = mailroom.received()
    assert list(first.iter_attachments()) == []
    assert {a.get_filename(): a.get_payload(decode=True) for a in second.iter_attachments()} == {"mio.txt": b"il mio file"}


HOSTILE_HTML = ('<p>Gentile cliente, il <b>preventivo</b> è <i>pronto</i>: <a href="https://studio.example/p">qui</a>.</p>'
                '<script>alert(1)</script><img src="https://tracker.example/t.gif" onerror="alert(2)">'
                '<a href="javascript:alert(3)">clic</a>')


def test_formatted_message_is_sanitised_sent_as_html_with_a_text_alternative_and_kept_as_draft(
        mailroom: Mailroom) -> None:
    office = mailroom.office
    client = office.http("olga")
    fields = {"mode": "new", "from": INFO, "to": "cliente@example.com", "subject": "Preventivo formattato",
              "body": "ignored: the text alternative is written from the HTML", "format": "html",
              "body_html": HOSTILE_HTML, "signature": "1"}
    status, head, answer = multipart_post(client, "/compose/draft", fields)
    assert status == 303, answer
    status, _, html = client.get(head["location"])
    kept = re.search(r'<template id="body-html">(.*?)</template>', html, re.DOTALL)
    assert status == 200 and kept is not None and 'id="format-html" name="format" value="html" checked' in html
    assert "<b>preventivo</b>" in kept.group(1)
    for bad in ("script", "alert", "tracker", "onerror", "javascript"):
        assert bad not in kept.group(1), bad

    status, _, _ = multipart_post(client, "/compose/send", {**fields, "draft_id": head["location"].split("=")[-1]})
    assert status == 303
    sent_html, sent_text = mailroom.relayed_alternative()
    assert '<b>preventivo</b> è <i>pronto</i>' in sent_html
    assert '<a href="https://studio.example/p" rel="noopener noreferrer">qui</a>' in sent_html
    for bad in ("script", "alert", "tracker", "onerror", "javascript"):
        assert bad not in sent_html, bad
    assert sent_text.startswith("Gentile cliente, il preventivo è pronto: qui.")
    assert "ignored" not in sent_text
    assert "Studio Esempio - info@studio.example" in sent_text and "Studio Esempio - info@studio.example" in sent_html


def test_formatted_message_written_in_the_browser(mailroom: Mailroom, page: Any) -> None:
    office = mailroom.office
    login(page, office, "olga")
    page.goto(office.url + "/compose")
    page.fill("#to", "cliente@example.com")
    page.fill("#subject", "Scritto con il grassetto")
    page.fill("#body", "Buongiorno,")
    page.check("#format-html")
    expect(page.locator("#editor")).to_be_visible()
    expect(page.locator("#body")).to_be_hidden()
    expect(page.locator("#editor")).to_have_text("Buongiorno,")  # the plain text carried over
    page.locator("#editor").click()
    page.keyboard.press("End")
    page.keyboard.type(" ecco il ")
    page.get_by_role("button", name="Grassetto").click()
    page.keyboard.type("preventivo")
    page.get_by_role("button", name="Grassetto").click()
    page.keyboard.type(" richiesto.")
    expect(page.locator("#editor b")).to_have_text("preventivo")
    expect(page.locator("#draft_id")).not_to_have_value("")  # saved as you type, formatting included
    page.reload()
    expect(page.locator("#editor b")).to_have_text("preventivo")
    page.click("#compose button.primary[type=submit]")
    page.wait_for_url("**/compose/sent/**")
    sent_html, sent_text = mailroom.relayed_alternative()
    assert "<b>preventivo</b> richiesto." in sent_html.replace("&nbsp;", " "), sent_html
    assert sent_text.startswith("Buongiorno, ecco il preventivo richiesto.")


def _editor_start(html: str) -> str:
    kept = re.search(r'<template id="body-html">(.*?)</template>', html, re.DOTALL)
    assert kept is not None
    return kept.group(1)


def test_html_mail_is_answered_and_forwarded_with_its_html_quoted(mailroom: Mailroom) -> None:
    """A reply to HTML mail opens in the formatted editor with the original's HTML in a
    blockquote (formatting kept, the tracker gone); the text alternative quotes it with "> ".
    Plain-text mail is still answered in plain text."""
    office = mailroom.office
    client = office.http("olga")
    status, _, html = client.get(f"/compose?reply={office.ids['off1@tecnoservizi.com']}")
    start = _editor_start(html)
    assert status == 200 and 'id="format-html" name="format" value="html" checked' in html
    assert re.search(r"<blockquote><p>Vi inviamo l(&#39;|')<b>offerta</b>\.</p>\s*</blockquote>", start), start
    assert "ha scritto:" in start and start.startswith("<p><br></p>")
    assert "tracker" not in start and "<img" not in start
    assert "> Vi inviamo l'offerta richiesta." in compose_form(html)["body"]  # without JavaScript: the text

    written = "<p>Ecco la nostra <b>conferma</b>.</p>" + start.removeprefix("<p><br></p>")
    status, _, _ = multipart_post(client, "/compose/send", {**compose_form(html), "from": INFO, "signature": "0",
                                                           "format": "html", "body_html": written})
    assert status == 303
    sent, text = mailroom.relayed_alternative()
    assert re.search(r"<blockquote><p>Vi inviamo l(&#39;|')<b>offerta</b>\.</p>", sent), sent
    assert text.startswith("Ecco la nostra conferma.\n")
    assert re.search(r"ha scritto:\n> Vi inviamo l'offerta\.", text), text

    _, _, html = client.get(f"/compose?forward={office.ids['off1@tecnoservizi.com']}")
    start = _editor_start(html)
    assert "Messaggio inoltrato" in start and "Oggetto: Offerta manutenzione impianti" in start
    assert "<b>offerta</b>" in start and "<blockquote>" not in start and "tracker" not in start

    _, _, html = client.get(f"/compose?reply={office.ids['ri1@nuovo-cliente.example']}")
    assert _editor_start(html) == "" and 'value="html" checked' not in html  # plain mail, plain reply


def test_quoting_hostile_html_mail_carries_nothing_that_runs(mailroom: Mailroom) -> None:
    """The sender's name with its payload is shown as text (escaped); the body's script,
    handlers, javascript: link, iframe and svg are gone as elements and attributes."""
    from html.parser import HTMLParser

    class Elements(HTMLParser):
        def __init__(self) -> None:
            super().__init__()
            self.found: list[tuple[str, list[tuple[str, str | None]]]] = []

        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            self.found.append((tag, attrs))

    office = mailroom.office
    client = office.http("olga")
    for param in ("reply", "forward"):
        status, _, html = client.get(f"/compose?{param}={office.ids['xss@edilnord.it']}")
        start = _editor_start(html)
        assert status == 200 and "hello" in start
        parser = Elements()
        parser.feed(start)
        tags = {tag for tag, _ in parser.found}
        assert tags <= {"p", "br", "blockquote", "a"}, (param, tags)
        for tag, attrs in parser.found:
            for name, value in attrs:
                assert not name.startswith("on") and "javascript" not in (value or "").lower(), (param, tag, name)
        assert "window.__xss=3" not in start  # the script's content is dropped, not shown


def test_reply_to_html_mail_in_the_browser(mailroom: Mailroom, page: Any) -> None:
    office = mailroom.office
    login(page, office, "olga")
    page.goto(office.url + f"/compose?reply={office.ids['off1@tecnoservizi.com']}")
    expect(page.locator("#editor")).to_be_visible()
    expect(page.locator("#body")).to_be_hidden()
    expect(page.locator("#editor blockquote b")).to_have_text("offerta")
    expect(page.locator("#editor")).to_be_focused()
    page.keyboard.type("Confermiamo l'ordine.")  # no click: the cursor waits above the quote
    page.click("#compose button.primary[type=submit]")
    page.wait_for_url("**/compose/sent/**")
    sent, text = mailroom.relayed_alternative()
    assert "Confermiamo l'ordine." in sent.replace("&#39;", "'") and "<b>offerta</b>" in sent
    assert sent.index("Confermiamo") < sent.index("<blockquote>")
    assert text.startswith("Confermiamo l'ordine.") and "> Vi inviamo l'offerta." in text
