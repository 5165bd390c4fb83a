"""Triton's binary tensor data extension of the v2 HTTP protocol: what tritonclient sends
and asks for by default.

A request whose `Inference-Header-Content-Length` header is N carries its JSON in the
first N bytes of the body, and after it the raw bytes of every input whose parameters
give a `binary_data_size`, in the order of the inputs: numbers little-endian and
row-major, booleans one byte each, BYTES elements each prefixed by their length as a
4-byte little-endian integer. Outputs come back the same way when the request asks
(`binary_data_output: true` for all, or `binary_data: true` on one output). Numbers are
read in place, as numpy views of the request body: nothing is copied.
"""

from __future__ import annotations

import math
import struct

import numpy as np

from modelops_runtime.protocol import DTYPES, ProtocolError

EXTENSION = "binary_tensor_data"
HEADER = "inference-header-content-length"


def split(body: bytes, header_length: str) -> tuple[bytes, memoryview]:
    """(the JSON header, the binary data after it)."""
    try:
        length = int(header_length)
    except ValueError:
        raise ProtocolError(f"Inference-Header-Content-Length must be a number, got "
                            f"{header_length[:40]!r}") from None
    if not 0 < length <= len(body):
        raise ProtocolError(f"Inference-Header-Content-Length is {length}, but the body has "
                            f"{len(body)} bytes")
    view = memoryview(body)
    return bytes(view[:length]), view[length:]


def size_of(tensor: dict) -> int | None:
    """The tensor's binary_data_size, when its data follows the JSON."""
    size = (tensor.get("parameters") or {}).get("binary_data_size")
    if size is None:
        return None
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise ProtocolError(f"input {tensor.get('name')!r}: binary_data_size must be a "
                            f"non-negative integer")
    return size


def decode(name: str, datatype: str, shape: list[int], raw: memoryview) -> np.ndarray:
    """One input's binary data as an array of its shape."""
    count = math.prod(shape)
    if datatype == "BYTES":
        return _strings(name, raw, count).reshape(shape)
    dtype = DTYPES[datatype].newbyteorder("<")
    if len(raw) != count * dtype.itemsize:
        raise ProtocolError(f"input {name!r}: shape {shape} of {datatype} needs "
                            f"{count * dtype.itemsize} bytes, binary_data_size is {len(raw)}")
    array = np.frombuffer(raw, dtype=dtype).reshape(shape)
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        raise ProtocolError(f"input {name!r}: NaN or infinity in {datatype} data")
    return array


def _strings(name: str, raw: memoryview, count: int) -> np.ndarray:
    out = np.empty(count, dtype=object)
    offset = 0
    for i in range(count):
        if offset + 4 > len(raw):
            raise ProtocolError(f"input {name!r}: BYTES data ends before element {i}")
        (length,) = struct.unpack_from("<I", raw, offset)
        offset += 4
        if offset + length > len(raw):
            raise ProtocolError(f"input {name!r}: BYTES element {i} runs past the data")
        try:
            out[i] = bytes(raw[offset:offset + length]).decode()
        except UnicodeDecodeError:
            raise ProtocolError(f"input {name!r}: BYTES element {i} is not UTF-8") from None
        offset += length
    if offset != len(raw):
        raise ProtocolError(f"input {name!r}: {len(raw) - offset} bytes after its "
                            f"{count} BYTES elements")
    return out


def encode(array: np.ndarray) -> bytes:
    """An output's binary data."""
    if array.dtype.kind in "OSU":
        parts = []
        for value in array.ravel().tolist():
            data = value if isinstance(value, bytes) else str(value).encode()
            parts.append(struct.pack("<I", len(data)) + data)
        return b"".join(parts)
    return np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).tobytes()


def wanted(request: dict) -> set[str] | bool:
    """Which outputs go back as binary: True for all, or the names that ask for it."""
    if (request.get("parameters") or {}).get("binary_data_output") is True:
        return True
    return {o["name"] for o in request.get("outputs") or []
            if (o.get("parameters") or {}).get("binary_data") is True}
