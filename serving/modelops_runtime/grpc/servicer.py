"""The gRPC transport: the Open Inference Protocol's `inference.GRPCInferenceService`.

It runs on the HTTP server's own event loop, over the same data plane, so both transports
share the models, the admission, the metrics, the prediction log and the drain. Tensors
travel as `raw_input_contents` / `raw_output_contents` (what tritonclient and KServe's
client send by default), read in place like binary HTTP; typed `contents` work too.
Errors are gRPC status codes with the same messages as HTTP's JSON errors.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NoReturn, TypeAlias, TypeVar

import grpc

from modelops_runtime import errors, identity, metrics
from modelops_runtime.dataplane import DataPlane
from modelops_runtime.grpc import codec
from modelops_runtime.grpc.proto import inference_pb2 as pb
from modelops_runtime.grpc.proto import inference_pb2_grpc as pb_grpc

STATUS: dict[type[errors.ServingError], grpc.StatusCode] = {
    errors.InvalidRequest: grpc.StatusCode.INVALID_ARGUMENT,
    errors.Unauthenticated: grpc.StatusCode.UNAUTHENTICATED,
    errors.NotFound: grpc.StatusCode.NOT_FOUND,
    errors.TooSlow: grpc.StatusCode.DEADLINE_EXCEEDED,
    errors.Conflict: grpc.StatusCode.FAILED_PRECONDITION,
    errors.TooLarge: grpc.StatusCode.RESOURCE_EXHAUSTED,
    errors.ClientGone: grpc.StatusCode.CANCELLED,
    errors.Unavailable: grpc.StatusCode.UNAVAILABLE,
    errors.ModelFailed: grpc.StatusCode.INTERNAL,
}
Answer = TypeVar("Answer")
Context: TypeAlias = "grpc.aio.ServicerContext[Any, Any]"


class Servicer(pb_grpc.GRPCInferenceServiceServicer):
    def __init__(self, plane: DataPlane, token: str | None) -> None:
        self.plane = plane
        self.token = token.encode() if token else None

    async def _guard(self, context: Context) -> str:
        """The request id (the caller's x-request-id, or a new one); aborts without the
        bearer token when the server requires one."""
        metadata: dict[str, Any] = dict(context.invocation_metadata() or ())
        request_id = identity.request_id(metadata.get("x-request-id", ""))
        # In the trailers: sending headers early would cost every call a write of its own.
        context.set_trailing_metadata((("x-request-id", request_id),))
        if self.token is not None and not identity.bearer_ok(
                metadata.get("authorization", "").encode(), self.token):
            await self._abort(context, errors.Unauthenticated("missing or wrong bearer token"))
        return request_id

    async def _abort(self, context: Context, exc: errors.ServingError) -> NoReturn:
        code = next((STATUS[kind] for kind in type(exc).__mro__ if kind in STATUS),
                    grpc.StatusCode.INTERNAL)
        metrics.grpc_response(code.name).inc()
        await context.abort(code, exc.message)
        raise AssertionError("abort() raises")  # for the type checker: it never returns

    async def _answer(self, context: Context, work: Callable[[], Answer]) -> Answer:
        await self._guard(context)
        try:
            answer = work()
        except errors.ServingError as exc:
            await self._abort(context, exc)
        metrics.grpc_response("OK").inc()
        return answer

    async def ServerLive(self, request: pb.ServerLiveRequest,
                         context: Context) -> pb.ServerLiveResponse:
        return await self._answer(context, lambda: pb.ServerLiveResponse(live=True))

    async def ServerReady(self, request: pb.ServerReadyRequest,
                          context: Context) -> pb.ServerReadyResponse:
        return await self._answer(context, lambda: pb.ServerReadyResponse(
            ready=self.plane.ready()))

    async def ModelReady(self, request: pb.ModelReadyRequest,
                         context: Context) -> pb.ModelReadyResponse:
        return await self._answer(context, lambda: pb.ModelReadyResponse(
            ready=self.plane.model_ready(request.name, request.version or None)))

    async def ServerMetadata(self, request: pb.ServerMetadataRequest,
                             context: Context) -> pb.ServerMetadataResponse:
        return await self._answer(context, lambda: pb.ServerMetadataResponse(
            **self.plane.server_metadata()))

    async def ModelMetadata(self, request: pb.ModelMetadataRequest,
                            context: Context) -> pb.ModelMetadataResponse:
        def metadata() -> pb.ModelMetadataResponse:
            found = self.plane.model_metadata(request.name, request.version or None)
            return pb.ModelMetadataResponse(
                name=found["name"], versions=found["versions"], platform=found["platform"],
                inputs=[pb.ModelMetadataResponse.TensorMetadata(**t) for t in found["inputs"]],
                outputs=[pb.ModelMetadataResponse.TensorMetadata(**t)
                         for t in found["outputs"]])

        return await self._answer(context, metadata)

    async def RepositoryIndex(self, request: pb.RepositoryIndexRequest,
                              context: Context) -> pb.RepositoryIndexResponse:
        def index() -> pb.RepositoryIndexResponse:
            models = [pb.RepositoryIndexResponse.ModelIndex(
                name=m["name"], version=v["name"], state=v["state"].upper(), reason=m["reason"])
                for m in self.plane.repository_index() for v in m["versions"]
                if not request.ready or v["state"] == "ready"]
            return pb.RepositoryIndexResponse(models=models)

        return await self._answer(context, index)

    async def ModelInfer(self, request: pb.ModelInferRequest,
                         context: Context) -> pb.ModelInferResponse:
        request_id = await self._guard(context)
        try:
            try:
                decoded = codec.decode(request, request_id)
            except errors.ServingError as exc:
                raise self.plane.refused(request.model_name, request.model_version or None,
                                         exc) from None
            response = await self.plane.infer(decoded)
        except errors.ServingError as exc:
            await self._abort(context, exc)
        metrics.grpc_response("OK").inc()
        return codec.encode(response, pb.ModelInferResponse())


def create_server(plane: DataPlane, host: str, port: int, token: str | None,
                  max_message_bytes: int) -> grpc.aio.Server:
    """The gRPC server, not yet started (it starts on the running event loop)."""
    server = grpc.aio.server(options=[
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.max_send_message_length", -1),
        ("grpc.so_reuseport", 0),
    ])
    pb_grpc.add_GRPCInferenceServiceServicer_to_server(  # type: ignore[no-untyped-call]
        Servicer(plane, token), server)
    if server.add_insecure_port(f"{host}:{port}") == 0:
        raise OSError(f"cannot listen for gRPC on {host}:{port}")
    return server
