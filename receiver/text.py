"""Text from outside, made safe to keep and to show.

JSON can carry text that is not valid Unicode: a lone UTF-16 surrogate (`"\\ud800"`), which no UTF-8 store, file or
stream can encode, and NUL (`"\\u0000"`), which PostgreSQL cannot store. `unstorable` finds them (the doors refuse
such events); `escape_unstorable` writes them as their JSON escapes, so that a JSON text stays the same JSON.

A terminal acts on what it is sent: ESC starts colour and window-title sequences, CR and BS rewrite a line, and
bidirectional overrides (U+202E) reorder what is shown. `printable` escapes every character that is not printable,
so that a value from outside shows as what it is.
"""

from __future__ import annotations

import re

_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def _json_escape(char: str) -> str:
    return f"\\u{ord(char):04x}"


def unstorable(text: str) -> str | None:
    """What in `text` cannot be stored, as a phrase for an error message; None when all of it can."""
    found = _UNSTORABLE.search(text)
    if found is None:
        return None
    char = found.group()
    kind = "a NUL character" if char == "\x00" else "a lone surrogate"
    return f"{kind} ({_json_escape(char)})"


def escape_unstorable(text: str) -> str:
    """`text` with each lone surrogate and NUL written as its JSON escape (`\\ud800`, `\\u0000`): storable and
    readable. In a JSON text (where such characters can only be inside strings) the JSON value stays the same."""
    return _UNSTORABLE.sub(lambda found: _json_escape(found.group()), text)


def _escape(char: str) -> str:
    code = ord(char)
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def printable(text: str) -> str:
    """`text` for a terminal: every character that is not printable (control characters, C1 controls, bidi
    overrides and other format characters, lone surrogates, separators other than the space) as a Python-style
    escape (`\\x1b`, `\\u202e`)."""
    if text.isprintable():
        return text
    return "".join(char if char.isprintable() else _escape(char) for char in text)
