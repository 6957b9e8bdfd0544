"""Translations: gettext catalogues in webmail/locale/<lang>/LC_MESSAGES/*.po (one file
per area of the webmail, merged into one catalogue per language).

Message ids are English; Italian is the default language, English the second. The .po
files are compiled in memory at start (babel), so there is no build step and nothing
compiled in git. The language of a request lives in a context variable, set by the
`route` decorator from the user's preference (or the `lang` cookie before login).
"""

from __future__ import annotations

import gettext
import io
from contextvars import ContextVar
from functools import cache
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

LOCALE_DIR = Path(__file__).parent / "locale"
LANGUAGES = {"it": "Italiano", "en": "English"}
DEFAULT_LANGUAGE = "it"

current_language: ContextVar[str] = ContextVar("current_language", default=DEFAULT_LANGUAGE)


def catalog(lang: str) -> Catalog:
    """Every .po file of a language merged (a message id defined twice: the first file in
    name order wins)."""
    merged = Catalog(locale=lang)
    for po in sorted((LOCALE_DIR / lang / "LC_MESSAGES").glob("*.po")):
        with po.open("rb") as fh:
            for message in read_po(fh, locale=lang):
                if message.id and message.id not in merged:
                    merged[message.id] = message
    return merged


@cache
def translations(lang: str) -> gettext.NullTranslations:
    merged = catalog(lang)
    if not len(merged):
        return gettext.NullTranslations()
    buf = io.BytesIO()
    write_mo(buf, merged)
    buf.seek(0)
    return gettext.GNUTranslations(buf)


def pick_language(preferred: str | None, accept_language: str = "") -> str:
    if preferred in LANGUAGES:
        return preferred  # type: ignore[return-value]
    for part in accept_language.split(","):
        code = part.split(";")[0].strip().lower()[:2]
        if code in LANGUAGES:
            return code
    return DEFAULT_LANGUAGE


def gettext_(message: str) -> str:
    return translations(current_language.get()).gettext(message)


def ngettext_(singular: str, plural: str, n: int) -> str:
    return translations(current_language.get()).ngettext(singular, plural, n)


_ = gettext_
