"""The one exception type for bad input: it carries where (file:line), what key, and a hint."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class SpecError(Exception):
    """A problem with user input, reported as one readable paragraph (never a traceback)."""

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        line: int | None = None,
        key_path: str | None = None,
        expected: str | None = None,
        found: object = None,
        hint: str | None = None,
    ) -> None:
        self.message = message
        self.file = file
        self.line = line
        self.key_path = key_path
        self.expected = expected
        self.found = found
        self.hint = hint
        super().__init__(self.render())

    def render(self) -> str:
        where = ""
        if self.file:
            where = self.file + (f":{self.line}" if self.line else "")
        parts = []
        head = f"{where}: " if where else ""
        if self.key_path:
            head += f"at '{self.key_path}': "
        parts.append(head + self.message)
        if self.expected is not None:
            parts.append(f"expected {self.expected}")
        if self.found is not None:
            parts.append(f"found {short_repr(self.found)}")
        if self.hint:
            parts.append(self.hint)
        return "; ".join(parts) + ("" if parts[-1].endswith(".") else ".")

    def __str__(self) -> str:  # keep rendering in sync if fields were changed after init
        return self.render()


MAX_SHOWN_CHARS = 80


def short_repr(value: object, limit: int = MAX_SHOWN_CHARS) -> str:
    """A value as shown in a message: at most `limit` characters, huge integers by size only.

    Messages must stay one readable paragraph even for an alias-expanded value or an integer
    with thousands of digits (whose repr would itself fail past Python's 4300-digit limit).
    """
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 200:
        return f"<an integer of about {int(value.bit_length() * 0.30103) + 1} digits>"
    try:
        text = repr(value)
    except (ValueError, RecursionError):
        text = f"<{type(value).__name__}>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def did_you_mean(word: str, choices: Iterable[str]) -> str | None:
    """A 'did you mean' suggestion for a typo, or None."""
    matches = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1, cutoff=0.6)
    return f"did you mean '{matches[0]}'?" if matches else None
