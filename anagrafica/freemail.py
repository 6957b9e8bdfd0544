"""Domains shared by many unrelated people: free-mail and PEC providers.

A sender at one of these domains is never linked to a company by domain (everyone at
gmail.com is not one company). Extend the list per installation with
``CASELLA_FREEMAIL_DOMAINS=dom1,dom2``. Keep this list sorted.
"""

FREEMAIL_DOMAINS: frozenset[str] = frozenset({
    # International free mail
    "aol.com", "gmail.com", "gmx.com", "gmx.de", "gmx.net", "googlemail.com", "hotmail.com",
    "hotmail.it", "icloud.com", "live.com", "live.it", "mac.com", "mail.com", "me.com",
    "msn.com", "outlook.com", "outlook.it", "proton.me", "protonmail.com", "web.de",
    "yahoo.com", "yahoo.it", "yandex.com", "yandex.ru", "zoho.com",
    # Italian free mail
    "alice.it", "email.it", "fastwebnet.it", "inwind.it", "iol.it", "katamail.com",
    "libero.it", "tin.it", "tim.it", "tiscali.it", "virgilio.it", "vodafone.it",
    # Shared PEC providers' mailbox domains
    "arubapec.it", "casellapec.com", "cert.legalmail.it", "gigapec.it", "legalmail.it",
    "mypec.eu", "pec.aruba.it", "pec.it", "pec.libero.it", "pecditta.com", "pec.cgn.it",
    "pec.giuffre.it", "pec-legal.it", "pecimprese.it", "postacert.it", "postacertificata.gov.it",
    "registerpec.it", "sicurezzapostale.it", "pec.buffetti.it", "pec.tim.it", "pec.actalis.it",
    "cgn.legalmail.it", "omnipec.it", "poste-certificate.it", "postecert.it",
})


def is_freemail(domain: str, extra: frozenset[str] | tuple[str, ...] = ()) -> bool:
    domain = domain.lower().strip(".")
    return domain in FREEMAIL_DOMAINS or domain in extra
