"""What every benchmark here shares: a time limit that stops the run by itself, bounded
subprocesses, progress notes on stderr, and the generated mail (../shared's generator when
it is there, else the copy shipped in casella.demo.corpus)."""

from __future__ import annotations

import os
import platform
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SHARED_GENERATOR = ROOT.parent / "shared" / "tools" / "gen_corpus.py"


class BenchFailure(RuntimeError):
    """The benchmark could not run, or a result is wrong."""


class BenchTimeout(BaseException):
    """Out of time: a BaseException, so that no `except Exception` in the code under test
    swallows it."""


def note(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


_deadline = float("inf")


def start_clock(timeout: float) -> None:
    """From now on the run has `timeout` seconds; SIGALRM and SIGTERM end it cleanly."""
    global _deadline
    _deadline = time.monotonic() + timeout
    signal.signal(signal.SIGALRM, _on_alarm)
    signal.alarm(int(timeout) + 1)
    signal.signal(signal.SIGTERM, _on_term)


def remaining() -> float:
    left = _deadline - time.monotonic()
    if left <= 0:
        raise BenchTimeout("the benchmark ran out of time (--timeout)")
    return left


def _on_alarm(signum: int, frame: Any) -> None:
    raise BenchTimeout("the benchmark ran out of time (--timeout)")


def _on_term(signum: int, frame: Any) -> None:
    raise SystemExit(f"stopped by signal {signum}")


def run(cmd: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    """subprocess.run within the remaining time; a failure shows the command's output."""
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=remaining(), **kwargs)
    except subprocess.TimeoutExpired as exc:
        raise BenchTimeout(f"{' '.join(cmd)} did not finish in time") from exc
    if proc.returncode != 0:
        raise BenchFailure(f"{' '.join(cmd)} exited {proc.returncode}:\n{proc.stderr}\n{proc.stdout}")
    return proc


def generate(count: int, seed: int, out: Path) -> str:
    """Write `count` generated messages as a Maildir at `out`; return which generator ran."""
    if SHARED_GENERATOR.is_file():
        run([sys.executable, str(SHARED_GENERATOR), "--count", str(count), "--out", str(out), "--seed", str(seed)])
        return str(SHARED_GENERATOR)
    from casella.demo.corpus import write_maildir

    write_maildir(count, out, seed=seed)
    return "casella.demo.corpus"


def machine() -> dict[str, Any]:
    """What the figures were measured on, printed beside them."""
    return {"nproc": os.cpu_count(), "usable_cpus": len(os.sched_getaffinity(0)),
            "loadavg_1min_at_end": round(os.getloadavg()[0], 2),
            "python": platform.python_version(), "platform": platform.platform()}


def work_dir(keep: Path | None, prefix: str) -> Path:
    """--keep DIR (new or empty, kept), else a new temporary directory (removed by the caller)."""
    import tempfile

    if keep is None:
        return Path(tempfile.mkdtemp(prefix=prefix))
    work = keep.resolve()
    if work.exists() and any(work.iterdir()):
        raise BenchFailure(f"--keep {work}: the directory is not empty")
    work.mkdir(parents=True, exist_ok=True)
    return work


def notmuch_env(maildir: Path, work: Path, *, synchronize_flags: bool = False) -> dict[str, str]:
    """The environment of a notmuch of our own: its config in `work`, its database for
    `maildir`, nothing from the user's notmuch (NOTMUCH_* dropped, HOME moved)."""
    work.mkdir(parents=True, exist_ok=True)
    config = work / "notmuch-config"
    config.write_text(
        "[database]\n"
        f"path={maildir}\n"
        "[user]\nname=Bench\nprimary_email=bench@example.invalid\n"
        "[new]\ntags=unread;inbox;\nignore=\n"
        "[search]\nexclude_tags=\n"
        f"[maildir]\nsynchronize_flags={'true' if synchronize_flags else 'false'}\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("NOTMUCH_")}
    env.update(NOTMUCH_CONFIG=str(config), HOME=str(work))
    return env
