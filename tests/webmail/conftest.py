"""Webmail fixtures: a real Casella webmail (uvicorn on a free loopback port) over a
database filled through the real pipeline, and a real headless Chromium (Debian's, driven
by Playwright) to use it.

`office` is a small company: a shared mailbox `info` read by the group `segreteria`
(operator `olga`), two agents each with a client company, an admin and a manager, and mail
from both clients, an unknown sender and one hostile message (XSS in every field).
"""

from __future__ import annotations

import json
import re
import shutil
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.cookiejar import CookieJar
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from casella.db import Database
from casella.models import AuditLog
from casella.settings import Settings
from tests.conftest import make_env
from tests.servers.sandbox import free_port

CHROMIUM = "/usr/bin/chromium"
PASSWORDS = {"admin": "admin-password-1", "direttore": "manager-password-1", "olga": "operator-password-1",
             "rossi": "agent-password-1", "bianchi": "agent-password-2", "mara": "marketing-password-1"}
XSS = '<img src=x onerror="window.__xss=1">'


def mail(sender: str, subject: str, body: str, *, to: str = "info@studio.example", date: str = "Mon, 2 Nov 2026 10:00:00 +0100",
         msgid: str, html: str | None = None, extra_headers: str = "", attachment: tuple[str, str, bytes] | None = None) -> bytes:
    from email.message import EmailMessage

    m = EmailMessage()
    m["From"] = sender
    m["To"] = to
    m["Subject"] = subject
    m["Date"] = date
    m["Message-ID"] = msgid
    for line in filter(None, extra_headers.splitlines()):
        k, _, v = line.partition(":")
        m[k.strip()] = v.strip()
    m.set_content(body)
    if html is not None:
        m.add_alternative(html, subtype="html")
    if attachment is not None:
        name, ctype, data = attachment
        maintype, _, subtype = ctype.partition("/")
        m.add_attachment(data, maintype=maintype, subtype=subtype, filename=name)
    return bytes(m)


OFFICE_CSV = """company_name,company_domain,contact_name,email,vat_number,fiscal_code,lifecycle,agent,category
Edilnord S.r.l.,edilnord.it,Giulia Neri,giulia.neri@edilnord.it,,,customer,rossi,cliente
Tecnoservizi S.p.A.,tecnoservizi.com,Paolo Verdi,paolo.verdi@tecnoservizi.com,,,customer,bianchi,cliente
"""


def office_messages() -> list[tuple[str, bytes]]:
    return [
        ("INBOX", mail("Giulia Neri <giulia.neri@edilnord.it>", "Fattura 2026/118 cantiere Monza",
                       "Buongiorno, in allegato la fattura del cantiere.\nCordiali saluti", msgid="<f118@edilnord.it>",
                       attachment=("fattura-118.txt", "text/plain", b"Fattura 118: 1.200,00 EUR"))),
        ("INBOX", mail("Paolo Verdi <paolo.verdi@tecnoservizi.com>", "Offerta manutenzione impianti",
                       "Vi inviamo l'offerta richiesta.", msgid="<off1@tecnoservizi.com>",
                       date="Tue, 3 Nov 2026 09:00:00 +0100",
                       html='<p>Vi inviamo l\'<b>offerta</b>.</p><img src="https://tracker.example/p.gif?u=1" alt="">')),
        ("INBOX", mail("Sconosciuto <chi@nuovo-cliente.example>", "Richiesta informazioni",
                       "Vorrei sapere i vostri orari.", msgid="<ri1@nuovo-cliente.example>",
                       date="Wed, 4 Nov 2026 11:00:00 +0100")),
        ("INBOX", mail(f'"{XSS}" <evil@edilnord.it>', f"Ciao {XSS}<script>window.__xss=2</script>",
                       f"testo {XSS}", msgid="<xss@edilnord.it>", date="Thu, 5 Nov 2026 12:00:00 +0100",
                       html=f'<p>hello</p>{XSS}<script>window.__xss=3</script><a href="javascript:window.__xss=4">x</a>'
                            '<iframe src="https://evil.example/"></iframe><svg onload="window.__xss=5"></svg>',
                       attachment=(f'{XSS}.txt', "text/plain", b"x"))),
    ]


@dataclass
class Office:
    url: str
    settings: Settings
    db: Database
    ids: dict[str, int] = field(default_factory=dict)  # Message-ID -> message row id
    account: str = "info"

    def http(self, username: str | None = None) -> WebClient:
        client = WebClient(self.url)
        if username is not None:
            client.login(username, PASSWORDS[username])
        return client


class WebClient:
    """A plain HTTP client with cookies (urllib), for what a browser is not needed for."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.jar = CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar), _NoRedirect())

    def request_bytes(self, method: str, path: str, data: dict[str, Any] | None = None,
                      headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
        body = urllib.parse.urlencode(data or {}, doseq=True).encode() if data is not None else None
        req = urllib.request.Request(self.base + path, data=body, method=method, headers=headers or {})
        if body is not None:
            req.add_header("Content-Type", "application/x-www-form-urlencoded")
        try:
            with self.opener.open(req, timeout=30) as resp:
                return resp.status, dict(resp.headers), resp.read()
        except urllib.error.HTTPError as exc:
            return exc.code, dict(exc.headers), exc.read()

    def request(self, method: str, path: str, data: dict[str, Any] | None = None,
                headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], str]:
        status, head, body = self.request_bytes(method, path, data, headers)
        return status, head, body.decode("utf-8", "replace")

    def get(self, path: str, **kw: Any) -> tuple[int, dict[str, str], str]:
        return self.request("GET", path, **kw)

    def get_bytes(self, path: str) -> tuple[int, dict[str, str], bytes]:
        """GET with the client's cookies, the body as bytes (downloads, raw source)."""
        return self.request_bytes("GET", path)

    def csrf(self, path: str = "/settings") -> str:
        _, _, html = self.get(path)
        return _csrf_in(html)

    def post(self, path: str, data: dict[str, Any], *, csrf: bool = True, **kw: Any) -> tuple[int, dict[str, str], str]:
        if csrf:  # a signed-in page carries the session's token; else the login form's
            status, _, html = self.get("/settings")
            data = {**data, "csrf": _csrf_in(html if status == 200 else self.get("/login")[2])}
        return self.request("POST", path, data=data, **kw)

    def login(self, username: str, password: str) -> int:
        token = self.csrf("/login")
        status, _, _ = self.request("POST", "/login", {"username": username, "password": password, "csrf": token})
        return status

    def json(self, path: str) -> Any:
        status, _, body = self.get(path)
        assert status == 200, (status, body[:300])
        return json.loads(body)


def _csrf_in(html: str) -> str:
    match = re.search(r'name="csrf-token" content="([^"]*)"', html)
    assert match, "no CSRF token in the page"
    return match.group(1)


def inbox_unread(client: WebClient) -> int:
    """The INBOX's unread count in the folder tree of /mail."""
    _, _, html = client.get("/mail")
    match = re.search(r'<span>INBOX</span>\s*(?:<span class="count"[^>]*>(\d+)</span>)?', html)
    assert match, "no INBOX in the folder tree"
    return int(match.group(1) or 0)


def personal_mailbox(office: Office, owner: str, message_id: int) -> int:
    """Move a message into a new personal mailbox of `owner` (private to them until made
    public); the message id."""
    from casella.models import Message, User
    from ingest.accounts import add_account

    with office.db.session() as s:
        acc = add_account(s, office.settings, name=f"personale-{owner}", imap_host=None, imap_port=None,
                          username=None, password=None, security="none", is_pec=False, folders=["INBOX"],
                          sent_folders=["Sent"])
        s.flush()
        acc.owner_user_id = s.scalar(select(User.id).where(User.username == owner))
        s.execute(Message.__table__.update().where(Message.id == message_id).values(account_id=acc.id))
    return message_id


def audit_log(office: Office, action: str | None = None) -> list[AuditLog]:
    """The audit log, oldest first (only `action` entries, if given)."""
    query = select(AuditLog).order_by(AuditLog.id)
    with office.db.reading() as s:
        return list(s.scalars(query.where(AuditLog.action == action) if action else query))


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:  # see the 303s as they are
        return None


def build_office(settings: Settings, db: Database) -> dict[str, int]:
    import io

    from sqlalchemy import select

    from anagrafica.contacts_csv import import_csv
    from casella.models import Account, Message
    from casella.users import add_group, add_user, grant_mailbox
    from ingest.accounts import add_account
    from ingest.service import make_storer
    from ingest.store import Incoming

    with db.session() as s:
        add_group(s, "segreteria")
        add_user(s, "admin", "admin", password=PASSWORDS["admin"], display_name="Anna Admin")
        add_user(s, "direttore", "manager", password=PASSWORDS["direttore"], display_name="Dario Direttore")
        add_user(s, "olga", "operator", groups=["segreteria"], password=PASSWORDS["olga"], display_name="Olga Operatrice")
        add_user(s, "rossi", "agent", password=PASSWORDS["rossi"], display_name="Mario Rossi")
        add_user(s, "bianchi", "agent", password=PASSWORDS["bianchi"], display_name="Luca Bianchi")
        add_user(s, "mara", "marketing", password=PASSWORDS["mara"], display_name="Mara Marketing")
        add_account(s, settings, name="info", imap_host=None, imap_port=None, username=None, password=None,
                    security="none", is_pec=False, folders=["INBOX", "Sent"], sent_folders=["Sent"])
        s.flush()
        grant_mailbox(s, "info", group="segreteria")
        import_csv(s, io.StringIO(OFFICE_CSV))
    with db.reading() as s:
        account_id = s.scalar(select(Account.id).where(Account.name == "info"))
    storer = make_storer(settings, db)
    storer.store_batch(account_id, [Incoming(raw=raw, folder=folder) for folder, raw in office_messages()], source="test")
    with db.reading() as s:
        return {m.message_id: m.id for m in s.scalars(select(Message))}


@pytest.fixture
def office(tmp_path: Path) -> Iterator[Office]:
    from webmail.server import WebServer

    port = free_port()
    env = make_env(tmp_path / "data", f"sqlite:///{tmp_path / 'casella.db'}", CASELLA_WEB_LISTEN=f"127.0.0.1:{port}")
    settings = Settings.load(env)
    db = Database.from_settings(settings)
    ids = build_office(settings, db)
    server = WebServer(settings, db).start()
    yield Office(server.url, settings, db, ids)
    server.stop()
    db.dispose()


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists() or shutil.which("chromium") is None:
        pytest.fail("Chromium is not installed: run scripts/test.sh, which installs it (Debian package chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run"])
        yield b
        b.close()


@pytest.fixture
def page(browser: Any, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    context = browser.new_context(locale="it-IT")
    context.set_default_timeout(15000)
    pg = context.new_page()
    pg.on("dialog", lambda d: d.dismiss())
    yield pg
    if getattr(request.node, "rep_call", None) is not None and request.node.rep_call.failed:
        shot = Path("test-artifacts") / f"{request.node.name}.png"
        shot.parent.mkdir(exist_ok=True)
        try:
            pg.screenshot(path=str(shot), full_page=True)
        except Exception as exc:  # noqa: BLE001 - a screenshot is a courtesy
            print(f"no screenshot: {exc}")
    context.close()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: Any, call: Any) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)


def login(page: Any, office: Office, username: str) -> None:
    page.goto(office.url + "/login")
    page.fill("#username", username)
    page.fill("#password", PASSWORDS[username])
    page.click("button[type=submit].primary")
    page.wait_for_url("**/mail**")
