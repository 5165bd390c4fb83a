"""The v2 HTTP body, to and from the typed request and response: JSON, and JSON followed
by binary tensor data (binary.py)."""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson

from modelops_runtime import tensors
from modelops_runtime.errors import InvalidRequest
from modelops_runtime.http import binary
from modelops_runtime.inference import (
    InferInput,
    InferRequest,
    InferResponse,
    RequestedOutput,
    client_id,
    parameters,
)

TENSOR_KEYS = frozenset({"name", "datatype", "shape", "data", "parameters"})
_JSON = orjson.OPT_SERIALIZE_NUMPY


def dumps(payload: Any) -> bytes:
    return orjson.dumps(payload, option=_JSON)


def decode(body: bytes, header_length: str | None, model: str, version: str | None,
           request_id: str) -> InferRequest:
    """The request in `body`; with a header length, its JSON is followed by binary data."""
    blob = None
    if header_length is not None:
        body, blob = binary.split(body, header_length)
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"request body is not valid JSON: {exc}") from None
    if not isinstance(document, dict):
        raise InvalidRequest("request body must be a JSON object with an 'inputs' list")
    inputs = document.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise InvalidRequest("request needs a non-empty 'inputs' list")
    decoded = _inputs(inputs, blob)
    outputs = document.get("outputs")
    if outputs is not None and (not isinstance(outputs, list) or not all(
            isinstance(o, dict) and isinstance(o.get("name"), str) for o in outputs)):
        raise InvalidRequest("'outputs' must be a list of objects with a name")
    requested = [RequestedOutput(o["name"], parameters(f"output {o['name']!r}:",
                                                       o.get("parameters")))
                 for o in outputs or []]
    return InferRequest(model, version, decoded, request_id, client_id(document.get("id")),
                        requested, parameters("request", document.get("parameters")))


def _inputs(inputs: list[Any], blob: memoryview | None) -> list[InferInput]:
    """Every input; `blob` is the binary data that inputs with a binary_data_size take in
    turn, and must take whole."""
    decoded, offset = [], 0
    for tensor in inputs:
        value, used = _input(tensor, blob, offset)
        decoded.append(value)
        offset += used
    if blob is not None and offset != len(blob):
        raise InvalidRequest(f"{len(blob)} bytes follow the JSON, but the inputs' "
                             f"binary_data_size add up to {offset}")
    return decoded


def _input(tensor: Any, blob: memoryview | None, offset: int) -> tuple[InferInput, int]:
    """One input, and how many bytes of `blob` it took."""
    if not isinstance(tensor, dict):
        raise InvalidRequest("each input must be an object with name, shape, datatype and "
                             "data")
    name = tensor.get("name")
    if not isinstance(name, str) or not name:
        raise InvalidRequest("an input has no name")
    unknown = sorted(set(tensor) - TENSOR_KEYS)
    if unknown:
        raise InvalidRequest(f"input {name!r}: unknown key {unknown[0]!r}; an input has "
                             f"name, datatype, shape, data and parameters")
    given = parameters(f"input {name!r}:", tensor.get("parameters"))
    datatype, shape = tensors.check_header(name, tensor.get("datatype"), tensor.get("shape"))
    data = tensor.get("data")
    size = binary.size_of(name, given) if given else None
    if size is not None:
        if data is not None or blob is None:
            raise InvalidRequest(f"input {name!r}: binary_data_size needs the data after the "
                                 f"JSON (Inference-Header-Content-Length) and no 'data'")
        if offset + size > len(blob):
            raise InvalidRequest(f"input {name!r}: binary_data_size {size} runs past the "
                                 f"{len(blob)} bytes after the JSON")
        array = tensors.from_raw(name, datatype, shape, blob[offset:offset + size],
                                 "binary_data_size")
        return InferInput(name, datatype, shape, array), size
    if not isinstance(data, list):
        raise InvalidRequest(f"input {name!r}: data must be a list")
    values = _flatten(name, data, shape)
    return InferInput(name, datatype, shape, tensors.from_values(name, datatype, shape, values),
                      values), 0


def _flatten(name: str, data: list[Any], shape: list[int]) -> list[Any]:
    """v2 allows flat row-major data, or data nested exactly as the shape says."""
    if not data or not isinstance(data[0], list):
        return data
    try:
        nested = np.asarray(data, dtype=object)
    except ValueError:  # ragged lists
        nested = None
    if nested is None or nested.shape != tuple(shape):
        raise InvalidRequest(f"input {name!r}: data is nested unlike its shape {shape}; send "
                             f"it flat or nested exactly as the shape says")
    flat: list[Any] = nested.ravel().tolist()
    return flat


def encode(response: InferResponse, request: InferRequest
           ) -> tuple[bytes, str, dict[str, str] | None]:
    """(body, media type, headers): v2 JSON, or JSON then the raw bytes of the outputs the
    client asked for in binary."""
    document: dict[str, Any] = {"model_name": response.model,
                                "model_version": response.version, "id": response.id}
    if response.parameters is not None:
        document["parameters"] = response.parameters
    as_binary = binary.wanted(request)
    if not as_binary:
        document["outputs"] = response.output_values()
        return dumps(document), "application/json", None
    described, blobs = [], []
    for name, array in response.outputs.items():
        if as_binary is True or name in as_binary:
            blob = tensors.to_raw(array)
            blobs.append(blob)
            described.append({"name": name, "datatype": tensors.datatype_of(array),
                              "shape": list(array.shape),
                              "parameters": {"binary_data_size": len(blob)}})
        else:
            described.append(tensors.to_values(name, array))
    document["outputs"] = described
    header = dumps(document)
    return (b"".join([header, *blobs]), "application/octet-stream",
            {"Inference-Header-Content-Length": str(len(header))})
