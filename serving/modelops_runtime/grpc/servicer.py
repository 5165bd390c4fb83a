"""The gRPC transport: the Open Inference Protocol's `inference.GRPCInferenceService`.

It runs on the HTTP server's own event loop, over the same data plane, so both transports
share the models, the admission, the metrics, the prediction log and the drain. Tensors
travel as `raw_input_contents` / `raw_output_contents` (what tritonclient and KServe's
client send by default), read in place like binary HTTP; typed `contents` work too.
Errors are gRPC status codes with the same messages as HTTP's JSON errors.

The service's handlers are built here from its descriptor, rather than by the generated
`add_..._to_server`, for one reason: a body that is not a valid message reaches the
servicer (and its bearer-token check) and gets INVALID_ARGUMENT, where grpcio's own
deserializer would end the call with UNKNOWN before any of it ran.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from typing import Any, NoReturn, TypeAlias, TypeVar

import grpc
from google.protobuf.message import DecodeError, Message

from modelops_runtime import errors, identity, metrics
from modelops_runtime.config import VERSION_HEADER
from modelops_runtime.dataplane import DataPlane
from modelops_runtime.grpc import codec
from modelops_runtime.grpc.proto import inference_pb2 as pb

SERVICE = "inference.GRPCInferenceService"
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
Relay = Callable[[pb.ModelInferRequest, str], Awaitable[pb.ModelInferResponse]]
"""ModelInfer for a model that sleeps: through its queue (amqp/grpc_door.py)."""


class Undecodable:
    """What a body that is not a valid message becomes, for the servicer to refuse."""

    def __init__(self, reason: str):
        self.reason = reason


def _lenient(message: type[Message]) -> Callable[[bytes], Message | Undecodable]:
    def parse(data: bytes) -> Message | Undecodable:
        try:
            return message.FromString(data)
        except DecodeError as exc:
            return Undecodable(f"the request is not a valid {message.__name__}: {exc}")

    return parse


class Servicer:
    def __init__(self, plane: DataPlane, token: str | None, relay: Relay | None = None) -> None:
        self.plane = plane
        self.token = token.encode() if token else None
        self.relay = relay

    async def _guard(self, request: object, context: Context) -> str:
        """The request id (the caller's x-request-id, or a new one); aborts without the
        bearer token when the server requires one, then for a body that is no message."""
        metadata: dict[str, Any] = dict(context.invocation_metadata() or ())
        request_id = identity.request_id(metadata.get("x-request-id", ""))
        # In the trailers: sending headers early would cost every call a write of its own.
        context.set_trailing_metadata((("x-request-id", request_id),))
        if self.token is not None and not identity.bearer_ok(
                metadata.get("authorization", "").encode(), self.token):
            await self._abort(context, errors.Unauthenticated("missing or wrong bearer token"))
        if isinstance(request, Undecodable):
            await self._abort(context, errors.InvalidRequest(request.reason))
        return request_id

    async def _abort(self, context: Context, exc: errors.ServingError) -> NoReturn:
        code = next((STATUS[kind] for kind in type(exc).__mro__ if kind in STATUS),
                    grpc.StatusCode.INTERNAL)
        metrics.grpc_response(code.name).inc()
        await context.abort(code, exc.message)
        raise AssertionError("abort() raises")  # for the type checker: it never returns

    async def _answer(self, request: object, context: Context,
                      work: Callable[[str], Answer | Awaitable[Answer]]) -> Answer:
        """`work(request id)` (a coroutine, or not), with every call's checks, and its
        ServingError as a status code."""
        request_id = await self._guard(request, context)
        try:
            answer = work(request_id)
            if inspect.isawaitable(answer):
                answer = await answer
        except errors.ServingError as exc:
            await self._abort(context, exc)
        metrics.grpc_response("OK").inc()
        return answer

    async def ServerLive(self, request: pb.ServerLiveRequest,
                         context: Context) -> pb.ServerLiveResponse:
        return await self._answer(request, context, lambda _: pb.ServerLiveResponse(live=True))

    async def ServerReady(self, request: pb.ServerReadyRequest,
                          context: Context) -> pb.ServerReadyResponse:
        return await self._answer(request, context, lambda _: pb.ServerReadyResponse(
            ready=self.plane.ready()))

    async def ModelReady(self, request: pb.ModelReadyRequest,
                         context: Context) -> pb.ModelReadyResponse:
        return await self._answer(request, context, lambda _: pb.ModelReadyResponse(
            ready=self.plane.model_ready(request.name, request.version or None)))

    async def ServerMetadata(self, request: pb.ServerMetadataRequest,
                             context: Context) -> pb.ServerMetadataResponse:
        return await self._answer(request, context, lambda _: pb.ServerMetadataResponse(
            **self.plane.server_metadata()))

    async def ModelMetadata(self, request: pb.ModelMetadataRequest,
                            context: Context) -> pb.ModelMetadataResponse:
        def metadata(_: str) -> pb.ModelMetadataResponse:
            found = self.plane.model_metadata(request.name, request.version or None)
            return pb.ModelMetadataResponse(
                name=found["name"], versions=found["versions"], platform=found["platform"],
                inputs=[pb.ModelMetadataResponse.TensorMetadata(**t) for t in found["inputs"]],
                outputs=[pb.ModelMetadataResponse.TensorMetadata(**t)
                         for t in found["outputs"]])

        return await self._answer(request, context, metadata)

    async def RepositoryIndex(self, request: pb.RepositoryIndexRequest,
                              context: Context) -> pb.RepositoryIndexResponse:
        def index(_: str) -> pb.RepositoryIndexResponse:
            models = [pb.RepositoryIndexResponse.ModelIndex(
                name=m["name"], version=v["name"], state=v["state"].upper(), reason=m["reason"])
                for m in self.plane.repository_index() for v in m["versions"]
                if not request.ready or v["state"] == "ready"]
            return pb.RepositoryIndexResponse(models=models)

        return await self._answer(request, context, index)

    async def ModelInfer(self, request: pb.ModelInferRequest,
                         context: Context) -> pb.ModelInferResponse:
        request_id = await self._guard(request, context)
        try:
            if self.relay is not None and self.plane.relayed(request.model_name):
                if not request.model_version:  # the gateway's way to pin one, as a header
                    pinned = dict(context.invocation_metadata() or ()).get(VERSION_HEADER)
                    request.model_version = pinned or ""
                relayed = await self.relay(request, request_id)
                metrics.grpc_response("OK").inc()
                return relayed
            try:
                decoded = codec.decode(request, request_id)
            except errors.ServingError as exc:
                raise self.plane.refused(request.model_name, request.model_version or None,
                                         exc) from None
            response = await self.plane.infer(decoded)
        except errors.ServingError as exc:
            await self._abort(context, exc)
        except asyncio.CancelledError:  # the client cancelled, or its deadline passed
            metrics.grpc_response(grpc.StatusCode.CANCELLED.name).inc()
            raise
        metrics.grpc_response("OK").inc()
        return codec.encode(response, pb.ModelInferResponse())


PENDING_CALLS = 20_000


def register(server: grpc.aio.Server, service: str, module: Any, servicer: object) -> None:
    """Serves `service` (`package.Name`, described in the generated `module`) with the
    servicer's methods of the same names, every body parsed leniently (see the top)."""
    described = module.DESCRIPTOR.services_by_name[service.rsplit(".", 1)[1]]
    handlers = {method.name: grpc.unary_unary_rpc_method_handler(
        getattr(servicer, method.name),
        request_deserializer=_lenient(getattr(module, method.input_type.name)),
        response_serializer=getattr(module, method.output_type.name).SerializeToString)
        for method in described.methods}
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service, handlers),))
    server.add_registered_method_handlers(service, handlers)


def create_server(plane: DataPlane, host: str, port: int, token: str | None,
                  max_message_bytes: int, relay: Relay | None = None) -> grpc.aio.Server:
    """The gRPC server, not yet started (it starts on the running event loop)."""
    server = grpc.aio.server(options=[
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.max_send_message_length", -1),
        ("grpc.so_reuseport", 0),
        # Calls not yet taken up by this process queue rather than being CANCELLED past
        # gRPC's default of 1,000, so each reaches the model's concurrency limit, which
        # answers it: OK, or UNAVAILABLE with the reason.
        ("grpc.server.max_pending_requests", PENDING_CALLS),
        ("grpc.server.max_pending_requests_hard_limit", PENDING_CALLS),
    ])
    register(server, SERVICE, pb, Servicer(plane, token, relay))
    if server.add_insecure_port(f"{host}:{port}") == 0:
        raise OSError(f"cannot listen for gRPC on {host}:{port}")
    return server
