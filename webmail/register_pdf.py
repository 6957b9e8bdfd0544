"""The daily protocol register as a PDF (fpdf2): "Registro giornaliero di protocollo".

One line per registration (number, time, direction, correspondent, subject, sha256 of the
message, and the cancellation if any), page numbers, and a closing line with the count and a
sha256 of the list (`list_hash`), so a printed copy can be checked against the data.
The document is in Italian: it is the register an Italian office keeps.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import date

from fpdf import FPDF


@dataclass(frozen=True, slots=True)
class DailyEntry:
    registry: str
    number: str
    time: str
    direction: str
    correspondent: str
    subject: str
    sha256: str
    cancelled_at: str = ""
    cancelled_by: str = ""
    cancel_reason: str = ""


def list_hash(entries: list[DailyEntry]) -> str:
    """sha256 of the register's lines: registry|number|time|direction|sha256|cancelled_at, one per line."""
    lines = "\n".join(f"{e.registry}|{e.number}|{e.time}|{e.direction}|{e.sha256}|{e.cancelled_at}" for e in entries)
    return hashlib.sha256(lines.encode("utf-8")).hexdigest()


def _latin(text: str) -> str:
    """The core PDF fonts are Latin-1: anything else becomes '?' (the data is in the CSV)."""
    return text.replace("\u2019", "'").replace("\u2013", "-").replace("\u20ac", "EUR").encode(
        "latin-1", "replace").decode("latin-1")


def _fit(pdf: FPDF, text: str, width: float) -> str:
    """The text cut to fit `width` mm in the current font (the CSV has it whole)."""
    if pdf.get_string_width(text) <= width:
        return text
    while text and pdf.get_string_width(text + "...") > width:
        text = text[:-1]
    return text + "..."


class _Register(FPDF):
    title_line = ""

    def header(self) -> None:
        self.set_font("Helvetica", "B", 13)
        self.cell(0, 8, _latin(self.title_line), new_x="LMARGIN", new_y="NEXT")
        self.ln(1)

    def footer(self) -> None:
        self.set_y(-12)
        self.set_font("Helvetica", "", 8)
        self.cell(0, 8, f"Pagina {self.page_no()} di {{nb}}", align="C")


def register_pdf(entries: list[DailyEntry], *, day: date, registry: str) -> bytes:
    pdf = _Register(orientation="L", format="A4")
    pdf.title_line = "Registro giornaliero di protocollo"
    pdf.alias_nb_pages()
    pdf.set_auto_page_break(auto=True, margin=15)
    pdf.add_page()
    pdf.set_font("Helvetica", "", 10)
    pdf.cell(0, 6, _latin(f"Registro: {registry}    Data: {day.strftime('%d/%m/%Y')}"), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(2)
    widths = (32, 16, 14, 55, 75, 85)
    heads = ("Numero", "Ora", "Verso", "Corrispondente", "Oggetto", "Impronta SHA-256")
    pdf.set_font("Helvetica", "B", 8)
    for w, h in zip(widths, heads, strict=True):
        pdf.cell(w, 6, h, border=1)
    pdf.ln()
    for e in entries:
        pdf.set_font("Helvetica", "", 8)
        number = f"{e.registry} {e.number}" if e.registry else e.number
        values = (number, e.time, "Entrata" if e.direction == "in" else "Uscita", e.correspondent, e.subject)
        for w, v in zip(widths[:-1], values, strict=True):
            pdf.cell(w, 6, _fit(pdf, _latin(v), w - 2), border=1)
        pdf.set_font("Courier", "", 5.5)
        pdf.cell(widths[-1], 6, e.sha256, border=1)
        pdf.ln()
        if e.cancelled_at:
            pdf.set_font("Helvetica", "I", 8)
            pdf.multi_cell(0, 5, _latin(f"    ANNULLATA il {e.cancelled_at} da {e.cancelled_by}: {e.cancel_reason}"),
                           new_x="LMARGIN", new_y="NEXT")
    pdf.ln(4)
    pdf.set_font("Helvetica", "B", 9)
    cancelled = sum(1 for e in entries if e.cancelled_at)
    pdf.multi_cell(0, 5, _latin(f"Registrazioni: {len(entries)} (annullate: {cancelled}). "
                                f"Impronta SHA-256 dell'elenco: {list_hash(entries)}"),
                   new_x="LMARGIN", new_y="NEXT")
    return bytes(pdf.output())
