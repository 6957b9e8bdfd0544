"""Rendered message-list rows, kept by everything they show.

A list page is fifty rows, and most of the work of a page is writing them out; yet a
shared inbox shows the same rows to a whole team, page after page. `RowFragments` renders
a row once (`mail/_row.html`) and keeps the HTML under a key made of every value the row
template reads, the language and the date as shown: a row whose message, read state, tags,
assignee or link changes has a new key, so a kept fragment can never be out of date.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from markupsafe import Markup

from webmail import i18n

if TYPE_CHECKING:
    from jinja2 import Environment

    from webmail.mailbox import Row

MAX_ROWS = 20_000  # ~1 KB each; the whole cache is dropped when full (a list's next page refills it)


class RowFragments:
    """`row_html(row)` in templates: one message-list row as HTML (escaped by the template)."""

    def __init__(self, env: Environment, template: str = "mail/_row.html", limit: int = MAX_ROWS) -> None:
        self.env = env
        self.template = template
        self.limit = limit
        self._kept: dict[tuple[Any, ...], Markup] = {}
        self._lock = threading.Lock()

    def __call__(self, row: Row) -> Markup:
        date_text = self.env.filters["dt"](row.date)
        key = (i18n.current_language.get(), date_text, row.id, row.direction, row.correspondent, row.link_name,
               row.link_kind, row.subject, row.has_attachments, row.pec_kind, tuple(row.tags), row.status,
               row.assigned, row.protocol, row.unread, row.date)
        html = self._kept.get(key)
        if html is None:
            html = Markup(self.env.get_template(self.template).render(row=row, date_text=date_text))
            with self._lock:
                if len(self._kept) >= self.limit:
                    self._kept.clear()
                self._kept[key] = html
        return html

    def __len__(self) -> int:
        return len(self._kept)
