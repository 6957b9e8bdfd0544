"""List the webmail's message ids and the ones a language does not translate yet.

    .venv/bin/python -m webmail.i18n_extract [LANG]     # default: it

Reads every template (Jinja2 `_()` calls) and every Python module of webmail/ (`_()`), the
same way `pybabel extract` would. tests/webmail/test_i18n.py fails while any is missing.
"""

from __future__ import annotations

import sys
from pathlib import Path

from babel.messages.extract import extract_from_dir

from webmail.i18n import LOCALE_DIR, catalog

ROOT = Path(__file__).parent
METHODS = [("**/templates/**.html", "jinja2.ext:babel_extract"), ("**.py", "python")]
OPTIONS = {"**/templates/**.html": {"extensions": "jinja2.ext.i18n", "trim_blocks": "true",
                                    "lstrip_blocks": "true"}}


def message_ids() -> dict[str, str]:
    """Every message id, with the first place it is used."""
    found: dict[str, str] = {}
    for filename, lineno, message, _comments, _context in extract_from_dir(
            str(ROOT), METHODS, options_map=OPTIONS, keywords={"_": None, "gettext": None, "ngettext": (1, 2)}):
        ids = message if isinstance(message, tuple) else (message,)
        for msgid in ids:
            if msgid:
                found.setdefault(msgid, f"{filename}:{lineno}")
    return found


def missing(lang: str = "it") -> dict[str, str]:
    translated = catalog(lang)
    return {m: where for m, where in message_ids().items()
            if m not in translated or not translated[m].string}


def main() -> None:
    lang = sys.argv[1] if len(sys.argv) > 1 else "it"
    gaps = missing(lang)
    for msgid, where in sorted(gaps.items(), key=lambda kv: kv[1]):
        print(f"#: {where}\nmsgid {msgid!r}\n")
    print(f"{len(gaps)} message(s) without a {lang} translation in {LOCALE_DIR / lang / 'LC_MESSAGES'}",
          file=sys.stderr)


if __name__ == "__main__":
    main()
