"""One diagnostic type for every check; the CLI decides how to print them.

Checks never raise on bad input: they return `Diagnostic`s, so a single run can
report every mistake of every file.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

import orjson


@dataclasses.dataclass(frozen=True, order=True)
class Diagnostic:
    file: str
    line: int  # 1-based; 0 when the problem is the file as a whole
    col: int  # 1-based
    path: str  # dotted field path, e.g. "spec.versions[1].weight"; "" for the file
    message: str
    hint: str = ""

    def human(self) -> str:
        where = f"{self.file}:{self.line}:{self.col}" if self.line else self.file
        field = f" {self.path}:" if self.path else ""
        hint = f" ({self.hint})" if self.hint else ""
        return f"{where}:{field} {self.message}{hint}"

    def github(self) -> str:
        # Workflow commands: properties are escaped per the Actions toolkit rules.
        def esc(text: str, prop: bool = False) -> str:
            text = text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
            return text.replace(":", "%3A").replace(",", "%2C") if prop else text

        title = esc(self.path or "modelops", prop=True)
        body = esc(f"{self.path + ': ' if self.path else ''}{self.message}"
                   f"{' (' + self.hint + ')' if self.hint else ''}")
        return (f"::error file={esc(self.file, True)},line={max(self.line, 1)},"
                f"col={max(self.col, 1)},title={title}::{body}")


def format_path(loc: Iterable[str | int]) -> str:
    """('spec', 'versions', 1, 'weight') -> 'spec.versions[1].weight'."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def formatted(diagnostics: list[Diagnostic], output: str) -> str:
    """Text for stderr (human, github) or stdout (json)."""
    ordered = sorted(set(diagnostics))
    if output == "json":
        return orjson.dumps([dataclasses.asdict(d) for d in ordered],
                            option=orjson.OPT_INDENT_2).decode()
    if output == "github":
        return "\n".join(d.github() for d in ordered)
    return "\n".join(d.human() for d in ordered)
