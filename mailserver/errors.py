"""Errors of the submission server and the relay."""

from casella.errors import CasellaError


class MailserverError(CasellaError):
    """Root of the mailserver's own errors."""


class MailserverConfigError(MailserverError):
    """A mailserver setting is unusable (listen address, TLS files); the message names the key."""


class IdentityError(MailserverError):
    """`casella identity add` was given an address or account that cannot be granted."""


class UpstreamError(MailserverError):
    """`casella smtp-upstream` was given an impossible upstream (unknown account, bad security)."""
