"""The one exception family of archir, and the source locations errors carry.

Every error a user can cause derives from `ArchirError`; its text starts with the place it
happened (`file:line:col: error: ...`) when one is known, and ends with a hint when one helps.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Location:
    """A place in a source file: an `.air` file, or the user's Python file for the DSL."""

    file: str
    line: int
    col: int = 0

    def __str__(self) -> str:
        if self.col:
            return f"{self.file}:{self.line}:{self.col}"
        return f"{self.file}:{self.line}"


class ArchirError(Exception):
    """Base of every error archir raises on bad input.

    `loc` is where it happened, `node` a short description of the IR node involved, `hint` what
    to do about it.
    """

    def __init__(
        self,
        message: str,
        *,
        loc: Location | None = None,
        node: str | None = None,
        hint: str | None = None,
    ) -> None:
        self.message = message
        self.loc = loc
        self.node = node
        self.hint = hint
        super().__init__(self._format())

    def _format(self) -> str:
        text = f"{self.loc}: error: {self.message}" if self.loc else f"error: {self.message}"
        if self.node:
            text += f"\n  in: {self.node}"
        if self.hint:
            text += f"\n  hint: {self.hint}"
        return text

    def with_context(self, *, loc: Location | None = None, node: str | None = None) -> ArchirError:
        """Fill in a location or node that the raiser did not know; keeps what is already set."""
        self.loc = self.loc or loc
        self.node = self.node or node
        self.args = (self._format(),)
        return self

    def __str__(self) -> str:
        return self._format()


class ParseError(ArchirError):
    """Malformed `.air` text."""


class TypeInferenceError(ArchirError):
    """Operands or attributes that an op cannot accept (shape or dtype mismatch)."""


class OpDefinitionError(ArchirError):
    """Unknown op, unknown or badly typed attribute, wrong operand count."""


class VerifyError(ArchirError):
    """A graph that breaks an IR rule (SSA, types, attributes, regions)."""


class ArgumentError(ArchirError):
    """Wrong inputs at call time: count, shape or dtype."""


class PassError(ArchirError):
    """Unknown pass, bad pipeline string or pass options."""


class BackendError(ArchirError):
    """A backend cannot compile or run a graph."""


class ModelSpecError(ArchirError):
    """A MODEL argument (`file.air` or `file.py:NAME`) that cannot be loaded."""
