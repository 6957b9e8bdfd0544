"""A page on another site (or another port) that posts a form to the webmail, in a real
Chromium where the user is signed in: the post changes nothing."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from sqlalchemy import select

from casella.models import Message
from tests.webmail.conftest import Office, login

pytestmark = pytest.mark.integration


class EvilSite:
    def __init__(self, target: str, message_id: int) -> None:
        page = f"""<!doctype html><html><body>
<form id="f" method="post" action="{target}/mail/bulk">
<input name="action" value="status:closed"><input name="ids" value="{message_id}">
<input name="csrf" value="guessed"><input name="back" value="/mail"></form>
<script>document.getElementById("f").submit()</script></body></html>""".encode()

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", str(len(page)))
                self.end_headers()
                self.wfile.write(page)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def evil(office: Office) -> Iterator[EvilSite]:
    site = EvilSite(office.url, office.ids["f118@edilnord.it"])
    yield site
    site.stop()


def _status(office: Office) -> str:
    with office.db.reading() as s:
        return s.scalar(select(Message.status).where(Message.id == office.ids["f118@edilnord.it"]))


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1"])  # another site; the same host on another port
def test_a_form_posted_from_another_site_changes_nothing(office: Office, evil: EvilSite, page: Any,
                                                         host: str) -> None:
    login(page, office, "olga")
    assert _status(office) == "open"
    with page.expect_response(lambda r: r.url.endswith("/mail/bulk")) as posted:
        page.goto(f"http://{host}:{evil.port}/")
    response = posted.value
    assert response.status in (401, 403)
    if host == "127.0.0.1":  # the session cookie goes along: refused for its Origin, before any token check
        assert response.status == 403 and "Cross-site" in response.text()
    assert _status(office) == "open"
    # The same action from the webmail's own page works: the refusal was about the origin.
    page.goto(office.url + "/mail")
    page.check(f"input[name=ids][value='{office.ids['f118@edilnord.it']}']")
    page.select_option("#bulk-action", "status:closed")
    page.click("#bulk button[type=submit]")
    page.wait_for_url("**/mail**")
    assert _status(office) == "closed"
