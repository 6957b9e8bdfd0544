"""Who is looking at a conversation right now (collision detection).

An in-process registry: conversation key → {username: (state, last_seen)}. The message
page (static/work.js) reports "viewing" every few seconds, the compose page "replying";
an entry not refreshed within `EXPIRY` seconds is gone. The key is the message's thread
when it has one, so people on different messages of one conversation see each other.

Known limit: the registry lives in the webmail process. With several webmail processes
behind a balancer, each process sees only the people its own requests came from. To share
it, keep it in the database: a table `presence(key TEXT, username TEXT, state TEXT,
last_seen TIMESTAMP, PRIMARY KEY (key, username))` upserted by `touch` and read with
`last_seen > now - EXPIRY` (old rows swept now and then) would do; it is not needed while
the webmail runs as one process (the default).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

STATES = ("viewing", "replying")
EXPIRY = 30.0  # seconds without news before someone is no longer "here"
POLL = 10  # seconds between two reports of static/work.js


@dataclass(frozen=True, slots=True)
class Here:
    username: str
    name: str
    state: str
    seconds_ago: int


class Presence:
    """Thread-safe: views run in Starlette's thread pool."""

    def __init__(self, expiry: float = EXPIRY) -> None:
        self.expiry = expiry
        self._lock = threading.Lock()
        # key → username → (state, display name, last seen on the monotonic clock)
        self._rooms: dict[str, dict[str, tuple[str, str, float]]] = {}

    def touch(self, key: str, username: str, state: str, name: str = "") -> None:
        if state not in STATES:
            raise ValueError(f"presence state must be one of {', '.join(STATES)}")
        now = time.monotonic()
        with self._lock:
            room = self._rooms.setdefault(key, {})
            previous = room.get(username)
            # Replying wins over viewing for a while: the message tab of someone who is
            # writing an answer in another tab must not hide that they are replying.
            if state == "viewing" and previous and previous[0] == "replying" and now - previous[2] < self.expiry:
                room[username] = ("replying", name or previous[1], previous[2])
            else:
                room[username] = (state, name or username, now)
            self._sweep(now)

    def leave(self, key: str, username: str) -> None:
        with self._lock:
            room = self._rooms.get(key)
            if room is not None:
                room.pop(username, None)
                if not room:
                    del self._rooms[key]

    def others(self, key: str, username: str) -> list[Here]:
        """Everyone present on `key` but `username`, replying first, then by name."""
        now = time.monotonic()
        with self._lock:
            room = dict(self._rooms.get(key, {}))
        out = [Here(u, name, state, int(now - seen)) for u, (state, name, seen) in room.items()
               if u != username and now - seen < self.expiry]
        out.sort(key=lambda h: (h.state != "replying", h.name.lower()))
        return out

    def _sweep(self, now: float) -> None:
        """Drop expired entries (called under the lock, on writes)."""
        for key in [k for k, room in self._rooms.items()
                    if all(now - seen >= self.expiry for _, _, seen in room.values())]:
            del self._rooms[key]


_lock = threading.Lock()


def registry(app: Any) -> Presence:
    """The process's registry, kept on the shared `App` (webmail/context.py)."""
    if app.presence is None:
        with _lock:
            if app.presence is None:
                app.presence = Presence()
    return app.presence  # type: ignore[no-any-return]


def key_for(message: Any) -> str:
    """The conversation a message belongs to: its thread, else the message itself."""
    return f"thread:{message.thread_id}" if message.thread_id else f"message:{message.id}"
