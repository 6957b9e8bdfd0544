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


class SignatureError(MailserverError):
    """A signature cannot be added, found or used: unknown variables in a template, an
    unknown name, or a signature of another user or account (`casella signature list`)."""


class ComposeError(MailserverError):
    """The webmail's compose (mailserver/compose.py) was given a message that cannot be sent:
    no recipient, a malformed address, an original message that cannot be read."""


class SenderNotAllowed(ComposeError):
    """The user may not send as that address through that account; an administrator grants
    it with `casella account grant ACCOUNT --user U --level write` or `casella identity add`."""


class RecipientUnreachable(ComposeError):
    """A recipient is outside Casella and the account has no upstream SMTP server
    (`casella smtp-upstream ACCOUNT ...` sets one)."""
