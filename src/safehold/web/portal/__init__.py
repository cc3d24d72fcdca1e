"""The public reporting portal, ``/report``: report, receipt, status, on-device hashes, help.

Server-rendered pages (Jinja2, translated with gettext) that work without JavaScript
(except on-device hashing), for anyone, without an account. A thin shell over
:mod:`safehold.intake`.

* :mod:`~safehold.web.portal.routes` — the pages and :func:`install`.
* :mod:`~safehold.web.portal.checks` — field-by-field checks with translated messages.
* :mod:`~safehold.web.portal.forms` — streamed, bounded form and file reading.
* :mod:`~safehold.web.portal.protection` — CSRF, in-memory rate limits, proof-of-work.
* :mod:`~safehold.web.portal.i18n` — languages (``.po`` files read directly).
* :mod:`~safehold.web.portal.help` — the operator's help page (YAML).
"""

from safehold.web.portal.routes import install

__all__ = ["install"]
