"""Subjects for the thread fallback: strip reply/forward prefixes and list tags.

Used when a message carries no In-Reply-To/References that Casella knows: a reply-looking
subject joins the thread whose normalised subject is the same.  Prefixes are the ones real
clients write, in the languages Casella's users meet:

    reply    Re: RE: R: (it) Rif: Ris: (it) AW: (de) SV: (da/no/sv) Antw: (nl) Odp: (pl)
             Res: (pt) YNT: (tr) Réf.: RÉF : (fr) 回复: 答复: (zh)
    forward  Fwd: Fw: I: (it) Inoltro: Inoltrato: (it) WG: (de) TR: (fr) VS: VB: (no/sv)
             Doorst: (nl) PD: (pl) RV: (es) ENC: (pt) İLT: (tr) 转发: (zh)

with counters ("Re[2]:", "Re(2):", "Re^2:"), a space before the colon (French "RE :"),
the full-width colon, and "[list-tag]" prefixes such as "[Fedora]" anywhere in the run.
"""

from __future__ import annotations

import re

_REPLY_WORDS = r"re|r|rif|ris|aw|sv|antw|odp|res|ynt|r[ée]f\.?|回复|答复"
_FORWARD_WORDS = r"fwd?|i|inoltro|inoltrato|wg|tr|vs|vb|doorst|pd|rv|enc|[iİ]lt|转发"
_COUNTER = r"(?:\s*(?:\[\d+\]|\(\d+\)|\^\d+))?"
_COLON = r"\s*[:：]"
_TAG = r"\[[^\[\]]{1,80}\]"
_PREFIX = re.compile(
    rf"\s*(?:(?:{_REPLY_WORDS}|{_FORWARD_WORDS}){_COUNTER}{_COLON}|{_TAG})", re.IGNORECASE)
_FIRST_WORD = re.compile(
    rf"\s*(?:{_TAG}\s*)*(?:({_REPLY_WORDS})|{_FORWARD_WORDS}){_COUNTER}{_COLON}", re.IGNORECASE)
_PINE_FORWARD = re.compile(r"(?:\s*\((?:fwd|fw)\))+\s*$", re.IGNORECASE)
_SPACE = re.compile(r"\s+")


def _strip_prefixes(subject: str) -> str:
    pos = 0
    while m := _PREFIX.match(subject, pos):
        if m.end() == pos:
            break
        pos = m.end()
    return subject[pos:]


def normalize_subject(subject: str) -> str:
    """The thread key of a subject: prefixes and list tags removed, whitespace collapsed,
    casefolded.  "RE: [Fedora] Fwd: Re[2]:  Meeting" -> "meeting"."""
    text = _strip_prefixes(str(subject or ""))
    text = _PINE_FORWARD.sub("", text)
    return _SPACE.sub(" ", text).strip().casefold()


def is_reply_subject(subject: str) -> bool:
    """True when the first prefix (after any list tags) is a reply prefix: "Re:", "R:",
    "AW:", "[list] Re:" are replies; "Fwd: Re:" is a forward; "Re" alone is not."""
    m = _FIRST_WORD.match(str(subject or ""))
    return bool(m and m.group(1))
