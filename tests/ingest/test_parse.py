"""ingest.parse.parse_message on real third-party mail (tests/corpus, see SOURCES.md there).

Every single-message file of tests/corpus/real must parse without raising and give sane
values; focused tests check exact results on files picked by reading them; hypothesis
throws random and mutated bytes at the parser.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import pickle
import re
from datetime import datetime, timezone
from pathlib import Path

import mailparser
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ingest.parse import parse_message
from ingest.parsed import Address, ParsedAttachment, ParsedMessage

pytestmark = pytest.mark.unit

CORPUS = Path(__file__).resolve().parent.parent / "corpus"
REAL = CORPUS / "real"
PEC = CORPUS / "pec"
_NOT_MESSAGES = {"SOURCES.md", "COPYING", "README", "README.txt", "ARTISTIC-LICENSE.txt"}


def _is_message(path: Path) -> bool:
    # .gz: the Fedora mbox and its thread HTML; *.mbox*: mbox files; .tnef: raw TNEF blobs
    return not (path.name in _NOT_MESSAGES or path.suffix in (".gz", ".tnef")
                or ".mbox" in path.name)


ALL_FILES = sorted(p for p in REAL.rglob("*") if p.is_file())
MESSAGES = [p for p in ALL_FILES if _is_message(p)]
NOT_MESSAGES = [p for p in ALL_FILES if not _is_message(p) and p.name != "SOURCES.md"]
# The only files where mail-parser's own code raises (its epilogue recovery reads the
# root epilogue, which is None there), so the standard-library fallback parses them.
FALLBACK_FILES = {"dovecot-via-stalwart/malformed/001.eml",
                  "dovecot-via-stalwart/malformed/003.eml",
                  "dovecot-via-stalwart/malformed/013.eml"}


def _rel(path: Path) -> str:
    return path.relative_to(REAL).as_posix()


def _read(rel: str) -> bytes:
    return (REAL / rel).read_bytes()


def _valid_text(value: str) -> None:
    assert isinstance(value, str)
    value.encode("utf-8")  # no lone surrogates: always valid Unicode
    assert "\x00" not in value


def _check_sane(m: ParsedMessage) -> None:
    """Types and invariants every ParsedMessage must satisfy, whatever the input."""
    assert isinstance(m, ParsedMessage)
    assert m.engine in ("mail-parser", "email")
    for mid in (m.message_id, m.in_reply_to, *m.references):
        if mid is not None:
            assert isinstance(mid, str) and mid and not re.search(r"[\s<>]", mid)
    assert isinstance(m.references, tuple) and len(set(m.references)) == len(m.references)
    for text in (m.subject, m.text, m.html):
        _valid_text(text)
    assert m.subject == m.subject.strip()
    for addr in ((m.sender,) if m.sender else ()) + m.to + m.cc + m.reply_to:
        assert isinstance(addr, Address)
        _valid_text(addr.name)
        _valid_text(addr.addr)
        assert addr.addr == addr.addr.strip().lower()
        assert addr.name or addr.addr
    if m.date is not None:
        assert isinstance(m.date, datetime) and m.date.utcoffset().total_seconds() == 0
    for att in m.attachments:
        assert isinstance(att, ParsedAttachment) and isinstance(att.payload, bytes)
        assert att.size == len(att.payload)
        assert att.sha256 == hashlib.sha256(att.payload).hexdigest()
        _valid_text(att.filename)
        assert att.filename and "/" not in att.filename
        assert re.fullmatch(r"[a-z0-9!#$%&'*+.^_`|~-]+/[a-z0-9!#$%&'*+.^_`|~-]+", att.content_type)
        assert att.content_id is None or (att.content_id and "<" not in att.content_id)
        assert isinstance(att.inline, bool)
    for name, value in m.headers:
        _valid_text(name)
        _valid_text(value)
    assert isinstance(m.defects, tuple) and all(isinstance(d, str) and d for d in m.defects)
    assert pickle.loads(pickle.dumps(m)) == m  # crosses process boundaries


# ------------------------------------------------------------------ the whole corpus
def test_corpus_is_present() -> None:
    assert len(MESSAGES) > 330, "tests/corpus/real is missing or incomplete"
    assert (REAL / "SOURCES.md").is_file() and (PEC / "SOURCES.md").is_file()


@pytest.mark.parametrize("path", MESSAGES, ids=_rel)
def test_every_real_message_parses(path: Path) -> None:
    m = parse_message(path.read_bytes())
    _check_sane(m)
    if any(name.lower() == "from" and value for name, value in m.headers):
        assert m.sender is not None, "a From header but no sender"
    assert (m.engine == "email") == (_rel(path) in FALLBACK_FILES)


@pytest.mark.parametrize("path", NOT_MESSAGES, ids=_rel)
def test_files_that_are_not_messages_do_not_raise(path: Path) -> None:
    _check_sane(parse_message(path.read_bytes()))


@pytest.mark.parametrize("path", sorted(PEC.glob("*.eml")), ids=lambda p: p.name)
def test_pec_messages(path: Path) -> None:
    m = parse_message(path.read_bytes())
    _check_sane(m)
    assert m.engine == "mail-parser" and m.sender is not None and m.subject


def test_pec_transport_envelope() -> None:
    m = parse_message((PEC / "oca_pec_messages_busta_trasporto.eml").read_bytes())
    assert m.subject == "POSTA CERTIFICATA: Re: test"
    assert m.sender == Address(name="Per conto di: thinkstudio@pec.it",
                               addr="posta-certificata@pec.aruba.it")
    assert m.text.startswith("--Questo è un Messaggio di Posta Certificata--")
    daticert, postacert, signature = m.attachments
    assert (daticert.filename, daticert.content_type) == ("daticert.xml", "application/xml")
    assert daticert.payload.startswith(b'<?xml version="1.0" encoding="UTF-8"?>\n<postacert')
    assert (postacert.filename, postacert.content_type) == ("postacert.eml", "message/rfc822")
    original = parse_message(postacert.payload)
    assert original.subject == "Re: test"
    assert original.sender == Address(name="Alessio", addr="thinkstudio@pec.it")
    assert signature.filename == "smime.p7s" and signature.payload.startswith(b"0\x82")


# ------------------------------------------------------------------ headers
def test_rfc2047_subject_iso_2022_jp_split_over_two_encoded_words() -> None:
    m = parse_message(_read("mimekit/messages/japanese.txt"))
    assert m.subject == "日本語メールテスト (testing Japanese emails)"
    assert m.sender == Address(name="Atsushi Eno", addr="x@x.com")


def test_rfc2047_long_utf8_subject_folded_over_lines() -> None:
    m = parse_message(_read("ruby-mail/multi_charset/japanese_attachment_long_name.eml"))
    assert m.subject == "まみむめも" * 10


def test_rfc2047_character_split_between_encoded_words() -> None:
    # "ò" (C3 B2) and "à" (C3 A0) cut in the middle: the bytes are joined before decoding
    raw = (b"From: =?utf-8?q?Nicol=C3?= =?utf-8?q?=B2_Rossi?= <N.Rossi@Example.IT>\n"
           b"Subject: =?UTF-8?B?Q2l0dMO=?=\n =?UTF-8?B?oCBkaSBQaXNh?=\n\nx\n")
    m = parse_message(raw)
    assert m.subject == "Città di Pisa"
    assert m.sender == Address(name="Nicolò Rossi", addr="n.rossi@example.it")


def test_encoded_display_name_with_comma_stays_one_mailbox() -> None:
    raw = b"From: =?utf-8?q?Rossi=2C_Mario?= <m@x.it>, b@y.it\nTo: a@b.c\n\nx"
    assert parse_message(raw).sender == Address(name="Rossi, Mario", addr="m@x.it")


def test_raw_utf8_headers_rfc6532() -> None:
    m = parse_message(_read("ruby-mail/rfc6532/utf8_headers.eml"))
    assert m.subject == "Säying Hello"
    assert m.sender == Address(name="Jöhn Doe", addr="jdöe@mächine.example")
    assert m.to == (Address(name="Märy Smith", addr="märy@exämple.net"),)
    assert m.defects == ()


def test_raw_latin1_headers() -> None:
    m = parse_message(_read("zbateson-mail-mime-parser/github-102-01.txt"))
    assert m.subject == "Die Hasen und die Frösche (Microsoft Outlook 00)"
    assert m.to == (Address(name="Jürgen Schmürgen", addr="schmuergen@example.com"),)
    assert any("Subject: raw 8-bit header" in d for d in m.defects)


def test_unknown_charset_in_encoded_word_falls_back() -> None:
    raw = b"Subject: =?x-unknown?q?caf=E9?= =?utf8?q?caf=C3=A9?=\n\nx"
    m = parse_message(raw)
    assert m.subject == "cafécafé"
    assert any("unknown charset 'x-unknown'" in d for d in m.defects)


def test_message_ids_in_reply_to_and_references() -> None:
    m = parse_message(_read("ruby-mail/rfc2822/example06.eml"))
    assert m.message_id == "3456@example.net"
    assert m.in_reply_to == "1234@local.machine.example"
    assert m.references == ("1234@local.machine.example",)
    assert m.subject == "Re: Saying Hello"
    assert m.date == datetime(1997, 11, 21, 16, 1, 10, tzinfo=timezone.utc)
    assert m.to == (Address(name="John Doe", addr="jdoe@machine.example"),)


def test_empty_message_id_outlook_references_only_and_groups() -> None:
    raw = (b"Message-ID: <>\nFrom: a@b.c\n"
           b"To: undisclosed-recipients:;\nCc: Team: X@b.c, y@b.c;, , z@b.c\n"
           b"References: <one@x> <two@x>\n <one@x>\n\tthree@x\nSubject: RE: hi\n\nx")
    m = parse_message(raw)
    assert m.message_id is None and m.in_reply_to is None
    assert m.references == ("one@x", "two@x")  # in order, deduplicated
    assert m.to == ()
    assert [a.addr for a in m.cc] == ["x@b.c", "y@b.c", "z@b.c"]


def test_headers_are_all_kept_in_order_and_decoded() -> None:
    m = parse_message(_read("mimekit/messages/japanese.txt"))
    assert m.headers == (
        ("Message-ID", "<55AE6D15.4010805@veritas-vos-liberabit.com>"),
        ("Date", "Wed, 22 Jul 2015 01:02:29 +0900"),
        ("From", "Atsushi Eno <x@x.com>"),
        ("User-Agent",
         "Mozilla/5.0 (X11; Linux x86_64; rv:31.0) Gecko/20100101 Thunderbird/31.7.0"),
        ("MIME-Version", "1.0"),
        ("To", "Jeffrey Stedfast <x@x.com>"),
        ("Subject", "日本語メールテスト (testing Japanese emails)"),
        ("Content-Type", "text/plain; charset=ISO-2022-JP"),
        ("Content-Transfer-Encoding", "7bit"))
    assert m.message_id == "55AE6D15.4010805@veritas-vos-liberabit.com"
    assert m.date == datetime(2015, 7, 21, 16, 2, 29, tzinfo=timezone.utc)


def test_bad_date_is_none_with_a_defect() -> None:
    m = parse_message(_read("ruby-mail/error_emails/bad_date_header.eml"))
    assert m.date is None and any(d.startswith("Date:") for d in m.defects)


def test_date_without_zone_read_as_utc() -> None:
    m = parse_message(_read("perl-mimetools-via-mime4j/not-mime.msg"))  # "...09:38:18"
    assert m.date == datetime(1995, 2, 15, 9, 38, 18, tzinfo=timezone.utc)


def test_stray_line_in_header_block_does_not_hide_the_headers() -> None:
    # "quite Delivered-To: ..." ends the header block for the email package
    m = parse_message(_read("ruby-mail/plain_emails/raw_email_incorrect_header.eml"))
    assert m.sender == Address(name="xxx xxx", addr="xxx@xxx.xxx")
    assert m.message_id == "4D6AA7EB.6490534@xxx.xxx"
    assert m.text.startswith("You are infected with:")


def test_obsolete_space_before_colon() -> None:
    m = parse_message(_read("mime4j-testmsgs/obsolete.msg"))
    assert m.subject.startswith("The obsolete syntax allow spaces before the colon")
    assert m.text.strip() == "body"


def test_byte_order_mark_before_the_headers() -> None:
    m = parse_message(_read("mimekit/messages/feedback-report.txt"))
    assert m.sender == Address(name="", addr="abusedesk@example.com")
    assert m.subject == "FW: Earn money"


def test_malformed_from_recovered() -> None:
    m = parse_message(_read("ruby-mail/plain_emails/mix_caps_content_type.eml"))
    assert m.sender == Address(name="Big Bug", addr="bb@bug.com")


# ------------------------------------------------------------------ bodies and charsets
def test_multipart_alternative_gives_text_and_html() -> None:
    m = parse_message(_read("dovecot-via-stalwart/thirdparty/014.eml"))
    assert m.text.startswith("Dear all,\n\nI am writting my first C application")
    assert m.html.startswith("<html><head>") and "I am writting my first C" in m.html
    assert m.attachments == ()
    assert "\r" not in m.text


def test_iso_2022_jp_body() -> None:
    m = parse_message(_read("mimekit/messages/japanese.txt"))
    assert "日本語が\n正常に\n送れているか\nテスト." in m.text


def test_koi8_r_body() -> None:
    m = parse_message(_read("mimekit/tnef/ukr.eml"))
    assert m.text.startswith("шостий")


def test_unknown_declared_charset_still_readable() -> None:
    m = parse_message(_read("ruby-mail/plain_emails/raw_email10.eml"))  # charset=X-UNKNOWN
    assert "Envoyé par le service de messagerie texte de Bell Mobilité." in m.text
    assert any("unknown charset 'x-unknown'" in d for d in m.defects)


def test_shift_jis_and_ks_c_5601_bodies() -> None:
    m = parse_message(_read("ruby-mail/multi_charset/japanese_shift_jis.eml"))
    assert m.text.startswith("あいうえお\n\nこのメールはテスト用のメールです。")
    assert m.defects == ()


def test_mislabelled_windows_1252_and_utf8() -> None:
    raw = (b"Content-Type: multipart/alternative; boundary=b\n\n--b\n"
           b"Content-Type: text/plain; charset=iso-8859-1\n\n\x93quoted\x94 \x80 5\n--b\n"
           b"Content-Type: text/html; charset=us-ascii\n\n<p>Citt\xc3\xa0</p>\n--b--\n")
    m = parse_message(raw)
    assert m.text == "\u201cquoted\u201d \u20ac 5"
    assert m.html == "<p>Città</p>"


def test_lying_utf8_label_and_utf16_body() -> None:
    m = parse_message(b"Content-Type: text/plain; charset=utf-8\n\ncaff\xe8 e t\xe8\n")
    assert m.text == "caffè e tè\n"
    assert any("decoded as windows-1252" in d for d in m.defects)
    m = parse_message(b"Content-Type: text/plain; charset=utf-16\n\n\xff\xfec\x00i\x00a\x00o\x00")
    assert m.text == "ciao"


def test_only_html_leaves_text_empty() -> None:
    m = parse_message(_read("dovecot-via-stalwart/thirdparty/016.eml"))  # related: html + png
    assert m.text == "" and m.html.startswith("<html>") and "cid:" in m.html
    assert [a.content_type for a in m.attachments] == ["image/png"]


# ------------------------------------------------------------------ attachments
def test_rfc2231_filenames() -> None:
    m = parse_message(_read("perl-mimetools-via-mime4j/attachment-filename-encoding-UTF8.msg"))
    assert [a.filename for a in m.attachments] == ["attachment.äöü"]
    long_name = parse_message(_read("ruby-mail/multi_charset/japanese_attachment_long_name.eml"))
    assert [a.filename for a in long_name.attachments] == ["かきくけこ" * 5 + ".txt"]


def test_attachment_payload_and_sha256() -> None:
    raw = _read("mime4j-testmsgs/simple-attachment.msg")
    block = re.search(rb'filename="data.bin"\r?\n\r?\n(.*?)\r?\n--------------', raw, re.S)[1]
    expected = base64.b64decode(block)
    m = parse_message(raw)
    assert m.text == "Body.\n"
    (att,) = m.attachments
    assert (att.filename, att.content_type, att.inline) == ("data.bin", "application/octet-stream",
                                                           False)
    assert att.payload == expected and att.size == 1024
    assert att.sha256 == hashlib.sha256(expected).hexdigest()


def test_inline_images_with_content_id() -> None:
    m = parse_message(_read("dovecot-via-stalwart/thirdparty/017.eml"))
    (img,) = m.attachments
    assert img.content_type == "image/png" and img.inline and img.content_id
    assert "<" not in img.content_id and img.payload.startswith(b"\x89PNG")
    assert m.text and m.html


def test_unnamed_attachment_gets_part_name_with_extension() -> None:
    m = parse_message(_read("ruby-mail/attachment_emails/attachment_content_location.eml"))
    assert [(a.filename, a.content_type) for a in m.attachments] == [("part-2.jpg", "image/jpeg")]


def test_nested_message_rfc822_is_an_attachment() -> None:
    m = parse_message(_read("mimekit/messages/simple-embedded-message.eml"))
    assert m.text == "This is the message body.\n"
    (att,) = m.attachments
    assert (att.filename, att.content_type) == ("embedded message.eml", "message/rfc822")
    inner = parse_message(att.payload)
    assert inner.subject == "embedded message"
    assert inner.text.startswith("This is the embedded message")
    assert "embedded" not in m.text


def test_base64_encoded_message_rfc822() -> None:
    m = parse_message(_read("mime4j-testmsgs/base64encoded-rfc822message.msg"))
    (att,) = m.attachments
    assert att.content_type == "message/rfc822"
    assert att.payload.startswith(b"Content-Type: text/plain; charset=us-ascii\r\n")
    assert parse_message(att.payload).text == "Text body\n\n"


def test_delivery_status_notification() -> None:
    m = parse_message(_read("nodemailer-mailparser/delivery-status.eml"))
    assert m.sender == Address(name="", addr="mailer-daemon@amazonses.com")
    assert m.subject == "Delivery Status Notification (Failure)"
    assert m.text.startswith("An error occurred while trying to deliver the mail")
    status, original = m.attachments
    assert status.content_type == "message/delivery-status"
    assert b"Action: failed" in status.payload and b"Final-Recipient: rfc822;" in status.payload
    assert (original.content_type, original.filename) == ("message/rfc822",
                                                         "Example Subject.eml")
    assert parse_message(original.payload).subject == "Example Subject"


def test_damaged_base64_decoded_best_effort() -> None:
    m = parse_message(_read("zbateson-mail-mime-parser/m4009.txt"))  # "AAAAAA"
    att = next(a for a in m.attachments if a.filename == "test10Mb.db")
    assert att.payload == b"\x00\x00\x00\x00"
    assert any("damaged base64" in d for d in m.defects)


# ------------------------------------------------------------------ engines
@pytest.mark.parametrize("rel", sorted(FALLBACK_FILES))
def test_mail_parser_failure_uses_the_email_fallback(rel: str) -> None:
    raw = _read(rel)
    logging.disable(logging.CRITICAL)
    try:
        with pytest.raises(AttributeError):
            mailparser.parse_from_bytes(raw)  # mail-parser itself cannot parse these
    finally:
        logging.disable(logging.NOTSET)
    m = parse_message(raw)
    assert m.engine == "email"
    assert m.defects[0].startswith("mail-parser engine failed (AttributeError")
    assert "StartBoundaryNotFoundDefect" in " ".join(m.defects)
    assert m.text.strip()


def test_mail_parser_epilogue_recovery() -> None:
    # inner and outer multipart share one boundary: the zip ends up after the closing
    # boundary, where mail-parser's epilogue recovery finds it
    m = parse_message(_read("spamscope-mail-parser/mail_malformed_1"))
    assert m.engine == "mail-parser"
    assert [a.filename for a in m.attachments] == ["20160523_916527.jpg_.zip"]
    assert m.attachments[0].payload.startswith(b"PK\x03\x04")
    assert m.text == "--Sent from my iPhone"
    assert any("epilogue" in d for d in m.defects)


@pytest.mark.parametrize("raw", [
    b"", b"\x00" * 64, b"\n\n\n", b"From: a\n", b"no header at all, just text",
    b"Subject: =?utf-8?b?####?=\n\nx", b"Content-Type: multipart/mixed\n\n--\n",
    b"Content-Type: multipart/mixed; boundary=x\n\n--x\nContent-Type: message/rfc822\n\n",
    b"Content-Type: text/plain; charset=utf-16\n\n\xff\xfeh\x00i\x00",
    b"Content-Type: text/plain; charset=\"undefined\"\n\n\xe9",
    b"Content-Type: text/plain; charset=base64\n"
    b"Content-Transfer-Encoding: quoted-printable\n\n=E9=",
    b"Content-Disposition: attachment; filename*=x-bad''%ff%fe\n\n.",
    "Subject: \udce9\n\nx".encode("utf-8", "surrogatepass"),
])
def test_odd_inputs_never_raise(raw: bytes) -> None:
    _check_sane(parse_message(raw))


def test_absurd_nesting_degrades_to_text() -> None:
    raw = (b"From: a@b.c\nContent-Type: multipart/mixed; boundary=b0\n\n"
           + b"".join(b"--b%d\nContent-Type: multipart/mixed; boundary=b%d\n\n" % (i, i + 1)
                      for i in range(3000)) + b"--b3000\n\nhello\n")
    m = parse_message(raw)
    _check_sane(m)
    assert m.sender == Address(name="", addr="a@b.c") and "hello" in m.text


# ------------------------------------------------------------------ property tests
_SEEDS = [_read(rel) for rel in (
    "mimekit/messages/japanese.txt", "dovecot-via-stalwart/thirdparty/017.eml",
    "mime4j-testmsgs/simple-attachment.msg", "nodemailer-mailparser/delivery-status.eml",
    "perl-mimetools-via-mime4j/multi-nested.msg", "ruby-mail/rfc6532/utf8_headers.eml",
    "mimekit/messages/simple-embedded-message.eml", "dovecot-via-stalwart/malformed/001.eml")]
_TOKENS = [b"\n", b"\r\n", b"\n\n", b"--", b"=?", b"?=", b"=?utf-8?b?", b"=?x?q?=FF", b":",
           b"<", b">", b'"', b";", b"\x00", b"\xff", b"\xc3", b"=\n", b"boundary=",
           b"Content-Type: multipart/mixed; boundary=b\n", b"--b\n", b"--b--\n",
           b"Content-Type: message/rfc822\n", b"Content-Transfer-Encoding: base64\n",
           b"Content-Transfer-Encoding: quoted-printable\n", b"charset=", b"filename*0*=",
           b"From: ", b"Subject: ", b"References: <", b"Date: "]
_FAST = settings(max_examples=200, deadline=None, database=None,
                 suppress_health_check=[HealthCheck.too_slow])


@_FAST
@given(st.binary(max_size=3000))
def test_random_bytes_never_raise(data: bytes) -> None:
    _check_sane(parse_message(data))


@_FAST
@given(st.lists(st.sampled_from(_TOKENS) | st.binary(max_size=12), max_size=80))
def test_mime_shaped_junk_never_raises(chunks: list[bytes]) -> None:
    _check_sane(parse_message(b"".join(chunks)))


@_FAST
@given(st.sampled_from(_SEEDS), st.lists(st.tuples(
    st.integers(0, 1 << 20), st.integers(0, 3), st.sampled_from(_TOKENS) | st.binary(max_size=8)),
    min_size=1, max_size=12))
def test_mutated_real_messages_never_raise(seed: bytes, edits: list) -> None:
    data = bytearray(seed)
    for position, op, chunk in edits:
        p = position % (len(data) + 1)
        if op == 0:
            data[p:p] = chunk  # insert
        elif op == 1:
            del data[p:p + len(chunk) + 1]  # delete
        elif op == 2:
            data[p:p + len(chunk)] = chunk  # overwrite
        else:
            del data[p:]  # truncate
    _check_sane(parse_message(bytes(data)))
