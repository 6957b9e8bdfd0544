"""Italian by default, English on request; no message id left untranslated."""

from __future__ import annotations

import pytest

from tests.webmail.conftest import Office
from webmail.i18n_extract import message_ids, missing


@pytest.mark.unit
def test_every_message_id_has_an_italian_translation() -> None:
    assert len(message_ids()) > 50
    gaps = missing("it")
    assert not gaps, "untranslated (run python -m webmail.i18n_extract): " + ", ".join(sorted(gaps)[:20])


@pytest.mark.integration
def test_italian_by_default_and_english_on_request(office: Office) -> None:
    client = office.http()
    _, _, html = client.get("/login")
    assert "Accedi" in html and 'lang="it"' in html
    status, _, _ = client.post("/settings/language", {"lang": "en", "next": "/login"})
    assert status == 303
    _, _, html = client.get("/login")
    assert "Sign in" in html and 'lang="en"' in html
    client = office.http("olga")
    _, _, html = client.get("/mail", headers={"Accept-Language": "en-GB,en;q=0.9"})
    assert "Esci" in html  # the user's own preference (Italian) beats the browser's
    client.post("/settings/language", {"lang": "en", "next": "/mail"})
    _, _, html = client.get("/mail")
    assert "Sign out" in html and "Unknown senders" in html
