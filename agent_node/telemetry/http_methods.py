"""The HTTP methods telemetry names as they are: each its own label of the
requests counted (:mod:`.metrics`) and its own name in spans
(:mod:`.traces_http`); any other a client sends (HTTP/2 takes any token) is
``other`` in metrics and ``_OTHER`` in spans, so a client cannot mint
series or span names.

The methods of RFC 9110 and PATCH by default.
``OTEL_INSTRUMENTATION_HTTP_KNOWN_METHODS`` (comma-separated, case
sensitive) replaces the list, as OpenTelemetry's HTTP conventions say an
instrumentation must let it (WebDAV's ``PROPFIND``, say); an entry that is
no method (not an RFC 9110 token, or over 32 characters) is left out and
said once.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable

__all__ = ["DEFAULT_METHODS", "HTTP_METHODS", "known_methods"]

log = logging.getLogger(__name__)

DEFAULT_METHODS = ("GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH")
_VARIABLE = "OTEL_INSTRUMENTATION_HTTP_KNOWN_METHODS"
_METHOD = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,32}\Z")


def known_methods(given: str | None, default: Iterable[str] = DEFAULT_METHODS) -> frozenset[str]:
    """The methods of ``given`` (the variable's value), or ``default`` when unset."""
    if given is None:
        return frozenset(default)
    entries = [entry.strip() for entry in given.split(",") if entry.strip()]
    bad = [entry for entry in entries if not _METHOD.match(entry)]
    if bad:
        shown = ", ".join(repr(entry[:32]) for entry in bad[:3])
        log.warning("%s: left out what is no HTTP method: %s", _VARIABLE, shown)
    return frozenset(entry for entry in entries if _METHOD.match(entry))


HTTP_METHODS = known_methods(os.environ.get(_VARIABLE))
