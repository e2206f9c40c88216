"""Untrusted text made safe to print: control characters shown as escapes.

Names, course ids, Zoom topics and request paths come from outside. Written
raw to a terminal or a text log, an ESC sequence can recolour, hide or rewrite
what is on the screen, and a newline can forge a whole log line. :func:`printable`
replaces every control character (C0, DEL, C1, and the Unicode line/paragraph
separators and bidirectional overrides) with a visible ``\\xNN`` / ``\\uNNNN``
escape (``\\n``, ``\\r``, ``\\t`` by name); everything else is kept as it is.
Rich markup is a separate matter: the CLI passes untrusted text to rich as
``Text`` objects, never as markup strings.
"""

from __future__ import annotations

import re

_BIDI = "\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"
_UNSAFE = re.compile(f"[\x00-\x1f\x7f-\x9f\u2028\u2029{_BIDI}]")


_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    if char in _NAMED:
        return _NAMED[char]
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(value: object) -> str:
    """``str(value)`` with every control character escaped (``\\x1b``, ``\\n``...)."""
    text = value if isinstance(value, str) else str(value)
    return _UNSAFE.sub(_escape, text)
