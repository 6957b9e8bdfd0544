"""The trust store and the `casella pec` commands (called through click's runner)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

import pec_testkit as kit
from casella.settings import get_settings
from pec.cli import COMMANDS, pec
from pec.errors import TrustStoreError
from pec.trust import TrustStore

pytestmark = pytest.mark.unit
CORPUS = Path(__file__).resolve().parent.parent / "corpus" / "pec"


def test_add_dedupes_and_validates(tmp_path: Path) -> None:
    store = TrustStore(tmp_path / "d" / "pec-trust.pem", system_bundle=None)
    bundle = kit.root().pem + kit.provider().pem
    assert store.add_certificates(bundle) == 2
    assert store.add_certificates(bundle + kit.root("Another Root").pem) == 1
    assert len(store.certificates()) == 3
    with pytest.raises(TrustStoreError, match="no PEM certificate"):
        store.add_certificates(b"hello")
    broken = b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
    with pytest.raises(TrustStoreError, match="#2 does not load"):
        store.add_certificates(kit.root("Third").pem + broken)
    assert len(store.certificates()) == 3  # nothing written on failure


@pytest.fixture
def cli_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("CASELLA_DATA_DIR", str(tmp_path / "data"))
    get_settings.cache_clear()
    yield tmp_path / "data"
    get_settings.cache_clear()


def test_trust_add_list_and_check(cli_env: Path, tmp_path: Path) -> None:
    assert COMMANDS == [pec]
    runner = CliRunner()
    pem = tmp_path / "roots.pem"
    pem.write_bytes(kit.root().pem)
    result = runner.invoke(pec, ["trust", "add", str(pem)])
    assert result.exit_code == 0, result.output
    assert "1 certificate(s) added" in result.output
    assert (cli_env / "pec-trust.pem").is_file()
    listed = json.loads(runner.invoke(pec, ["trust", "list", "--json"]).output)
    assert [c["subject"] for c in listed["certificates"]] == ["CN=Test PEC Root,O=Casella Test,C=IT"]

    eml = tmp_path / "envelope.eml"
    eml.write_bytes(kit.envelope())
    out = json.loads(runner.invoke(pec, ["check", str(eml), "--json"]).output)
    assert out["kind"] == "posta-certificata" and out["signature"]["status"] == "valid"
    text = runner.invoke(pec, ["check", str(CORPUS / "seedoo_avviso_mancata_consegna.eml")]).output
    assert "kind: errore-consegna" in text and "signature: valid" in text
    assert "posta-certificata@pec.aruba.it" in text


def test_trust_add_refuses_a_bad_file(cli_env: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.pem"
    bad.write_text("not a certificate")
    result = CliRunner().invoke(pec, ["trust", "add", str(bad)])
    assert result.exit_code != 0 and "no PEM certificate" in result.output


def test_check_ordinary_mail(cli_env: Path, tmp_path: Path) -> None:
    eml = tmp_path / "plain.eml"
    eml.write_bytes(b"From: a@b.it\r\nSubject: hi\r\n\r\nhi\r\n")
    assert CliRunner().invoke(pec, ["check", str(eml)]).output.strip() == "not a PEC message"
