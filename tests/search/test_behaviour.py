"""What a user expects of the search, checked the same way on every engine.

One realistic installation per engine (imported with the real `casella` command: accounts,
users, a group, an agent's companies, mail with PDF and DOCX attachments), then one test per
expectation: typos, prefixes, word forms, accents, protocol numbers, attachments, anagrafica,
tags and pratiche, ranking, snippets, every filter, and who may see what.

The embedded engine always runs. Meilisearch runs when CASELLA_TEST_MEILI_URL names a
server (and CASELLA_TEST_MEILI_KEY its master key, if it has one): `docker compose up -d
meilisearch`, then CASELLA_TEST_MEILI_URL=http://127.0.0.1:7700
CASELLA_TEST_MEILI_KEY=change-me-please-32-characters-min scripts/test.sh tests/search.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import select

from casella.access import grant_for
from casella.db import Database
from casella.models import Account, Message, MessagePratica, MessageTag, Pratica, User
from casella.settings import Settings
from casella.users import get_user
from search.engine import open_index
from search.filters import admin_grant, resolve_filters
from search.index import SearchIndex, SearchQuery, SearchResults
from search.indexer import drain
from search.outbox import enqueue
from tests.conftest import Cli, make_env
from tests.search.mail import DOCX_TYPE, make_docx, make_mail, make_pdf, write_folder

pytestmark = pytest.mark.integration

CONTACTS = """company_name,company_domain,contact_name,email,vat_number,agent
Costruzioni Edilnord S.r.l.,edilnord.it,Mariolino Rossetti,mario.rossi@edilnord.it,01234567890,alberto
Globex Corporation,globex.com,John Smith,john.smith@globex.com,09876543210,bruno
"""


def day(d: int, month: int = 3, hour: int = 11) -> datetime:
    return datetime(2026, month, d, hour, 0, tzinfo=UTC)


def corpus() -> dict[str, dict[str, bytes]]:
    """Messages per (account, folder), keyed by a name the tests use."""
    edil = "M. Rossi <mario.rossi@edilnord.it>"
    return {
        "ufficio/INBOX": {
            "fattura": make_mail("fattura", sender=edil, subject="Fattura lavori Pontedera", date=day(2),
                                 body="Buongiorno, in allegato la fattura dei lavori eseguiti nella città di "
                                      "Pontedera (invoice n. 12).\nCordiali saluti"),
            "invoices": make_mail("invoices", sender="John Smith <john.smith@globex.com>", subject="Invoices for March",
                                  date=day(3), body="Please find the invoices attached. Le fatture di marzo sono "
                                                    "in allegato.",
                                  attachments=(("estratto_marzo.pdf", "application/pdf",
                                                make_pdf("Riepilogo ordine ZETA9931 consegnato")),)),
            "contratto": make_mail("contratto", sender="Lucia Verdi <lucia.verdi@edilnord.it>",
                                   cc="Ufficio Tecnico <tecnico@studioferrari.it>", subject="Bozza contratto fornitura",
                                   date=day(4), body="Vi inoltro la bozza aggiornata.",
                                   attachments=(("contratto_fornitura.docx", DOCX_TYPE,
                                                 make_docx(["Clausola penale QUINTALE per ritardata consegna"])),)),
            "collaudo_subject": make_mail("collaudo_subject", sender="servizi@impiantiveloci.it", date=day(5),
                                          subject="Collaudo impianto elettrico",
                                          body="Confermiamo la data. Cantiere di Bari."),
            "collaudo_body": make_mail("collaudo_body", sender="servizi@impiantiveloci.it", date=day(6),
                                       subject="Aggiornamento cantiere",
                                       body="Il collaudo è fissato per lunedì. Confermiamo la data."),
            "verbale_old": make_mail("verbale_old", sender="geom.bianchi@studiobianchi.it", date=day(7),
                                     subject="Verbale di sopralluogo", body="Verbale di sopralluogo in allegato."),
            "verbale_new": make_mail("verbale_new", sender="geom.bianchi@studiobianchi.it", date=day(8),
                                     subject="Verbale di sopralluogo", body="Verbale di sopralluogo in allegato."),
        },
        "ufficio/Archivio": {
            "archivio": make_mail("archivio", sender=edil, subject="Vecchia corrispondenza", date=day(10, 1),
                                  body="Documento archiviato dal protocollo."),
        },
        "vendite/INBOX": {
            "preventivo": make_mail("preventivo", sender="Paolo Neri <paolo.neri@gmail.com>", date=day(9),
                                    subject="Richiesta preventivo ristrutturazione",
                                    body="Vorrei un preventivo per la ristrutturazione del bagno. "
                                         "Abito a Citta di Castello."),
            "newsletter": make_mail("newsletter", sender="promo@negozio.example", date=day(1), body="",
                                    subject="Novità",
                                    html="<html><head><style>p{color:red}</style></head><body><p>Offerta "
                                         "<b>speciale</b> di primavera</p><script>var nascosto=1;</script>"
                                         "</body></html>"),
        },
        "pec/INBOX": {
            "raccomandata": make_mail("raccomandata", sender="posta-certificata@pec.aruba.it", date=day(10),
                                      subject="ACCETTAZIONE: Raccomandata digitale",
                                      body="Ricevuta di accettazione della raccomandata."),
            "globex_pec": make_mail("globex_pec", sender="legal@globex.com", date=day(11),
                                    subject="Notifica accordo quadro", body="Vi notifichiamo l'accordo quadro."),
        },
        "privata/INBOX": {
            "privata": make_mail("privata", sender="amico@example.org", date=day(12), subject="Colloquio personale",
                                 body="Appunti riservati sul colloquio."),
        },
    }


@dataclass
class Installation:
    engine: str
    cli: Cli
    settings: Settings
    db: Database
    index: SearchIndex
    ids: dict[str, int]  # test key -> message.id
    protocols: dict[str, str]  # test key -> 2026/0000042

    def results(self, text: str, as_user: str | None = None, *, limit: int = 50, **filters: Any) -> SearchResults:
        """The path `casella search` takes, in-process: grant, filters, engine."""
        with self.db.session() as session:
            grant = grant_for(session, get_user(session, as_user)) if as_user else admin_grant()
            resolved = resolve_filters(session, self.settings, **filters)
        return self.index.search(SearchQuery(text, resolved, limit=limit), grant)

    def find(self, text: str, as_user: str | None = None, **filters: Any) -> list[str]:
        by_id = {v: k for k, v in self.ids.items()}
        return [by_id[h.id] for h in self.results(text, as_user, **filters).hits]


def engine_env(engine: str) -> dict[str, str]:
    if engine == "embedded":
        return {}
    url = os.environ.get("CASELLA_TEST_MEILI_URL")
    if not url:
        pytest.skip("no Meilisearch server to test against: set CASELLA_TEST_MEILI_URL "
                    "(and CASELLA_TEST_MEILI_KEY) to a server, e.g. `docker compose up -d meilisearch`")
    return {"CASELLA_SEARCH_URL": url, "CASELLA_SEARCH_API_KEY": os.environ.get("CASELLA_TEST_MEILI_KEY", ""),
            "CASELLA_SEARCH_INDEX_NAME": f"casella_test_{uuid.uuid4().hex[:10]}"}


@pytest.fixture(scope="module", params=["embedded", "meilisearch"])
def inst(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installation]:
    engine = request.param
    extra = engine_env(engine)
    tmp = tmp_path_factory.mktemp(f"search-{engine}")
    env = make_env(tmp / "data", f"sqlite:///{tmp / 'casella.db'}", **extra)
    cli = Cli(env)
    for account, options in (("ufficio", ()), ("vendite", ()), ("pec", ("--pec",)), ("privata", ())):
        cli("account", "add", account, *options)
    cli("group", "add", "front")
    for username, role, groups in (("anna", "admin", ""), ("oscar", "operator", "front"), ("carla", "operator", ""),
                                   ("alberto", "agent", ""), ("bruno", "agent", "")):
        cli("user", "add", username, "--role", role, "--groups", groups, "--no-password")
    cli("account", "grant", "ufficio", "--group", "front")
    (tmp / "contacts.csv").write_text(CONTACTS, encoding="utf-8")
    cli("contacts", "import", str(tmp / "contacts.csv"))
    for where, mails in corpus().items():
        account, folder = where.split("/")
        cli("import", str(write_folder(tmp / "mail" / account / folder, mails)), "--account", account,
            "--folder", folder)

    settings = Settings.load(env)
    db = Database.from_settings(settings)
    with db.session() as session:
        ids = {mid.split("@")[0]: i for i, mid in session.execute(select(Message.id, Message.message_id))}
        users = {u.username: u.id for u in session.scalars(select(User))}
        # What routing and people will do through their own commands: tag, file, assign.
        session.add(MessageTag(message_id=ids["contratto"], tag="scadenza"))
        pratica = Pratica(code="PR-2026-017", title="Fornitura Globex")
        session.add(pratica)
        session.flush()
        session.add(MessagePratica(message_id=ids["invoices"], pratica_id=pratica.id))
        session.get(Message, ids["preventivo"]).assigned_user_id = users["carla"]
        session.get(Message, ids["raccomandata"]).extra = {"pec_kind": "accettazione"}
        privata = session.scalar(select(Account).where(Account.name == "privata"))
        privata.owner_user_id = users["oscar"]
        enqueue(session, [ids["contratto"], ids["invoices"], ids["preventivo"], ids["raccomandata"]])
    index = open_index(settings)
    drain(settings, db, index)
    protocols = {m["message_id"].split("@")[0]: m["protocol"] for m in cli("message", "list", "--json").json()}
    yield Installation(engine, cli, settings, db, index, ids, protocols)
    if engine == "meilisearch":
        index.client.delete_index(settings.search_index_name)  # type: ignore[attr-defined]
    index.close()
    db.dispose()


# ---------------------------------------------------------------- words
def test_exact_word(inst: Installation) -> None:
    assert inst.find("Pontedera") == ["fattura"]
    assert inst.find("lavori Pontedera") == ["fattura"]


def test_one_typo_from_five_letters(inst: Installation) -> None:
    assert "fattura" in inst.find("fatura ")
    assert "fattura" in inst.find("Pontedra")


def test_two_typos_from_nine_letters(inst: Installation) -> None:
    assert inst.find("ristruturazzione ") == ["preventivo"]
    assert inst.find("racomandatta ") == ["raccomandata"]


def test_two_typos_are_too_many_under_nine_letters(inst: Installation) -> None:
    assert inst.find("fxtturx ") == []


def test_no_typo_under_five_letters(inst: Installation) -> None:
    assert inst.find("Bari ") == ["collaudo_subject"]
    assert inst.find("Bara ") == []
    assert inst.find("Bara") == []


def test_last_word_is_a_prefix_while_typing(inst: Installation) -> None:
    assert "preventivo" in inst.find("prevent")
    assert inst.find("richiesta ristruttura") == ["preventivo"]
    assert inst.find("Ponte") == ["fattura"]
    assert inst.find("Ponte ") == []  # a finished word is not a prefix


def test_italian_and_english_word_forms(inst: Installation) -> None:
    assert {"fattura", "invoices"} <= set(inst.find("fattura "))
    assert {"fattura", "invoices"} <= set(inst.find("fatture "))
    assert {"fattura", "invoices"} <= set(inst.find("invoice "))
    assert {"fattura", "invoices"} <= set(inst.find("invoices "))


def test_accents_do_not_matter(inst: Installation) -> None:
    assert set(inst.find("citta ")) == {"fattura", "preventivo"}
    assert set(inst.find("città ")) == {"fattura", "preventivo"}
    assert inst.find("novita") == ["newsletter"]


def test_html_only_body_is_searched_as_text(inst: Installation) -> None:
    assert inst.find("primavera") == ["newsletter"]
    assert inst.find("nascosto") == []  # script content is not text


def test_sender_and_recipients(inst: Installation) -> None:
    assert inst.find("Smith") == ["invoices"]
    assert inst.find("tecnico@studioferrari.it") == ["contratto"]
    assert set(inst.find("lucia.verdi@edilnord.it")) == {"contratto"}


def test_phrase_and_exclusion(inst: Installation) -> None:
    assert inst.find('"contratto fornitura"') == ["contratto"]
    assert set(inst.find("collaudo")) == {"collaudo_subject", "collaudo_body"}
    assert inst.find("collaudo -impianto") == ["collaudo_body"]


# ---------------------------------------------------------------- what else is searchable
def test_protocol_number_in_both_forms(inst: Installation) -> None:
    label = inst.protocols["fattura"]  # 2026/0000001
    year, number = label.split("/")
    short = f"{year}/{int(number)}"
    assert inst.find(short)[:1] == ["fattura"]
    assert inst.find(label)[:1] == ["fattura"]
    hits = inst.results(short).hits
    assert hits[0].protocol == label


def test_attachment_name(inst: Installation) -> None:
    assert inst.find("estratto") == ["invoices"]
    assert inst.find("contratto_fornitura.docx") == ["contratto"]


def test_attachment_text_pdf_and_docx(inst: Installation) -> None:
    assert inst.find("ZETA9931") == ["invoices"]
    assert inst.find("quintale") == ["contratto"]


def test_company_and_contact(inst: Installation) -> None:
    assert set(inst.find("Costruzioni")) == {"fattura", "contratto", "archivio"}
    assert set(inst.find("Rossetti")) == {"fattura", "archivio"}
    assert set(inst.find("Globex")) == {"invoices", "globex_pec"}


def test_tag_and_pratica_code(inst: Installation) -> None:
    assert inst.find("scadenza") == ["contratto"]
    assert inst.find("PR-2026-017") == ["invoices"]


# ---------------------------------------------------------------- ranking and snippets
def test_subject_match_beats_body_match(inst: Installation) -> None:
    assert inst.find("collaudo") == ["collaudo_subject", "collaudo_body"]  # the body one is newer


def test_equal_relevance_newer_first(inst: Installation) -> None:
    assert inst.find("sopralluogo") == ["verbale_new", "verbale_old"]


def test_snippet_highlights_the_match(inst: Installation) -> None:
    hit = inst.results("ristrutturazione").hits[0]
    assert "<mark>ristrutturazione</mark>" in hit.snippet.lower()
    typo = inst.results("Pontedra").hits[0]
    assert "<mark>pontedera</mark>" in typo.snippet.lower()


def test_snippet_is_escaped_html(inst: Installation) -> None:
    hit = inst.results("primavera").hits[0]
    assert "<b>" not in hit.snippet and "<mark>" in hit.snippet


def test_hit_fields(inst: Installation) -> None:
    hit = inst.results("Pontedera").hits[0]
    assert hit.id == inst.ids["fattura"]
    assert hit.message_id == "fattura@test.casella"
    assert hit.subject == "Fattura lavori Pontedera"
    assert (hit.from_name, hit.from_addr) == ("M. Rossi", "mario.rossi@edilnord.it")
    assert hit.date == day(2)
    assert (hit.account, hit.folder) == ("ufficio", "INBOX")
    assert hit.protocol == inst.protocols["fattura"]
    assert hit.score > 0


# ---------------------------------------------------------------- filters
def test_filter_account_and_folder(inst: Installation) -> None:
    assert set(inst.find("", account="vendite")) == {"preventivo", "newsletter"}
    assert inst.find("", folder="Archivio") == ["archivio"]
    assert inst.find("Documento", account="vendite") == []


def test_filter_dates(inst: Installation) -> None:
    assert inst.find("", since="2026-03-09", until="2026-03-10") == ["raccomandata", "preventivo"]
    assert inst.find("", until="2026-01-31") == ["archivio"]


def test_filter_sender(inst: Installation) -> None:
    assert inst.find("", sender="lucia.verdi@edilnord.it") == ["contratto"]
    assert set(inst.find("", sender="edilnord.it")) == {"fattura", "contratto", "archivio"}


def test_filter_attachments(inst: Installation) -> None:
    assert set(inst.find("", has_attachment=True)) == {"invoices", "contratto"}
    assert "invoices" not in inst.find("", has_attachment=False)


def test_filter_pec_kind(inst: Installation) -> None:
    assert inst.find("", pec_kind="accettazione") == ["raccomandata"]


def test_filter_company(inst: Installation) -> None:
    assert set(inst.find("", company="Costruzioni Edilnord S.r.l.")) == {"fattura", "contratto", "archivio"}
    assert inst.find("bozza", company="globex corporation") == []


def test_filter_assigned_tag_pratica(inst: Installation) -> None:
    assert inst.find("", assigned="carla") == ["preventivo"]
    assert inst.find("", tag="scadenza") == ["contratto"]
    assert inst.find("", pratica="PR-2026-017") == ["invoices"]


def test_filter_unknown_sender(inst: Installation) -> None:
    with inst.db.session() as session:
        unknown = {m.split("@")[0] for m in session.scalars(select(Message.message_id)
                                                             .where(Message.link_kind == "unknown"))}
    assert "preventivo" in unknown and "fattura" not in unknown
    assert set(inst.find("", unknown=True)) == unknown


def test_filters_combine_with_text(inst: Installation) -> None:
    assert inst.find("allegato", has_attachment=True, sender="globex.com") == ["invoices"]


# ---------------------------------------------------------------- who sees what
ALL_BUT_PRIVATE = {"fattura", "invoices", "contratto", "collaudo_subject", "collaudo_body", "verbale_old",
                   "verbale_new", "archivio", "preventivo", "newsletter", "raccomandata", "globex_pec"}


def test_admin_sees_everything_but_others_personal_mailboxes(inst: Installation) -> None:
    assert set(inst.find("", "anna")) == ALL_BUT_PRIVATE
    assert set(inst.find("")) == ALL_BUT_PRIVATE | {"privata"}  # the command line sees all


def test_agent_sees_only_his_companies(inst: Installation) -> None:
    assert set(inst.find("", "alberto")) == {"fattura", "contratto", "archivio"}
    assert set(inst.find("", "bruno")) == {"invoices", "globex_pec"}
    # Another agent's message never appears, not even for its exact words.
    assert inst.find("Invoices for March", "alberto") == []
    assert inst.find("ZETA9931", "alberto") == []
    assert inst.find("Pontedera", "bruno") == []
    assert inst.results("Invoices for March", "alberto").total == 0


def test_operator_sees_his_groups_accounts_and_his_own(inst: Installation) -> None:
    ufficio = {"fattura", "invoices", "contratto", "collaudo_subject", "collaudo_body", "verbale_old",
               "verbale_new", "archivio"}
    assert set(inst.find("", "oscar")) == ufficio | {"privata"}
    assert inst.find("ristrutturazione", "oscar") == []
    assert inst.find("", "carla") == ["preventivo"]  # assigned to her, in an account she is not granted
    assert inst.find("colloquio", "carla") == []


# ---------------------------------------------------------------- the command
def test_cli_json(inst: Installation) -> None:
    hits = inst.cli("search", "Pontedera", "--json").json()
    assert [h["id"] for h in hits] == [inst.ids["fattura"]]
    h = hits[0]
    assert {"id", "message_id", "protocol", "subject", "from", "date", "snippet", "account", "folder",
            "score"} <= set(h)
    assert h["protocol"] == inst.protocols["fattura"] and h["from"]["addr"] == "mario.rossi@edilnord.it"
    assert "<mark>" in h["snippet"]


def test_cli_as_user_and_filters(inst: Installation) -> None:
    assert inst.cli("search", "ZETA9931", "--as", "alberto", "--json").json() == []
    assert [h["id"] for h in inst.cli("search", "ZETA9931", "--as", "bruno", "--json").json()] == [inst.ids["invoices"]]
    hits = inst.cli("search", "", "--company", "Costruzioni Edilnord S.r.l.", "--has-attachment", "--json").json()
    assert [h["id"] for h in hits] == [inst.ids["contratto"]]
    assert len(inst.cli("search", "", "--limit", "2", "--json").json()) == 2


def test_cli_says_who_it_searches_as(inst: Installation) -> None:
    out = inst.cli("search", "fattura").stdout
    assert "command-line administrator" in out and "Fattura lavori Pontedera" in out
    assert "as alberto (agent)" in inst.cli("search", "fattura", "--as", "alberto").stdout


def test_cli_unknown_user_is_a_clear_error(inst: Installation) -> None:
    result = inst.cli("search", "fattura", "--as", "nessuno", check=False)
    assert result.returncode == 2
    assert "no user named 'nessuno'" in result.stderr
