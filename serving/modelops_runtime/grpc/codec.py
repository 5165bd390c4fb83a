"""`ModelInferRequest` / `ModelInferResponse` to and from the typed request and response.

Tensors travel as `raw_input_contents` / `raw_output_contents` (what tritonclient and
KServe's client send by default), read in place; typed `contents` work too. The codec
reads and fills messages it is given, so it works on any build of the protocol's
messages (ours in the server, tritonclient's in the unit tests: two builds of the same
proto package cannot share one process's descriptor pool).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from modelops_runtime import tensors
from modelops_runtime.errors import InvalidRequest
from modelops_runtime.inference import (
    InferInput,
    InferRequest,
    InferResponse,
    Parameters,
    RequestedOutput,
    client_id,
)

if TYPE_CHECKING:
    from modelops_runtime.grpc.proto import inference_pb2 as pb

_CONTENTS = {"BOOL": "bool_contents", "INT8": "int_contents", "INT16": "int_contents",
             "INT32": "int_contents", "INT64": "int64_contents", "UINT8": "uint_contents",
             "UINT16": "uint_contents", "UINT32": "uint_contents", "UINT64": "uint64_contents",
             "FP32": "fp32_contents", "FP64": "fp64_contents", "BYTES": "bytes_contents"}


def parameters(entries: Mapping[str, pb.InferParameter]) -> Parameters | None:
    found: Parameters = {}
    for key, value in entries.items():
        choice = value.WhichOneof("parameter_choice")
        if choice:
            found[key] = getattr(value, choice)
    return found or None


def decode(request: pb.ModelInferRequest, request_id: str) -> InferRequest:
    raw = request.raw_input_contents  # no inputs at all: InferRequest says so
    if raw and len(raw) != len(request.inputs):
        raise InvalidRequest(f"{len(raw)} raw_input_contents for {len(request.inputs)} "
                             f"inputs")
    inputs = []
    for i, tensor in enumerate(request.inputs):
        name = tensor.name
        if not name:
            raise InvalidRequest("an input has no name")
        datatype, shape = tensors.check_header(name, tensor.datatype, list(tensor.shape))
        if raw:
            array = tensors.from_raw(name, datatype, shape, raw[i], "raw_input_contents")
            inputs.append(InferInput(name, datatype, shape, array))
            continue
        values = _values(name, datatype, tensor.contents)
        inputs.append(InferInput(name, datatype, shape,
                                 tensors.from_values(name, datatype, shape, values), values))
    return InferRequest(request.model_name, request.model_version or None, inputs, request_id,
                        client_id(request.id), [RequestedOutput(o.name) for o in request.outputs],
                        parameters(request.parameters))


def _values(name: str, datatype: str, contents: pb.InferTensorContents) -> list[Any]:
    field = _CONTENTS.get(datatype)
    values: list[Any] = list(getattr(contents, field)) if field else []
    if datatype == "BYTES":
        try:
            return [v.decode() for v in values]
        except UnicodeDecodeError:
            raise InvalidRequest(f"input {name!r}: BYTES data is not UTF-8") from None
    return values


def encode(response: InferResponse, message: pb.ModelInferResponse) -> pb.ModelInferResponse:
    """`message` (empty) filled with the response."""
    message.model_name, message.model_version, message.id = (response.model, response.version,
                                                             response.id)
    for name, array in response.outputs.items():
        message.outputs.add(name=name, datatype=tensors.datatype_of(array), shape=array.shape)
        message.raw_output_contents.append(tensors.to_raw(array))
    return message
