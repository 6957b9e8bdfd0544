"""Errors of the PEC package. Classification and signature checks never raise: a broken
PEC is stored with its problems; these errors are for administrative commands."""

from casella.errors import CasellaError


class PecError(CasellaError):
    """Root of the PEC package's errors."""


class TrustStoreError(PecError):
    """`casella pec trust add` was given a file with no certificate, or one that does not
    load; the message names the file and the certificate that failed (fix or remove it)."""
