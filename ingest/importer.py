"""`casella import PATH`: a Maildir, an mbox (optionally .gz) or a folder of .eml files,
through the same store and pipeline as IMAP. Importing the same mail twice stores nothing
new: messages are recognised by their hash."""

from __future__ import annotations

import gzip
import mailbox
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from ingest.errors import ImportSourceError
from ingest.store import BatchResult, Incoming, Storer

MESSAGE_SUFFIXES = (".eml", ".msg")


def detect_kind(path: Path) -> str:
    if path.is_dir():
        if (path / "cur").is_dir() or (path / "new").is_dir():
            return "maildir"
        return "eml-folder"
    if path.is_file():
        head = _open(path).read(5)
        if head == b"From ":
            return "mbox"
        return "eml"
    raise ImportSourceError(f"{path} does not exist: give a Maildir, an mbox file or a folder of .eml files")


def _open(path: Path) -> object:
    return gzip.open(path, "rb") if path.suffix == ".gz" else path.open("rb")


def iter_raw(path: Path) -> Iterator[bytes]:
    kind = detect_kind(path)
    if kind == "maildir":
        for sub in ("cur", "new"):
            folder = path / sub
            if folder.is_dir():
                for name in sorted(os.listdir(folder)):
                    yield (folder / name).read_bytes()
    elif kind == "eml-folder":
        files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in MESSAGE_SUFFIXES)
        if not files:
            raise ImportSourceError(f"{path} has no .eml files, and is not a Maildir (no cur/ or new/)")
        for file in files:
            yield file.read_bytes()
    elif kind == "eml":
        yield path.read_bytes()
    else:
        yield from _iter_mbox(path)


def _iter_mbox(path: Path) -> Iterator[bytes]:
    if path.suffix == ".gz":
        with tempfile.NamedTemporaryFile(suffix=".mbox") as tmp:
            with gzip.open(path, "rb") as src:
                while chunk := src.read(1 << 20):
                    tmp.write(chunk)
            tmp.flush()
            yield from _iter_mbox(Path(tmp.name))
        return
    box = mailbox.mbox(str(path), create=False)
    try:
        for key in box.keys():
            yield box.get_bytes(key)
    finally:
        box.close()


def import_path(storer: Storer, account_id: int, path: Path, *, folder: str = "INBOX", batch_size: int = 200,
                progress: Callable[[BatchResult], None] | None = None) -> BatchResult:
    total = BatchResult()
    batch: list[Incoming] = []

    def flush() -> None:
        result = storer.store_batch(account_id, batch, source=f"import:{path.name}")
        total.add(result)
        batch.clear()
        if progress is not None:
            progress(total)

    for raw in iter_raw(path):
        batch.append(Incoming(raw=raw, folder=folder))
        if len(batch) >= batch_size:
            flush()
    if batch:
        flush()
    return total
