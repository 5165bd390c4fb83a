"""Turn pydantic validation errors into located diagnostics with helpful hints."""

from __future__ import annotations

import difflib
import types
import typing
from typing import Any

from pydantic import BaseModel, ValidationError

from modelops.diagnostics import Diagnostic, format_path
from modelops.yamlload import Document, Loc


def normalize_loc(loc: Loc, data: Any) -> Loc:
    """Drop the union-tag segments pydantic inserts, keeping only real data keys."""
    out: list[str | int] = []
    current = data
    for i, seg in enumerate(loc):
        last = i == len(loc) - 1
        if isinstance(current, dict) and isinstance(seg, str) and seg in current:
            current = current[seg]
            out.append(seg)
        elif isinstance(current, list) and isinstance(seg, int) and seg < len(current):
            current = current[seg]
            out.append(seg)
        elif isinstance(current, dict) and isinstance(seg, str) and last:
            out.append(seg)  # a missing or unknown key
        # anything else is a union tag such as 'shared' or "literal['dedicated']"
    return tuple(out)


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    """Every pydantic model an annotation can hold (through Optional, list, dict, Union)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _models_in(typing.get_args(annotation)[0])
    if origin in (list, typing.Union, types.UnionType):
        return [m for arg in typing.get_args(annotation) for m in _models_in(arg)]
    if origin is dict:
        return _models_in(typing.get_args(annotation)[1])
    return []


def fields_at(root: type[BaseModel], loc: Loc) -> list[str]:
    """Valid keys of the mapping found at `loc` (for 'did you mean' hints)."""
    candidates = [root]
    for seg in loc:
        if isinstance(seg, int):
            continue
        nxt: list[type[BaseModel]] = []
        for model in candidates:
            field = next((f for name, f in model.model_fields.items()
                          if (f.alias or name) == seg), None)  # spec keys: `async`
            if field is not None:
                nxt.extend(_models_in(field.annotation))
        candidates = nxt
    return sorted({f.alias or name for model in candidates
                   for name, f in model.model_fields.items()})


def closest(word: str, options: list[str]) -> str:
    match = difflib.get_close_matches(word, options, n=1, cutoff=0.6)
    return f"did you mean {match[0]!r}?" if match else ""


def _message(error: dict) -> str:
    msg = error["msg"]
    for prefix in ("Value error, ", "Assertion failed, "):
        if msg.startswith(prefix):
            msg = msg[len(prefix):]
    kind = error["type"]
    value = error.get("input")
    scalar = isinstance(value, (str, int, float, bool)) or value is None
    if scalar and kind != "value_error" and repr(value) not in msg:
        msg += f", got {value!r}"
    elif not scalar and (kind.endswith("_type") or kind == "literal_error"):
        msg += f", got a {'mapping' if isinstance(value, dict) else type(value).__name__}"
    if kind == "string_pattern_mismatch":
        msg = msg.replace("String should match pattern", "expected text matching")
    return msg[0].lower() + msg[1:] if msg else msg


def diagnose(exc: ValidationError, doc: Document, root: type[BaseModel], data: Any,
             base: Loc = (), remap: typing.Callable[[Loc], Loc] | None = None,
             prefix: str = "") -> list[Diagnostic]:
    """Diagnostics for every error of validating `data` (found at `base` in the file).

    `remap` points errors in merged data (environment overrides) back at the file.
    """
    out = []
    for error in exc.errors(include_url=False):
        rel = normalize_loc(tuple(error["loc"]), data)
        loc = base + rel
        kind = error["type"]
        file_loc = remap(rel) if remap else loc
        hint = ""
        if kind == "missing":
            message = f"missing required field {loc[-1]!r}"
            line, col = doc.where(file_loc[:-1], key=True)
        elif kind == "extra_forbidden":
            message = f"unknown field {loc[-1]!r}"
            hint = closest(str(loc[-1]), fields_at(root, rel[:-1]))
            line, col = doc.where(file_loc, key=True)
        else:
            message = _message(error)
            if kind == "literal_error" and isinstance(error.get("input"), str):
                options = [str(v).strip("'") for v in
                           error.get("ctx", {}).get("expected", "")
                           .replace(" or ", ", ").split(", ")]
                hint = closest(error["input"], options)
            line, col = doc.where(file_loc)
        out.append(Diagnostic(doc.file, line, col, format_path(loc), prefix + message, hint))
    return out
