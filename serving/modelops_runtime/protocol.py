"""Open Inference Protocol v2 tensors: JSON <-> numpy, with errors a client can act on."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import orjson

DTYPES: dict[str, np.dtype] = {
    "BOOL": np.dtype(np.bool_),
    "UINT8": np.dtype(np.uint8), "UINT16": np.dtype(np.uint16),
    "UINT32": np.dtype(np.uint32), "UINT64": np.dtype(np.uint64),
    "INT8": np.dtype(np.int8), "INT16": np.dtype(np.int16),
    "INT32": np.dtype(np.int32), "INT64": np.dtype(np.int64),
    "FP16": np.dtype(np.float16), "FP32": np.dtype(np.float32), "FP64": np.dtype(np.float64),
    "BYTES": np.dtype(object),
}
_NAMES = {dtype: name for name, dtype in DTYPES.items() if name != "BYTES"}
_JSON = orjson.OPT_SERIALIZE_NUMPY


class ProtocolError(Exception):
    """A request the protocol does not allow; becomes an HTTP error with {"error": message}."""

    def __init__(self, message: str, status: int = 400, headers: dict | None = None):
        super().__init__(message)
        self.message, self.status, self.headers = message, status, headers


def datatype_of(array: np.ndarray) -> str:
    if array.dtype.kind in "OSU":
        return "BYTES"
    try:
        return _NAMES[array.dtype]
    except KeyError:
        raise ProtocolError(f"model returned unsupported dtype {array.dtype}", 500) from None


TENSOR_KEYS = frozenset({"name", "datatype", "shape", "data", "parameters"})
MAX_ID_LENGTH = 256
MAX_RANK = 32  # numpy allows 64 dimensions; no model needs more than a handful


def _flatten(name: str, data: list, shape: list[int]) -> list:
    """v2 allows flat row-major data, or data nested exactly as the shape says."""
    if not data or not isinstance(data[0], list):
        return data
    try:
        nested = np.asarray(data, dtype=object)
    except ValueError:  # ragged lists
        nested = None
    if nested is None or nested.shape != tuple(shape):
        raise ProtocolError(f"input {name!r}: data is nested unlike its shape {shape}; send "
                            f"it flat or nested exactly as the shape says")
    return nested.ravel().tolist()


def parameters(where: str, value: Any) -> dict | None:
    """v2 parameters: an object whose values are strings, numbers or booleans."""
    if value is None:
        return None
    if not isinstance(value, dict) or not all(
            isinstance(v, (str, int, float, bool)) for v in value.values()):
        raise ProtocolError(f"{where} parameters must be an object of strings, numbers or "
                            f"booleans")
    return value


def decode_tensor(tensor: Any, blob: memoryview | None = None,
                  offset: int = 0) -> tuple[str, np.ndarray, int]:
    """(name, array, bytes it took of `blob`, the binary data after a JSON header)."""
    if not isinstance(tensor, dict):
        raise ProtocolError("each input must be an object with name, shape, datatype and data")
    name = tensor.get("name")
    if not isinstance(name, str) or not name:
        raise ProtocolError("an input has no name")
    unknown = sorted(set(tensor) - TENSOR_KEYS)
    if unknown:
        raise ProtocolError(f"input {name!r}: unknown key {unknown[0]!r}; an input has "
                            f"name, datatype, shape, data and parameters")
    parameters(f"input {name!r}:", tensor.get("parameters"))
    datatype, shape, data = tensor.get("datatype"), tensor.get("shape"), tensor.get("data")
    if not isinstance(datatype, str) or datatype not in DTYPES:
        raise ProtocolError(f"input {name!r}: unknown datatype {datatype!r}; expected one of "
                            f"{', '.join(DTYPES)}")
    if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool)
                                              and d >= 0 for d in shape):
        raise ProtocolError(f"input {name!r}: shape must be a list of non-negative integers")
    if len(shape) > MAX_RANK:
        raise ProtocolError(f"input {name!r}: shape has {len(shape)} dimensions; at most "
                            f"{MAX_RANK}")
    size = None
    if tensor.get("parameters"):  # the binary extension's, when it is used at all
        from modelops_runtime import binary  # it builds on this module

        size = binary.size_of(tensor)
    if size is not None:
        if data is not None or blob is None:
            raise ProtocolError(f"input {name!r}: binary_data_size needs the data after the "
                                f"JSON (Inference-Header-Content-Length) and no 'data'")
        if offset + size > len(blob):
            raise ProtocolError(f"input {name!r}: binary_data_size {size} runs past the "
                                f"{len(blob)} bytes after the JSON")
        return name, binary.decode(name, datatype, shape, blob[offset:offset + size]), size
    if not isinstance(data, list):
        raise ProtocolError(f"input {name!r}: data must be a list")
    expected = math.prod(shape)
    try:
        flat = _flatten(name, data, shape)
        if len(flat) != expected:
            raise ProtocolError(f"input {name!r}: shape {shape} needs {expected} values, "
                                f"got {len(flat)}")
        if datatype == "BYTES":
            if not all(isinstance(v, str) for v in flat):
                raise ValueError("BYTES data must be strings")
            array = np.empty(expected, dtype=object)
            array[:] = flat
        elif datatype == "BOOL":
            if not all(isinstance(v, bool) for v in flat):
                raise ValueError("BOOL data must be true or false")
            array = np.asarray(flat, dtype=np.bool_)
        else:
            if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in flat):
                raise ValueError(f"{datatype} data must be numbers")
            if DTYPES[datatype].kind in "iu" and not all(isinstance(v, int) for v in flat):
                raise ValueError(f"{datatype} data must be integers")
            array = np.asarray(flat, dtype=DTYPES[datatype])
            if array.dtype.kind == "f" and not np.isfinite(array).all():
                raise ValueError(f"a value is out of the range of {datatype}")
    except ProtocolError:
        raise
    except (ValueError, TypeError, OverflowError) as exc:
        raise ProtocolError(f"input {name!r}: {exc}") from None
    return name, array.reshape(shape), 0


def decode_request(body: bytes, header_length: str | None = None
                   ) -> tuple[dict, dict[str, np.ndarray]]:
    """The parsed request and its inputs as numpy arrays by name. With a header length,
    the body is JSON followed by binary tensor data (binary.py)."""
    blob = None
    if header_length is not None:
        from modelops_runtime import binary

        body, blob = binary.split(body, header_length)
    try:
        request = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ProtocolError(f"request body is not valid JSON: {exc}") from None
    if not isinstance(request, dict):
        raise ProtocolError("request body must be a JSON object with an 'inputs' list")
    inputs = request.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise ProtocolError("request needs a non-empty 'inputs' list")
    arrays = decode_request_tensors(inputs, blob)
    outputs = request.get("outputs")
    if outputs is not None and (not isinstance(outputs, list) or not all(
            isinstance(o, dict) and isinstance(o.get("name"), str) for o in outputs)):
        raise ProtocolError("'outputs' must be a list of objects with a name")
    for output in outputs or []:
        parameters(f"output {output['name']!r}:", output.get("parameters"))
    parameters("request", request.get("parameters"))
    rid = request.get("id")
    if rid is not None and (not isinstance(rid, str) or len(rid) > MAX_ID_LENGTH):
        raise ProtocolError(f"'id' must be a string of at most {MAX_ID_LENGTH} characters")
    return request, arrays


def decode_request_tensors(inputs: list, blob: memoryview | None) -> dict[str, np.ndarray]:
    """Every input as an array by name; `blob` is the binary data that inputs with a
    binary_data_size take in turn, and must take whole."""
    arrays: dict[str, np.ndarray] = {}
    offset = 0
    for tensor in inputs:
        name, array, used = decode_tensor(tensor, blob, offset)
        offset += used
        if name in arrays:
            raise ProtocolError(f"input {name!r} is given twice")
        arrays[name] = array
    if blob is not None and offset != len(blob):
        raise ProtocolError(f"{len(blob)} bytes follow the JSON, but the inputs' "
                            f"binary_data_size add up to {offset}")
    return arrays


def as_logged(tensor: dict, array: np.ndarray) -> dict:
    """An input as the prediction record keeps it: the four fields a dataset reads (the
    data of a binary input as the list JSON would have carried)."""
    data = tensor.get("data")
    if data is None:
        data = array.ravel().tolist()
    return {"name": tensor["name"], "datatype": tensor["datatype"], "shape": tensor["shape"],
            "data": data}


def encode_tensor(name: str, array: np.ndarray) -> dict:
    array = np.asarray(array)
    datatype = datatype_of(array)
    flat = array.ravel()
    if datatype == "BYTES":
        data: Any = [v.decode() if isinstance(v, bytes) else str(v) for v in flat.tolist()]
    elif datatype == "FP16":
        data = flat.astype(np.float32)  # orjson writes float16 poorly; values are unchanged
    else:
        data = flat
    return {"name": name, "datatype": datatype, "shape": list(array.shape), "data": data}


def dumps(payload: Any) -> bytes:
    return orjson.dumps(payload, option=_JSON)


def requested_outputs(request: dict) -> list[str] | None:
    outputs = request.get("outputs")
    return [o["name"] for o in outputs] if outputs else None
