"""The front door of asynchronous inference over gRPC: `modelops.AsyncInference`, served
on the gRPC port beside `inference.GRPCInferenceService`.

`Submit` queues a ModelInferRequest whole (the call's `x-request-id` is the request id and
the idempotency key, as over HTTP) and, with `wait_seconds`, answers its outcome when it
ends that soon; `Fetch` answers the outcome so far, `Cancel` ends a request that has none.
An outcome is the RPC's answer, not its status: a request that failed on every attempt is
an OK call whose status says `failed`. What stops the call itself (bad input, no such
request, a full queue, the broker down) is a gRPC status, as for ModelInfer.
"""

from __future__ import annotations

import grpc
import orjson

from modelops_runtime import errors, queues
from modelops_runtime.amqp.front import Front, failure
from modelops_runtime.dataplane import DataPlane
from modelops_runtime.grpc import codec
from modelops_runtime.grpc.proto import asynchronous_pb2 as apb
from modelops_runtime.grpc.proto import inference_pb2 as pb
from modelops_runtime.grpc.servicer import Context, Servicer, register
from modelops_runtime.results import Result

SERVICE = "modelops.AsyncInference"


class AsyncServicer(Servicer):
    def __init__(self, plane: DataPlane, token: str | None, front: Front) -> None:
        super().__init__(plane, token)
        self.front = front

    async def Submit(self, request: apb.AsyncSubmitRequest,
                     context: Context) -> apb.AsyncResult:
        async def submit(request_id: str) -> apb.AsyncResult:
            inner = request.request
            version, config = self.front.target(inner.model_name, inner.model_version or None)
            codec.decode(inner, request_id)  # malformed: INVALID_ARGUMENT now
            result = await self.front.enqueue(
                inner.model_name, version, config, inner.SerializeToString(), None,
                queues.PROTOBUF_REQUEST, request_id, float(request.wait_seconds))
            return _outcome(inner.model_name, version, request_id, result)

        return await self._answer(request, context, submit)

    async def Fetch(self, request: apb.AsyncFetchRequest, context: Context) -> apb.AsyncResult:
        async def fetch(_: str) -> apb.AsyncResult:
            found = self.front.lookup(request.model_name, request.id)
            if isinstance(found, Result):
                return _outcome(request.model_name, None, request.id, found)
            return _outcome(request.model_name, found.version, request.id, None)

        return await self._answer(request, context, fetch)

    async def Cancel(self, request: apb.AsyncFetchRequest, context: Context) -> apb.AsyncResult:
        async def cancel(_: str) -> apb.AsyncResult:
            accepted = await self.front.withdraw(request.model_name, request.id)
            return apb.AsyncResult(id=request.id, model_name=request.model_name,
                                   model_version=accepted.version, status="cancelled")

        return await self._answer(request, context, cancel)


def _outcome(model: str, version: str | None, request_id: str,
             result: Result | None) -> apb.AsyncResult:
    """A request's outcome as the service answers it: queued, done, or how it ended."""
    answer = apb.AsyncResult(id=request_id, model_name=model, model_version=version or "",
                             status="queued" if result is None else result.status)
    if result is None:
        return answer
    if result.status != "done":
        answer.error = orjson.loads(result.body).get("error", "")
        return answer
    if result.media_type != queues.PROTOBUF_RESPONSE:
        raise errors.Conflict(f"request {request_id!r} was submitted over HTTP: GET "
                              f"/v2/models/{model}/async/{request_id}")
    answer.response.CopyFrom(pb.ModelInferResponse.FromString(result.body))
    answer.model_version = answer.response.model_version
    return answer


def relay(front: Front):  # type: ignore[no-untyped-def]
    """ModelInfer for a model that sleeps: the request through its queue, the answer (or
    its error, as the status a loaded model would have given) when it wakes."""
    async def infer(request: pb.ModelInferRequest, request_id: str) -> pb.ModelInferResponse:
        version, config = front.target(request.model_name, request.model_version or None)
        codec.decode(request, request_id)  # malformed: INVALID_ARGUMENT now
        result = await front.relay(request.model_name, version, config,
                                   request.SerializeToString(), None, queues.PROTOBUF_REQUEST,
                                   request_id)
        if result.status != "done":
            raise failure(result)
        response: pb.ModelInferResponse = pb.ModelInferResponse.FromString(result.body)
        return response
    return infer


def add_to(server: grpc.aio.Server, plane: DataPlane, token: str | None, front: Front) -> None:
    register(server, SERVICE, apb, AsyncServicer(plane, token, front))
