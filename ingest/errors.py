"""Errors of the ingest."""

from casella.errors import CasellaError


class IngestError(CasellaError):
    """Root of the ingest's errors."""


class AccountError(IngestError):
    """An account could not be read (wrong password, unreachable host, TLS failure).
    The message is one line that names the account and what to check."""


class MailboxChanged(AccountError):
    """The account's server or login changed while a pass was reading the old mailbox:
    nothing of that batch is committed, and the pass ends (the daemon reconnects)."""


class ImportSourceError(IngestError):
    """`casella import` was given a path that is not a Maildir, an mbox or .eml files."""
