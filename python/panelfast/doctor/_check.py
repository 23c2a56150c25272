"""One check's outcome, as ``panelfast doctor`` prints it."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Check"]


@dataclass(frozen=True, slots=True)
class Check:
    """What was checked, what was found, and what to do when it fails.

    ``ok`` is None for what could not or need not be checked (no proxy
    configured, a host known only after the first bootstrap): shown, never a failure.
    """

    what: str
    ok: bool | None
    found: str
    fix: str = ""

    def text(self) -> str:
        mark = {True: "✓", False: "✗", None: "–"}[self.ok]
        line = f"{mark} {self.what}: {self.found}"
        if self.ok is False and self.fix:
            line += f"\n    fix: {self.fix}"
        return line
