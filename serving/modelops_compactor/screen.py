"""Which log lines the compactor's SQL can type; the others go to rejected/, one by one.

DuckDB reads a batch of files as one table, so a single record it cannot cast (data
nested unlike its shape, a string among numbers, a value past its type, a torn line)
would fail the whole batch, on every run, for the whole volume. Each line is checked
here first against exactly what the SQL of logtables.py assumes; a line that fails is
kept with its reason in `rejected/<server>/<date>/<file>.rejected.jsonl` and the rest
of its file is compacted. A file whose lines all pass is read as it is.

A record of many instances (a 200,000-row request logs as one line of megabytes) is cut
here into pieces of at most about PIECE_BYTES, each with the `row_offset` of its first
instance: DuckDB then never holds one huge record, so compaction runs within its memory
limit whatever the requests were, and every row keeps its index in its request.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from modelops_compactor.logtables import SQL_TYPES
from modelops_runtime.records import SQL_COLUMNS

MAX_RANK = 32
PIECE_BYTES = 1 << 20
_INT_RANGES = {"INT8": 7, "INT16": 15, "INT32": 31, "INT64": 63}
_UINT_RANGES = {"UINT8": 8, "UINT16": 16, "UINT32": 32, "UINT64": 64}
_FLOAT_MAX = {"FP16": 3.4e38, "FP32": 3.4e38, "FP64": math.inf}  # FP16 is stored as FLOAT
_FIELD_TYPES = {"VARCHAR": (str,), "DOUBLE": (int, float), "INTEGER": (int,), "JSON": (list,)}


def _leaf_ok(datatype: str, value: Any) -> bool:
    if datatype == "BYTES":
        return isinstance(value, str)
    if isinstance(value, bool) or datatype == "BOOL":
        return datatype == "BOOL" and isinstance(value, bool)
    if datatype in _INT_RANGES:
        bits = _INT_RANGES[datatype]
        return isinstance(value, int) and -(1 << bits) <= value < (1 << bits)
    if datatype in _UINT_RANGES:
        return isinstance(value, int) and 0 <= value < (1 << _UINT_RANGES[datatype])
    return isinstance(value, (int, float)) and abs(value) <= _FLOAT_MAX[datatype]


def _nested_ok(data: Any, shape: list[int]) -> bool:
    if not shape:
        return not isinstance(data, list)
    return isinstance(data, list) and len(data) == shape[0] and all(
        _nested_ok(item, shape[1:]) for item in data)


def _leaves(data: list[Any], rank: int) -> Iterator[Any]:
    if rank <= 1:
        yield from data
    else:
        for item in data:
            yield from _leaves(item, rank - 1)


def tensor_problem(side: str, tensor: Any) -> str | None:
    if not isinstance(tensor, dict):
        return f"an item of {side} is not an object"
    name, datatype, shape, data = (tensor.get(k) for k in ("name", "datatype", "shape", "data"))
    if not isinstance(name, str) or not name:
        return f"a tensor of {side} has no name"
    if not isinstance(datatype, str) or datatype not in SQL_TYPES:
        return f"{side} {name!r}: unknown datatype {datatype!r}"
    if not isinstance(shape, list) or len(shape) > MAX_RANK or not all(
            isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape):
        return f"{side} {name!r}: shape is not a list of at most {MAX_RANK} sizes"
    if not isinstance(data, list):
        return f"{side} {name!r}: data is not a list"
    nested = bool(data) and isinstance(data[0], list)
    if nested and not _nested_ok(data, shape):
        return f"{side} {name!r}: data is nested unlike its shape {shape}"
    if not nested and len(data) != math.prod(shape):
        return f"{side} {name!r}: shape {shape} needs {math.prod(shape)} values, has {len(data)}"
    if not all(_leaf_ok(datatype, v) for v in (_leaves(data, len(shape)) if nested else data)):
        return f"{side} {name!r}: a value is not a {datatype}"
    return None


def problem(line: bytes) -> str | None:
    """Why the compactor cannot type this log line, or None."""
    try:
        record = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        return f"not JSON: {exc}"
    if not isinstance(record, dict):
        return "not a JSON object"
    for field, sql in SQL_COLUMNS.items():
        value = record.get(field)
        if value is None and field in ("dataset", "model", "version"):
            continue  # the SQL fills these in
        if not isinstance(value, _FIELD_TYPES[sql]) or isinstance(value, bool):
            return f"{field} is not a {sql}"
    if not record["inputs"]:
        return "inputs is empty"
    for side in ("inputs", "outputs"):
        for tensor in record[side]:
            if (found := tensor_problem(side, tensor)) is not None:
                return found
    return None


def screen(path: Path, clean: Path) -> tuple[Path, list[bytes]]:
    """(the file to compact, the rejected lines as JSON with their reasons). When a line
    fails or is cut into pieces, the lines to read are written to `clean`, and that is the
    file to compact."""
    data = path.read_bytes()
    lines = data.splitlines()
    rejected = []
    kept: list[bytes] = []
    changed = False
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        if (reason := problem(line)) is not None:
            rejected.append((number, reason, line))
            changed = True
        elif len(line) > PIECE_BYTES:
            kept += pieces(line)
            changed = True
        else:
            kept.append(line)
    if not changed:
        return path, []
    clean.parent.mkdir(parents=True, exist_ok=True)
    clean.write_bytes(b"".join(line + b"\n" for line in kept))
    return clean, [orjson.dumps({"line": n, "reason": reason,
                                 "record": line.decode("utf-8", "replace")}) + b"\n"
                   for n, reason, line in rejected]


def pieces(line: bytes) -> list[bytes]:
    """A valid record of many instances as records of fewer, each about PIECE_BYTES: the
    tensors whose first dimension counts the instances are sliced, the others repeated."""
    record = orjson.loads(line)
    first = record["inputs"][0]["shape"]
    count = first[0] if first else 1
    step = max(1, count * PIECE_BYTES // len(line))
    if step >= count:
        return [line]
    out = []
    for start in range(0, count, step):
        stop = min(count, start + step)
        piece = {**record, "row_offset": start}
        for side in ("inputs", "outputs"):
            piece[side] = [_slice(t, count, start, stop) for t in record[side]]
        out.append(orjson.dumps(piece))
    return out


def _slice(tensor: dict[str, Any], count: int, start: int, stop: int) -> dict[str, Any]:
    shape, data = tensor["shape"], tensor["data"]
    if not shape or shape[0] != count:
        return tensor  # not one value per instance: every piece carries it whole
    width = math.prod(shape[1:])
    nested = bool(data) and isinstance(data[0], list)
    return {**tensor, "shape": [stop - start, *shape[1:]],
            "data": data[start:stop] if nested else data[start * width:stop * width]}
