"""Company signatures: rendering, which one applies, adding it to real MIME structures, the
SMTP submission path (X-Casella-Signature, auto_signature) to the Sent copy and to a real
upstream, and the `casella signature` commands."""

from __future__ import annotations

import json
import smtplib
from collections.abc import Iterator
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from casella.blobs import BlobStore
from casella.db import Database
from casella.models import Account, Message, Signature, User
from casella.settings import Settings, get_settings
from mailserver.cli import COMMANDS
from mailserver.errors import SignatureError
from mailserver.relay import RelayWorker
from mailserver.signatures import (
    Rendered,
    add_signature,
    html_to_text,
    render,
    render_template,
    resolve,
    sign_message,
    signature_values,
)
from tests.mailserver.test_mailserver_flow import OFFICE, World, make_message
from tests.mailserver.test_mailserver_flow import world as flow_world  # noqa: F401 - the fixture it builds on

TEXT = "{name}\n{job_title} - {account}\nTel. {phone} | {email}\n"
HTML = '<p style="margin:0">{name}<br><i>{job_title}</i><br>Tel. {phone} &middot; <a href="mailto:{email}">{email}</a></p>'


def parse(raw: bytes) -> EmailMessage:
    msg = BytesParser(policy=policy.default).parsebytes(raw)
    assert isinstance(msg, EmailMessage)
    return msg


def body(raw: bytes, kind: str) -> str:
    part = parse(raw).get_body((kind,))
    assert part is not None
    return str(part.get_content()).replace("\r\n", "\n")


# ---------------------------------------------------------------- rendering (unit)
@pytest.mark.unit
def test_values_are_escaped_in_html_only_and_unknown_fields_stay_visible() -> None:
    values = {"name": "Rossi & <Figli>", "phone": "+39 02 1234"}
    assert render_template("{name} {phone} {nope}", values, as_html=False) == "Rossi & <Figli> +39 02 1234 {nope}"
    assert render_template("<b>{name}</b> {nope}", values, as_html=True) == "<b>Rossi &amp; &lt;Figli&gt;</b> {nope}"
    # CSS braces are not fields.
    assert render_template("<style>p {color: red}</style>{name}", values, as_html=True).startswith(
        "<style>p {color: red}</style>Rossi &amp;")


@pytest.mark.unit
def test_one_version_is_derived_from_the_other() -> None:
    values = {"name": "Anna <A>", "job_title": "", "phone": "", "email": "a@x.it", "account": "u", "username": "a",
              "first_name": "Anna"}
    only_text = render(Signature(name="t", body_text="{name}\nUfficio", body_html=""), values)
    assert only_text.html == "Anna &lt;A&gt;<br>\nUfficio"
    only_html = render(Signature(name="h", body_text="", body_html="<div>{name}</div><div>Ufficio &amp; co</div>"),
                       values)
    assert only_html.text == "Anna <A>\nUfficio & co"


SIG = Rendered("firma", "Anna Rossi\nUfficio acquisti € 2026", "<b>Anna Rossi</b><br>Ufficio acquisti € 2026")


@pytest.mark.unit
def test_alternative_with_attachments_in_latin1_gets_both_versions() -> None:
    msg = EmailMessage(policy=policy.SMTP)
    msg["From"], msg["To"], msg["Subject"] = OFFICE, "cliente@example.com", "Preventivo"
    msg.set_content("Buongiorno, ecco il preventivo. Cordialità\n", charset="iso-8859-1")
    msg.add_alternative("<html><body><p>Buongiorno, cordialit&agrave; è</p></body></html>\n", subtype="html",
                        charset="iso-8859-1")
    pdf = b"%PDF-1.4\n" + bytes(range(256)) * 20
    msg.add_attachment(pdf, maintype="application", subtype="pdf", filename="preventivo.pdf")
    msg.add_attachment("allegato di testo\n", filename="note.txt")
    signed = parse(msg.as_bytes(policy=policy.SMTP))
    assert sign_message(signed, SIG) == 2
    out = signed.as_bytes(policy=policy.SMTP)
    text = body(out, "plain")
    assert text == "Buongiorno, ecco il preventivo. Cordialità\n-- \nAnna Rossi\nUfficio acquisti € 2026\n"
    html_part = parse(out).get_body(("html",))
    assert html_part is not None and html_part.get_content_charset() == "iso-8859-1"  # € became &#8364;
    html = body(out, "html")
    assert html.index('<div class="casella-signature">-- <br>') < html.index("</body>")
    assert "Ufficio acquisti &#8364; 2026" in html and "cordialit&agrave; è" in html
    attachments = {a.get_filename(): a.get_content() for a in parse(out).iter_attachments()}
    assert attachments == {"preventivo.pdf": pdf, "note.txt": "allegato di testo\r\n"}  # untouched, not signed


@pytest.mark.unit
def test_text_only_html_without_body_tag_and_signed_messages() -> None:
    plain = parse(b"From: a@b.it\r\nSubject: x\r\n\r\nRiga senza a capo")
    assert sign_message(plain, SIG) == 1
    assert body(plain.as_bytes(policy=policy.SMTP), "plain") == \
        "Riga senza a capo\n-- \nAnna Rossi\nUfficio acquisti € 2026\n"
    bare = parse(b"From: a@b.it\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p>Ciao</p>")
    assert sign_message(bare, SIG) == 1
    assert body(bare.as_bytes(policy=policy.SMTP), "html").startswith('<p>Ciao</p><div class="casella-signature">')
    smime = (b"From: a@b.it\r\nMIME-Version: 1.0\r\nContent-Type: multipart/signed; "
             b'protocol="application/pkcs7-signature"; micalg=sha-256; boundary="b"\r\n\r\n'
             b"--b\r\nContent-Type: text/plain\r\n\r\nFirmato\r\n--b\r\n"
             b"Content-Type: application/pkcs7-signature\r\n\r\nAAAA\r\n--b--\r\n")
    sealed = parse(smime)
    assert sign_message(sealed, SIG) == 0
    assert "Anna Rossi" not in sealed.as_string()


# ---------------------------------------------------------------- which signature (both databases)
@pytest.fixture
def people(database: Database) -> Database:
    with database.session() as s:
        s.add_all([User(username="anna", role="operator", display_name="Anna Rossi", job_title="Acquisti & gare",
                        phone="+39 02 555"),
                   User(username="bruno", role="operator", display_name="Bruno Verdi"),
                   Account(name="ufficio", username=OFFICE), Account(name="vendite", username="v@ufficio.example.it")])
    return database


def ids(db: Database) -> dict[str, int]:
    with db.reading() as s:
        return {**dict(s.execute(select(User.username, User.id)).all()),
                **dict(s.execute(select(Account.name, Account.id)).all())}


def test_resolution_order_user_account_then_user_then_account_default(people: Database) -> None:
    with people.session() as s:
        add_signature(s, "ufficio-default", account_name="ufficio", username=None, text="Ufficio {account}",
                      html_body="", default=True)
        add_signature(s, "ufficio-altra", account_name="ufficio", username=None, text="Non default", html_body="",
                      default=False)
    n = ids(people)
    with people.reading() as s:
        found = resolve(s, n["anna"], n["ufficio"])
        assert found is not None and found.name == "ufficio-default"
        assert resolve(s, n["anna"], n["vendite"]) is None  # vendite has no default
    with people.session() as s:
        add_signature(s, "anna", account_name=None, username="anna", text="{name}", html_body="", default=False)
    with people.reading() as s:
        assert [resolve(s, n["anna"], n[a]).name for a in ("ufficio", "vendite")] == ["anna", "anna"]  # type: ignore[union-attr]
        found = resolve(s, n["bruno"], n["ufficio"])
        assert found is not None and found.name == "ufficio-default"
    with people.session() as s:
        add_signature(s, "anna-vendite", account_name="vendite", username="anna", text="{name} per vendite",
                      html_body="", default=False)
    with people.reading() as s:
        assert [resolve(s, n["anna"], n[a]).name for a in ("ufficio", "vendite")] == ["anna", "anna-vendite"]  # type: ignore[union-attr]
        named = resolve(s, n["anna"], n["ufficio"], "ufficio-altra")
        assert named is not None and named.name == "ufficio-altra"
        with pytest.raises(SignatureError, match="another user or account"):
            resolve(s, n["bruno"], n["ufficio"], "anna")
        with pytest.raises(SignatureError, match="no signature named 'nessuna'"):
            resolve(s, n["anna"], n["ufficio"], "nessuna")
        anna, ufficio = s.get(User, n["anna"]), s.get(Account, n["ufficio"])
        assert anna is not None and ufficio is not None
        sig = s.scalar(select(Signature).where(Signature.name == "anna"))
        assert sig is not None
        sig.body_html = HTML
        out = render(sig, signature_values(anna, ufficio, OFFICE))
        assert "<i>Acquisti &amp; gare</i>" in out.html and f'href="mailto:{OFFICE}"' in out.html


def test_add_refuses_unknown_fields_and_duplicates(people: Database) -> None:
    with people.session() as s, pytest.raises(SignatureError) as info:
        add_signature(s, "x", account_name="ufficio", username=None, text="{name} {ruolo}", html_body="",
                      default=False)
    assert "{ruolo}" in str(info.value) and "{job_title}" in str(info.value)
    with people.session() as s:
        add_signature(s, "x", account_name="ufficio", username=None, text="{name}", html_body="", default=True)
    with people.session() as s, pytest.raises(SignatureError, match="exists already"):
        add_signature(s, "x", account_name="ufficio", username=None, text="{name}", html_body="", default=False)
    with people.session() as s, pytest.raises(SignatureError, match="account .* or to a user"):
        add_signature(s, "y", account_name=None, username=None, text="{name}", html_body="", default=False)


# ---------------------------------------------------------------- SMTP submission, end to end
@pytest.fixture
def world(flow_world: World) -> Iterator[World]:  # noqa: F811
    with flow_world.db.session() as s:
        alice = s.scalar(select(User).where(User.username == "alice"))
        assert alice is not None
        alice.display_name, alice.job_title, alice.phone = "Alice Bianchi", "Ufficio <gare>", "+39 06 777"
        add_signature(s, "ufficio", account_name="ufficio", username=None, text=TEXT, html_body=HTML, default=True)
    yield flow_world


def send_raw(world: World, raw: bytes, to: str = "cliente@example.com") -> None:
    with smtplib.SMTP("127.0.0.1", world.server.port, timeout=10) as client:
        client.login("alice", "alice-pw")
        client.sendmail(OFFICE, [to], raw)


def stored_and_relayed(world: World) -> list[tuple[bytes, bytes]]:
    RelayWorker(world.settings, world.db, clock=world.clock).run_pending()
    blobs = BlobStore(world.settings.blob_dir)
    with world.db.reading() as s:
        sent = [blobs.get(m.sha256) for m in s.scalars(select(Message).order_by(Message.id))]
    return list(zip(sent, [m.data for m in world.sink.messages], strict=True))


def html_message(header: str | None) -> bytes:
    msg = make_message(body="Buongiorno,\nin allegato.\n")
    msg.add_alternative("<html><body><p>Buongiorno</p></body></html>", subtype="html")
    msg.add_attachment(b"1,2,3\n", maintype="text", subtype="csv", filename="dati.csv")
    if header is not None:
        msg["X-Casella-Signature"] = header
    return msg.as_bytes(policy=policy.SMTP)


def test_header_yes_signs_the_sent_copy_and_what_leaves(world: World) -> None:
    send_raw(world, html_message("yes"))
    [(sent, relayed)] = stored_and_relayed(world)
    assert sent == relayed
    assert b"X-Casella-Signature" not in sent
    text = body(sent, "plain")
    assert text.endswith("-- \nAlice Bianchi\nUfficio <gare> - ufficio\nTel. +39 06 777 | info@ufficio.example.it\n")
    html = body(sent, "html")
    assert "<i>Ufficio &lt;gare&gt;</i>" in html and html.index("casella-signature") < html.index("</body>")
    assert [a.get_filename() for a in parse(sent).iter_attachments()] == ["dati.csv"]
    with world.db.reading() as s:
        message = s.scalar(select(Message))
        assert message is not None and "Alice Bianchi" in message.body_text  # what Casella shows is signed too


def test_auto_signature_and_the_opt_out(world: World) -> None:
    send_raw(world, html_message(None))  # auto off, no header: untouched bytes
    with world.db.session() as s:
        account = s.scalar(select(Account).where(Account.name == "ufficio"))
        assert account is not None
        account.auto_signature = True
    send_raw(world, html_message(None))
    send_raw(world, html_message("no"))
    plain, auto, opted_out = stored_and_relayed(world)
    assert "Alice Bianchi" not in body(plain[0], "plain") and plain[0] == plain[1]
    assert "-- \nAlice Bianchi" in body(auto[1], "plain") and "Alice Bianchi" in body(auto[1], "html")
    assert "Alice Bianchi" not in body(opted_out[1], "plain")
    assert all(b"X-Casella-Signature" not in sent for sent, _ in (plain, auto, opted_out))


def test_a_named_signature_and_a_forbidden_one(world: World) -> None:
    with world.db.session() as s:
        add_signature(s, "breve", account_name=None, username="alice", text="{first_name}", html_body="",
                      default=False)
        add_signature(s, "di-bob", account_name=None, username="bob", text="Bob", html_body="", default=False)
    send_raw(world, html_message("breve"))
    [(sent, _)] = stored_and_relayed(world)
    assert body(sent, "plain").endswith("-- \nAlice\n")
    with pytest.raises(smtplib.SMTPDataError) as info:
        send_raw(world, html_message("di-bob"))
    assert info.value.smtp_code == 550 and b"another user or account" in info.value.smtp_error
    assert len(world.outbound()) == 1


# ---------------------------------------------------------------- the commands
@pytest.fixture
def runner(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[CliRunner]:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    yield CliRunner()
    get_settings.cache_clear()


def test_signature_commands(runner: CliRunner, people: Database, settings: Settings, tmp_path) -> None:  # type: ignore[no-untyped-def]
    group = next(c for c in COMMANDS if c.name == "signature")
    (tmp_path / "t.txt").write_text("{name}\n{job_title}\n", encoding="utf-8")
    (tmp_path / "h.html").write_text("<b>{name}</b> {phone}", encoding="utf-8")
    (tmp_path / "bad.txt").write_text("{nome}", encoding="utf-8")

    def run(*args: str) -> str:
        result = runner.invoke(group, list(args))
        assert result.exit_code == 0, result.output
        return result.output

    run("add", "ufficio", "--account", "ufficio", "--text-file", str(tmp_path / "t.txt"), "--default")
    run("add", "anna-ufficio", "--user", "anna", "--account", "ufficio", "--html-file", str(tmp_path / "h.html"))
    bad = runner.invoke(group, ["add", "x", "--account", "ufficio", "--text-file", str(tmp_path / "bad.txt")])
    assert bad.exit_code != 0 and "unknown field(s) {nome}" in bad.output
    rows = json.loads(run("list", "--json"))
    assert [(r["name"], r["account"], r["user"], r["default"]) for r in rows] == [
        ("ufficio", "ufficio", None, True), ("anna-ufficio", "ufficio", "anna", False)]
    run("details", "bruno", "--job-title", "Magazzino", "--phone", "+39 333")
    shown = json.loads(run("show", "--as", "bruno", "--account", "ufficio", "--json"))
    assert shown == {"name": "ufficio", "text": "Bruno Verdi\nMagazzino", "html": "Bruno Verdi<br>\nMagazzino"}
    shown = json.loads(run("show", "--as", "anna", "--account", "ufficio", "--json"))
    assert shown["name"] == "anna-ufficio" and shown["html"] == "<b>Anna Rossi</b> +39 02 555"
    none = runner.invoke(group, ["show", "--as", "anna", "--account", "vendite"])
    assert none.exit_code != 0 and "casella signature add" in none.output
    assert "every message is signed" in run("auto", "ufficio", "--on")
    run("remove", "anna-ufficio")
    with people.reading() as s:
        assert s.scalar(select(Account.auto_signature).where(Account.name == "ufficio")) is True
        assert list(s.scalars(select(Signature.name))) == ["ufficio"]


@pytest.mark.parametrize(("html", "text"), [
    ("il <b>preventivo</b> è <i>pronto</i>", "il preventivo è pronto"),  # inline tags glue no words
    ("<div>a</div>\n\n<div>b</div><br><br><br>c", "a\n\nb\n\nc"),  # one blank line at most
    ("<table><tr><td>Totale</td> <td>100 EUR</td></tr><tr><td>IVA</td></tr></table>", "Totale 100 EUR\nIVA"),
    ("<style>p{}</style><p>Sì</p><script>x()</script>", "Sì"),
    (("<p>Ok.</p><p>Il giorno lunedì ha scritto:</p><blockquote><p>Vorrei</p><p></p><p>sapere</p>"
      "<blockquote>prima<br>riga</blockquote><p>grazie</p></blockquote><p>Firma</p>"),
     "Ok.\nIl giorno lunedì ha scritto:\n> Vorrei\n> sapere\n>> prima\n>> riga\n> grazie\nFirma"),
])
def test_html_to_text_reads_as_a_text_alternative(html: str, text: str) -> None:
    assert html_to_text(html) == text
