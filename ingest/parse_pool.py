"""Parse raw messages on every core: parsing is the ingest's main cost.

A small batch is parsed in-process; a larger one is spread over a process pool (forkserver,
so that no lock held by an ingest thread is inherited). `parse_message` never raises, so a
worker result is always a ParsedMessage.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
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


def shutdown() -> None:
    global _pool
    with _lock:
        if _pool is not None:
            _pool.shutdown(wait=True, cancel_futures=True)
            _pool = None
