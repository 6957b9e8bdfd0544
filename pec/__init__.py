"""PEC (Posta Elettronica Certificata): classify envelopes and receipts, parse daticert.xml,
check the provider's S/MIME signature offline, and derive per-recipient delivery states."""

from pec.classify import FORMS, KINDS, RECEIPT_KINDS, PecInfo, classify
from pec.daticert import parse_daticert
from pec.receipts import delivery_states
from pec.signature import SignatureCheck, verify_signature
from pec.trust import TrustStore

__all__ = ["FORMS", "KINDS", "RECEIPT_KINDS", "PecInfo", "SignatureCheck", "TrustStore",
           "classify", "delivery_states", "parse_daticert", "verify_signature"]
