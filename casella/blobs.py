"""Content-addressed, immutable blob store: raw messages and attachments by SHA-256.

Layout: ``ROOT/ab/abcdef…`` (one fan-out level of 256 directories: creating directories
is what costs on a busy ingest, and 256 of them hold millions of files comfortably). A blob is written to a temporary file
in the same directory, flushed to disk, then renamed into place, so a reader never sees a
half-written blob and a crash leaves at most an orphan temporary file (swept by `sweep`).
Writing the same content twice is a no-op. Bytes come back exactly as they went in.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from casella.errors import CasellaError, NotFound


WRITE_THREADS = 4


class BlobCorrupted(CasellaError):
    """A stored blob no longer hashes to its name: restore it from a backup."""


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class BlobStore:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self._dirs: set[Path] = set()

    def path_for(self, digest: str) -> Path:
        if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
            raise NotFound(f"not a sha256 digest: {digest!r}")
        return self.root / digest[:2] / digest

    def exists(self, digest: str) -> bool:
        return self.path_for(digest).exists()

    def put(self, data: bytes, *, digest: str | None = None, sync: bool = True) -> str:
        """Store `data`; return its sha256. With sync=False the caller must call `sync_dirs`
        (or `put_many`) before relying on the blob surviving a power loss."""
        digest = digest or sha256_hex(data)
        path = self.path_for(digest)
        if path.exists():
            return digest
        if path.parent not in self._dirs:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._dirs.add(path.parent)
        tmp = path.parent / f".tmp-{digest[:16]}-{os.getpid()}-{threading.get_ident()}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                if sync:
                    f.flush()
                    os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
            raise
        if sync:
            _fsync_dir(path.parent)
        return digest

    def put_many(self, items: Iterable[tuple[str, bytes]]) -> None:
        """Store many (digest, data) pairs durably with one filesystem sync at the end:
        what the ingest does per batch, before the database commit that refers to them."""
        self.finish_writes(self.start_writes(items))

    def start_writes(self, items: Iterable[tuple[str, bytes]]) -> list[Future[str]]:
        """Begin writing blobs on the writer threads (creating a file waits on the disk, not
        on Python); `finish_writes` waits for them and makes them durable."""
        pool = _writer_pool()
        return [pool.submit(self.put, data, digest=digest, sync=False)
                for digest, data in items if not self.path_for(digest).exists()]

    def finish_writes(self, writes: list[Future[str]]) -> None:
        self.finish_writes_of([w.result() for w in writes])  # result() re-raises a failed write

    def finish_writes_of(self, digests: list[str]) -> None:
        """Make blobs written with sync=False (here or by another process) durable."""
        if digests and not _syncfs(self.root):
            for d in {self.path_for(digest).parent for digest in digests}:
                _fsync_dir(d)

    def get(self, digest: str, *, verify: bool = False) -> bytes:
        path = self.path_for(digest)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise NotFound(f"blob {digest} is not in the store at {self.root}") from None
        if verify and sha256_hex(data) != digest:
            raise BlobCorrupted(f"blob {digest} at {path} does not match its hash")
        return data

    def sweep(self) -> int:
        """Remove temporary files a crash left behind; return how many."""
        removed = 0
        for tmp in self.root.glob("*/.tmp-*"):
            tmp.unlink(missing_ok=True)
            removed += 1
        return removed


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _syncfs(path: Path) -> bool:
    """Flush every dirty page and inode of the filesystem holding `path` (Linux syncfs,
    which covers the new directory entries too); return False where there is no syncfs."""
    global _libc
    try:
        if _libc is None:
            import ctypes

            _libc = ctypes.CDLL(None, use_errno=True)
        fd = os.open(path, os.O_RDONLY)
        try:
            if _libc.syncfs(fd) == 0:
                return True
        finally:
            os.close(fd)
    except (OSError, AttributeError):
        pass
    os.sync()
    return False


_libc: Any = None
_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _writer_pool() -> ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=WRITE_THREADS, thread_name_prefix="blob-writer")
        return _pool
