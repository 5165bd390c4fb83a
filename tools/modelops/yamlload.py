"""Safe YAML loading that remembers where every value came from.

PyYAML's C parser composes the node tree; we build plain Python data from it
ourselves so that we can (1) record the line and column of every key and value,
(2) reject duplicate keys, which PyYAML silently overwrites, and (3) bound the
work an alias bomb could cause, since aliases are expanded here, not by PyYAML.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import yaml

from modelops.diagnostics import Diagnostic, format_path

MAX_FILE_BYTES = 256 * 1024
# A real spec has a few hundred nodes; expansion past this is an alias bomb.
MAX_NODES = 20_000

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_constructor = yaml.constructor.SafeConstructor()
_SCALARS = {
    "tag:yaml.org,2002:str": lambda node: node.value,
    "tag:yaml.org,2002:int": _constructor.construct_yaml_int,
    "tag:yaml.org,2002:float": _constructor.construct_yaml_float,
    "tag:yaml.org,2002:bool": _constructor.construct_yaml_bool,
    "tag:yaml.org,2002:null": lambda node: None,
    # Dates stay text: a spec never needs a datetime object.
    "tag:yaml.org,2002:timestamp": lambda node: node.value,
}
_MAP = "tag:yaml.org,2002:map"
_SEQ = "tag:yaml.org,2002:seq"
_MERGE = "tag:yaml.org,2002:merge"

Loc = tuple[str | int, ...]


@dataclasses.dataclass
class Document:
    """A parsed file: its data and the position of every value and key in it."""

    file: str
    data: Any
    positions: dict[Loc, tuple[int, int]]  # value positions, 1-based
    key_positions: dict[Loc, tuple[int, int]]  # where the key of a mapping entry is

    def where(self, loc: Loc, key: bool = False) -> tuple[int, int]:
        """Position of `loc`, or of its nearest ancestor that exists in the file."""
        loc = tuple(loc)
        while loc:
            found = (self.key_positions if key else self.positions).get(loc)
            if found is None and key:
                found = self.positions.get(loc)
            if found is not None:
                return found
            loc = loc[:-1]
        return self.positions.get((), (1, 1))


class _Invalid(Exception):
    def __init__(self, message: str, mark: Any, loc: Loc = ()):
        super().__init__(message)
        self.message, self.mark, self.loc = message, mark, loc


class _Builder:
    def __init__(self) -> None:
        self.positions: dict[Loc, tuple[int, int]] = {}
        self.key_positions: dict[Loc, tuple[int, int]] = {}
        self.count = 0

    def build(self, node: yaml.Node, loc: Loc) -> Any:
        self.count += 1
        if self.count > MAX_NODES:
            raise _Invalid(f"document expands to more than {MAX_NODES} values "
                           "(an alias bomb?)", node.start_mark, loc)
        self.positions[loc] = (node.start_mark.line + 1, node.start_mark.column + 1)
        if isinstance(node, yaml.ScalarNode):
            construct = _SCALARS.get(node.tag)
            if construct is None:
                raise _Invalid(f"unsupported YAML tag {node.tag!r}", node.start_mark, loc)
            try:
                return construct(node)
            except (ValueError, yaml.YAMLError) as exc:
                raise _Invalid(f"bad {node.tag.rsplit(':', 1)[-1]} value: {exc}",
                               node.start_mark, loc) from None
        if isinstance(node, yaml.SequenceNode):
            if node.tag != _SEQ:
                raise _Invalid(f"unsupported YAML tag {node.tag!r}", node.start_mark, loc)
            return [self.build(item, loc + (i,)) for i, item in enumerate(node.value)]
        if node.tag != _MAP:
            raise _Invalid(f"unsupported YAML tag {node.tag!r}", node.start_mark, loc)
        return self._mapping(node, loc)

    def _mapping(self, node: yaml.MappingNode, loc: Loc) -> dict:
        out: dict = {}
        merged: list[yaml.Node] = []
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE:
                merged.extend(value_node.value if isinstance(value_node, yaml.SequenceNode)
                              else [value_node])
                continue
            if not isinstance(key_node, yaml.ScalarNode):
                raise _Invalid("mapping keys must be plain text", key_node.start_mark, loc)
            key = self.build(key_node, loc + ("<key>",))
            if not isinstance(key, str):
                key = str(key).lower() if isinstance(key, bool) else str(key)
            if key in out:
                first = self.key_positions[loc + (key,)][0]
                raise _Invalid(f"duplicate key {key!r} (first defined on line {first})",
                               key_node.start_mark, loc + (key,))
            self.key_positions[loc + (key,)] = (key_node.start_mark.line + 1,
                                                key_node.start_mark.column + 1)
            out[key] = self.build(value_node, loc + (key,))
        self.positions.pop(loc + ("<key>",), None)
        for source in merged:  # YAML merge keys: explicit keys win
            if not isinstance(source, yaml.MappingNode):
                raise _Invalid("a merge key (<<) needs a mapping", source.start_mark, loc)
            for key, value in self._mapping(source, loc).items():
                out.setdefault(key, value)
        return out


def line_col(raw: bytes, offset: int) -> tuple[int, int]:
    """1-based line and column of a byte offset (so an editor can point at it)."""
    return raw.count(b"\n", 0, offset) + 1, offset - raw.rfind(b"\n", 0, offset)


def load_text(file: str, raw: bytes) -> tuple[Document | None, list[Diagnostic]]:
    """Parse one YAML document; return it, or the located reasons it was refused. A
    problem of the whole file is reported at 1:1, so editors and annotations show it."""

    def refuse(message: str, line: int = 1, col: int = 1, path: str = "") -> tuple[None, list]:
        return None, [Diagnostic(file, line, col, path, message)]

    if len(raw) > MAX_FILE_BYTES:
        return refuse(f"file is {len(raw)} bytes, over the {MAX_FILE_BYTES}-byte limit for a spec")
    if b"\x00" in raw:
        return refuse("file is binary, not YAML text (it contains NUL bytes)",
                      *line_col(raw, raw.index(b"\x00")))
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return refuse(f"file is not UTF-8 text (bad byte 0x{raw[exc.start]:02x} at offset "
                      f"{exc.start})", *line_col(raw, exc.start))
    try:
        loader = _Loader(text)
        try:
            root = loader.get_single_node()
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = ", ".join(p for p in (exc.context, exc.problem) if p) or "invalid YAML"
        if mark is None:
            return refuse(f"invalid YAML: {problem}")
        return refuse(f"invalid YAML: {problem}", mark.line + 1, mark.column + 1)
    except yaml.YAMLError as exc:
        return refuse(f"invalid YAML: {exc}")
    if root is None:
        return refuse("file is empty: expected a spec with apiVersion, kind, metadata and spec")
    builder = _Builder()
    try:
        data = builder.build(root, ())
    except _Invalid as exc:
        return refuse(exc.message, exc.mark.line + 1, exc.mark.column + 1, format_path(exc.loc))
    except RecursionError:
        return refuse("document is nested too deeply")
    if not isinstance(data, dict):
        return refuse(f"expected a mapping at the top of the file, found "
                      f"{type(data).__name__}", 1, 1)
    return Document(file, data, builder.positions, builder.key_positions), []
