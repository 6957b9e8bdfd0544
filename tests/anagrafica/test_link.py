"""Anagrafica: CSV import/export and linking each message to a contact, a company or
"unknown" — never by a free-mail or shared PEC domain."""

from __future__ import annotations

import csv
import io

import pytest

from tests.conftest import Cli
from tests.mailgen import make_message, write_eml_folder

pytestmark = pytest.mark.integration

CSV = """company_name,company_domain,contact_name,email,vat_number,lifecycle,agent,note
Edilnord S.r.l.,edilnord.it,Mario Rossi,mario.rossi@edilnord.it,01234567890,customer,agente.rossi,storico
Edilnord S.r.l.,,Lucia Verdi,lucia.verdi@edilnord.it,01234567890,,,
Tecnoservizi S.p.A.,tecnoservizi.com,,,09876543210,prospect,agente.bianchi,
,,Giulia Privata,giulia.privata@gmail.com,,,,
Sbagliata S.r.l.,gmail.com,,,11111111111,lead,,
"""


def test_contacts_import_export_roundtrip_and_idempotent(cli: Cli, tmp_path) -> None:
    f = tmp_path / "anagrafica.csv"
    f.write_text(CSV, encoding="utf-8")
    first = cli("contacts", "import", str(f))
    assert "3 companies and 3 contacts created" in first.stdout
    assert "gmail.com is a free-mail" in first.stderr
    again = cli("contacts", "import", str(f))
    assert "0 companies and 0 contacts created" in again.stdout
    rows = list(csv.DictReader(io.StringIO(cli("contacts", "export").stdout)))
    by_email = {r["email"]: r for r in rows if r["email"]}
    assert by_email["mario.rossi@edilnord.it"]["company_name"] == "Edilnord S.r.l."
    assert by_email["mario.rossi@edilnord.it"]["company_domain"] == "edilnord.it"
    assert by_email["mario.rossi@edilnord.it"]["lifecycle"] == "customer"
    assert by_email["mario.rossi@edilnord.it"]["agent"] == "agente.rossi"
    assert by_email["giulia.privata@gmail.com"]["company_name"] == ""
    tecno = [r for r in rows if r["company_name"] == "Tecnoservizi S.p.A."]
    assert tecno and tecno[0]["vat_number"] == "09876543210"
    # The export is itself importable, into an empty installation, with the same result.
    exported = tmp_path / "export.csv"
    cli("contacts", "export", "-o", str(exported))
    other = Cli({**cli.env, "CASELLA_DATA_DIR": str(tmp_path / "other"),
                 "CASELLA_DATABASE_URL": f"sqlite:///{tmp_path / 'other.db'}"})
    other("contacts", "import", str(exported))
    assert list(csv.DictReader(io.StringIO(other("contacts", "export").stdout))) == rows


def test_bad_header_is_a_clear_error(cli: Cli, tmp_path) -> None:
    f = tmp_path / "bad.csv"
    f.write_text("name,mail\nA,a@b.it\n", encoding="utf-8")
    result = cli("contacts", "import", str(f), check=False)
    assert result.returncode == 2
    assert "company_name" in result.stderr and "vat_number" in result.stderr


def test_messages_link_to_contact_company_or_unknown(cli: Cli, tmp_path) -> None:
    f = tmp_path / "anagrafica.csv"
    f.write_text(CSV, encoding="utf-8")
    cli("contacts", "import", str(f))
    cli("account", "add", "ufficio", "--folders", "INBOX,Sent", "--sent-folders", "Sent")
    senders = [
        "Mario Rossi <mario.rossi@edilnord.it>",          # exact address -> contact
        "Ufficio Acquisti <acquisti@edilnord.it>",         # domain -> company
        "Tecnico <tecnico@mail.tecnoservizi.com>",         # sub-domain -> company
        "Giulia <giulia.privata@gmail.com>",               # a contact at gmail -> contact
        "Altro <sconosciuto@gmail.com>",                   # free mail -> unknown, never "Sbagliata"
        "Nessuno <chi@ignoto.example>",                    # nobody -> unknown
    ]
    raws = [make_message(i, "link", sender=s) for i, s in enumerate(senders)]
    cli("import", str(write_eml_folder(tmp_path / "in", raws)), "--account", "ufficio")
    sent = [make_message(0, "out", sender="Info <info@studioferrari.it>", to="Mario Rossi <mario.rossi@edilnord.it>")]
    cli("import", str(write_eml_folder(tmp_path / "out", sent)), "--account", "ufficio", "--folder", "Sent")
    listed = {m["from"]["addr"]: m for m in cli("message", "list", "--json").json()}
    link = {addr: (m["link"]["kind"], m["link"]["name"]) for addr, m in listed.items()}
    assert link["mario.rossi@edilnord.it"] == ("contact", "Mario Rossi")
    assert link["acquisti@edilnord.it"] == ("company", "Edilnord S.r.l.")
    assert link["tecnico@mail.tecnoservizi.com"] == ("company", "Tecnoservizi S.p.A.")
    assert link["giulia.privata@gmail.com"] == ("contact", "Giulia Privata")
    assert link["sconosciuto@gmail.com"] == ("unknown", None)
    assert link["chi@ignoto.example"] == ("unknown", None)
    # Sent mail links by its recipient.
    assert listed["info@studioferrari.it"]["direction"] == "out"
    assert link["info@studioferrari.it"] == ("contact", "Mario Rossi")
    unknown = {m["from"]["addr"] for m in cli("message", "list", "--json", "--unknown").json()}
    assert unknown == {"sconosciuto@gmail.com", "chi@ignoto.example"}
