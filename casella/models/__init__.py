"""Every table of Casella, one model per file; import from here."""

from casella.models.account import Account
from casella.models.attachment import Attachment
from casella.models.base import Base, UTCDateTime, utcnow
from casella.models.company import LIFECYCLES, Company, CompanyDomain
from casella.models.contact import Contact, ContactEmail
from casella.models.event import MessageEvent
from casella.models.folder_state import FolderState
from casella.models.message import Message
from casella.models.message_location import MessageLocation
from casella.models.message_pec import MessagePec
from casella.models.quarantine import QuarantineEntry
from casella.models.registration import ProtocolCounter, ProtocolRegistry, Registration, format_protocol
from casella.models.outbound import AccountSmtp, OutboundMessage, SenderIdentity
from casella.models.presence import PresenceEntry
from casella.models.pratica import PRATICA_STATUSES, MessagePratica, MessageTag, Pratica
from casella.models.rule import RoutingRule
from casella.models.report import REPORT_KINDS, MessageReport
from casella.models.search_outbox import SearchOutbox
from casella.models.signature import Signature
from casella.models.thread import Thread, ThreadRef
from casella.models.user import ASSIGNMENT_POLICIES, ROLES, Group, GroupMember, MailboxPermission, User
from casella.models.webmail import (AuditLog, Draft, LoginAttempt, MessageNote, MessageSeen, NoteMention, ReadLog,
                                    RemoteContentAllow, SavedView, WebSession)

__all__ = [
    "LIFECYCLES", "Account", "Attachment", "Base", "Company", "CompanyDomain", "Contact",
    "ContactEmail", "FolderState", "Message", "MessageEvent", "MessageLocation",
    "ProtocolCounter", "ProtocolRegistry", "QuarantineEntry", "Registration", "Thread",
    "ThreadRef", "UTCDateTime", "utcnow", "ASSIGNMENT_POLICIES", "PRATICA_STATUSES", "ROLES", "Group",
    "GroupMember", "MailboxPermission", "MessagePratica", "MessageTag", "Pratica", "RoutingRule", "SearchOutbox",
    "User", "format_protocol", "AccountSmtp", "OutboundMessage", "SenderIdentity", "MessagePec",
    "REPORT_KINDS", "MessageReport", "Signature", "AuditLog", "Draft", "LoginAttempt", "MessageNote",
    "MessageSeen", "NoteMention", "PresenceEntry", "ReadLog", "RemoteContentAllow", "SavedView", "WebSession",
]
