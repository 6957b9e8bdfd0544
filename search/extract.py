"""Attachment bytes -> plain text for the full-text index.  Never raises.

`extract_text` is called by the search indexer on every attachment it indexes.  What it
reads:

* PDF (pypdf), page by page; a PDF whose user password is empty (an "owner password" that
  only restricts printing or copying, which every viewer opens without asking) is read, a
  PDF that needs a password is not;
* DOCX (and DOCM/DOTX): word/document.xml, then footnotes, endnotes, headers and footers;
  w:t text, one line per paragraph;
* ODT/ODS/ODP (and the other OpenDocument kinds): content.xml, text:p and text:h with
  everything inside them (text:span, text:a…);
* XLSX (and XLSM): openpyxl in read-only mode with cached values, one line per row;
* plain text (text/plain, text/csv, text/xml, application/xml, application/json,
  .txt/.csv/.xml/.json…): byte-order mark, then the declared charset, then UTF-8, then
  windows-1252 with replacement characters;
* HTML: tags stripped with html.parser, script/style/template content dropped.

The kind comes from magic bytes first (a PDF labelled application/octet-stream is still a
PDF; a zip is opened and recognised by its members), then from the content type and the
filename extension for formats without magic.  Signed envelopes (.p7m, PKCS#7) are
skipped, as are legacy binary Office files and anything else unrecognised.

Untrusted input: attachments over `max_bytes` are skipped; zip members are read only
after their declared uncompressed sizes passed `_MAX_UNZIPPED` in total (zipfile never
returns more than the declared size, and the reads are counted as well); XML is parsed
with defusedxml's XMLParser with DTDs forbidden, so entity bombs and external entities
stop at the prolog, and XLSX parts get that check before openpyxl reads them; every
format stops reading once enough text was collected, and after `_TIME_BUDGET` seconds
PDF, XLSX, DOCX/ODF and HTML stop with the text they have.  Any failure returns "" and
logs at debug level.

The result is NFC, has no control characters or lone surrogates, one space between words,
one line per non-empty paragraph/row/line, and at most `max_chars` characters.
"""

from __future__ import annotations

import codecs
import html
import io
import logging
import posixpath
import re
import time
import unicodedata
import zipfile
from datetime import date, datetime, time as dtime
from email.header import decode_header, make_header
from html.parser import HTMLParser

from defusedxml.ElementTree import DefusedXMLParser

log = logging.getLogger(__name__)

__all__ = ["extract_text"]

# Total uncompressed bytes read from the members of one zip (DOCX/ODF/XLSX).
_MAX_UNZIPPED = 50_000_000
# Wall-clock budget of one extraction; past it the text so far is kept.
_TIME_BUDGET = 10.0
# Decoded size of a PDF page's content stream: past the first, pypdf is followed operator
# by operator; past the second, the page is not read (parsing alone takes seconds).
_SMALL_PAGE_CONTENT = 256_000
_MAX_PAGE_CONTENT = 8_000_000
# Raw text collected before stopping, as a multiple of max_chars (whitespace collapses).
_RAW_FACTOR = 2
_RAW_SLACK = 4096

_PDF = "pdf"
_ZIP = "zip"
_TEXT = "text"
_HTML = "html"

_TEXT_TYPES = frozenset({
    "text/plain", "text/csv", "text/tab-separated-values", "text/xml", "text/markdown",
    "text/x-markdown", "text/calendar", "text/vcard", "text/x-vcard",
    "application/xml", "application/json", "application/csv", "text/comma-separated-values",
    "text/x-csv", "text/x-log",
})
_TEXT_EXTENSIONS = frozenset({
    ".txt", ".text", ".csv", ".tsv", ".xml", ".json", ".md", ".log", ".ics", ".vcf",
})
_GENERIC_TYPES = frozenset({
    "", "application/octet-stream", "binary/octet-stream", "application/unknown",
    "application/x-download", "application/download", "application/force-download",
})
_HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})
_HTML_EXTENSIONS = frozenset({".html", ".htm", ".xhtml"})
_SIGNED_TYPES = frozenset({
    "application/pkcs7-mime", "application/x-pkcs7-mime", "application/pkcs7-signature",
    "application/x-pkcs7-signature", "application/pkcs7", "application/timestamped-data",
})
_SIGNED_EXTENSIONS = frozenset({".p7m", ".p7s", ".p7c", ".p7z", ".tsd", ".m7m"})

# Magic numbers of binary formats this module does not read (their label must not make
# them "text"): OLE2 (.doc/.xls/.msg), images, archives, audio/video, executables.
_OTHER_MAGIC = (
    b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", b"\x89PNG", b"\xff\xd8\xff", b"GIF87a", b"GIF89a",
    b"II*\x00", b"MM\x00*", b"\x1f\x8b", b"\xfd7zXZ", b"7z\xbc\xaf", b"Rar!\x1a",
    b"\x7fELF", b"\x00\x00\x01\xba", b"%!PS-Adobe", b"{\\rtf",
)
# DER SEQUENCE + OID 1.2.840.113549.1.7.2 (PKCS#7 signedData) near the start.
_PKCS7_SIGNED_OID = b"\x06\x09\x2a\x86\x48\x86\xf7\x0d\x01\x07\x02"

_DOCX_EXTRA_PARTS = ("footnotes", "endnotes", "header", "footer")


class _Stop(Exception):
    """Enough text (or no time left): ends a parse early, keeping what it collected."""


class _TooBig(Exception):
    """A zip over the uncompressed-size limit, or too slow to check: nothing is kept."""


def extract_text(
    data: bytes,
    content_type: str,
    filename: str,
    max_bytes: int = 10_000_000,
    max_chars: int = 200_000,
) -> str:
    """The searchable text of an attachment, or "" when there is none to be had (unknown
    or unsupported kind, over `max_bytes`, encrypted, corrupt, hostile).  Never raises."""
    try:
        if max_chars <= 0 or not data:
            return ""
        if len(data) > max_bytes:
            log.debug("extract: %r skipped, %d bytes > %d", filename, len(data), max_bytes)
            return ""
        if not isinstance(data, bytes):
            data = bytes(data)
        ctype, params = _parse_content_type(content_type)
        ext = _extension(filename)
        kind = _detect(data, ctype, ext)
        if kind is None:
            log.debug("extract: %r (%s) not a supported kind", filename, ctype or "no type")
            return ""
        sink = _Sink(max_chars * _RAW_FACTOR + _RAW_SLACK)
        if kind == _PDF:
            _pdf(data, sink)
        elif kind == _ZIP:
            _zip(data, sink)
        elif kind == _HTML:
            _html(data, params.get("charset"), sink)
        else:
            _plain(data, params.get("charset"), sink)
        return _normalise(sink.text(), max_chars)
    except Exception as exc:  # noqa: BLE001 - the contract is "never raises"
        log.debug("extract: %r (%s) failed: %r", filename, content_type, exc)
        return ""


# --- detection ------------------------------------------------------------------------


def _parse_content_type(content_type: str | None) -> tuple[str, dict[str, str]]:
    if not isinstance(content_type, str):
        return "", {}
    main, _, rest = content_type.partition(";")
    params = {}
    for part in rest.split(";"):
        key, eq, value = part.partition("=")
        if eq:
            params[key.strip().lower()] = value.strip().strip('"').strip()
    return main.strip().lower(), params


def _extension(filename: str | None) -> str:
    """".pdf" for "Fattura.PDF", also when the name is still RFC 2047 encoded."""
    if not isinstance(filename, str):
        return ""
    if "=?" in filename:
        try:
            filename = str(make_header(decode_header(filename)))
        except Exception:  # noqa: BLE001 - keep the name as it came
            pass
    name = filename.strip().strip('"').rstrip(". ").lower()
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    return posixpath.splitext(name)[1]


def _detect(data: bytes, ctype: str, ext: str) -> str | None:
    # Signed envelopes first: their DER body may well carry a %PDF- or PK header inside.
    if ctype in _SIGNED_TYPES or ext in _SIGNED_EXTENSIONS:
        return None
    head = data[:1024]
    if head[:1] == b"\x30" and _PKCS7_SIGNED_OID in head[:32]:
        return None
    if head.startswith(b"%PDF-"):
        return _PDF
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return _ZIP
    if head.startswith(_OTHER_MAGIC):
        return None
    if b"%PDF-" in head and (
        ctype in ("application/pdf", "application/x-pdf", "application/octet-stream", "")
        or ext == ".pdf"
    ):
        return _PDF  # the PDF spec tolerates junk before the header
    if ctype == "application/pdf" or ext == ".pdf":
        return None  # says PDF, is not one
    if ctype in _HTML_TYPES:
        return _HTML
    if ctype in _TEXT_TYPES or ctype.endswith(("+xml", "+json")):
        return _TEXT
    if ctype in _GENERIC_TYPES or ctype.startswith("text/"):
        if ext in _HTML_EXTENSIONS:
            return _HTML
        if ext in _TEXT_EXTENSIONS or ctype.startswith("text/"):
            return _TEXT
    return None


# --- collecting -----------------------------------------------------------------------


class _Sink:
    """Text pieces up to a limit; `full` once it is reached."""

    __slots__ = ("parts", "size", "limit")

    def __init__(self, limit: int) -> None:
        self.parts: list[str] = []
        self.size = 0
        self.limit = limit

    @property
    def full(self) -> bool:
        return self.size >= self.limit

    def add(self, text: str) -> None:
        if text and self.size < self.limit:
            self.parts.append(text)
            self.size += len(text)

    def text(self) -> str:
        return "".join(self.parts)


_LINE_BREAKS = str.maketrans({
    "\r": "\n", "\v": "\n", "\f": "\n", "\x1c": "\n", "\x1d": "\n", "\x1e": "\n",
    "\x85": "\n", "\u2028": "\n", "\u2029": "\n",
})
# C0/C1 controls (tab and newline aside), lone surrogates, zero-width and soft hyphen,
# byte-order marks, noncharacters U+FFFE/U+FFFF.
_JUNK = re.compile(
    "[\x00-\x08\x0e-\x1f\x7f-\x9f\ud800-\udfff\u00ad\u200b\u2060\ufeff\ufffe\uffff]"
)
_SPACES = re.compile(r"[^\S\n]+")
_BLANK_LINES = re.compile(r" ?\n[\s]*")


def _normalise(text: str, max_chars: int) -> str:
    text = _JUNK.sub("", text.translate(_LINE_BREAKS))
    text = unicodedata.normalize("NFC", text)
    text = _SPACES.sub(" ", text)
    text = _BLANK_LINES.sub("\n", text).strip()
    if len(text) > max_chars:
        cut = text[:max_chars]
        if not text[max_chars].isspace():
            # Do not index the first letters of a word as a word of their own.
            space = max(cut.rfind(" ", -64), cut.rfind("\n", -64))
            if space > 0:
                cut = cut[:space]
        text = cut.rstrip()
    return text


# --- PDF ------------------------------------------------------------------------------


def _pdf(data: bytes, sink: _Sink) -> None:
    from pypdf import PasswordType, PdfReader

    reader = PdfReader(io.BytesIO(data), strict=False)
    if reader.is_encrypted:
        if reader.decrypt("") == PasswordType.NOT_DECRYPTED:
            log.debug("extract: PDF needs a password")
            return
    deadline = time.monotonic() + _TIME_BUDGET
    for number, page in enumerate(reader.pages):
        try:
            sink.add(_pdf_page(page, sink, deadline))
        except Exception as exc:  # noqa: BLE001 - a bad page must not lose the others
            log.debug("extract: PDF page %d unreadable: %r", number + 1, exc)
        sink.add("\n")
        if sink.full or time.monotonic() > deadline:
            break


def _pdf_page(page, sink: _Sink, deadline: float) -> str:  # type: ignore[no-untyped-def]
    """One page's text.  A small content stream goes through pypdf's plain extract_text,
    which skips text-less streams without parsing them; a large one is followed with
    visitors that end it once the sink would be full or the time is up (pypdf's own
    loop is slow on streams of hundreds of thousands of operators); one past
    `_MAX_PAGE_CONTENT` is not parsed at all."""
    contents = page.get_contents()
    size = len(contents.get_data()) if contents is not None else 0
    if size > _MAX_PAGE_CONTENT:
        log.debug("extract: PDF page content of %d bytes skipped", size)
        return ""
    if size <= _SMALL_PAGE_CONTENT:
        return page.extract_text() or ""
    pieces: list[str] = []
    room = sink.limit - sink.size

    def on_text(text, *_):  # type: ignore[no-untyped-def]
        nonlocal room
        pieces.append(text)
        room -= len(text)
        if room <= 0:
            raise _Stop

    def on_operator(*_):  # type: ignore[no-untyped-def]
        if room <= 0 or time.monotonic() > deadline:
            raise _Stop

    try:
        return page.extract_text(visitor_text=on_text, visitor_operand_before=on_operator)
    except _Stop:
        return "".join(pieces)


# --- zip containers -------------------------------------------------------------------


class _Budget:
    """Uncompressed bytes still allowed from one zip, and the time left to read them."""

    def __init__(self, limit: int) -> None:
        self.left = limit
        self.deadline = time.monotonic() + _TIME_BUDGET

    @property
    def late(self) -> bool:
        return time.monotonic() > self.deadline

    def take(self, info: zipfile.ZipInfo) -> None:
        if info.file_size > self.left:
            raise _TooBig(f"{info.filename}: {info.file_size} bytes uncompressed")
        self.left -= info.file_size


def _zip(data: bytes, sink: _Sink) -> None:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        names = {info.filename: info for info in zf.infolist()}
        budget = _Budget(_MAX_UNZIPPED)
        mimetype = names.get("mimetype")
        if mimetype is not None and mimetype.file_size < 200:
            budget.take(mimetype)
            declared = zf.read(mimetype).decode("ascii", "replace").strip()
            if declared.startswith("application/vnd.oasis.opendocument."):
                _odf(zf, names, budget, sink)
                return
        if "xl/workbook.xml" in names:
            _xlsx(data, zf, names, budget, sink)
            return
        main = _docx_main_part(zf, names, budget)
        if main is not None:
            _docx(zf, names, main, budget, sink)
            return
        if "content.xml" in names and "META-INF/manifest.xml" in names:
            _odf(zf, names, budget, sink)  # OpenDocument without its mimetype member
            return
        log.debug("extract: zip archive of an unsupported kind")


class _Target:
    """An ElementTree parser target that ignores everything; tags come as {uri}local."""

    def start(self, tag: str, attrib: dict[str, str]) -> None:
        pass

    def end(self, tag: str) -> None:
        pass

    def data(self, text: str) -> None:
        pass

    def close(self) -> None:
        return None


def _parse_xml(
    zf: zipfile.ZipFile,
    info: zipfile.ZipInfo,
    budget: _Budget,
    target: _Target,
    charge: bool = True,
) -> None:
    """Parse one member with defusedxml (no DTD, no entities, no external anything) into
    `target`, after charging its declared size to the budget, 64 KB at a time.  `_Stop`
    from the target (enough text) ends it quietly, and so does the time budget running
    out; a member longer than declared (zipfile already stops there: a second lock)
    raises."""
    if charge:
        budget.take(info)
    parser = DefusedXMLParser(
        target=target, forbid_dtd=True, forbid_entities=True, forbid_external=True
    )
    left = info.file_size
    with zf.open(info) as raw:
        try:
            while chunk := raw.read(65536):
                left -= len(chunk)
                if left < 0:
                    raise _TooBig(f"{info.filename}: longer than declared")
                parser.feed(chunk)
                if budget.late:
                    log.debug("extract: time budget spent in %s", info.filename)
                    return
            parser.close()
        except _Stop:
            pass


class _PrologCheck(_Target):
    def start(self, tag: str, attrib: dict[str, str]) -> None:
        raise _Stop


def _check_prologs(
    zf: zipfile.ZipFile, names: dict[str, zipfile.ZipInfo], budget: _Budget
) -> None:
    """Parse every XML member up to its root element with defusedxml: raises on any DTD,
    whatever parser reads the member afterwards.  Charges nothing: the caller already
    charged the whole archive."""
    for name, info in names.items():
        if name.endswith((".xml", ".rels")) and info.file_size:
            _parse_xml(zf, info, budget, _PrologCheck(), charge=False)
            if budget.late:
                raise _TooBig("time budget spent checking XML prologs")


def _tags(namespaces: tuple[str, ...], **actions: str) -> dict[str, str]:
    """{"{uri}local": action} for every namespace (transitional and strict OOXML…)."""
    return {f"{{{ns}}}{local}": action for ns in namespaces for local, action in actions.items()}


# DOCX

_W = (
    "http://schemas.openxmlformats.org/wordprocessingml/2006/main",
    "http://purl.oclc.org/ooxml/wordprocessingml/main",
)
_MATH = (
    "http://schemas.openxmlformats.org/officeDocument/2006/math",
    "http://purl.oclc.org/ooxml/officeDocument/math",
)
_DRAWING = (
    "http://schemas.openxmlformats.org/drawingml/2006/main",
    "http://purl.oclc.org/ooxml/drawingml/main",
)
_MC = ("http://schemas.openxmlformats.org/markup-compatibility/2006",)
_PACKAGE_RELS = (
    "http://schemas.openxmlformats.org/package/2006/relationships",
    "http://purl.oclc.org/ooxml/package/relationships",  # not in the spec; harmless
)
_OFFICE_DOCUMENT_REL = "/officeDocument"

_WORD_START = {
    **_tags(_W + _MATH + _DRAWING, t="text"),
    **_tags(_W, tab="\t", br="\n", cr="\n", noBreakHyphen="-"),
    **_tags(_MC, Fallback="skip"),
}
_WORD_END = {
    **_tags(_W + _MATH + _DRAWING, t="text"),
    **_tags(_W + _DRAWING, p="\n"),
    **_tags(_W, tc="\t"),
    **_tags(_MC, Fallback="skip"),
}


class _RelsTarget(_Target):
    def __init__(self) -> None:
        self.main: str | None = None
        self.tags = _tags(_PACKAGE_RELS, Relationship="rel")

    def start(self, tag: str, attrib: dict[str, str]) -> None:
        if self.main is None and tag in self.tags:
            if attrib.get("Type", "").endswith(_OFFICE_DOCUMENT_REL) and attrib.get(
                "TargetMode", ""
            ) != "External":
                self.main = attrib.get("Target")


def _docx_main_part(
    zf: zipfile.ZipFile, names: dict[str, zipfile.ZipInfo], budget: _Budget
) -> str | None:
    if "word/document.xml" in names:
        return "word/document.xml"
    rels = names.get("_rels/.rels")
    if rels is None:
        return None
    target = _RelsTarget()
    _parse_xml(zf, rels, budget, target)
    if not target.main:
        return None
    main = posixpath.normpath(target.main.lstrip("/"))
    if main.startswith("word/") and main.endswith(".xml") and main in names:
        return main
    return None


class _WordTarget(_Target):
    """WordprocessingML: text of w:t (and m:t, a:t) elements, a line per paragraph;
    deleted text (w:delText) and field codes (w:instrText) are other elements and never
    read; the VML copy of a text box in mc:Fallback is skipped (mc:Choice gave it)."""

    def __init__(self, sink: _Sink) -> None:
        self.sink = sink
        self.in_text = 0
        self.skip = 0

    def start(self, tag: str, attrib: dict[str, str]) -> None:
        action = _WORD_START.get(tag)
        if action is None:
            return
        if action == "skip":
            self.skip += 1
        elif self.skip:
            return
        elif action == "text":
            self.in_text += 1
        else:
            self.sink.add(action)

    def end(self, tag: str) -> None:
        action = _WORD_END.get(tag)
        if action is None:
            return
        if action == "skip":
            self.skip -= 1
        elif self.skip:
            return
        elif action == "text":
            self.in_text -= 1
        else:
            self.sink.add(action)
            if self.sink.full:
                raise _Stop

    def data(self, text: str) -> None:
        if self.in_text > 0 and not self.skip:
            self.sink.add(text)


_NUMBER = re.compile(r"(\d+)")


def _natural(name: str) -> list[object]:
    return [int(p) if p.isdigit() else p for p in _NUMBER.split(name)]


def _docx(
    zf: zipfile.ZipFile,
    names: dict[str, zipfile.ZipInfo],
    main: str,
    budget: _Budget,
    sink: _Sink,
) -> None:
    folder = posixpath.dirname(main)
    parts = [main]
    for prefix in _DOCX_EXTRA_PARTS:
        parts += sorted(
            (
                n
                for n in names
                if posixpath.dirname(n) == folder
                and posixpath.basename(n).startswith(prefix)
                and n.endswith(".xml")
            ),
            key=_natural,
        )
    # Refuse the whole document up front rather than half of it.
    if sum(names[p].file_size for p in parts) > budget.left:
        raise _TooBig("DOCX parts over the uncompressed limit")
    for part in parts:
        _parse_xml(zf, names[part], budget, _WordTarget(sink))
        sink.add("\n")
        if sink.full or budget.late:
            return


# OpenDocument

_ODF_TEXT = ("urn:oasis:names:tc:opendocument:xmlns:text:1.0",)
_ODF_START = _tags(
    _ODF_TEXT,
    p="para", h="para", s=" ", tab=" ", **{"line-break": "\n", "tracked-changes": "skip"},
)
_ODF_END = _tags(_ODF_TEXT, p="para", h="para", **{"tracked-changes": "skip"})


class _OdfTarget(_Target):
    """content.xml: everything inside text:p / text:h (spans, links, fields), a line
    per paragraph; text:s, text:tab and text:line-break become whitespace; the deleted
    text kept for change tracking is skipped."""

    def __init__(self, sink: _Sink) -> None:
        self.sink = sink
        self.in_para = 0
        self.skip = 0

    def start(self, tag: str, attrib: dict[str, str]) -> None:
        action = _ODF_START.get(tag)
        if action is None:
            return
        if action == "skip":
            self.skip += 1
        elif self.skip:
            return
        elif action == "para":
            self.in_para += 1
        else:
            self.sink.add(action)

    def end(self, tag: str) -> None:
        action = _ODF_END.get(tag)
        if action is None:
            return
        if action == "skip":
            self.skip -= 1
        elif self.skip:
            return
        else:
            self.in_para -= 1
            self.sink.add("\n")
            if self.sink.full:
                raise _Stop

    def data(self, text: str) -> None:
        if self.in_para > 0 and not self.skip:
            self.sink.add(text)


def _odf(
    zf: zipfile.ZipFile, names: dict[str, zipfile.ZipInfo], budget: _Budget, sink: _Sink
) -> None:
    content = names.get("content.xml")
    if content is None:
        log.debug("extract: OpenDocument without content.xml")
        return
    _parse_xml(zf, content, budget, _OdfTarget(sink))


# XLSX


def _cell_text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e15:
            return str(int(value))
        return repr(value)
    if isinstance(value, datetime):
        if value.time() == dtime(0):
            return value.date().isoformat()
        return value.isoformat(sep=" ")
    if isinstance(value, (date, dtime)):
        return value.isoformat()
    return str(value).strip()


def _xlsx(
    data: bytes,
    zf: zipfile.ZipFile,
    names: dict[str, zipfile.ZipInfo],
    budget: _Budget,
    sink: _Sink,
) -> None:
    import openpyxl

    total = sum(info.file_size for info in names.values())
    if total > budget.left:
        raise _TooBig(f"XLSX: {total} bytes uncompressed")
    # openpyxl parses with defusedxml when it can, but it does not forbid DTDs and an
    # environment variable turns defusedxml off: look at every prolog first.
    _check_prologs(zf, names, budget)
    wb = openpyxl.load_workbook(
        io.BytesIO(data), read_only=True, data_only=True, keep_links=False
    )
    try:
        for ws in wb.worksheets:
            if not hasattr(ws, "iter_rows"):
                continue
            sink.add(f"{ws.title}\n")
            ws.reset_dimensions()  # trust the cells, not a declared A1:XFD1048576
            for row in ws.iter_rows(values_only=True):
                cells = [t for t in map(_cell_text, row) if t]
                if cells:
                    sink.add("\t".join(cells))
                    sink.add("\n")
                    if sink.full:
                        return
                if budget.late:
                    log.debug("extract: XLSX time budget spent")
                    return
    finally:
        wb.close()


# --- text and HTML --------------------------------------------------------------------


_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)


def _codec(name: str | None) -> str | None:
    if not name:
        return None
    try:
        info = codecs.lookup(name.strip().strip("'\""))
    except (LookupError, ValueError):
        return None
    if not getattr(info, "_is_text_encoding", True):
        return None  # rot13, base64… are not charsets
    return info.name


def _decode(data: bytes, charset: str | None) -> str:
    """BOM, then the declared charset, then UTF-8, then windows-1252 (with replacement).
    `data` may be cut short: a character split at the end is not a decoding error."""
    for bom, name in _BOMS:
        if data.startswith(bom):
            return codecs.getincrementaldecoder(name)("replace").decode(data[len(bom):])
    for name in (_codec(charset), "utf-8"):
        if name is None:
            continue
        try:
            return codecs.getincrementaldecoder(name)("strict").decode(data)
        except (UnicodeDecodeError, LookupError):
            pass
    return data.decode("cp1252", "replace")


# Bytes other than the C0 controls that never occur in text (tab, newlines, form feed,
# backspace and escape may).
_NOT_CONTROL = bytes(b for b in range(256) if not (b < 0x20 and b not in b"\t\n\r\x0c\x08\x1b"))


def _looks_binary(data: bytes, charset: str | None) -> bool:
    """More than 5% control bytes (NUL and friends) in a text that is not UTF-16/32 (by
    BOM or by label) mean binary data under a text label."""
    head = data[:8192]
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return False
    if (_codec(charset) or "").startswith(("utf-16", "utf-32")):
        return False
    return len(head.translate(None, _NOT_CONTROL)) > 1 + len(head) // 20


def _plain(data: bytes, charset: str | None, sink: _Sink) -> None:
    if _looks_binary(data, charset):
        log.debug("extract: text attachment holds binary data")
        return
    # Four bytes per character at most (UTF-8/UTF-32), with room for collapsed spaces.
    sink.add(_decode(data[: sink.limit * 4 + 4], charset))


_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_:.\-]+)""", re.I)


class _HtmlText(HTMLParser):
    """Text of an HTML document; every callback ends the parse (`_Stop`) once the sink is
    full or the time budget is spent, which also bounds html.parser's slow paths on
    broken markup (rescans of an unclosed tag, one-character steps in close())."""

    _SKIP = frozenset({"script", "style", "template", "noscript", "svg", "math"})
    _BLOCK = frozenset({
        "p", "div", "br", "li", "tr", "td", "th", "h1", "h2", "h3", "h4", "h5", "h6",
        "table", "ul", "ol", "dl", "dt", "dd", "blockquote", "pre", "section", "article",
        "header", "footer", "title", "hr", "address", "figcaption", "caption", "option",
    })

    def __init__(self, sink: _Sink) -> None:
        super().__init__(convert_charrefs=True)
        self.sink = sink
        self.skip = 0
        self.deadline = time.monotonic() + _TIME_BUDGET

    def _tick(self) -> None:
        if self.sink.full or time.monotonic() > self.deadline:
            raise _Stop

    def handle_starttag(self, tag, attrs):  # type: ignore[no-untyped-def]
        self._tick()
        if tag in self._SKIP:
            self.skip += 1
        elif tag in self._BLOCK:
            self.sink.add("\n")

    def handle_startendtag(self, tag, attrs):  # type: ignore[no-untyped-def]
        self._tick()
        if tag in self._BLOCK:
            self.sink.add("\n")

    def handle_endtag(self, tag):  # type: ignore[no-untyped-def]
        self._tick()
        if tag in self._SKIP:
            self.skip = max(0, self.skip - 1)
        elif tag in self._BLOCK:
            self.sink.add("\n")

    def handle_data(self, data):  # type: ignore[no-untyped-def]
        self._tick()
        if not self.skip:
            self.sink.add(data)

    def handle_comment(self, data):  # type: ignore[no-untyped-def]
        self._tick()

    handle_decl = handle_pi = unknown_decl = handle_comment


def _html(data: bytes, charset: str | None, sink: _Sink) -> None:
    if _looks_binary(data, charset):
        log.debug("extract: HTML attachment holds binary data")
        return
    if not any(data.startswith(bom) for bom, _ in _BOMS):
        meta = _META_CHARSET.search(data[:4096])
        if meta and _codec(meta.group(1).decode("ascii")):
            charset = charset or meta.group(1).decode("ascii")
    # Markup is rarely more than three quarters of a page worth indexing: past four
    # times the text limit there is nothing the index lacks, and html.parser's cost
    # stays bounded.
    text = _decode(data[: sink.limit * 4 * 4 + 4], charset)[: sink.limit * 4]
    parser = _HtmlText(sink)
    try:
        # One feed: fed in pieces, html.parser rescans an unclosed construct from its
        # start at every piece.
        parser.feed(text)
    except _Stop:
        return
    # No close(): on a long unclosed construct it advances one character per step and
    # searches the rest of the input at each.  What feed() left is an unfinished tag,
    # comment or script (dropped), or plain text held back for a possible character
    # reference (kept).
    rest = getattr(parser, "rawdata", "")
    if rest and "<" not in rest and not parser.skip:
        sink.add(html.unescape(rest))
