"""Tensors of the Open Inference Protocol v2: datatypes, shapes, and the two ways values
travel, whatever the transport: as a list of values (JSON `data`, gRPC `contents`) or as
raw bytes (Triton's binary extension over HTTP, gRPC `raw_input_contents`).

Raw bytes are little-endian and row-major, booleans one byte each, and BYTES elements
each prefixed by their length as a 4-byte little-endian integer. Numbers are read in
place, as numpy views of the bytes received: nothing is copied.
"""

from __future__ import annotations

import math
import struct
from typing import Any

import numpy as np

from modelops_runtime.errors import InvalidRequest, ModelFailed

DTYPES: dict[str, np.dtype[Any]] = {
    "BOOL": np.dtype(np.bool_),
    "UINT8": np.dtype(np.uint8), "UINT16": np.dtype(np.uint16),
    "UINT32": np.dtype(np.uint32), "UINT64": np.dtype(np.uint64),
    "INT8": np.dtype(np.int8), "INT16": np.dtype(np.int16),
    "INT32": np.dtype(np.int32), "INT64": np.dtype(np.int64),
    "FP16": np.dtype(np.float16), "FP32": np.dtype(np.float32), "FP64": np.dtype(np.float64),
    "BYTES": np.dtype(object),
}
_NAMES = {dtype: name for name, dtype in DTYPES.items() if name != "BYTES"}
MAX_RANK = 32  # numpy allows 64 dimensions; no model needs more than a handful
MAX_EXTENT = 2 ** 40
"""The most values the non-empty dimensions of a shape may span: numpy refuses a shape
past its address space even when another dimension is 0."""


def datatype_of(array: np.ndarray[Any, Any]) -> str:
    """The v2 datatype of an array a model returned."""
    if array.dtype.kind in "OSU":
        return "BYTES"
    try:
        return _NAMES[array.dtype]
    except KeyError:
        raise ModelFailed(f"the model returned unsupported dtype {array.dtype}") from None


def check_header(name: str, datatype: object, shape: object) -> tuple[str, list[int]]:
    """(datatype, shape), once they are ones the protocol allows."""
    if not isinstance(datatype, str) or datatype not in DTYPES:
        raise InvalidRequest(f"input {name!r}: unknown datatype {datatype!r}; expected one "
                             f"of {', '.join(DTYPES)}")
    if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool)
                                              and d >= 0 for d in shape):
        raise InvalidRequest(f"input {name!r}: shape must be a list of non-negative integers")
    if len(shape) > MAX_RANK:
        raise InvalidRequest(f"input {name!r}: shape has {len(shape)} dimensions; at most "
                             f"{MAX_RANK}")
    if math.prod(d for d in shape if d) > MAX_EXTENT:
        raise InvalidRequest(f"input {name!r}: shape {shape} spans more than 2**40 values")
    return datatype, shape


def from_values(name: str, datatype: str, shape: list[int],
                values: list[Any]) -> np.ndarray[Any, Any]:
    """A tensor sent as a flat row-major list of values, checked against its datatype."""
    expected = math.prod(shape)
    if len(values) != expected:
        raise InvalidRequest(f"input {name!r}: shape {shape} needs {expected} values, got "
                             f"{len(values)}")
    try:
        if datatype == "BYTES":
            if not all(isinstance(v, str) for v in values):
                raise ValueError("BYTES data must be strings")
            array = np.empty(expected, dtype=object)
            array[:] = values
        elif datatype == "BOOL":
            if not all(isinstance(v, bool) for v in values):
                raise ValueError("BOOL data must be true or false")
            array = np.asarray(values, dtype=np.bool_)
        else:
            if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
                raise ValueError(f"{datatype} data must be numbers")
            if DTYPES[datatype].kind in "iu" and not all(isinstance(v, int) for v in values):
                raise ValueError(f"{datatype} data must be integers")
            array = np.asarray(values, dtype=DTYPES[datatype])
            if array.dtype.kind == "f" and not np.isfinite(array).all():
                raise ValueError(f"a value is out of the range of {datatype}")
    except (ValueError, TypeError, OverflowError) as exc:
        raise InvalidRequest(f"input {name!r}: {exc}") from None
    return array.reshape(shape)


def from_raw(name: str, datatype: str, shape: list[int], raw: bytes | memoryview,
             field: str) -> np.ndarray[Any, Any]:
    """A tensor sent as raw bytes, as an array of its shape (numbers read in place).
    `field` names where the transport carried them, for the error message."""
    count = math.prod(shape)
    if datatype == "BYTES":
        return _strings(name, memoryview(raw), count, field).reshape(shape)
    dtype = DTYPES[datatype].newbyteorder("<")
    if len(raw) != count * dtype.itemsize:
        raise InvalidRequest(f"input {name!r}: shape {shape} of {datatype} needs "
                             f"{count * dtype.itemsize} bytes, {field} is {len(raw)}")
    array = np.frombuffer(raw, dtype=dtype).reshape(shape)
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        raise InvalidRequest(f"input {name!r}: NaN or infinity in {datatype} data")
    return array


def _strings(name: str, raw: memoryview, count: int, field: str) -> np.ndarray[Any, Any]:
    if count * 4 > len(raw):  # checked before allocating: each element takes 4 bytes or more
        raise InvalidRequest(f"input {name!r}: {count} BYTES elements need at least "
                             f"{count * 4} bytes, {field} is {len(raw)}")
    out = np.empty(count, dtype=object)
    offset = 0
    for i in range(count):
        if offset + 4 > len(raw):
            raise InvalidRequest(f"input {name!r}: BYTES data ends before element {i}")
        (length,) = struct.unpack_from("<I", raw, offset)
        offset += 4
        if offset + length > len(raw):
            raise InvalidRequest(f"input {name!r}: BYTES element {i} runs past the data")
        try:
            out[i] = bytes(raw[offset:offset + length]).decode()
        except UnicodeDecodeError:
            raise InvalidRequest(f"input {name!r}: BYTES element {i} is not UTF-8") from None
        offset += length
    if offset != len(raw):
        raise InvalidRequest(f"input {name!r}: {len(raw) - offset} bytes after its "
                             f"{count} BYTES elements")
    return out


def to_raw(array: np.ndarray[Any, Any]) -> bytes:
    """An output as raw bytes."""
    if array.dtype.kind in "OSU":
        parts = []
        for value in array.ravel().tolist():
            data = value if isinstance(value, bytes) else str(value).encode()
            parts.append(struct.pack("<I", len(data)) + data)
        return b"".join(parts)
    return np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).tobytes()


def to_values(name: str, array: np.ndarray[Any, Any]) -> dict[str, Any]:
    """An output as a v2 tensor with a flat list of values (numpy data, which orjson
    writes as it is)."""
    datatype = datatype_of(array)
    flat = array.ravel()
    data: Any
    if datatype == "BYTES":
        data = [v.decode() if isinstance(v, bytes) else str(v) for v in flat.tolist()]
    elif datatype == "FP16":
        data = flat.astype(np.float32)  # orjson writes float16 poorly; values are unchanged
    else:
        data = flat
    return {"name": name, "datatype": datatype, "shape": list(array.shape), "data": data}
