"""Errors of the ingest."""

from casella.errors import CasellaError


class IngestError(CasellaError):
    """Root of the ingest's errors."""


class AccountError(IngestError):
    """An account could not be read (wrong password, unreachable host, TLS failure).
    The message is one line that names the account and what to check."""


class ImportSourceError(IngestError):
    """`casella import` was given a path that is not a Maildir, an mbox or .eml files."""
