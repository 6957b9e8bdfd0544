"""A routing rule as the engine sees it: frozen, validated, regexes already compiled.

Built only by `routing/validate.py` (from YAML or from the database); `as_dict()` gives back
the canonical form that is stored in `routing_rule` and written by `casella rules export`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

ACTION_KINDS = ("assign-user", "assign-group", "set-agent", "move", "add-tags", "link-pratica",
                "make-public", "stop")


@dataclass(frozen=True, slots=True)
class Condition:
    field: str  # subject, from, …, header:X-Name
    op: str  # contains | equals | starts-with | regex | domain-is | exists
    values: tuple[str, ...] = ()  # any of them; empty for exists; ("true",)/("false",) for sender-unknown
    negate: bool = False
    patterns: tuple[re.Pattern[str], ...] = field(default=(), compare=False, repr=False)

    @property
    def header(self) -> str:
        return self.field.partition(":")[2]

    @property
    def base_field(self) -> str:
        return "header" if self.field.startswith("header:") else self.field

    def describe(self) -> str:
        shown = " or ".join(f'"{v}"' for v in self.values)
        text = f"{self.field} {self.op}" + (f" {shown}" if self.values else "")
        return f"not ({text})" if self.negate else text

    def as_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"field": self.field, "op": self.op}
        if self.values:
            value: Any = list(self.values) if len(self.values) > 1 else self.values[0]
            if self.field == "sender-unknown":
                value = self.values[0] == "true"
            data["value"] = value
        if self.negate:
            data["negate"] = True
        return data


@dataclass(frozen=True, slots=True)
class Action:
    """One thing a matching rule asks for. Only the fields of its kind are set."""

    kind: str
    user: str | None = None  # assign-user
    group: str | None = None  # assign-group
    agent: str | None = None  # set-agent; None: the linked company's agent
    folder: str | None = None  # move
    account: str | None = None  # move
    tags: tuple[str, ...] = ()  # add-tags
    code: str | None = None  # link-pratica, a fixed code …
    from_subject: re.Pattern[str] | None = field(default=None, compare=False)  # … or a capture
    title: str | None = None  # link-pratica: title of a pratica it creates

    def describe(self) -> str:
        args = {
            "assign-user": self.user, "assign-group": self.group,
            "set-agent": self.agent or "the company's agent",
            "move": " ".join(p for p in (self.account and f"to mailbox {self.account}",
                                         self.folder and f"to folder {self.folder}") if p),
            "add-tags": ", ".join(self.tags),
            "link-pratica": self.code or (self.from_subject and f"from subject /{self.from_subject.pattern}/"),
        }.get(self.kind)
        return f"{self.kind} {args}" if args else self.kind

    def as_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"action": self.kind}
        for key, value in (("user", self.user), ("group", self.group), ("agent", self.agent),
                           ("folder", self.folder), ("account", self.account), ("code", self.code),
                           ("from-subject", self.from_subject.pattern if self.from_subject else None),
                           ("title", self.title)):
            if value is not None:
                data[key] = value
        if self.tags:
            data["tags"] = list(self.tags)
        return data


@dataclass(frozen=True, slots=True)
class Rule:
    name: str  # kebab-case; shown in logs, history (actor "rule:<name>") and explanations
    conditions: tuple[Condition, ...] = ()
    actions: tuple[Action, ...] = ()
    match: str = "all"  # all | any
    stop: bool = False  # when it matches, later rules are not evaluated
    enabled: bool = True
    account: str | None = None  # None: every account, after the account's own rules
    description: str = ""

    def as_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"name": self.name}
        if self.description:
            data["description"] = self.description
        if self.account is not None:
            data["account"] = self.account
        if not self.enabled:
            data["enabled"] = False
        data["match"] = self.match
        data["conditions"] = [c.as_dict() for c in self.conditions]
        data["actions"] = [a.as_dict() for a in self.actions]
        if self.stop:
            data["stop"] = True
        return data
