"""Parse raw messages on every core: parsing is the ingest's main cost.

A small batch is parsed in-process; a larger one is spread over a process pool (forkserver,
so that no lock held by an ingest thread is inherited). `parse_message` never raises, so a
worker result is always a ParsedMessage.
"""

from __future__ import annotations

import multiprocessing
import threading
from collections.abc import Sequence
from concurrent.futures import Executor, ProcessPoolExecutor

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
            _pool = ProcessPoolExecutor(max_workers=workers, mp_context=ctx)
            _pool_size = workers
        return _pool


def parse_many(raws: Sequence[bytes], workers: int) -> list[ParsedMessage]:
    if workers <= 1 or len(raws) < INLINE_BELOW:
        return [parse_message(raw) for raw in raws]
    chunk = max(1, len(raws) // (workers * 4))
    return list(_get_pool(workers).map(parse_message, raws, chunksize=chunk))


def shutdown() -> None:
    global _pool
    with _lock:
        if _pool is not None:
            _pool.shutdown(wait=True, cancel_futures=True)
            _pool = None
