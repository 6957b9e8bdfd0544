"""The team webmail: Starlette + Jinja2, server-rendered, every asset vendored.

    app.py       the application: routes of every view module, middleware, static files
    context.py   `route` decorator: session → user → grant → a `Ctx` each view receives
    security.py  sessions, CSRF, login throttling, security headers
    i18n.py      gettext catalogues (Italian by default, English), chosen per user
    mailbox.py   queries behind the folder tree and the message list (keyset pagination)
    views/       one module per area: auth, mail, message, compose, search, anagrafica,
                 protocol, admin
"""
