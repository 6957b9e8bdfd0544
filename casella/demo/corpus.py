"""Deterministic synthetic business-mail corpus generator (standard library only).

Ported from gen_corpus.py, the project's corpus tool (shared/tools/gen_corpus.py), which is
its origin: the generating code below is that tool's, unchanged, so that the same
count/seed/start give byte-identical messages with identical file names. Casella uses it to
fill the demo account (casella.demo) on an empty installation; nothing here reads files.

The origin's description:

Writes a Maildir (cur/ new/ tmp/) of realistic Italian/English business mail:
threads (In-Reply-To / References, "Re:"/"R:"/"I:"/"Fwd:" prefixes), plain and
multipart/alternative bodies, attachments of a few KB (PDF-like, CSV, XML
invoice, PNG, DOCX-like), inline images (multipart/related), forwarded
message/rfc822 parts, varied charsets (utf-8, iso-8859-1, iso-8859-15,
windows-1252, us-ascii) and transfer encodings (7bit, 8bit, quoted-printable,
base64), RFC 2047 encoded headers, RFC 2231 encoded filenames and a share of
unknown senders.  No PEC envelopes.

The same --count/--seed always produces byte-identical files with identical
names (no time, pid, hostname or global random state is used).

    python -m casella.demo.corpus --count 20000 --out ./maildir --seed 1
"""
# The code below the imports is kept as the origin wrote it, to stay byte-identical.
# ruff: noqa
from __future__ import annotations

import argparse
import datetime as dt
import email.charset
import email.encoders
import email.generator
import email.header
import email.utils
import io
import os
import random
import struct
import sys
import unicodedata
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from email.mime.application import MIMEApplication
from email.mime.base import MIMEBase
from email.mime.image import MIMEImage
from email.mime.message import MIMEMessage
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText

OWN_DOMAIN = "studioferrari.it"
SHARED_BOXES = ["info", "amministrazione", "ufficio.acquisti", "segreteria"]
FIRST_IT = ["Marco", "Giulia", "Luca", "Francesca", "Alessandro", "Chiara", "Andrea", "Sara",
            "Matteo", "Elena", "Davide", "Valentina", "Niccolò", "Martina", "Federico", "Ilaria",
            "Simone", "Beatrice", "Lorenzo", "Noemi", "Gianluca", "Raffaella", "Nicolò", "Ludovica"]
LAST_IT = ["Rossi", "Russo", "Ferrari", "Esposito", "Bianchi", "Romano", "Colombo", "Ricci",
           "Marino", "Greco", "Bruno", "Gallo", "Conti", "De Luca", "Mancini", "Costa",
           "Giordano", "Rizzo", "Lombardi", "Moretti", "Barbieri", "Fontana", "Santoro", "D'Angelo"]
FIRST_EN = ["John", "Emily", "Michael", "Sarah", "David", "Laura", "James", "Anna", "Robert",
            "Olivia", "Thomas", "Hannah", "Peter", "Sophie", "Mark", "Rachel"]
LAST_EN = ["Smith", "Johnson", "Brown", "Taylor", "Wilson", "Davies", "Evans", "Walker",
           "Wright", "Thompson", "O'Brien", "Müller", "Schmidt", "García", "Dupont", "Novak"]
COMPANIES_IT = ["Edilnord S.r.l.", "Tecnoservizi S.p.A.", "Officine Meccaniche Lombarde", "Farmacia Centrale",
                "Studio Legale Associato Conti", "Comune di Pontedera", "Trasporti Veloci S.n.c.",
                "Cartiera dell'Adda", "Agenzia delle Entrate", "Banca Popolare del Nord",
                "Ospedale San Raffaele", "Università degli Studi", "Caseificio Val d'Aosta"]
COMPANIES_EN = ["Northwind Traders Ltd", "Acme Logistics Inc.", "Globex Corporation", "Initech GmbH",
                "Contoso Pharmaceuticals", "Blue Harbor Shipping", "Fabrikam Europe B.V."]
DOMAINS_IT = ["edilnord.it", "tecnoservizi.com", "oml-srl.it", "farmaciacentrale.it", "studiolegaleconti.it",
              "comune.pontedera.pi.it", "trasportiveloci.it", "cartieradda.it", "bpnord.it", "hsr.it",
              "unimi.it", "libero.it", "gmail.com", "tiscali.it", "virgilio.it", "alice.it"]
DOMAINS_EN = ["northwind.co.uk", "acmelogistics.com", "globex.com", "initech.de", "contoso.com",
              "blueharbor.nl", "fabrikam.eu", "outlook.com", "yahoo.co.uk"]
MAILERS = ["Microsoft Outlook 16.0", "Mozilla Thunderbird 115.6.0", "Apple Mail (2.3774)",
           "Roundcube Webmail/1.6.5", "Zimbra 9.0.0_GA", None, None, None]

SUBJ_IT = ["Fattura n. {n}/{y}", "Preventivo per fornitura {item}", "Ordine d'acquisto n. {n}",
           "Sollecito di pagamento fattura {n}", "Convocazione riunione del {d}", "Contratto di manutenzione {y}",
           "Richiesta documentazione pratica {n}", "Conferma spedizione DDT {n}", "Verbale assemblea {d}",
           "Aggiornamento listino prezzi {y}", "Comunicazione chiusura uffici", "Scadenza F24 e adempimenti",
           "Offerta economica — {item}", "Nota di credito n. {n}", "Richiesta di ferie dal {d}",
           "Certificato di conformità {item}", "Iscrizione corso sicurezza sul lavoro", "Più informazioni su {item}"]
SUBJ_EN = ["Invoice #{n}", "Quotation request: {item}", "Purchase order PO-{n}", "Meeting on {d}",
           "Shipping confirmation {n}", "Contract renewal {y}", "Overdue payment reminder #{n}",
           "Updated price list {y}", "Action required: onboarding documents", "Weekly report week {w}",
           "RE: delivery schedule for {item}", "Your ticket #{n} has been updated"]
ITEMS = ["cancelleria", "toner HP 305A", "server Dell R750", "sedie ergonomiche", "carta A4 80g",
         "licenze Office 365", "servizio pulizie", "estintori", "pellet di legno", "caffè in cialde",
         "steel brackets", "forklift rental", "cloud backup", "legal translation", "pallet racking"]
BODY_IT = [
    "Gentile {to},\n\nin allegato trasmettiamo la documentazione richiesta relativa a {item}.\n"
    "Restiamo a disposizione per qualsiasi chiarimento.\n",
    "Buongiorno,\n\ncon la presente Le comunichiamo che l'importo di {amt} € risulta ancora da saldare.\n"
    "La preghiamo di provvedere entro il {d}. Qualora avesse già provveduto, non tenga conto di questa comunicazione.\n",
    "Ciao {to},\n\nti confermo la riunione di giovedì alle 15:30 presso la sede di via Garibaldi 12.\n"
    "Porta per favore il verbale della volta scorsa e il prospetto aggiornato.\n",
    "Spett.le {company},\n\nfacendo seguito alla Vostra richiesta del {d}, siamo lieti di sottoporVi la nostra "
    "migliore offerta per {item} al prezzo unitario di {amt} € + IVA.\nValidità dell'offerta: 30 giorni.\n",
    "Salve,\n\nsegnalo che il documento è stato protocollato con n. {n}. L'ufficio competente darà seguito "
    "alla pratica entro i termini di legge.\nCordialità.\n",
]
BODY_EN = [
    "Dear {to},\n\nplease find attached the documents regarding {item}.\n"
    "Do not hesitate to contact us should you need anything else.\n",
    "Hi {to},\n\njust a quick reminder that invoice {n} ({amt} EUR) is now overdue.\n"
    "Could you let me know when we can expect payment?\n",
    "Hello,\n\nthe shipment for order {n} left our warehouse on {d}. Tracking details are below.\n"
    "Expected delivery: 3-5 business days.\n",
    "Dear {company} team,\n\nfollowing our call, I am happy to confirm the terms discussed: {amt} EUR per unit, "
    "net 60 days, delivery to your Milan site.\n",
]
SIGN_IT = "\n--\n{name}\n{company}\nTel. +39 02 {tel}\nAi sensi del GDPR (Reg. UE 2016/679) le informazioni contenute in questo messaggio sono riservate.\n"
SIGN_EN = "\n--\n{name}\n{company}\nPhone +44 20 {tel}\n"
LOREM = ("Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt ut labore "
         "et dolore magna aliqua. Ut enim ad minim veniam, quis nostrud exercitation ullamco laboris. ")
CHARSETS = [("utf-8", 55), ("iso-8859-1", 15), ("windows-1252", 12), ("iso-8859-15", 6), ("us-ascii", 12)]


def wchoice(rng, pairs):
    total = sum(w for _, w in pairs)
    r = rng.uniform(0, total)
    for v, w in pairs:
        r -= w
        if r <= 0:
            return v
    return pairs[-1][0]


def ascii_local(s):
    s = unicodedata.normalize("NFKD", s).encode("ascii", "ignore").decode()
    return s.replace("'", "").replace(" ", "").lower()


class Person:
    __slots__ = ("name", "addr", "lang", "company")

    def __init__(self, name, addr, lang, company):
        self.name, self.addr, self.lang, self.company = name, addr, lang, company

    def header(self):
        return email.utils.formataddr((self.name, self.addr), charset="utf-8")


def make_people(rng):
    known = []
    for i in range(300):
        it = rng.random() < 0.7
        first = rng.choice(FIRST_IT if it else FIRST_EN)
        last = rng.choice(LAST_IT if it else LAST_EN)
        dom = rng.choice(DOMAINS_IT if it else DOMAINS_EN)
        comp = rng.choice(COMPANIES_IT if it else COMPANIES_EN)
        addr = f"{ascii_local(first)}.{ascii_local(last)}@{dom}"
        known.append(Person(f"{first} {last}", addr, "it" if it else "en", comp))
    own = [Person(f"{n.capitalize()} {OWN_DOMAIN}", f"{n}@{OWN_DOMAIN}", "it", "Studio Ferrari")
           for n in SHARED_BOXES]
    for i in range(12):
        first, last = rng.choice(FIRST_IT), rng.choice(LAST_IT)
        own.append(Person(f"{first} {last}", f"{ascii_local(first)[0]}.{ascii_local(last)}@{OWN_DOMAIN}",
                          "it", "Studio Ferrari"))
    return known, own


def unknown_person(rng):
    letters = "abcdefghijklmnopqrstuvwxyz0123456789"
    local = "".join(rng.choice(letters) for _ in range(rng.randint(5, 12)))
    tld = rng.choice(["com", "net", "it", "info", "biz", "ru", "cn", "xyz"])
    dom = "".join(rng.choice(letters[:26]) for _ in range(rng.randint(4, 10))) + "." + tld
    name = rng.choice(["", "Customer Service", "Ufficio Clienti", "no-reply", local.capitalize(),
                       "Поддержка", "Amministrazione Condominio"])
    return Person(name, f"{local}@{dom}", rng.choice(["it", "en"]), "")


def png_bytes(rng, w, h):
    raw = b"".join(b"\x00" + bytes(rng.randrange(256) for _ in range(w * 3)) for _ in range(h))

    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b""))


def pdf_bytes(rng, size):
    head = (b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\nendobj\n"
            b"2 0 obj\n<< /Length " + str(size).encode() + b" /Filter /FlateDecode >>\nstream\n")
    return head + rng.randbytes(size) + b"\nendstream\nendobj\ntrailer\n<< /Root 1 0 R >>\n%%EOF\n"


def csv_text(rng, rows):
    lines = ["codice;descrizione;quantità;prezzo_unitario;totale"]
    for i in range(rows):
        q, p = rng.randint(1, 500), rng.randint(50, 99999) / 100
        lines.append(f"ART{rng.randint(1000, 99999)};{rng.choice(ITEMS)};{q};{p:.2f};{q * p:.2f}")
    return "\n".join(lines) + "\n"


def invoice_xml(rng, n, y):
    lines = "".join(
        f"<DettaglioLinee><NumeroLinea>{i + 1}</NumeroLinea><Descrizione>{rng.choice(ITEMS)}</Descrizione>"
        f"<PrezzoTotale>{rng.randint(100, 99999) / 100:.2f}</PrezzoTotale></DettaglioLinee>\n"
        for i in range(rng.randint(3, 40)))
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n<p:FatturaElettronica versione="FPR12" '
            f'xmlns:p="http://ivaservizi.agenziaentrate.gov.it/docs/xsd/fatture/v1.2">\n'
            f"<FatturaElettronicaBody><DatiGenerali><DatiGeneraliDocumento><Numero>{n}/{y}</Numero>"
            f"</DatiGeneraliDocumento></DatiGenerali><DatiBeniServizi>\n{lines}</DatiBeniServizi>"
            f"</FatturaElettronicaBody>\n</p:FatturaElettronica>\n")


def fit_charset(text, cs):
    try:
        text.encode(cs)
        return text, cs
    except UnicodeEncodeError:
        t2 = text.replace("€", "EUR").replace("—", "-").replace("’", "'")
        try:
            t2.encode(cs)
            return t2, cs
        except UnicodeEncodeError:
            return text, "utf-8"


def text_part(rng, text, subtype, cs):
    text, cs = fit_charset(text, cs)
    c = email.charset.Charset(cs)
    if cs == "us-ascii":
        c.body_encoding = None
    else:
        c.body_encoding = rng.choice([email.charset.QP, email.charset.QP, email.charset.BASE64, None])
    c.header_encoding = email.charset.QP if cs != "utf-8" else email.charset.BASE64
    part = MIMEText("", subtype, "us-ascii")
    del part["Content-Transfer-Encoding"]
    part.set_payload(text, c)
    if c.body_encoding is None and cs != "us-ascii":
        del part["Content-Transfer-Encoding"]
        part["Content-Transfer-Encoding"] = "8bit"
    return part


def to_html(text):
    esc = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    paras = "".join(f"<p>{p.replace(chr(10), '<br>')}</p>\n" for p in esc.split("\n\n"))
    return ('<html><head><meta http-equiv="Content-Type" content="text/html"></head>\n'
            f'<body style="font-family:Calibri,sans-serif">\n{paras}</body></html>\n')


def encode_subject(subject, cs):
    try:
        subject.encode("ascii")
        return subject
    except UnicodeEncodeError:
        subject, cs = fit_charset(subject, cs if cs != "us-ascii" else "utf-8")
        return email.header.Header(subject, cs, maxlinelen=76).encode()


def fmt_date(when, rng):
    off = 2 if 3 < when.month < 11 else 1
    tz = dt.timezone(dt.timedelta(hours=off if rng.random() < 0.9 else -5))
    return email.utils.format_datetime(when.astimezone(tz))


def build(rng, i, when, people, own, threads, boundary_seq):
    known = people
    lang_roll = rng.random()
    inbound = rng.random() < 0.75
    unknown = rng.random() < 0.12
    sender = unknown_person(rng) if (inbound and unknown) else (rng.choice(known) if inbound else rng.choice(own))
    rcpt = rng.choice(own) if inbound else rng.choice(known)
    lang = sender.lang if inbound else rcpt.lang
    if lang_roll < 0.05:
        lang = "en" if lang == "it" else "it"
    n = rng.randint(1, 9999)
    y = when.year
    d = (when + dt.timedelta(days=rng.randint(1, 40))).strftime("%d/%m/%Y")
    fill = dict(n=n, y=y, d=d, w=when.isocalendar()[1], item=rng.choice(ITEMS),
                amt=f"{rng.randint(100, 999999) / 100:,.2f}".replace(",", "X").replace(".", ",").replace("X", "."),
                to=rcpt.name.split()[0] if rcpt.name else "Cliente", company=rcpt.company or "Cliente",
                name=sender.name or sender.addr, tel=rng.randint(1000000, 9999999))

    parent = None
    if threads and rng.random() < 0.38:
        parent = rng.choice(threads[-400:])
    if parent is not None:
        prefix = rng.choice(["Re: ", "RE: ", "R: ", "Re: ", "I: ", "Fwd: "]) if lang == "it" else \
            rng.choice(["Re: ", "RE: ", "Fwd: ", "FW: "])
        base = parent["subject"]
        subject = base if base.lower().startswith(prefix.lower().strip()) else prefix + base
        refs = (parent["refs"] + [parent["mid"]])[-20:]
        if parent["from"] is not None and rng.random() < 0.8:
            rcpt, sender = parent["from"], parent["to"] if parent["to"] is not None else sender
    else:
        subject = rng.choice(SUBJ_IT if lang == "it" else SUBJ_EN).format(**fill)
        refs = []

    body = rng.choice(BODY_IT if lang == "it" else BODY_EN).format(**fill)
    if rng.random() < 0.3:
        body += "\n" + LOREM * rng.randint(1, 12) + "\n"
    body += (SIGN_IT if lang == "it" else SIGN_EN).format(**fill)
    if parent is not None:
        quoted = "\n".join("> " + l for l in parent["body"].splitlines()[:25])
        hdr = (f"Il {parent['date']} {parent['from'].name if parent['from'] else ''} ha scritto:" if lang == "it"
               else f"On {parent['date']}, {parent['from'].name if parent['from'] else ''} wrote:")
        body = body + "\n" + hdr + "\n" + quoted + "\n"
    cs = wchoice(rng, CHARSETS)

    def bnd():
        boundary_seq[0] += 1
        return f"----=_Part_{boundary_seq[0]:08d}_{rng.getrandbits(48):012x}"

    r = rng.random()
    alt = rng.random() < 0.45
    if alt:
        core = MIMEMultipart("alternative", boundary=bnd())
        core.attach(text_part(rng, body, "plain", cs))
        core.attach(text_part(rng, to_html(body), "html", cs))
    else:
        core = text_part(rng, body, "plain", cs)

    if r < 0.22:  # attachments
        msg = MIMEMultipart("mixed", boundary=bnd())
        msg.attach(core)
        for _ in range(rng.choice([1, 1, 1, 2, 2, 3])):
            kind = rng.choice(["pdf", "pdf", "csv", "xml", "png", "docx", "txt"])
            if kind == "pdf":
                fname = rng.choice([f"Fattura_{n}_{y}.pdf", f"Preventivo n.{n}.pdf", "DDT_firmato.pdf",
                                    f"Contratto di manutenzione {y}.pdf", "Offerta économique.pdf"])
                att = MIMEApplication(pdf_bytes(rng, rng.randint(1500, 24000)), "pdf")
            elif kind == "csv":
                fname = f"listino_{y}.csv"
                att = MIMEText(csv_text(rng, rng.randint(10, 120)), "csv", "utf-8")
            elif kind == "xml":
                fname = f"IT01234567890_{n:05d}.xml"
                att = MIMEApplication(invoice_xml(rng, n, y).encode(), "xml")
            elif kind == "png":
                fname = f"scansione_{n}.png"
                att = MIMEImage(png_bytes(rng, rng.randint(16, 48), rng.randint(16, 48)), "png")
            elif kind == "docx":
                fname = rng.choice(["Verbale riunione.docx", "Relazione tecnica – rev2.docx", "Specs.docx"])
                att = MIMEApplication(b"PK\x03\x04" + rng.randbytes(rng.randint(2000, 16000)),
                                      "vnd.openxmlformats-officedocument.wordprocessingml.document")
            else:
                fname = "note.txt"
                att = MIMEText(LOREM * rng.randint(2, 20), "plain", "us-ascii")
            try:
                fname.encode("ascii")
                att.add_header("Content-Disposition", "attachment", filename=fname)
            except UnicodeEncodeError:
                att.add_header("Content-Disposition", "attachment", filename=("utf-8", "", fname))
            msg.attach(att)
    elif r < 0.27:  # inline image (multipart/related)
        html = to_html(body).replace("</body>", '<img src="cid:logo{0}@{1}" alt="logo"></body>'.format(i, OWN_DOMAIN))
        rel = MIMEMultipart("related", boundary=bnd())
        alt2 = MIMEMultipart("alternative", boundary=bnd())
        alt2.attach(text_part(rng, body, "plain", cs))
        alt2.attach(text_part(rng, html, "html", cs))
        rel.attach(alt2)
        img = MIMEImage(png_bytes(rng, 40, 20), "png")
        img.add_header("Content-ID", f"<logo{i}@{OWN_DOMAIN}>")
        img.add_header("Content-Disposition", "inline", filename="logo.png")
        rel.attach(img)
        msg = rel
    elif r < 0.29 and threads:  # forward as attachment (message/rfc822)
        msg = MIMEMultipart("mixed", boundary=bnd())
        msg.attach(core)
        inner = MIMEText(threads[-1]["body"][:2000], "plain", "utf-8")
        inner["Subject"] = threads[-1]["subject"]
        inner["From"] = threads[-1]["from"].header() if threads[-1]["from"] else "undisclosed"
        inner["Date"] = threads[-1]["date"]
        inner["Message-ID"] = threads[-1]["mid"]
        fwd = MIMEMessage(inner)
        fwd.add_header("Content-Disposition", "attachment", filename="messaggio inoltrato.eml")
        msg.attach(fwd)
    else:
        msg = core

    mid = f"<{when.strftime('%Y%m%d%H%M%S')}.{i:07d}.{rng.getrandbits(32):08x}@{sender.addr.split('@')[1]}>"
    date = fmt_date(when, rng)
    hops = []
    if inbound:
        hops.append(f"from {sender.addr.split('@')[1]} (mail.{sender.addr.split('@')[1]} [203.0.113.{rng.randint(1, 254)}])\n"
                    f"\tby mx.{OWN_DOMAIN} (Postfix) with ESMTPS id {rng.getrandbits(40):010X}\n\tfor <{rcpt.addr}>; {date}")
    for h in hops:
        msg["Received"] = h
    if inbound:
        msg["Return-Path"] = f"<{sender.addr}>"
    msg["From"] = sender.header()
    msg["To"] = rcpt.header()
    if rng.random() < 0.25:
        msg["Cc"] = ", ".join(p.header() for p in rng.sample(own if inbound else people, rng.randint(1, 3)))
    msg["Subject"] = encode_subject(subject, cs)
    msg["Date"] = date
    if rng.random() > 0.003:
        msg["Message-ID"] = mid
    if refs:
        msg["In-Reply-To"] = refs[-1]
        msg["References"] = " ".join(refs)
    mailer = rng.choice(MAILERS)
    if mailer:
        msg["X-Mailer"] = mailer
    if lang == "it" and rng.random() < 0.1:
        msg["Disposition-Notification-To"] = sender.header()
    if "MIME-Version" not in msg:
        msg["MIME-Version"] = "1.0"
    rec = dict(mid=mid, subject=subject, refs=refs, body=body[:3000], date=date, **{"from": sender, "to": rcpt})
    return msg, rec


# ---------------------------------------------------------------- Casella's interface
# The loop of the origin's main(), split so that messages can be consumed one by one.


@dataclass(frozen=True, slots=True)
class GeneratedMessage:
    """One generated message, with the people the generator chose for it."""

    name: str  # the Maildir file name gen_corpus.py gives it (under cur/)
    raw: bytes
    sender: Person
    recipient: Person

    @property
    def from_own_domain(self) -> bool:
        return self.sender.addr.endswith("@" + OWN_DOMAIN)


def generate_messages(count: int, seed: int = 1, start: str = "2023-01-02") -> Iterator[GeneratedMessage]:
    """The messages gen_corpus.py writes for --count/--seed/--start, in the same order."""
    rng = random.Random(seed)
    people, own = make_people(rng)
    when = dt.datetime.fromisoformat(start).replace(hour=8, tzinfo=dt.timezone.utc)
    threads, seq = [], [0]
    for i in range(count):
        when += dt.timedelta(seconds=rng.randint(30, 3 * 3600))
        if when.hour >= 19:
            when = (when + dt.timedelta(days=1)).replace(hour=7, minute=rng.randint(0, 59))
        msg, rec = build(rng, i, when, people, own, threads, seq)
        threads.append(rec)
        if len(threads) > 2000:
            del threads[:1000]
        buf = io.BytesIO()
        email.generator.BytesGenerator(buf, mangle_from_=False, maxheaderlen=78).flatten(msg, linesep="\n")
        data = buf.getvalue()
        flags = "S" if rng.random() < 0.7 else ""
        name = f"{int(when.timestamp())}.M{i:07d}P{seed}.gen,S={len(data)}:2,{flags}"
        yield GeneratedMessage(name, data, rec["from"], rec["to"])


def generate(count: int, seed: int = 1, start: str = "2023-01-02") -> Iterator[tuple[str, bytes]]:
    """(Maildir file name, raw bytes) of each message, byte-identical to gen_corpus.py's files."""
    for m in generate_messages(count, seed, start):
        yield m.name, m.raw


def write_maildir(count: int, out_dir: str | os.PathLike[str], seed: int = 1, start: str = "2023-01-02") -> int:
    """Write a Maildir (cur/ new/ tmp/) as gen_corpus.py does; return the bytes written."""
    for sub in ("cur", "new", "tmp"):
        os.makedirs(os.path.join(out_dir, sub), exist_ok=True)
    total = 0
    for name, data in generate(count, seed, start):
        with open(os.path.join(out_dir, "cur", name), "wb") as f:
            f.write(data)
        total += len(data)
    return total


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--count", type=int, required=True)
    ap.add_argument("--out", required=True, help="Maildir to create (cur/ new/ tmp/)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--start", default="2023-01-02", help="date of the first message (YYYY-MM-DD)")
    a = ap.parse_args(argv)
    total = write_maildir(a.count, a.out, a.seed, a.start)
    print(f"wrote {a.count} messages, {total / 1e6:.1f} MB, to {a.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
