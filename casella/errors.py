"""The root of every error Casella raises on purpose.

Each package has its own `errors.py` with subclasses; every class says when it is raised
and its message says what to do next.
"""


class CasellaError(Exception):
    """Root of all of Casella's own errors."""


class ConfigurationError(CasellaError):
    """A setting is missing or malformed; the message names the key and how to fix it."""


class NotFound(CasellaError):
    """A message, account, registration or other record named by the user does not exist."""


class Quarantine(CasellaError):
    """A pipeline stage sets a message aside: it stays stored, with this reason recorded."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
