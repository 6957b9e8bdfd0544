"""Small, distinct, realistic messages for tests that need many of them."""

from __future__ import annotations

from pathlib import Path


def make_message(i: int, tag: str, *, sender: str = "Mario Rossi <mario.rossi@edilnord.it>",
                 to: str = "info@studioferrari.it", subject: str | None = None, extra_headers: str = "",
                 body: str = "Buongiorno, in allegato il preventivo.") -> bytes:
    subject = subject if subject is not None else f"Preventivo {tag} {i}"
    return (f"From: {sender}\r\nTo: {to}\r\nSubject: {subject}\r\nMessage-ID: <{tag}-{i}@example.test>\r\n"
            f"Date: Mon, 2 Nov 2026 10:{i % 60:02d}:00 +0100\r\n{extra_headers}"
            f"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{body} ({tag} {i})\r\n").encode()


def write_eml_folder(folder: Path, raws: list[bytes]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for n, raw in enumerate(raws):
        (folder / f"{n:05d}.eml").write_bytes(raw)
    return folder
