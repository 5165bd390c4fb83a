"""The gRPC transport: the Open Inference Protocol's `inference.GRPCInferenceService`.

It runs on the HTTP server's own event loop, over the same data plane, so both transports
share the models, the admission, the metrics, the prediction log and the drain. Tensors
travel as `raw_input_contents` / `raw_output_contents` (what tritonclient and KServe's
client send by default), read in place like binary HTTP; typed `contents` work too.
Errors are gRPC status codes with the same messages as HTTP's JSON errors.
"""

from __future__ import annotations

import hmac
import os
from typing import Any

import grpc
import numpy as np

from modelops_runtime import binary, metrics
from modelops_runtime.dataplane import DataPlane, Inference
from modelops_runtime.middleware import VALID_REQUEST_ID
from modelops_runtime.proto import inference_pb2 as pb
from modelops_runtime.proto import inference_pb2_grpc as pb_grpc
from modelops_runtime.protocol import (MAX_ID_LENGTH, ProtocolError, datatype_of,
                                       decode_request_tensors)

STATUS = {400: grpc.StatusCode.INVALID_ARGUMENT, 401: grpc.StatusCode.UNAUTHENTICATED,
          404: grpc.StatusCode.NOT_FOUND, 408: grpc.StatusCode.DEADLINE_EXCEEDED,
          409: grpc.StatusCode.FAILED_PRECONDITION, 413: grpc.StatusCode.RESOURCE_EXHAUSTED,
          503: grpc.StatusCode.UNAVAILABLE}
_CONTENTS = {"BOOL": "bool_contents", "INT8": "int_contents", "INT16": "int_contents",
             "INT32": "int_contents", "INT64": "int64_contents", "UINT8": "uint_contents",
             "UINT16": "uint_contents", "UINT32": "uint_contents", "UINT64": "uint64_contents",
             "FP32": "fp32_contents", "FP64": "fp64_contents", "BYTES": "bytes_contents"}


def _parameters(entries) -> dict[str, Any]:
    return {key: getattr(value, value.WhichOneof("parameter_choice"))
            for key, value in entries.items() if value.WhichOneof("parameter_choice")}


def _decode(request: pb.ModelInferRequest) -> tuple[dict, dict[str, np.ndarray]]:
    """The request as the JSON path sees it (tensor metadata, no data) and its arrays."""
    if not request.inputs:
        raise ProtocolError("request needs a non-empty 'inputs' list")
    if len(request.id) > MAX_ID_LENGTH:
        raise ProtocolError(f"'id' must be a string of at most {MAX_ID_LENGTH} characters")
    raw = list(request.raw_input_contents)
    if raw and len(raw) != len(request.inputs):
        raise ProtocolError(f"{len(raw)} raw_input_contents for {len(request.inputs)} inputs")
    tensors, blobs = [], []
    for i, tensor in enumerate(request.inputs):
        described: dict[str, Any] = {"name": tensor.name, "datatype": tensor.datatype,
                                     "shape": list(tensor.shape)}
        if raw:
            described["parameters"] = {"binary_data_size": len(raw[i])}
            blobs.append(raw[i])
        else:
            field = _CONTENTS.get(tensor.datatype)
            values = list(getattr(tensor.contents, field)) if field else []
            if tensor.datatype == "BYTES":
                try:
                    values = [v.decode() for v in values]
                except UnicodeDecodeError:
                    raise ProtocolError(f"input {tensor.name!r}: BYTES data is not UTF-8") \
                        from None
            described["data"] = values
        tensors.append(described)
    payload: dict[str, Any] = {"inputs": tensors, "id": request.id or None,
                               "parameters": _parameters(request.parameters) or None,
                               "outputs": [{"name": o.name} for o in request.outputs] or None}
    blob = (memoryview(blobs[0]) if len(blobs) == 1 else memoryview(b"".join(blobs))) \
        if raw else None  # one input (the usual case) is read in place
    arrays = decode_request_tensors(tensors, blob)
    return payload, arrays


def _response(result: Inference) -> pb.ModelInferResponse:
    response = pb.ModelInferResponse(model_name=result.model, model_version=result.version,
                                     id=result.id)
    for name, array in result.outputs.items():
        response.outputs.add(name=name, datatype=datatype_of(array), shape=array.shape)
        response.raw_output_contents.append(binary.encode(array))
    return response


class Servicer(pb_grpc.GRPCInferenceServiceServicer):
    def __init__(self, plane: DataPlane, token: str | None):
        self.plane = plane
        self.token = token.encode() if token else None

    async def _guard(self, context: grpc.aio.ServicerContext) -> str:
        """The request id (the caller's x-request-id, or a new one); aborts without the
        bearer token when the server requires one."""
        metadata = dict(context.invocation_metadata() or ())
        given = metadata.get("x-request-id", "")
        request_id = given if VALID_REQUEST_ID.match(given) else os.urandom(16).hex()
        # In the trailers: sending headers early would cost every call a write of its own.
        context.set_trailing_metadata((("x-request-id", request_id),))
        if self.token is not None:
            scheme, _, credentials = metadata.get("authorization", "").partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(
                    credentials.strip().encode(), self.token):
                await self._abort(context, ProtocolError("missing or wrong bearer token", 401))
        return request_id

    async def _abort(self, context, exc: ProtocolError):
        code = STATUS.get(exc.status, grpc.StatusCode.INTERNAL)
        metrics.grpc_response(code.name).inc()
        await context.abort(code, exc.message)

    async def _answer(self, context, work):
        await self._guard(context)
        try:
            answer = work()
        except ProtocolError as exc:
            await self._abort(context, exc)
        metrics.grpc_response("OK").inc()
        return answer

    async def ServerLive(self, request, context):
        return await self._answer(context, lambda: pb.ServerLiveResponse(live=True))

    async def ServerReady(self, request, context):
        return await self._answer(context, lambda: pb.ServerReadyResponse(
            ready=self.plane.ready()))

    async def ModelReady(self, request, context):
        return await self._answer(context, lambda: pb.ModelReadyResponse(
            ready=self.plane.model_ready(request.name, request.version or None)))

    async def ServerMetadata(self, request, context):
        return await self._answer(context, lambda: pb.ServerMetadataResponse(
            **self.plane.server_metadata()))

    async def ModelMetadata(self, request, context):
        def metadata():
            found = self.plane.model_metadata(request.name, request.version or None)
            return pb.ModelMetadataResponse(
                name=found["name"], versions=found["versions"], platform=found["platform"],
                inputs=[pb.ModelMetadataResponse.TensorMetadata(**t) for t in found["inputs"]],
                outputs=[pb.ModelMetadataResponse.TensorMetadata(**t)
                         for t in found["outputs"]])

        return await self._answer(context, metadata)

    async def RepositoryIndex(self, request, context):
        def index():
            models = [pb.RepositoryIndexResponse.ModelIndex(
                name=m["name"], version=v["name"], state=v["state"].upper(), reason=m["reason"])
                for m in self.plane.repository_index() for v in m["versions"]
                if not request.ready or v["state"] == "ready"]
            return pb.RepositoryIndexResponse(models=models)

        return await self._answer(context, index)

    async def ModelInfer(self, request, context):
        request_id = await self._guard(context)

        async def body() -> pb.ModelInferRequest:
            return request

        try:
            result = await self.plane.infer(request.model_name, request.model_version or None,
                                            request_id, body, _decode)
        except ProtocolError as exc:
            await self._abort(context, exc)
        metrics.grpc_response("OK").inc()
        return _response(result)


def create_server(plane: DataPlane, host: str, port: int, token: str | None,
                  max_message_bytes: int) -> grpc.aio.Server:
    """The gRPC server, not yet started (it starts on the running event loop)."""
    server = grpc.aio.server(options=[
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.max_send_message_length", -1),
        ("grpc.so_reuseport", 0),
    ])
    pb_grpc.add_GRPCInferenceServiceServicer_to_server(Servicer(plane, token), server)
    if server.add_insecure_port(f"{host}:{port}") == 0:
        raise OSError(f"cannot listen for gRPC on {host}:{port}")
    return server
