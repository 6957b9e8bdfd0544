"""Where the test servers live: a free loopback port, and a run directory that the servers'
unprivileged users (Dovecot's `nobody`, `postgres`) can reach."""

from __future__ import annotations

import os
import socket
import tempfile
from pathlib import Path

HOST = "127.0.0.1"


def free_port(host: str = HOST) -> int:
    """A TCP port that was free a moment ago (bind to port 0, then close)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def make_traversable(path: Path, who: str = "other users") -> None:
    """Let other users reach *path*: add 0o755 to it and to each parent below the temp root
    (pytest's tmp dirs are 0700). Parents outside the temp root are not changed; a clear
    error is raised if one of them is not traversable."""
    tmp_root = Path(tempfile.gettempdir()).resolve()
    p = Path(path).resolve()
    for d in [p, *p.parents]:
        if d == tmp_root or d == d.parent:
            break
        mode = d.stat().st_mode & 0o7777
        if tmp_root in d.parents:
            if mode & 0o755 != 0o755:
                os.chmod(d, mode | 0o755)
        elif not mode & 0o001:
            raise RuntimeError(f"{d} is not traversable by {who} (mode {mode:o}), so they cannot reach {p}. "
                               f"Use a run directory under {tmp_root}.")
