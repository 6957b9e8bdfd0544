"""What PEC says about a stored message: envelope, receipt or anomaly (see pec/classify.py).

One row per PEC message, written in the storing transaction. A receipt points at the sent
message it is about (`refers_to_id`) once that message is stored, whichever arrived first
(pec/stage.py); until then it is an orphan, found by its `refers_to_msgid`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from casella.models.base import Base, UTCDateTime


class MessagePec(Base):
    __tablename__ = "message_pec"

    message_id: Mapped[int] = mapped_column(ForeignKey("message.id", ondelete="CASCADE"), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))  # pec.classify.KINDS
    receipt_form: Mapped[str | None] = mapped_column(String(16))  # completa | breve | sintetica
    refers_to_msgid: Mapped[str | None] = mapped_column(String(998), index=True)  # without angle brackets
    refers_to_id: Mapped[int | None] = mapped_column(ForeignKey("message.id", ondelete="SET NULL"), index=True)
    sender: Mapped[str | None] = mapped_column(String(998))  # the real sender (daticert mittente)
    at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # daticert <data>, else the Date header
    daticert: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    signature: Mapped[dict[str, Any] | None] = mapped_column(JSON)  # SignatureCheck.as_json()
    problems: Mapped[list[str]] = mapped_column(JSON, default=list)
