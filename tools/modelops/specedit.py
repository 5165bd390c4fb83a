"""Edits to a model.yaml that keep what its author wrote: ruamel.yaml's round trip keeps
comments, quotes and indentation (a flow list wrapped over lines comes back on one, as
ruamel keeps no breaks in it). Values are set as data, never as YAML text."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq


class EditError(Exception):
    pass


class RoundTrip:
    """One spec file, loaded for editing; save() writes it back."""

    def __init__(self, path: Path):
        self.path = path
        text = path.read_text()
        mapping, offset = _indentation(text)
        self.yaml = YAML()
        self.yaml.width = 4096  # never fold a line
        self.yaml.preserve_quotes = True
        self.yaml.indent(mapping=mapping, sequence=offset + 2, offset=offset)
        self.document: Any = self.yaml.load(text)

    def versions(self) -> CommentedSeq:
        """spec.versions, when it is a block list that can take another item."""
        versions = self.document["spec"]["versions"]
        if not isinstance(versions, CommentedSeq) or versions.fa.flow_style() or any(
                isinstance(v, CommentedMap) and v.fa.flow_style() for v in versions):
            raise EditError("spec.versions is written in flow style ([...] or {...}); write "
                            "it as a block list, or edit the version by hand")
        return versions

    def save(self) -> None:
        out = io.StringIO()
        self.yaml.dump(self.document, out)
        self.path.write_text(out.getvalue())


def _indentation(text: str) -> tuple[int, int]:
    """The author's indentation: (a mapping's step, a list dash's offset under its key).
    ruamel's own guess is thrown off by a comment after a key, as the scaffold writes."""
    lines = [(len(line) - len(line.lstrip(" ")), line.split(" #")[0].strip())
             for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    mapping, offset = 2, 2
    pairs = list(zip(lines, lines[1:], strict=False))
    for (key_at, key), (next_at, child) in pairs:  # the first nested mapping
        if key.endswith(":") and not key.startswith("- ") and next_at > key_at \
                and not child.startswith("- "):
            mapping = next_at - key_at
            break
    for (key_at, key), (next_at, child) in pairs:  # the first block list
        if key.endswith(":") and child.startswith("- "):
            offset = next_at - key_at
            break
    return mapping, offset
