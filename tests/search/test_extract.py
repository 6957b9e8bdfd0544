"""search.extract.extract_text on real documents built here byte by byte (PDF written by
hand, DOCX/ODT assembled with zipfile, XLSX saved by openpyxl), on hostile ones (zip
bombs, entity bombs, encrypted and corrupt files) and on random bytes (hypothesis)."""

from __future__ import annotations

import datetime
import email
import email.policy
import functools
import io
import logging
import struct
import time
import zipfile
from pathlib import Path

import openpyxl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pypdf import PdfReader, PdfWriter

from search.extract import extract_text

pytestmark = pytest.mark.unit

CORPUS = Path(__file__).resolve().parents[1] / "corpus" / "real"

DOCX_TYPE = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
ODT_TYPE = "application/vnd.oasis.opendocument.text"


# --- builders -------------------------------------------------------------------------


def _pdf_string(text: str) -> bytes:
    raw = text.encode("cp1252")
    return b"(" + raw.replace(b"\\", b"\\\\").replace(b"(", b"\\(").replace(b")", b"\\)") + b")"


def make_pdf(*pages: str, streams: list[bytes] | None = None) -> bytes:
    """A minimal valid PDF, one Helvetica (WinAnsi) text line per page (or the given
    content streams), with a correct cross-reference table."""
    if streams is None:
        streams = [b"BT /F1 24 Tf 72 720 Td " + _pdf_string(text) + b" Tj ET" for text in pages]
    n = len(streams)
    font = 3 + 2 * n
    objects: list[bytes] = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids ["
        + b" ".join(b"%d 0 R" % (3 + 2 * i) for i in range(n))
        + b"] /Count %d >>" % n,
    ]
    for i, stream in enumerate(streams):
        objects.append(
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
            b"/Resources << /Font << /F1 %d 0 R >> >> /Contents %d 0 R >>" % (font, 4 + 2 * i)
        )
        objects.append(b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream")
    objects.append(
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>"
    )
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % off for off in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    return bytes(out)


def encrypt_pdf(pdf: bytes, user: str, owner: str) -> bytes:
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(pdf)))
    writer.encrypt(user_password=user, owner_password=owner, algorithm="AES-128")
    buf = io.BytesIO()
    writer.write(buf)
    return buf.getvalue()


W_NS = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"

CONTENT_TYPES = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
    '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
    '<Default Extension="xml" ContentType="application/xml"/>'
    '<Override PartName="/word/document.xml" ContentType="application/vnd.openxmlformats-'
    'officedocument.wordprocessingml.document.main+xml"/>'
    '<Override PartName="/word/header1.xml" ContentType="application/vnd.openxmlformats-'
    'officedocument.wordprocessingml.header+xml"/>'
    '<Override PartName="/word/footer1.xml" ContentType="application/vnd.openxmlformats-'
    'officedocument.wordprocessingml.footer+xml"/>'
    "</Types>"
)
PACKAGE_RELS = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/'
    'relationships/officeDocument" Target="word/document.xml"/>'
    "</Relationships>"
)
DOCUMENT_RELS = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/'
    'relationships/header" Target="header1.xml"/>'
    '<Relationship Id="rId2" Type="http://schemas.openxmlformats.org/officeDocument/2006/'
    'relationships/footer" Target="footer1.xml"/>'
    "</Relationships>"
)


def w_paragraphs(*paragraphs: str) -> str:
    return "".join(f'<w:p><w:r><w:t xml:space="preserve">{p}</w:t></w:r></w:p>' for p in paragraphs)


def w_document(body: str) -> str:
    return (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
        f'<w:document xmlns:w="{W_NS}" '
        'xmlns:mc="http://schemas.openxmlformats.org/markup-compatibility/2006">'
        f"<w:body>{body}<w:sectPr/></w:body></w:document>"
    )


def w_part(root: str, body: str) -> str:
    return (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
        f'<w:{root} xmlns:w="{W_NS}">{body}</w:{root}>'
    )


DOCX_BODY = (
    # One paragraph split over three runs, as Word does after an edit.
    "<w:p><w:pPr><w:tabs><w:tab w:val=\"left\" w:pos=\"720\"/></w:tabs></w:pPr>"
    "<w:r><w:t>Fattura </w:t></w:r><w:r><w:rPr><w:b/></w:rPr><w:t>numero 42</w:t></w:r>"
    '<w:r><w:t xml:space="preserve"> città</w:t></w:r></w:p>'
    # Tracked deletion and a field code: neither is text of the document.
    "<w:p><w:del><w:r><w:delText>cancellato</w:delText></w:r></w:del>"
    '<w:r><w:instrText> PAGE </w:instrText></w:r><w:r><w:t>Importo</w:t><w:tab/>'
    "<w:t>1.250,00 €</w:t></w:r></w:p>"
    # A table.
    "<w:tbl><w:tr><w:tc><w:p><w:r><w:t>Cella A</w:t></w:r></w:p></w:tc>"
    "<w:tc><w:p><w:r><w:t>Cella B</w:t></w:r></w:p></w:tc></w:tr></w:tbl>"
    # A text box: the VML fallback repeats it and must not be read twice.
    "<w:p><w:r><mc:AlternateContent><mc:Choice Requires=\"wps\">"
    "<w:txbxContent><w:p><w:r><w:t>Casella di testo</w:t></w:r></w:p></w:txbxContent>"
    "</mc:Choice><mc:Fallback><w:txbxContent><w:p><w:r><w:t>Casella di testo</w:t></w:r>"
    "</w:p></w:txbxContent></mc:Fallback></mc:AlternateContent></w:r></w:p>"
)


def make_zip(members: dict[str, str | bytes], stored: tuple[str, ...] = ()) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, content in members.items():
            data = content.encode("utf-8") if isinstance(content, str) else content
            zf.writestr(
                name, data, zipfile.ZIP_STORED if name in stored else zipfile.ZIP_DEFLATED
            )
    return buf.getvalue()


def make_docx(document: str | bytes | None = None, **extra: str | bytes) -> bytes:
    members: dict[str, str | bytes] = {
        "[Content_Types].xml": CONTENT_TYPES,
        "_rels/.rels": PACKAGE_RELS,
        "word/_rels/document.xml.rels": DOCUMENT_RELS,
        "word/document.xml": document if document is not None else w_document(DOCX_BODY),
        "word/header1.xml": w_part("hdr", w_paragraphs("Intestazione Comune di Prova")),
        "word/footer1.xml": w_part("ftr", w_paragraphs("Pagina di piede")),
    }
    members.update({k.replace("__", "/"): v for k, v in extra.items()})
    return make_zip(members)


ODF_NS = (
    'xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" '
    'xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0" '
    'xmlns:table="urn:oasis:names:tc:opendocument:xmlns:table:1.0"'
)


def odf_content(body: str) -> str:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<office:document-content {ODF_NS} office:version="1.3">'
        f"<office:body>{body}</office:body></office:document-content>"
    )


ODT_BODY = (
    "<office:text>"
    "<text:h text:outline-level=\"1\">Determina dirigenziale</text:h>"
    "<text:p>Oggetto:<text:s/><text:span>affidamento</text:span> del servizio"
    "<text:tab/>n.<text:s text:c=\"3\"/>7<text:line-break/>seconda riga</text:p>"
    "<text:tracked-changes><text:changed-region><text:deletion>"
    "<text:p>testo rimosso</text:p></text:deletion></text:changed-region></text:tracked-changes>"
    "<table:table><table:table-row><table:table-cell><text:p>Cella uno</text:p>"
    "</table:table-cell></table:table-row></table:table>"
    "</office:text>"
)

MANIFEST = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    '<manifest:manifest xmlns:manifest="urn:oasis:names:tc:opendocument:xmlns:manifest:1.0" '
    'manifest:version="1.3"><manifest:file-entry manifest:full-path="/" '
    f'manifest:media-type="{ODT_TYPE}"/><manifest:file-entry manifest:full-path="content.xml" '
    'manifest:media-type="text/xml"/></manifest:manifest>'
)


def make_odf(content: str | bytes, mimetype: str = ODT_TYPE) -> bytes:
    # The mimetype member comes first and uncompressed, as the OpenDocument spec asks.
    return make_zip(
        {"mimetype": mimetype, "content.xml": content, "META-INF/manifest.xml": MANIFEST},
        stored=("mimetype",),
    )


def make_xlsx() -> bytes:
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "Protocollo"
    ws.append(["Numero", "Oggetto", "Importo", "Data"])
    ws.append([42, "Fattura città", 1250.5, None])
    ws.append([43, None, 7.0, "2024-03-01"])
    ws["D2"] = datetime.date(2024, 2, 29)
    second = wb.create_sheet("Mittenti")
    second["B5"] = "Ufficio tributi"
    second["A1"] = "=1+1"  # a formula with no cached value: nothing to show
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


BILLION_LAUGHS = (
    '<?xml version="1.0"?>\n<!DOCTYPE lolz [\n<!ENTITY lol "lol">\n'
    + "".join(
        f'<!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">\n'
        for i in range(1, 10)
    )
    + "]>\n"
)


# --- PDF ------------------------------------------------------------------------------


def test_pdf_text():
    pdf = make_pdf("Fattura numero 42 città", "Seconda pagina (allegato)")
    PdfReader(io.BytesIO(pdf))  # the builder writes a valid file
    text = extract_text(pdf, "application/pdf", "fattura.pdf")
    assert "Fattura numero 42 città" in text
    assert "Seconda pagina (allegato)" in text
    assert text.index("Fattura") < text.index("Seconda")


@pytest.mark.parametrize(
    ("ctype", "filename"),
    [
        ("application/octet-stream", "fattura.pdf"),
        ("application/octet-stream", "scansione"),
        ("application/octet-stream", ""),
        ("text/plain", "leggimi.txt"),
        ("", "documento.bin"),
    ],
)
def test_pdf_found_by_magic_bytes_whatever_the_label(ctype, filename):
    assert extract_text(make_pdf("Fattura numero 42"), ctype, filename) == "Fattura numero 42"


def test_pdf_with_junk_before_the_header():
    pdf = b"\r\n\r\n" + make_pdf("Preambolo tollerato")
    assert "Preambolo tollerato" in extract_text(pdf, "application/octet-stream", "x.pdf")


def test_pdf_encrypted_with_a_password_gives_nothing():
    pdf = encrypt_pdf(make_pdf("Segreto"), user="segreta", owner="proprietario")
    assert PdfReader(io.BytesIO(pdf)).is_encrypted
    assert extract_text(pdf, "application/pdf", "riservato.pdf") == ""


def test_pdf_with_owner_password_only_is_read():
    # An empty user password: every viewer opens it without asking, so does the index.
    pdf = encrypt_pdf(make_pdf("Solo stampa vietata"), user="", owner="proprietario")
    assert PdfReader(io.BytesIO(pdf)).is_encrypted
    assert extract_text(pdf, "application/pdf", "limitato.pdf") == "Solo stampa vietata"


@pytest.mark.parametrize(
    "damage",
    [
        lambda b: b[: len(b) // 2],
        lambda b: b[:20],
        lambda b: b"%PDF-1.7\n" + b"\x00" * 500,
        lambda b: b.replace(b"/Type /Pages", b"/Type /Pagez"),
        lambda b: b.replace(b"xref", b"xxxx"),
    ],
)
def test_pdf_corrupt_never_raises(damage):
    out = extract_text(damage(make_pdf("Fattura numero 42")), "application/pdf", "rotto.pdf")
    assert isinstance(out, str)


def test_pdf_label_without_pdf_bytes():
    assert extract_text(b"not a pdf at all", "application/pdf", "finto.pdf") == ""


def test_pdf_stops_reading_pages_once_max_chars_is_reached():
    pdf = make_pdf(*[f"Pagina numero {i} con testo" for i in range(200)])
    text = extract_text(pdf, "application/pdf", "lungo.pdf", max_chars=100)
    assert len(text) <= 100
    assert text.startswith("Pagina numero 0 con testo")


def test_pdf_page_with_a_large_content_stream():
    """Over 256 KB of operators: pypdf is followed operator by operator, stopped once
    enough text came, and its text is the same."""
    lines = [f"Riga {i}" for i in range(15_000)]
    stream = b"BT /F1 10 Tf 12 TL 72 720 Td " + b"".join(
        _pdf_string(line) + b" Tj T* " for line in lines
    ) + b"ET"
    assert len(stream) > 256_000
    pdf = make_pdf(streams=[stream, b"BT /F1 24 Tf 72 720 Td (Fine) Tj ET"])
    text = extract_text(pdf, "application/pdf", "registro.pdf")
    assert text.split("\n") == lines + ["Fine"]
    start = time.monotonic()
    short = extract_text(pdf, "application/pdf", "registro.pdf", max_chars=30)
    assert short == "Riga 0\nRiga 1\nRiga 2\nRiga 3"  # not "Ri": no half words
    assert time.monotonic() - start < 3


# --- DOCX -----------------------------------------------------------------------------


def test_docx_text():
    text = extract_text(make_docx(), DOCX_TYPE, "fattura.docx")
    lines = text.split("\n")
    assert "Fattura numero 42 città" in lines
    assert "Importo 1.250,00 €" in lines
    assert "Cella A" in lines and "Cella B" in lines
    assert text.count("Casella di testo") == 1
    assert "cancellato" not in text and "PAGE" not in text
    assert "Intestazione Comune di Prova" in lines and "Pagina di piede" in lines
    # Body first: when output is capped, the body is what survives.
    assert text.index("Fattura") < text.index("Intestazione")


def test_docx_found_by_content_not_label():
    text = extract_text(make_docx(), "application/octet-stream", "allegato")
    assert "Fattura numero 42 città" in text


def test_docx_main_part_from_package_relationships():
    rels = PACKAGE_RELS.replace("word/document.xml", "word/document2.xml")
    docx = make_zip(
        {
            "[Content_Types].xml": CONTENT_TYPES.replace("document.xml", "document2.xml"),
            "_rels/.rels": rels,
            "word/document2.xml": w_document(w_paragraphs("Parte principale rinominata")),
        }
    )
    assert extract_text(docx, DOCX_TYPE, "x.docx") == "Parte principale rinominata"


def test_docx_zip_bomb_declared_size():
    """A member whose headers declare 4 GB uncompressed: refused before any read."""
    docx = bytearray(make_docx())
    # Patch the uncompressed size of word/document.xml in the central directory.
    pos = 0
    while True:
        pos = docx.index(b"PK\x01\x02", pos)
        name_len = struct.unpack_from("<H", docx, pos + 28)[0]
        if docx[pos + 46 : pos + 46 + name_len] == b"word/document.xml":
            struct.pack_into("<I", docx, pos + 24, 0xFFFFFFF0)
            break
        pos += 4
    assert zipfile.ZipFile(io.BytesIO(bytes(docx))).getinfo("word/document.xml").file_size > 10**9
    start = time.monotonic()
    assert extract_text(bytes(docx), DOCX_TYPE, "bomba.docx") == ""
    assert time.monotonic() - start < 2


def test_docx_zip_bomb_real_deflate():
    """60 MB of XML whitespace deflates to about 60 KB: under max_bytes, over the limit."""
    filler = " " * 60_000_000
    document = w_document(w_paragraphs("Testo") + filler + w_paragraphs("fine"))
    docx = make_docx(document)
    assert len(docx) < 1_000_000
    start = time.monotonic()
    assert extract_text(docx, DOCX_TYPE, "bomba.docx") == ""
    assert time.monotonic() - start < 2


def test_docx_billion_laughs():
    document = BILLION_LAUGHS + (
        f'<w:document xmlns:w="{W_NS}"><w:body><w:p><w:r><w:t>&lol9;</w:t></w:r></w:p>'
        "</w:body></w:document>"
    )
    start = time.monotonic()
    assert extract_text(make_docx(document), DOCX_TYPE, "lol.docx") == ""
    assert time.monotonic() - start < 1


def test_docx_external_entity():
    document = (
        '<?xml version="1.0"?>\n<!DOCTYPE d [<!ENTITY x SYSTEM "file:///etc/passwd">]>\n'
        f'<w:document xmlns:w="{W_NS}"><w:body><w:p><w:r><w:t>&x;</w:t></w:r></w:p>'
        "</w:body></w:document>"
    )
    assert extract_text(make_docx(document), DOCX_TYPE, "xxe.docx") == ""


def test_docx_malformed_xml():
    document = w_document(w_paragraphs("Fattura numero 42")).replace("</w:body>", "</w:bod>")
    assert extract_text(make_docx(document), DOCX_TYPE, "rotto.docx") == ""


def test_docx_not_a_zip_and_broken_zip():
    assert extract_text(b"PK\x03\x04 not really", DOCX_TYPE, "x.docx") == ""
    docx = make_docx()
    assert isinstance(extract_text(docx[: len(docx) // 2], DOCX_TYPE, "x.docx"), str)
    assert extract_text(b"Just text", DOCX_TYPE, "x.docx") == ""


def test_plain_zip_archive_is_not_read():
    archive = make_zip({"leggimi.txt": "Fattura numero 42"})
    assert extract_text(archive, "application/zip", "archivio.zip") == ""


def test_docx_stops_once_max_chars_is_reached():
    document = w_document(w_paragraphs(*[f"Paragrafo {i}" for i in range(50_000)]))
    start = time.monotonic()
    text = extract_text(make_docx(document), DOCX_TYPE, "lungo.docx", max_chars=50)
    assert time.monotonic() - start < 1  # 50 000 paragraphs are not all parsed
    assert text.startswith("Paragrafo 0\nParagrafo 1")
    assert len(text) <= 50


# --- OpenDocument ---------------------------------------------------------------------


def test_odt_text():
    text = extract_text(make_odf(odf_content(ODT_BODY)), ODT_TYPE, "determina.odt")
    assert text.split("\n") == [
        "Determina dirigenziale",
        "Oggetto: affidamento del servizio n. 7",
        "seconda riga",
        "Cella uno",
    ]


def test_ods_and_odp_by_content():
    ods_body = (
        "<office:spreadsheet><table:table table:name=\"Foglio1\"><table:table-row>"
        "<table:table-cell table:number-columns-repeated=\"16384\"><text:p>Ripetuta</text:p>"
        "</table:table-cell></table:table-row></table:table></office:spreadsheet>"
    )
    ods = make_odf(odf_content(ods_body), "application/vnd.oasis.opendocument.spreadsheet")
    assert extract_text(ods, "application/octet-stream", "foglio.ods") == "Ripetuta"
    odp_body = (
        '<office:presentation><draw:page xmlns:draw="urn:oasis:names:tc:opendocument:xmlns:'
        'drawing:1.0"><draw:frame><draw:text-box><text:p>Titolo diapositiva</text:p>'
        "</draw:text-box></draw:frame></draw:page></office:presentation>"
    )
    odp = make_odf(odf_content(odp_body), "application/vnd.oasis.opendocument.presentation")
    assert extract_text(odp, "", "") == "Titolo diapositiva"


def test_odt_billion_laughs():
    content = BILLION_LAUGHS + (
        f"<office:document-content {ODF_NS}><office:body><office:text>"
        "<text:p>&lol9;</text:p></office:text></office:body></office:document-content>"
    )
    start = time.monotonic()
    assert extract_text(make_odf(content), ODT_TYPE, "lol.odt") == ""
    assert time.monotonic() - start < 1


def test_odt_without_content():
    odt = make_zip({"mimetype": ODT_TYPE}, stored=("mimetype",))
    assert extract_text(odt, ODT_TYPE, "vuoto.odt") == ""


# --- XLSX -----------------------------------------------------------------------------


def test_xlsx_text():
    text = extract_text(make_xlsx(), XLSX_TYPE, "registro.xlsx")
    lines = text.split("\n")
    assert "Numero Oggetto Importo Data" in lines
    assert "42 Fattura città 1250.5 2024-02-29" in lines
    assert "43 7 2024-03-01" in lines
    assert "Ufficio tributi" in lines
    assert "Protocollo" in lines and "Mittenti" in lines
    assert "=1+1" not in text


def test_xlsx_by_content_and_dtd_in_a_part():
    xlsx = make_xlsx()
    assert "Fattura città" in extract_text(xlsx, "application/octet-stream", "")
    # Rebuild with a DTD in the shared strings: refused before openpyxl sees it.
    src = zipfile.ZipFile(io.BytesIO(xlsx))
    members = {i.filename: src.read(i) for i in src.infolist()}
    name = next(n for n in members if n.startswith("xl/worksheets/"))
    sheet = members[name]
    if sheet.startswith(b"<?xml"):
        sheet = sheet.split(b"?>", 1)[1]
    members[name] = BILLION_LAUGHS.encode() + sheet
    assert extract_text(make_zip(members), XLSX_TYPE, "lol.xlsx") == ""


# --- text and HTML --------------------------------------------------------------------


def test_text_cp1252():
    data = "Fattura n° 42 — città di Forlì, “importo” 10 €\r\n".encode("cp1252")
    with pytest.raises(UnicodeDecodeError):
        data.decode("utf-8")
    assert extract_text(data, "text/plain", "nota.txt") == (
        "Fattura n° 42 — città di Forlì, “importo” 10 €"
    )


def test_text_utf8_declared_charset_and_bom():
    text = "Protocollo № 42 – città"
    assert extract_text(text.encode("utf-8"), "text/plain", "a.txt") == text
    assert extract_text(text.encode("utf-8-sig"), "text/plain", "a.txt") == text
    assert extract_text(text.encode("utf-16"), "text/plain", "a.txt") == text
    latin = "città è già".encode("iso-8859-15")
    assert extract_text(latin, 'text/plain; charset="iso-8859-15"', "a.txt") == "città è già"


@pytest.mark.parametrize(
    ("ctype", "filename", "data"),
    [
        ("text/csv", "elenco.csv", b"numero;oggetto\n42;Fattura citt\xe0\n"),
        ("application/octet-stream", "elenco.csv", b"numero;oggetto\n42;Fattura citt\xe0\n"),
        ("text/xml", "fattura.xml", b"<FatturaElettronica><Numero>42</Numero></FatturaElettronica>"),
        ("application/xml", "", b"<a>42</a>"),
        ("application/json", "", b'{"numero": 42}'),
        ("application/octet-stream", "dati.json", b'{"numero": 42}'),
        ("", "LEGGIMI.TXT", b"numero 42"),
        ("application/octet-stream", "=?utf-8?B?bm90YS50eHQ=?=", b"numero 42"),  # nota.txt
    ],
)
def test_text_types_by_type_or_extension(ctype, filename, data):
    assert "42" in extract_text(data, ctype, filename)


def test_unknown_kinds_are_skipped():
    assert extract_text(b"numero 42", "application/octet-stream", "dati.bin") == ""
    assert extract_text(b"numero 42", "image/png", "foto.png") == ""
    assert extract_text(b"\x89PNG\r\n\x1a\n" + b"\x00" * 20, "text/plain", "a.txt") == ""
    assert extract_text(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 500, "application/msword", "a.doc") == ""
    assert extract_text(b"abc\x00def\x00" * 100, "text/plain", "binario.txt") == ""
    assert extract_text(bytes(range(256)) * 10, "text/plain", "binario.txt") == ""
    # A stray control byte in a real text does not make it binary.
    assert extract_text(b"Fattura\x00 numero 42", "text/plain", "a.txt") == "Fattura numero 42"


def test_xml_attachment_is_plain_text_not_parsed():
    # An .xml attachment is indexed as text: the entities are never expanded.
    data = (BILLION_LAUGHS + "<lolz>&lol9;</lolz>").encode()
    start = time.monotonic()
    text = extract_text(data, "application/xml", "lol.xml")
    assert time.monotonic() - start < 1
    assert text == data.decode().strip()
    assert "lollollol" not in text


def test_html():
    page = (
        "<!DOCTYPE html><html><head><meta charset='windows-1252'><title>Avviso</title>"
        "<style>p { color: red }</style><script>var segreto = 'non indicizzare';</script>"
        "</head><body><p>Fattura&nbsp;numero 42 &amp; citt&agrave;</p>"
        "<div>Importo: <b>10</b> €</div><script type='module'>alert(1)</script>"
        "<table><tr><td>Cella</td><td>Due</td></tr></table></body></html>"
    ).encode("cp1252")
    text = extract_text(page, "text/html", "avviso.html")
    assert text.split("\n") == ["Avviso", "Fattura numero 42 & città", "Importo: 10 €", "Cella", "Due"]
    assert "segreto" not in text and "color" not in text and "alert" not in text


def test_html_by_extension():
    assert extract_text(b"<p>Ciao <i>mondo</i></p>", "application/octet-stream", "a.htm") == "Ciao mondo"


# --- rules ----------------------------------------------------------------------------


def test_over_size_attachment_is_skipped():
    pdf = make_pdf("Fattura numero 42")
    assert extract_text(pdf, "application/pdf", "a.pdf", max_bytes=len(pdf) - 1) == ""
    assert extract_text(pdf, "application/pdf", "a.pdf", max_bytes=len(pdf)) == "Fattura numero 42"
    big = b"parola " * 2_000_000
    assert extract_text(big, "text/plain", "grande.txt") == ""  # 14 MB > 10 MB default


@pytest.mark.parametrize(
    ("ctype", "filename"),
    [
        ("application/pkcs7-mime", "fattura.xml.p7m"),
        ("application/octet-stream", "fattura.pdf.p7m"),
        ("application/x-pkcs7-mime", "smime.p7m"),
        ("application/pkcs7-signature", "smime.p7s"),
    ],
)
def test_signed_envelopes_are_skipped(ctype, filename):
    # Even when the signed content (here a PDF) shows through the envelope.
    assert extract_text(make_pdf("Firmato"), ctype, filename) == ""


def test_pkcs7_recognised_by_its_der_header():
    der = bytes.fromhex("3080") + bytes.fromhex("06092a864886f70d010702") + make_pdf("Firmato")
    assert extract_text(der, "application/octet-stream", "fattura.pdf") == ""


@pytest.mark.parametrize("max_chars", [1, 10, 37, 1000])
def test_max_chars_is_honoured(max_chars):
    body = "\n".join(f"Riga {i} città" for i in range(5000))
    docs = [
        (body.encode("utf-8"), "text/plain", "a.txt"),
        (f"<p>{body}</p>".encode(), "text/html", "a.html"),
        (make_docx(w_document(w_paragraphs(*body.split("\n")))), DOCX_TYPE, "a.docx"),
        (make_pdf(*body.split("\n")[:50]), "application/pdf", "a.pdf"),
    ]
    for data, ctype, name in docs:
        text = extract_text(data, ctype, name, max_chars=max_chars)
        assert 0 < len(text) <= max_chars, name
        assert text == text.strip()
    assert extract_text(body.encode(), "text/plain", "a.txt", max_chars=0) == ""


def test_whitespace_and_junk_normalised():
    data = "  Uno\t\tdue\u00a0 tre\r\n\r\n\r\n\x0cquattro\x00\x07 cinque\u200b\u00ad \n  ".encode()
    assert extract_text(data, "text/plain", "a.txt") == "Uno due tre\nquattro cinque"
    decomposed = "citta\u0300".encode()
    assert extract_text(decomposed, "text/plain", "a.txt") == "città"


def test_empty_and_odd_arguments():
    assert extract_text(b"", "text/plain", "a.txt") == ""
    assert extract_text(bytearray(b"numero 42"), "text/plain", "a.txt") == "numero 42"
    assert extract_text(memoryview(b"numero 42"), "text/plain", "a.txt") == "numero 42"
    assert extract_text(b"numero 42", None, None) == ""  # type: ignore[arg-type]
    assert extract_text("numero 42", "text/plain", "a.txt") == ""  # type: ignore[arg-type]


def test_failures_are_logged_at_debug(caplog):
    with caplog.at_level(logging.DEBUG, logger="search.extract"):
        extract_text(make_docx("<w:document"), DOCX_TYPE, "rotto.docx")
    assert any(r.levelno == logging.DEBUG and "rotto.docx" in r.getMessage() for r in caplog.records)
    assert not [r for r in caplog.records if r.name == "search.extract" and r.levelno > logging.DEBUG]


def test_time_budget_keeps_the_text_so_far(monkeypatch):
    import search.extract as extract

    monkeypatch.setattr(extract, "_TIME_BUDGET", 0.0)
    pdf = make_pdf("Prima pagina", "Seconda pagina", "Terza pagina")
    assert extract_text(pdf, "application/pdf", "a.pdf") == "Prima pagina"


@pytest.mark.parametrize(
    "page",
    [
        b"<a " + b"x=1 " * 2_000_000,  # html.parser rescans an unclosed tag
        b"</" * 4_500_000,  # ... and steps one character at a time in close()
        b"<b></b>" * 1_400_000,
        b"<!--" + b"a" * 9_000_000,
    ],
)
def test_html_pathological_markup_is_fast(page):
    start = time.monotonic()
    assert isinstance(extract_text(page, "text/html", "a.html"), str)
    assert time.monotonic() - start < 5


# --- never raises ---------------------------------------------------------------------

KINDS = [
    ("application/pdf", "a.pdf"),
    (DOCX_TYPE, "a.docx"),
    (XLSX_TYPE, "a.xlsx"),
    (ODT_TYPE, "a.odt"),
    ("text/plain", "a.txt"),
    ("text/html", "a.html"),
    ("application/octet-stream", ""),
    ("application/pkcs7-mime", "a.p7m"),
]
@functools.cache
def samples() -> list[bytes]:
    return [make_pdf("Fattura numero 42", "due"), make_docx(), make_odf(odf_content(ODT_BODY)), make_xlsx()]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.binary(max_size=4096), kind=st.sampled_from(KINDS))
def test_random_bytes_never_raise(data, kind):
    assert isinstance(extract_text(data, *kind), str)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    which=st.integers(0, 3),
    edits=st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.binary(min_size=1, max_size=8)), max_size=6),
    cut=st.floats(0.05, 1),
    kind=st.sampled_from(KINDS),
)
def test_damaged_documents_never_raise(which, edits, cut, kind):
    data = bytearray(samples()[which])
    for where, junk in edits:
        at = int(where * len(data))
        data[at : at + len(junk)] = junk
    data = data[: max(1, int(len(data) * cut))]
    assert isinstance(extract_text(bytes(data), *kind), str)


# --- real attachments from the corpus -------------------------------------------------


def corpus_attachments() -> list[tuple[str, str, str, bytes]]:
    """(source file, content type, filename, decoded bytes) of every leaf part with a
    filename or a non-text type, in every single-message file of tests/corpus/real."""
    out = []
    for path in sorted(CORPUS.rglob("*")):
        if not path.is_file() or path.suffix.lower() in (".md", ".mbox", ".py"):
            continue
        try:
            msg = email.message_from_bytes(path.read_bytes(), policy=email.policy.compat32)
            for part in msg.walk():
                if part.is_multipart():
                    continue
                name = str(part.get_filename() or "")
                if not name and part.get_content_maintype() == "text":
                    continue
                payload = part.get_payload(decode=True)
                if isinstance(payload, bytes) and payload:
                    source = str(path.relative_to(CORPUS))
                    out.append((source, str(part.get("Content-Type", "")), name, payload))
        except Exception:  # noqa: BLE001 - a file the stdlib cannot walk is not ours to test
            continue
    return out


def test_real_corpus_attachments():
    attachments = corpus_attachments()
    if not attachments:
        pytest.skip("no attachments in tests/corpus/real")
    found = {}
    for source, ctype, name, payload in attachments:
        start = time.monotonic()
        text = extract_text(payload, ctype, name)
        assert isinstance(text, str), source
        assert time.monotonic() - start < 10, source
        found[(source, name)] = text
    pdfs = {k: v for k, v in found.items() if k[1].lower().endswith(".pdf")}
    if not pdfs:
        pytest.skip("no PDF attachments in tests/corpus/real")
    # Real PDFs from real mail (a weather bulletin and an IBM leaflet, if present).
    assert any(len(t) > 200 for t in pdfs.values())
    bulletin = [t for (src, n), t in pdfs.items() if n == "Bollettino.pdf"]
    if bulletin:
        assert "BOLLETTINO METEOROLOGICO" in bulletin[0]


XML_PIECES = st.lists(
    st.sampled_from(
        ["<w:p>", "</w:p>", "<w:t>", "</w:t>", "<w:r>", "</w:r>", "<w:tab/>", "<w:br/>",
         "<mc:Fallback>", "</mc:Fallback>", "&amp;", "&#233;", "&bogus;", "<![CDATA[x]]>",
         "<!-- c -->", "<?pi x?>", "città", " ", "<", ">", "&", "\x00", "\ud800"]
    )
    | st.text(max_size=10),
    max_size=40,
)


@settings(max_examples=200, deadline=None)
@given(pieces=XML_PIECES)
def test_random_xml_inside_containers_never_raises(pieces):
    inner = "".join(pieces)
    docx = make_docx(w_document(inner).encode("utf-8", "surrogatepass"))
    out = extract_text(docx, DOCX_TYPE, "a.docx")
    assert isinstance(out, str)
    out.encode("utf-8")  # no lone surrogates reach the index
    odt_inner = inner.replace("w:", "text:")
    odt = make_odf(odf_content(odt_inner).encode("utf-8", "surrogatepass"))
    assert isinstance(extract_text(odt, ODT_TYPE, "a.odt"), str)


@settings(max_examples=200, deadline=None)
@given(page=st.text(max_size=300), kind=st.sampled_from([("text/html", "a.html"), ("text/plain", "a.txt")]))
def test_random_text_and_html_never_raise(page, kind):
    out = extract_text(page.encode("utf-8", "surrogatepass"), *kind)
    assert isinstance(out, str)
    out.encode("utf-8")
    assert out == out.strip()
