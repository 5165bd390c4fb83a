"""The front door of asynchronous inference, on the ordinary v2 infer routes.

`Prefer: respond-async` (RFC 7240) on `POST .../infer` queues the request and answers
202 with `Location: /v2/models/<m>/async/<id>`; `GET` there answers what the synchronous
call would have (200 and the unchanged v2 response, or its error), or 202 with
Retry-After while the request waits or runs, or 404 once past retention. With
`Prefer: respond-async, wait=N` the answer comes in the same call when it is ready within
N seconds. The client's X-Request-ID is the idempotency key: submitting it again queues
nothing new. `DELETE` there cancels a request that has no result yet. A full queue or an
unreachable broker is a 503 with Retry-After, at once.

A model that sleeps (its config's `relay`) is not loaded here at all: every request for it,
synchronous ones too, goes through its queue to its own servers, which wake for the work,
and a synchronous caller waits for the answer up to the model's `wakeSeconds` (then 503
with Retry-After). Standard clients see an ordinary, if slower, infer call.
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections.abc import Callable

import aio_pika
import orjson
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from modelops_runtime import metrics, queues
from modelops_runtime.amqp import runner, topology
from modelops_runtime.amqp.link import BROKER_ERRORS, BrokerLink
from modelops_runtime.config import AsyncConfig
from modelops_runtime.dataplane import DataPlane
from modelops_runtime.errors import (
    Conflict,
    InvalidRequest,
    ModelFailed,
    NotFound,
    ServingError,
    TooSlow,
    Unavailable,
)
from modelops_runtime.http import binary, codec, routes
from modelops_runtime.results import Accepted, Result, ResultStore

PUBLISH_SECONDS = 5.0
"""The broker confirms a publish within this, or the submit is a 503."""
MAX_WAIT = 60.0
RETRY_AFTER = "1"
JSON = "application/json"
_WAIT = re.compile(r"(?:^|[,;\s])wait\s*=\s*(\d+)", re.IGNORECASE)


class Front:
    def __init__(self, plane: DataPlane, link: BrokerLink, store: ResultStore):
        self.plane, self.link, self.store = plane, link, store
        self.waiting: dict[str, asyncio.Future[Result]] = {}
        self._channel: aio_pika.abc.AbstractChannel | None = None
        self._replies: aio_pika.abc.AbstractQueue | None = None
        self._lock = asyncio.Lock()
        self._declared: set[tuple[str, str]] = set()
        self.on_enqueue: list[Callable[[str], None]] = []
        """Told the model's name whenever a request is queued for it (the local
        supervisor wakes a sleeping model at once, as KEDA would at its next poll)."""

    async def _open(self) -> aio_pika.abc.AbstractChannel:
        """The publishing channel (with confirms) and this process's reply queue."""
        async with self._lock:
            if self._channel is None or self._channel.is_closed:
                self._channel = await self._connection().channel(on_return_raises=True)
                self._replies = await self._channel.declare_queue(
                    queues.reply_name(uuid.uuid4().hex), exclusive=True, auto_delete=True)
                await self._replies.consume(self._on_reply, no_ack=True)
            return self._channel

    def _connection(self) -> aio_pika.abc.AbstractRobustConnection:
        if self.link.connection is None:
            raise ConnectionError("not connected to the broker yet")
        return self.link.connection

    async def _on_reply(self, message: aio_pika.abc.AbstractIncomingMessage) -> None:
        future = self.waiting.get(message.correlation_id or "")
        if future is not None and not future.done():
            future.set_result(Result.from_bytes(message.body))

    # -- what every transport's front door does -------------------------------------------
    def target(self, name: str, version: str | None) -> tuple[str, AsyncConfig]:
        """The version a request goes to (by the weights, unless pinned), and its limits."""
        served = self.plane.registry.served(name)
        config = served.config.asynchronous
        if config is None:
            raise InvalidRequest(f"model {name!r} takes no asynchronous requests (its spec "
                                 "has no `async`); send it synchronously")
        if served.config.relay is None:
            return self.plane.registry.pick(name, version)[1].config.name, config
        return served.version_name(version), config

    async def enqueue(self, name: str, version: str, config: AsyncConfig, body: bytes,
                      header_length: str | None, content_type: str, request_id: str,
                      wait: float, timeout: int | None = None) -> Result | None:
        """Queues a request the transport has checked, once per request id; its result
        when it comes within `wait` seconds. Not started within `timeout` seconds (the
        model's async.timeoutSeconds by default), it expires."""
        if not self.link.up:
            raise Unavailable("the broker is unreachable; try again shortly", retry_after=1)
        if (name, version) not in self._declared:  # its runner may not have started yet
            await self._declare(name, version, config)
        # written and synced off the event loop: a disk's fsync would stall every request
        if not await asyncio.to_thread(self.store.accept, name, request_id, version,
                                       config.timeoutSeconds):
            return None  # submitted before: the first one stands
        future = self._expect(request_id) if wait else None
        try:
            await self._publish(name, version, request_id, body, header_length, content_type,
                                timeout or config.timeoutSeconds, wait > 0)
        except BaseException:
            self.store.withdraw(name, request_id)
            self.waiting.pop(request_id, None)
            raise
        metrics.ASYNC_SUBMITTED.labels(name, version).inc()
        served = self.plane.registry.served(name)
        if served.config.relay is not None and served.state == "asleep":
            served.state = "waking"
        for wake in self.on_enqueue:
            wake(name)
        if future is None:
            return None
        try:
            return await asyncio.wait_for(future, min(wait, MAX_WAIT))
        except TimeoutError:
            return None
        finally:
            self.waiting.pop(request_id, None)

    def lookup(self, name: str, request_id: str) -> Result | Accepted:
        """The request's result, or what was accepted while it has none."""
        self.plane.registry.served(name)
        result = self.store.result(name, request_id)
        if result is not None:
            return result
        accepted = self.store.accepted(name, request_id)
        if accepted is None:
            raise NotFound(f"no asynchronous request {request_id!r} for model {name!r}: "
                           "never submitted here, or its result is past retention")
        return accepted

    async def withdraw(self, name: str, request_id: str) -> Accepted:
        """Ends a request that has no result yet: it will not run (a runner that already
        started it finishes, and its answer is dropped)."""
        self.plane.registry.served(name)
        accepted = self.store.accepted(name, request_id)
        if accepted is None:
            raise NotFound(f"no asynchronous request {request_id!r} for model {name!r}")
        cancelled = runner.error_result("cancelled", 410, "cancelled by the client before "
                                                          "it was answered")
        if not await asyncio.to_thread(self.store.answer, name, request_id, cancelled):
            raise Conflict(f"request {request_id!r} already has its result; fetch it")
        metrics.ASYNC_COMPLETED.labels(name, accepted.version, "cancelled").inc()
        return accepted

    async def relay(self, name: str, version: str, config: AsyncConfig, body: bytes,
                    header_length: str | None, content_type: str, request_id: str) -> Result:
        """A synchronous request to a model that sleeps: queued like an asynchronous one,
        and its answer awaited while the model wakes, up to its `wakeSeconds`. Past that
        the request expires unstarted, and the caller gets 503 with Retry-After."""
        relay = self.plane.registry.served(name).config.relay
        assert relay is not None
        if self.store.accepted(name, request_id) is not None:  # the id is taken: the
            request_id = f"{request_id}.{uuid.uuid4().hex[:12]}"  # caller asked anew
        result = await self.enqueue(name, version, config, body, header_length, content_type,
                                    request_id, relay.wakeSeconds, relay.wakeSeconds)
        if result is None:
            raise Unavailable(f"model {name!r} did not wake and answer within its "
                              f"{relay.wakeSeconds} s; try again shortly",
                              retry_after=relay.wakeSeconds)
        self.plane.registry.served(name).state = "ready"  # it answered: it is awake
        return result

    # -- HTTP ------------------------------------------------------------------------------
    async def _checked(self, request: Request) -> tuple[str, str, AsyncConfig, bytes,
                                                         str | None, str]:
        """An infer request's target and body, its framing checked (malformed: 400 now):
        (model, version, its async config, body, binary header length, request id)."""
        name = request.path_params["name"]
        version, config = self.target(name, request.path_params.get("version"))
        body = await routes.read_body(request, self.plane.options)
        header_length = request.headers.get(binary.HEADER)
        request_id = request.scope["state"]["request_id"]
        codec.decode(body, header_length, name, version, request_id)
        return name, version, config, body, header_length, request_id

    async def relay_http(self, request: Request) -> Response:
        """The v2 infer route of a model that sleeps."""
        name, version, config, body, header_length, request_id = await self._checked(request)
        return _answer(await self.relay(name, version, config, body, header_length,
                                        request.headers.get("content-type") or JSON,
                                        request_id))

    async def submit(self, request: Request) -> Response:
        name, version, config, body, header_length, request_id = await self._checked(request)
        wait = float(m.group(1)) if (
            m := _WAIT.search(request.headers.get("prefer", ""))) else 0.0
        result = await self.enqueue(name, version, config, body, header_length,
                                    request.headers.get("content-type") or JSON,
                                    request_id, wait)
        if result is not None:
            return _answer(result)
        return JSONResponse({"id": request_id, "status": "queued", "model_name": name,
                             "model_version": version}, status_code=202,
                            headers={"Location": f"/v2/models/{name}/async/{request_id}",
                                     "Retry-After": RETRY_AFTER,
                                     "Preference-Applied": "respond-async"})

    async def fetch(self, request: Request) -> Response:
        name, request_id = request.path_params["name"], request.path_params["id"]
        found = self.lookup(name, request_id)
        if isinstance(found, Result):
            return _answer(found)
        return JSONResponse({"id": request_id, "status": "queued", "model_name": name,
                             "model_version": found.version}, status_code=202,
                            headers={"Retry-After": RETRY_AFTER})

    async def cancel(self, request: Request) -> Response:
        """DELETE on the Location: GET then answers 410; an answered request is a 409."""
        name, request_id = request.path_params["name"], request.path_params["id"]
        accepted = await self.withdraw(name, request_id)
        return JSONResponse({"id": request_id, "status": "cancelled", "model_name": name,
                             "model_version": accepted.version})

    async def _declare(self, model: str, version: str, config: AsyncConfig) -> None:
        if not self.link.declares:  # made by the Topology Operator
            return
        try:
            async with asyncio.timeout(PUBLISH_SECONDS):
                await topology.declare(self._connection(), model, version, config)
        except BROKER_ERRORS:
            raise Unavailable("the broker did not answer; try again shortly",
                              retry_after=1) from None
        self._declared.add((model, version))

    def _expect(self, request_id: str) -> asyncio.Future[Result]:
        future: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        self.waiting[request_id] = future
        return future

    async def _publish(self, model: str, version: str, request_id: str, body: bytes,
                       header_length: str | None, content_type: str, timeout: int,
                       reply: bool) -> None:
        now = time.time()
        headers: dict[str, aio_pika.abc.FieldValue] = {
            runner.SUBMITTED: runner.milliseconds(now),
            runner.DEADLINE: runner.milliseconds(now + timeout)}
        if header_length is not None:
            headers[runner.HEADER_LENGTH] = header_length
        try:
            async with asyncio.timeout(PUBLISH_SECONDS):
                channel = await self._open()
                await channel.default_exchange.publish(
                    aio_pika.Message(body, message_id=request_id, headers=headers,
                                     content_type=content_type,
                                     delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                                     expiration=timeout, timestamp=now,
                                     reply_to=self._replies.name if reply and self._replies
                                     else None),
                    routing_key=queues.queue_name(model, version), mandatory=True)
        except (aio_pika.exceptions.DeliveryError, aio_pika.exceptions.PublishError):
            raise Unavailable(f"the queue of model {model!r} is full (its async.maxQueued); "
                              "try again later", retry_after=5) from None
        except BROKER_ERRORS:
            raise Unavailable("the broker did not take the request; try again shortly",
                              retry_after=1) from None


ERRORS: dict[int, type[ServingError]] = {
    400: InvalidRequest, 404: NotFound, 408: TooSlow, 409: Conflict, 500: ModelFailed,
    503: Unavailable, 504: Unavailable}


def failure(result: Result) -> ServingError:
    """An error result as the error kind it was, for a transport to answer as its own."""
    message = orjson.loads(result.body).get("error", result.status)
    return ERRORS.get(result.code, InvalidRequest if result.code < 500 else ModelFailed)(message)


def _answer(result: Result) -> Response:
    if result.media_type == queues.PROTOBUF_RESPONSE:
        raise Conflict("this request was submitted over gRPC: fetch it there "
                       "(modelops.AsyncInference/Fetch)")
    headers = {}
    if result.header_length is not None:
        headers[binary.HEADER] = str(result.header_length)
    return Response(result.body, status_code=result.code, media_type=result.media_type,
                    headers=headers)
