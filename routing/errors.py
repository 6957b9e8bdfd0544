"""Errors of routing: rules, their YAML files and pratiche."""

from casella.errors import CasellaError


class RoutingError(CasellaError):
    """Root of routing's errors."""


class InvalidRules(RoutingError):
    """One or more rules are malformed (unknown field or operator, bad regex, missing
    target…). Raised at import, never at evaluation; `problems` lists every one, each
    naming the rule and the field, e.g. `rule 'fatture' conditions[1].op: …`."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        lines = "\n  ".join(self.problems)
        super().__init__(f"{len(self.problems)} problem(s) in the rules, nothing was changed:\n  {lines}")


class PraticaError(RoutingError):
    """A pratica command was given something impossible (duplicate code, bad status)."""
