"""W3C trace context (``traceparent``) carried across agents.

A task arriving with a valid ``traceparent`` keeps its trace id; one without
starts a new trace. The execution records it (``metadata.traceparent``), and
every delegation sends a child of it — the same trace id, a span id derived
from the delegation's idempotency key, so a resend after a crash is the same
span — so a chain of agents is one trace. OpenTelemetry can pick the header
up on either side; nothing here depends on it.
"""

from __future__ import annotations

import hashlib
import re
import secrets

__all__ = ["TRACEPARENT", "child_traceparent", "new_traceparent", "valid_traceparent"]

#: A version-00 ``traceparent``, lowercase: trace id, span id, flags.
TRACEPARENT = _FORMAT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")


def valid_traceparent(value: str | None) -> str | None:
    """``value`` when it is a version-00 traceparent with non-zero ids, else None."""
    if value is None:
        return None
    found = _FORMAT.match(value.strip().lower())
    if found is None or set(found[1]) == {"0"} or set(found[2]) == {"0"}:
        return None
    return found[0]


def new_traceparent() -> str:
    return f"00-{secrets.token_hex(16)}-{secrets.token_hex(8)}-01"


def child_traceparent(parent: str | None, seed: str) -> str:
    """A span of ``parent``'s trace (a new trace without one), its id from ``seed``."""
    found = _FORMAT.match(parent or "")
    span = hashlib.sha256(seed.encode()).hexdigest()[:16]
    if found is None:
        return f"00-{hashlib.sha256(b'trace:' + seed.encode()).hexdigest()[:32]}-{span}-01"
    return f"00-{found[1]}-{span}-{found[3]}"
