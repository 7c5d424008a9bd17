"""The rules package's error: what is wrong, where, and (for a rule's text) a caret under it."""

from __future__ import annotations

from fraudstream.errors import FraudstreamError

__all__ = ["RuleError"]


class RuleError(FraudstreamError, ValueError):
    """A rule is refused (it does not parse, names an unknown field or list, mixes types) or
    a rule set cannot be evaluated on the given columns.

    ``reason`` is the bare message; ``text`` and ``pos`` (0-based offset) locate the fault in the
    rule's expression, ``line`` and ``column`` (1-based) say where for people, and ``rule_id``
    names the rule when it is known. ``str(error)`` shows all of it, with a caret line::

        rule 'big_transfer': unknown field 'amout' (did you mean amount?) at column 24
          type == "TRANSFER" and amout > 10_000
                                 ^
    """

    def __init__(
        self,
        reason: str,
        *,
        text: str | None = None,
        pos: int | None = None,
        rule_id: str | None = None,
    ) -> None:
        self.reason = reason
        self.text = text
        self.pos = pos
        self.rule_id = rule_id
        self.line, self.column = _line_column(text, pos)
        super().__init__(self._render())

    def for_rule(self, rule_id: str) -> RuleError:
        """The same error, naming ``rule_id``."""
        return RuleError(self.reason, text=self.text, pos=self.pos, rule_id=rule_id)

    def _render(self) -> str:
        head = f"rule {self.rule_id!r}: {self.reason}" if self.rule_id else self.reason
        if self.text is None or self.pos is None:
            return head
        lines = self.text.split("\n")
        where = f"line {self.line}, column {self.column}" if len(lines) > 1 else ""
        where = where or f"column {self.column}"
        shown = lines[self.line - 1]
        # Tabs would shift the caret: show them as one space each.
        shown = shown.replace("\t", " ")
        return f"{head} at {where}\n  {shown}\n  {' ' * (self.column - 1)}^"


def _line_column(text: str | None, pos: int | None) -> tuple[int, int]:
    if text is None or pos is None:
        return 0, 0
    pos = max(0, min(pos, len(text)))
    before = text[:pos]
    line = before.count("\n") + 1
    return line, pos - (before.rfind("\n") + 1) + 1
