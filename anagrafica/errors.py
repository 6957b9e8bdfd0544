"""Errors of the anagrafica (contact registry)."""

from casella.errors import CasellaError


class AnagraficaError(CasellaError):
    """Root of the anagrafica's errors."""


class BadContactsFile(AnagraficaError):
    """A contacts CSV lacks required columns or cannot be read; the message names them."""
