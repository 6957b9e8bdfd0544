"""The store: quarantine instead of loss, duplicates, huge attachments."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Sequence

import pytest
from sqlalchemy import func, select

from casella.blobs import BlobStore
from casella.models import Attachment, Message, MessageLocation, QuarantineEntry, Registration
from casella.pipeline import StoredMessage, build_stages
from ingest.accounts import add_account
from ingest.store import Incoming, Storer
from tests.mailgen import make_message

pytestmark = pytest.mark.integration


class ExplodesOnSubject:
    """A stage with a bug that only some messages trigger."""

    name = "test.explodes"

    def process(self, batch: Sequence[StoredMessage], session) -> None:
        for item in batch:
            if "BOOM" in item.row.subject:
                raise ValueError("cannot handle this one")
            item.row.extra = {"seen_by_test_stage": True}


def make_storer(settings, database, extra_stages=()) -> tuple[Storer, int]:
    with database.session() as s:
        account_id = add_account(s, settings, name="ufficio", imap_host=None, imap_port=None, username=None,
                                 password=None, security="none", is_pec=False, folders=["INBOX"], sent_folders=None).id
    return Storer(database, BlobStore(settings.blob_dir), (*build_stages(settings), *extra_stages)), account_id


def test_failing_stage_quarantines_one_message_and_keeps_it(settings, database) -> None:
    storer, account_id = make_storer(settings, database, [ExplodesOnSubject()])
    raws = [make_message(i, "q", subject="BOOM here" if i == 2 else None) for i in range(5)]
    result = storer.store_batch(account_id, [Incoming(raw=r, folder="INBOX") for r in raws])
    assert result.stored == 5
    with database.session() as s:
        assert s.scalar(select(func.count(Message.id))) == 5
        [q] = s.scalars(select(QuarantineEntry)).all()
        assert q.stage == "test.explodes" and "cannot handle this one" in q.reason
        boom = s.get(Message, q.message_id)
        assert boom is not None and boom.subject == "BOOM here"
        others = s.scalars(select(Message).where(Message.id != boom.id)).all()
        assert all(m.extra == {"seen_by_test_stage": True} for m in others)
        # The earlier stages did their work for every message, the failing one included.
        assert s.scalar(select(func.count(Registration.id))) == 5


def test_same_bytes_twice_in_one_batch_is_one_message_with_two_locations(settings, database) -> None:
    storer, account_id = make_storer(settings, database)
    raw = make_message(0, "twice")
    result = storer.store_batch(account_id, [Incoming(raw=raw, folder="INBOX", uidvalidity=7, uid=1),
                                             Incoming(raw=raw, folder="INBOX", uidvalidity=7, uid=2)],
                                cursor=("INBOX", 7, 2))
    assert (result.stored, result.duplicates) == (1, 1)
    again = storer.store_batch(account_id, [Incoming(raw=raw, folder="INBOX", uidvalidity=7, uid=2)])
    assert (again.stored, again.duplicates, again.skipped) == (0, 0, 1)
    with database.session() as s:
        assert s.scalar(select(func.count(Message.id))) == 1
        assert s.scalar(select(func.count(MessageLocation.id))) == 2


def test_huge_attachment_is_stored_whole(settings, database) -> None:
    storer, account_id = make_storer(settings, database)
    payload = hashlib.sha256(b"seed").digest() * (20 * 1024 * 1024 // 32)  # 20 MiB
    encoded = base64.encodebytes(payload).replace(b"\n", b"\r\n")
    raw = (b"From: a@edilnord.it\r\nTo: b@studioferrari.it\r\nSubject: grande\r\nMessage-ID: <big@x>\r\n"
           b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=XYZ\r\n\r\n--XYZ\r\n"
           b"Content-Type: text/plain\r\n\r\nvedi allegato\r\n--XYZ\r\nContent-Type: application/octet-stream\r\n"
           b"Content-Disposition: attachment; filename=\"archivio.bin\"\r\nContent-Transfer-Encoding: base64\r\n\r\n"
           + encoded + b"--XYZ--\r\n")
    storer.store_batch(account_id, [Incoming(raw=raw, folder="INBOX")])
    with database.session() as s:
        [att] = s.scalars(select(Attachment)).all()
        msg = s.get(Message, att.message_id)
    assert att.filename == "archivio.bin" and att.size == len(payload)
    assert att.sha256 == hashlib.sha256(payload).hexdigest()
    blobs = BlobStore(settings.blob_dir)
    assert blobs.get(att.sha256) == payload
    assert blobs.get(msg.sha256) == raw
