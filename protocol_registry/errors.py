"""Errors of the protocol registry."""

from casella.errors import CasellaError


class ProtocolError(CasellaError):
    """Root of the protocol registry's errors."""


class BadProtocolNumber(ProtocolError):
    """A protocol number given by the user is not of the form YEAR/NUMBER."""


class RegistrationImmutable(ProtocolError):
    """Something tried to change a registration; only a cancellation (once) is allowed."""
