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
            parts.append(f"found {self.found!r}")
        if self.hint:
            parts.append(self.hint)
        return "; ".join(parts) + ("" if parts[-1].endswith(".") else ".")

    def __str__(self) -> str:  # keep rendering in sync if fields were changed after init
        return self.render()


def did_you_mean(word: str, choices: Iterable[str]) -> str | None:
    """A 'did you mean' suggestion for a typo, or None."""
    matches = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1, cutoff=0.6)
    return f"did you mean '{matches[0]}'?" if matches else None
