"""Deterministic block YAML for plain data (dict, list, str, int, float, bool, None).

Why not yaml.dump: PyYAML's representer costs ~150 us a document even with the
C emitter, which alone would spend most of the 2 s budget for 1,000 specs
(benchmarks/generate.py). This emitter only writes; PyYAML stays the reader,
and tests/tools/test_yamlemit.py checks with hypothesis that PyYAML reads back
exactly what was written. Keys come in the order people read Kubernetes objects
(`apiVersion, kind, metadata, spec`, a container's `name` and `image` first), the
rest sorted; indent is two spaces; sequences are written the way kubectl writes
them (not indented under their key).
"""

from __future__ import annotations

import functools
import json
import math
import re

import yaml

_PLAIN = re.compile(r"^[A-Za-z0-9_./][A-Za-z0-9_./@+=:-]*(?<!:)$")
_resolver = yaml.resolver.Resolver()
_STR = "tag:yaml.org,2002:str"
# Characters a YAML reader refuses or treats as line breaks inside a quoted scalar.
_UNSAFE = re.compile("[^\x09\x0a\x0d\x20-\x7e\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]"
                     "|[\u2028\u2029\ufeff]")


# Keys that lead, in this order, wherever they appear; every other key follows, sorted.
_FIRST = ("apiVersion", "kind", "metadata", "name", "namespace", "namePrefix", "image",
          "labels", "annotations", "matches", "spec", "data", "resources")
_RANK = {key: rank for rank, key in enumerate(_FIRST)}


@functools.lru_cache(maxsize=4096)
def _ordered(keys: tuple) -> tuple:
    """The keys of a mapping in reading order (cached: mappings of one shape repeat)."""
    return tuple(sorted(keys, key=lambda k: (_RANK.get(k, len(_FIRST)), k)))


def _escape(match: re.Match) -> str:
    code = ord(match.group())
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


@functools.lru_cache(maxsize=65536)
def scalar_str(text: str) -> str:
    """A string as a plain scalar when that reads back as the same string, else quoted."""
    if _PLAIN.fullmatch(text) and _resolver.resolve(yaml.ScalarNode, text, (True, False)) == _STR \
            and text.lower() not in ("y", "n"):
        return text
    return _UNSAFE.sub(_escape, json.dumps(text, ensure_ascii=False))


def _scalar(value: object) -> str:
    if isinstance(value, str):
        return scalar_str(value)
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return ".nan"
        if math.isinf(value):
            return ".inf" if value > 0 else "-.inf"
        text = repr(value)
        if "." not in text and "e" in text:  # YAML 1.1 floats need a dot: 1e-06 -> 1.0e-06
            text = text.replace("e", ".0e", 1)
        return text
    raise TypeError(f"cannot write {type(value).__name__} as YAML")


def _lines(value: object, indent: str, out: list[str]) -> None:
    """Append the lines of a non-empty mapping or sequence, each prefixed by `indent`."""
    if type(value) is dict:
        deeper = indent + "  "
        for key in _ordered(tuple(value)):
            item = value[key]
            kind = type(item)
            head = f"{indent}{scalar_str(key if type(key) is str else str(key))}:"
            if kind is dict and item:
                out.append(head)
                _lines(item, deeper, out)
            elif kind is list and item:
                out.append(head)
                _lines(item, indent, out)
            else:
                out.append(f"{head} {_inline(item)}")
        return
    for item in value:  # a sequence
        kind = type(item)
        if (kind is dict or kind is list) and item:
            start = len(out)
            _lines(item, indent + "  ", out)
            out[start] = f"{indent}- {out[start][len(indent) + 2:]}"
        else:
            out.append(f"{indent}- {_inline(item)}")


def _inline(value: object) -> str:
    kind = type(value)
    if kind is str:
        return scalar_str(value)
    if kind is dict:
        return "{}"
    if kind is list:
        return "[]"
    return _scalar(value)


def dump(value: object, header: str = "") -> str:
    """YAML text for one document, optionally after a comment header."""
    out = [f"# {line}" if line else "#" for line in header.splitlines()]
    if isinstance(value, (dict, list)) and value:
        _lines(value, "", out)
    else:
        out.append(_inline(value))
    return "\n".join(out) + "\n"


def dump_all(values: list[object], header: str = "") -> str:
    """Several documents in one file, separated by '---'."""
    return dump(values[0], header) + "".join("---\n" + dump(v) for v in values[1:])
