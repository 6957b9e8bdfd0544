"""Administration: admins only; users added in the browser can sign in; deactivation closes
sessions; routing rules edited as YAML (errors shown) and tested against a message;
signatures with a preview; every change audited."""

from __future__ import annotations

import re
from typing import Any

import pytest
from sqlalchemy import select

from casella.models import (
    Account,
    FolderState,
    GroupMember,
    MailboxPermission,
    Message,
    MessageLocation,
    RoutingRule,
    Signature,
    User,
)
from casella.models.outbound import AccountSmtp
from casella.secrets import SecretBox
from tests.webmail.conftest import Office, audit_log, personal_mailbox

pytestmark = pytest.mark.integration

RULE = """rules:
  - name: fatture
    account: info
    conditions:
      - {field: subject, op: contains, value: fattura}
    actions:
      - {action: add-tags, tags: [fatture]}
"""


def verdict(html: str) -> str:
    match = re.search(r'<p id="rule-verdict">(.*?)</p>', html, re.DOTALL)
    assert match, "no verdict on the page"
    return match.group(1).strip()


def test_admin_is_for_admins_only(office: Office) -> None:
    for who in ("olga", "direttore", "rossi", "mara"):
        client = office.http(who)
        for path in ("/admin", "/admin/users", "/admin/rules", "/admin/signatures", "/admin/accounts/new"):
            assert client.get(path)[0] == 403, (who, path)
        assert client.post("/admin/users", {"username": "x", "role": "admin", "password": "p" * 12})[0] == 403
        assert client.post("/admin/accounts/new", {"name": "x", "security": "none"})[0] == 403
    status, _, html = office.http("admin").get("/admin")
    assert status == 200 and "info" in html and "INBOX: 4" in html


def test_add_user_in_the_browser_and_sign_in_as_them(office: Office, page: Any) -> None:
    from tests.webmail.conftest import login

    login(page, office, "admin")
    page.goto(office.url + "/admin/users")
    page.fill("#nu-username", "nuovo")
    page.fill("#nu-name", "Nino Nuovo")
    page.select_option("#nu-role", "operator")
    page.select_option("#nu-groups", ["segreteria"])
    page.fill("#nu-password", "nuova-password-1")
    page.click("#user-add button[type=submit]")
    page.wait_for_url("**/admin/users?notice=user-added")
    assert "Nino Nuovo" in page.inner_text("#users")
    page.context.clear_cookies()
    page.goto(office.url + "/login")
    page.fill("#username", "nuovo")
    page.fill("#password", "nuova-password-1")
    page.click("button[type=submit].primary")
    page.wait_for_url("**/mail**")
    assert "Richiesta informazioni" in page.content()  # reads the segreteria's mailbox
    assert "user-add" in [a.action for a in audit_log(office)]


def test_deactivate_and_reset_password_close_sessions(office: Office) -> None:
    olga = office.http("olga")
    assert olga.get("/mail")[0] == 200
    with office.db.reading() as s:
        olga_id = s.scalar(select(User.id).where(User.username == "olga"))
    admin = office.http("admin")
    assert admin.post(f"/admin/users/{olga_id}", {"action": "password", "password": "short"})[0] == 400
    assert admin.post(f"/admin/users/{olga_id}", {"action": "password", "password": "nuova-password-2"})[0] == 303
    assert olga.get("/mail")[0] == 303  # signed out
    olga2 = office.http()
    assert olga2.login("olga", "nuova-password-2") == 303 and olga2.get("/mail")[0] == 200
    assert admin.post(f"/admin/users/{olga_id}", {"action": "deactivate"})[0] == 303
    assert olga2.get("/mail")[0] == 303
    assert office.http().login("olga", "nuova-password-2") != 303
    with office.db.reading() as s:
        admin_id = s.scalar(select(User.id).where(User.username == "admin"))
    assert admin.post(f"/admin/users/{admin_id}", {"action": "deactivate"})[0] == 400
    assert {"user-password-reset", "user-deactivate"} <= {a.action for a in audit_log(office)}


def test_groups_and_mailbox_permissions(office: Office) -> None:
    admin = office.http("admin")
    assert admin.post("/admin/groups", {"name": "amministrazione", "assignment": "round-robin"})[0] == 303
    with office.db.reading() as s:
        from casella.models import Group

        gid = s.scalar(select(Group.id).where(Group.name == "amministrazione"))
    assert admin.post(f"/admin/groups/{gid}/members", {"username": "mara", "action": "add"})[0] == 303
    assert admin.post("/admin/permissions", {"account": "info", "grantee": "group:amministrazione",
                                             "level": "read"})[0] == 303
    _, _, html = office.http("mara").get("/mail")
    assert "Richiesta informazioni" in html
    with office.db.reading() as s:
        assert s.scalar(select(GroupMember.user_id).where(GroupMember.group_id == gid)) is not None
        perm = s.scalar(select(MailboxPermission.id).where(MailboxPermission.group_id == gid))
    assert admin.post(f"/admin/permissions/{perm}/revoke", {})[0] == 303
    _, _, html = office.http("mara").get("/mail")
    assert "Richiesta informazioni" not in html
    assert {"group-add", "group-member-add", "mailbox-grant", "mailbox-revoke"} <= {a.action for a in audit_log(office)}


def test_rule_edit_shows_yaml_errors_and_explains(office: Office, page: Any) -> None:
    admin = office.http("admin")
    status, _, _ = admin.post("/admin/rules/new", {"yaml": RULE})
    assert status == 303
    with office.db.reading() as s:
        rule = s.scalar(select(RoutingRule).where(RoutingRule.name == "fatture"))
        assert rule is not None and rule.enabled
    _, _, html = admin.get(f"/admin/rules/{rule.id}")
    assert "name: fatture" in html
    status, _, html = admin.post(f"/admin/rules/{rule.id}", {"yaml": RULE.replace("op: contains", "op: sounds-like")})
    assert status == 400 and "sounds-like" in html and 'id="rule-problems"' in html
    status, _, html = admin.post(f"/admin/rules/{rule.id}", {"yaml": "rules: [\n  - name: x"})
    assert status == 400 and "YAML" in html
    status, _, html = admin.post(f"/admin/rules/{rule.id}", {"yaml": RULE.replace("account: info", "account: nope")})
    assert status == 400 and "nope" in html
    assert admin.post(f"/admin/rules/{rule.id}", {"yaml": RULE.replace("fattura}", "Fattura 2026}")})[0] == 303
    _, _, html = admin.get(f"/admin/rules/test?message={office.ids['f118@edilnord.it']}")
    assert "Fattura 2026/118" in html
    assert "Regole corrispondenti: <strong>fatture</strong>" in verdict(html)
    _, _, html = admin.get(f"/admin/rules/test?message={office.ids['ri1@nuovo-cliente.example']}")
    assert "fatture" in html and verdict(html) == "Nessuna regola corrisponde a questo messaggio."  # listed, not matching
    # A message the admin may not read (someone's personal mailbox) is not explained either.
    private = personal_mailbox(office, "direttore", office.ids["f118@edilnord.it"])
    status, _, html = admin.get(f"/admin/rules/test?message={private}")
    assert status == 404 and "Fattura 2026/118" not in html
    assert admin.post(f"/admin/rules/{rule.id}/enabled", {"enabled": "0"})[0] == 303
    with office.db.reading() as s:
        row = s.get(RoutingRule, rule.id)
        assert row is not None and not row.enabled and "Fattura 2026" in str(row.conditions)
    assert {"rule-add", "rule-edit", "rule-disable"} <= {a.action for a in audit_log(office)}
    # The same error, in the browser.
    from tests.webmail.conftest import login

    login(page, office, "admin")
    page.goto(office.url + f"/admin/rules/{rule.id}")
    page.fill("#rule-yaml", "rules:\n  - name: fatture\n    conditions: 3\n")
    page.click("form button.primary")
    assert page.is_visible("#rule-problems")


def test_signatures(office: Office) -> None:
    admin = office.http("admin")
    status, _, html = admin.post("/admin/signatures", {"name": "info", "account": "info", "user": "",
                                                       "text": "{nome}", "html": "", "default": "1"})
    assert status == 400 and "{nome}" in html
    status, headers, _ = admin.post("/admin/signatures", {
        "name": "info", "account": "info", "user": "", "text": "{name}\nStudio", "default": "1",
        "html": "<p><b>{name}</b> — Studio</p><script>window.__xss=9</script>"})
    assert status == 303
    _, _, html = admin.get(headers["location"])
    assert "Anna Admin" in html and 'id="signature-preview"' in html
    assert "<script>window.__xss=9" not in html
    with office.db.reading() as s:
        sig = s.scalar(select(Signature).where(Signature.name == "info"))
        assert sig is not None and sig.is_default and sig.account_id is not None
    assert {"signature-add"} <= {a.action for a in audit_log(office)}


def test_add_an_account_test_its_connection_and_change_its_login(office: Office, dovecot: Any) -> None:
    """An admin adds an IMAP account in the browser's form: what cannot work is refused in
    Italian; the connection test logs in to the real server and lists its folders without
    saving; the saved account is read by the ingest; a new login drops the UID cursors."""
    from ingest.service import ingest_once
    from tests.ingest.test_faults import generated

    dovecot.append_many("alice", generated(2, "ufficio"))
    admin = office.http("admin")
    assert admin.get("/admin/accounts/new")[0] == 200
    form = {"name": "ufficio", "imap_host": dovecot.host, "imap_port": str(dovecot.port), "security": "none",
            "username": "alice", "folders": "INBOX", "sent_folders": "Sent", "registry": "AOO"}
    status, _, html = admin.post("/admin/accounts/new", form)
    assert status == 400 and "ha bisogno della password" in html
    status, _, html = admin.post("/admin/accounts/new", {**form, "password": "sbagliata", "action": "test"})
    assert status == 200 and "refused the login" in html
    status, _, html = admin.post("/admin/accounts/new", {**form, "password": dovecot.users["alice"],
                                                         "folders": "INBOX, Archivio", "action": "test"})
    assert status == 200 and "Il server ha accettato" in html
    assert "Cartelle che non sono sul server: Archivio" in html
    with office.db.reading() as s:
        assert s.scalar(select(Account).where(Account.name == "ufficio")) is None  # a test saves nothing

    status, head, _ = admin.post("/admin/accounts/new", {**form, "password": dovecot.users["alice"]})
    assert status == 303 and head["location"] == "/admin?notice=saved"
    with office.db.reading() as s:
        account = s.scalar(select(Account).where(Account.name == "ufficio"))
        assert account is not None and account.imap_port == dovecot.port and account.sent_folders == ["Sent"]
        assert dovecot.users["alice"].encode() not in account.password_encrypted
        assert SecretBox(office.settings.secret_key_file).decrypt(account.password_encrypted) == "alicepw"
        account_id = account.id
    [outcome] = ingest_once(office.settings, office.db, "ufficio")
    assert outcome.error is None and outcome.result is not None and outcome.result.stored == 2

    status, _, html = admin.get(f"/admin/accounts/{account_id}")
    assert status == 200 and "alicepw" not in html and 'value="alice"' in html
    status, _, html = admin.post(f"/admin/accounts/{account_id}", {**form, "name": "info"})
    assert status == 400 and "altra casella ha questo nome" in html
    status, _, html = admin.post(f"/admin/accounts/{account_id}", {**form, "imap_host": "", "imap_append_sent": "1"})
    assert status == 400 and "serve un server IMAP" in html
    status, _, _ = admin.post(f"/admin/accounts/{account_id}", {**form, "username": "bob", "password": "bobpw",
                                                                "auto_signature": "1"})
    assert status == 303
    with office.db.reading() as s:
        assert s.scalar(select(FolderState).where(FolderState.account_id == account_id)) is None
        assert s.get(Account, account_id).username == "bob" and s.get(Account, account_id).auto_signature
        assert set(s.scalars(select(MessageLocation.uid).where(MessageLocation.account_id == account_id))) == {None}
    # The outgoing server: set, its password kept when not typed again, removed when emptied.
    smtp = {**form, "username": "bob", "auto_signature": "1", "smtp_host": "127.0.0.1", "smtp_port": "2525", "smtp_security": "none",
            "smtp_username": "invio"}
    status, _, html = admin.post(f"/admin/accounts/{account_id}", smtp)
    assert status == 400 and "ha bisogno della sua password" in html
    assert admin.post(f"/admin/accounts/{account_id}", {**smtp, "smtp_password": "smtp-pw"})[0] == 303
    assert admin.post(f"/admin/accounts/{account_id}", smtp)[0] == 303  # no password typed: the stored one stays
    with office.db.reading() as s:
        upstream = s.get(AccountSmtp, account_id)
        assert upstream is not None and (upstream.host, upstream.port, upstream.security, upstream.username) == \
            ("127.0.0.1", 2525, "none", "invio")
        assert SecretBox(office.settings.secret_key_file).decrypt(upstream.password_encrypted) == "smtp-pw"
    status, _, html = admin.get(f"/admin/accounts/{account_id}")
    assert 'value="invio"' in html and "smtp-pw" not in html
    assert admin.post(f"/admin/accounts/{account_id}", {**form, "username": "bob", "auto_signature": "1"})[0] == 303
    with office.db.reading() as s:
        assert s.get(AccountSmtp, account_id) is None
    dovecot.append_many("bob", generated(1, "bob"))
    [outcome] = ingest_once(office.settings, office.db, "ufficio")
    assert outcome.error is None and outcome.result is not None and outcome.result.stored == 1
    with office.db.reading() as s:
        subjects = set(s.scalars(select(Message.subject).where(Message.account_id == account_id)))
    assert subjects == {"Preventivo ufficio 0", "Preventivo ufficio 1", "Preventivo bob 0"}
    [added] = audit_log(office, "account-add")
    edits = [e.detail["changed"] for e in audit_log(office, "account-edit")]
    assert edits == [["username", "password", "auto_signature"], ["smtp"], [], ["smtp"]]
    assert not any(secret in str(e.detail) for e in audit_log(office) for secret in ("bobpw", "alicepw", "smtp-pw"))
    assert added.detail["smtp"] is None
    status, _, html = admin.get("/admin")
    assert status == 200 and f'href="/admin/accounts/{account_id}"' in html
