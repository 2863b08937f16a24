"""What a push can carry in its headers, and what its errors may say of them.

A push config's ``token`` and ``authentication`` become header values
(``X-A2A-Notification-Token``, ``Authorization: <scheme> <credentials>``).
A value with a CR or LF would end the header and start another one; httpx
refuses to send it, and quotes the whole value in its error. So a config
whose values are not header values (RFC 9110 §5.5, §11.1) is refused when
it is set, a push whose headers are not (a config stored before that check)
is given up on without sending, and no delivery error keeps the values it
quotes: they are credentials, and errors go to the log and ``last_error``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

__all__ = ["is_field_value", "is_token", "scrubbed"]

#: An HTTP field value of visible ASCII: no CR, LF or other control, nothing
#: beyond ASCII, spaces and tabs only between other characters.
_FIELD_VALUE = re.compile(r"[\x21-\x7e](?:[\x20\x09\x21-\x7e]*[\x21-\x7e])?")
#: A token, such as an authentication scheme (RFC 9110 §5.6.2).
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
#: What stands for a value taken out of an error.
HIDDEN = "<hidden>"


def is_field_value(text: str) -> bool:
    return _FIELD_VALUE.fullmatch(text) is not None


def is_token(text: str) -> bool:
    return _TOKEN.fullmatch(text) is not None


def scrubbed(text: str, secrets: Iterable[str]) -> str:
    """``text`` without any of ``secrets``, as written or as the escaped
    bytes an error quotes (``b'Bearer x\\r\\n…'``), longest first."""
    forms = set()
    for secret in secrets:
        forms.add(secret)
        forms.add(repr(secret.encode("utf-8", "backslashreplace"))[2:-1])
        forms.add(repr(secret)[1:-1])
    for form in sorted(filter(None, forms), key=len, reverse=True):
        text = text.replace(form, HIDDEN)
    return text
