"""Working together on a message: the side panel of the message view (assignment, status,
tags, notes, pratiche, links, visibility, history) and who else is looking at it.

`panel(ctx, msg)` returns what templates/mail/_work.html shows; the actions it offers are
the POST routes of webmail/views/work.py.
"""

from __future__ import annotations

from typing import Any

from casella.models import Message
from webmail.context import Ctx


def panel(ctx: Ctx, msg: Message) -> dict[str, Any]:
    return {}
