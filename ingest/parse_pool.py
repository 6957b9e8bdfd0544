"""Parse raw messages and write their blobs on every core: that is the ingest's main cost.

A small batch is done in-process; a larger one is spread over a process pool (forkserver,
so that no lock held by an ingest thread is inherited). Each worker parses a message,
writes its raw bytes and its attachments to the blob store (not yet synced: the caller
syncs the filesystem once per batch, before the commit) and sends back the ParsedMessage
without the attachment payloads, so no attachment crosses a process boundary.
`parse_message` never raises, so a worker result is always a ParsedMessage.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from concurrent.futures import Executor, ProcessPoolExecutor

from casella.blobs import BlobStore
from ingest.parse import parse_message
from ingest.parsed import ParsedMessage

INLINE_BELOW = 16
_lock = threading.Lock()
_pool: Executor | None = None
_pool_size = 0


def _get_pool(workers: int) -> Executor:
    global _pool, _pool_size
    with _lock:
        if _pool is None or _pool_size != workers:
            if _pool is not None:
                _pool.shutdown(wait=False, cancel_futures=True)
            ctx = multiprocessing.get_context("forkserver")
            _pool = ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_watch_parent,
                                        initargs=(os.getpid(),))
            _pool_size = workers
        return _pool


def _watch_parent(ingest_pid: int) -> None:
    """In a worker: exit when the ingest process (or the forkserver between us) is gone,
    killed with SIGKILL say, instead of lingering with its pipes open."""
    first_parent = os.getppid()

    def alive(pid: int) -> bool:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True

    def watch() -> None:
        while os.getppid() == first_parent and alive(ingest_pid):
            time.sleep(1.0)
        os._exit(0)

    threading.Thread(target=watch, daemon=True, name="watch-parent").start()


def parse_many(raws: Sequence[bytes], workers: int) -> list[ParsedMessage]:
    if workers <= 1 or len(raws) < INLINE_BELOW:
        return [parse_message(raw) for raw in raws]
    chunk = max(1, len(raws) // (workers * 4))
    return list(_get_pool(workers).map(parse_message, raws, chunksize=chunk))


def parse_and_store(raw: bytes, digest: str, blob_root: str) -> ParsedMessage:
    """Parse one message and write its blobs (unsynced); return it without payloads."""
    store = _stores.get(blob_root)
    if store is None:
        store = _stores[blob_root] = BlobStore(Path(blob_root))
    store.put(raw, digest=digest, sync=False)
    parsed = parse_message(raw)
    if not parsed.attachments:
        return parsed
    for att in parsed.attachments:
        store.put(att.payload, digest=att.sha256, sync=False)
    return replace(parsed, attachments=tuple(replace(a, payload=b"") for a in parsed.attachments))


def parse_and_store_many(raws: Sequence[bytes], digests: Sequence[str], blobs: BlobStore,
                         workers: int) -> list[ParsedMessage]:
    """Parse `raws` and write their blobs, then make the blobs durable (one syncfs)."""
    root = str(blobs.root)
    if workers <= 1 or len(raws) < INLINE_BELOW:
        parsed = [parse_and_store(raw, digest, root) for raw, digest in zip(raws, digests, strict=True)]
    else:
        chunk = max(1, len(raws) // (workers * 4))
        parsed = list(_get_pool(workers).map(parse_and_store, raws, digests, [root] * len(raws), chunksize=chunk))
    blobs.finish_writes_of(list(digests) + [a.sha256 for p in parsed for a in p.attachments])
    return parsed


_stores: dict[str, BlobStore] = {}


def shutdown() -> None:
    global _pool
    with _lock:
        if _pool is not None:
            _pool.shutdown(wait=True, cancel_futures=True)
            _pool = None
