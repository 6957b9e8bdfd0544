"""`casella identity add` and `casella smtp-upstream` through click, and the real `casella`
command for the existing user/account commands."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from casella.db import Database
from casella.models.outbound import AccountSmtp, SenderIdentity
from casella.secrets import SecretBox
from casella.settings import Settings, get_settings
from mailserver.cli import COMMANDS
from mailserver.identities import allowed_senders
from tests.conftest import Cli

pytestmark = pytest.mark.e2e


@pytest.fixture
def runner(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[CliRunner]:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    yield CliRunner()
    get_settings.cache_clear()


def command(name: str):  # type: ignore[no-untyped-def]
    return next(c for c in COMMANDS if c.name == name)


def test_identity_and_upstream_commands(cli: Cli, runner: CliRunner, settings: Settings) -> None:
    cli("user", "add", "alice", "--role", "operator", "--password-env", "PW", extra_env={"PW": "alice-pw"})
    cli("account", "add", "ufficio", "--username", "info@ufficio.example.it")
    cli("account", "grant", "ufficio", "--user", "alice", "--level", "write")
    result = runner.invoke(command("identity"), ["add", "alice", "Alice@Ufficio.example.it", "--account", "ufficio"])
    assert result.exit_code == 0, result.output
    again = runner.invoke(command("identity"), ["add", "alice", "alice@ufficio.example.it", "--account", "ufficio"])
    assert again.exit_code != 0 and "already" in again.output
    result = runner.invoke(command("smtp-upstream"), ["ufficio", "--host", "smtp.example.it", "--security", "ssl",
                                                      "--username", "info@ufficio.example.it",
                                                      "--password-env", "SMTP_PW"], env={"SMTP_PW": "s3cret"})
    assert result.exit_code == 0, result.output
    missing = runner.invoke(command("smtp-upstream"), ["nessuno", "--host", "h"])
    assert missing.exit_code != 0 and "no account named" in missing.output
    db = Database.from_settings(settings)
    try:
        with db.reading() as s:
            config = s.scalar(select(AccountSmtp))
            assert config is not None and (config.host, config.port, config.security) == ("smtp.example.it", 465, "ssl")
            assert config.password_encrypted and b"s3cret" not in config.password_encrypted
            assert SecretBox(settings.secret_key_file).decrypt(config.password_encrypted) == "s3cret"
            identity = s.scalar(select(SenderIdentity))
            assert identity is not None and identity.address == "alice@ufficio.example.it"
            assert set(allowed_senders(s, identity.user_id)) == {"info@ufficio.example.it", "alice@ufficio.example.it"}
    finally:
        db.dispose()
