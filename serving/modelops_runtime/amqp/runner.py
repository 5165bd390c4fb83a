"""The runner: consumes each async version's queue and hands every message to the data
plane, the same path as HTTP and gRPC (checks, metrics, the prediction log).

A message's body is the unchanged v2 request as it came in: over HTTP (JSON, or JSON then
binary tensors), decoded by the HTTP codec; over gRPC, a ModelInferRequest (its content
type says so), decoded by the gRPC codec and answered as a ModelInferResponse. What ends
a request:
  - an answer, or bad input (a 4xx, never retried): its one result is written and the
    message acked;
  - a model failure: the message goes back to the queue until its last attempt, then the
    request fails and the message moves to the dead queue;
  - a crash: the broker hands the message out again, and dead-letters it past the
    attempts; the dead-letter consumer below writes its `failed` result.
A result is written once per request id, so a redelivery never answers twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time

import aio_pika
import aiormq
import orjson

from modelops_runtime import metrics, queues
from modelops_runtime.amqp import topology
from modelops_runtime.amqp.link import BROKER_ERRORS, BrokerLink
from modelops_runtime.config import AsyncConfig
from modelops_runtime.dataplane import DataPlane
from modelops_runtime.errors import InvalidRequest, ModelFailed, ServingError, Unavailable
from modelops_runtime.http import codec
from modelops_runtime.inference import InferRequest, InferResponse
from modelops_runtime.registry import ServedModel
from modelops_runtime.results import Result, ResultStore

HEADER_LENGTH = "modelops-header-length"
"""The v2 binary extension's Inference-Header-Content-Length, carried as a message header."""
SUBMITTED = "modelops-submitted"
DEADLINE = "modelops-deadline"
"""Both in integer milliseconds since the epoch: AMQP carries a Python float as a 32-bit
one, whose step at today's epoch seconds is two minutes."""
SWEEP_SECONDS = 3600.0
BROKER_SECONDS = 2.0
"""The longest a stopping server (or a queue count) waits for the broker to answer."""
DEPTH_SECONDS = 5.0
"""How often the queues are counted."""
QUEUE_WAIT_SECONDS = 2.0
"""How often a server whose queue does not exist yet looks again."""
SLEEPERS_SECONDS = 1.0
"""How often a front door looks whether the models that sleep are awake."""
BUSY_PAUSE = 0.01
"""A request that finds its model at the concurrency limit (HTTP traffic took the slots)
waits this long and tries again: being busy is no attempt."""


def error_result(status: str, code: int, message: str) -> Result:
    return Result(status, code, orjson.dumps({"error": message}))


def expired(config: AsyncConfig) -> Result:
    return error_result("expired", 504, f"not started within the {config.timeoutSeconds} s "
                                        "the model's async.timeoutSeconds allows")


def milliseconds(seconds: float) -> int:
    return int(seconds * 1000)


def _seconds(value: object) -> float:
    """A time header (milliseconds) in seconds; 0 when absent."""
    return value / 1000 if isinstance(value, int) else 0.0


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value or "")


def _decode_protobuf(body: bytes, request_id: str) -> InferRequest:
    """A request submitted over gRPC (imported here: only a server with gRPC sends one)."""
    from google.protobuf.message import DecodeError

    from modelops_runtime.grpc import codec as grpc_codec
    from modelops_runtime.grpc.proto import inference_pb2 as pb

    try:
        return grpc_codec.decode(pb.ModelInferRequest.FromString(body), request_id)
    except DecodeError as exc:
        raise InvalidRequest(f"the queued request is not a ModelInferRequest: {exc}") from None


def _encode_protobuf(response: InferResponse) -> bytes:
    from modelops_runtime.grpc import codec as grpc_codec
    from modelops_runtime.grpc.proto import inference_pb2 as pb

    encoded: bytes = grpc_codec.encode(response, pb.ModelInferResponse()).SerializeToString()
    return encoded


class Runner:
    def __init__(self, plane: DataPlane, link: BrokerLink, store: ResultStore):
        self.plane, self.link, self.store = plane, link, store
        self.consumers: list[tuple[aio_pika.abc.AbstractQueue, str]] = []
        self.in_flight: set[asyncio.Task[None]] = set()
        self.stopping = False
        self._replies: aio_pika.abc.AbstractChannel | None = None
        self._events: aio_pika.abc.AbstractExchange | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self._depth: asyncio.Task[None] | None = None
        self._sleepers: asyncio.Task[None] | None = None
        link.on_connect.append(self._consume)
        metrics.ASYNC_IN_HAND.set_function(lambda: float(len(self.in_flight)))
        metrics.ASYNC_CONSUMERS.set_function(
            lambda: float(len(self.consumers)) if link.up and not self.stopping else 0.0)

    def served(self) -> list[tuple[str, str, AsyncConfig]]:
        """(model, version, its async config) of every version this server runs."""
        return [(model.name, version.name, model.asynchronous)
                for model in self.plane.config.models if model.asynchronous
                and model.relay is None for version in model.versions]

    async def _consume(self, connection: aio_pika.abc.AbstractRobustConnection) -> None:
        await asyncio.to_thread(self.plane.registry.wait_loaded)
        self._replies = await connection.channel(publisher_confirms=False)
        for model, version, config in self.served():
            if self.link.declares:
                await topology.declare(connection, model, version, config)
            for name, handle in ((queues.queue_name(model, version), self._request),
                                 (queues.dead_name(model, version), self._dead_letter)):
                queue = await self._existing(connection, name, config.prefetch)
                tag = await queue.consume(self._tracked(handle, model, version, config))
                self.consumers.append((queue, tag))
        loop = asyncio.get_running_loop()
        self._sweeper = loop.create_task(self._sweep())
        self._depth = loop.create_task(self._count())
        self._sleepers = loop.create_task(self._watch_sleepers())

    async def _existing(self, connection: aio_pika.abc.AbstractRobustConnection, name: str,
                        prefetch: int) -> aio_pika.abc.AbstractQueue:
        """The queue, once it exists: in the cluster the Topology Operator makes it, and a
        server that starts first waits for it rather than serve without it. Declared
        (passively) through its own channel, so that aio-pika consumes it again after a
        reconnect: a queue it did not declare, it does not restore."""
        said = False
        while True:
            try:
                channel = await connection.channel()
                await channel.set_qos(prefetch_count=prefetch)
                return await channel.declare_queue(name, passive=True)
            except BROKER_ERRORS as exc:  # not made yet, or the broker is reconnecting
                if not said:
                    missing = isinstance(exc, aiormq.exceptions.ChannelNotFoundEntity)
                    print(f"modelops server: queue {name} " + (
                        "does not exist yet" if missing else f"cannot be reached ({exc})")
                        + "; waiting for it", file=sys.stderr, flush=True)
                    said = True
                await asyncio.sleep(QUEUE_WAIT_SECONDS)

    def _tracked(self, handle, model: str, version: str, config: AsyncConfig):  # type: ignore[no-untyped-def]
        async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            task = asyncio.current_task()
            assert task is not None
            self.in_flight.add(task)
            try:
                await handle(model, version, config, message)
            finally:
                self.in_flight.discard(task)
        return on_message

    # -- a request -----------------------------------------------------------------------
    async def _request(self, model: str, version: str, config: AsyncConfig,
                       message: aio_pika.abc.AbstractIncomingMessage) -> None:
        request_id = message.message_id or ""
        headers = message.headers or {}
        # Answered already: cancelled by its client, or a redelivery whose ack was lost
        if self.store.answered(model, request_id):
            if message.redelivered:
                metrics.ASYNC_DUPLICATES.labels(model).inc()
            await message.ack()
            return
        started = time.time()
        submitted = _seconds(headers.get(SUBMITTED)) or started
        metrics.ASYNC_QUEUE_SECONDS.labels(model).observe(max(0.0, started - submitted))
        redelivered = headers.get("x-delivery-count")  # set by a quorum queue, from the 2nd
        attempt = (redelivered if isinstance(redelivered, int) else 0) + 1
        deadline = _seconds(headers.get(DEADLINE))
        protobuf = message.content_type == queues.PROTOBUF_REQUEST
        try:
            decoded = _decode_protobuf(message.body, request_id) if protobuf else codec.decode(
                message.body, _text(headers.get(HEADER_LENGTH)) or None, model, version,
                request_id)
            response = await self._infer(decoded, deadline)
        except _Expired:
            result = expired(config)
        except _Stopping:
            await message.nack(requeue=True)  # another replica takes it; not this one's fault
            return
        except ModelFailed as exc:
            if attempt < config.maxAttempts:
                await message.nack(requeue=True)
                return
            await self._finish(model, version, request_id, submitted, message,
                               error_result("failed", 500, f"the model failed on all "
                                                           f"{attempt} attempts: {exc.message}"))
            await message.reject(requeue=False)  # kept in the dead queue, for a look
            return
        except ServingError as exc:  # bad input: final, never retried
            result = error_result("invalid", int(exc.code), exc.message)
        else:
            if protobuf:
                result = Result("done", 200, _encode_protobuf(response),
                                queues.PROTOBUF_RESPONSE)
            else:
                body, media_type, extra = codec.encode(response, decoded)
                length = (extra or {}).get("Inference-Header-Content-Length")
                result = Result("done", 200, body, media_type, int(length) if length else None)
        await self._finish(model, version, request_id, submitted, message, result)
        await message.ack()

    async def _infer(self, decoded, deadline: float):  # type: ignore[no-untyped-def]
        while True:
            if deadline and time.time() > deadline:
                raise _Expired
            try:
                return await self.plane.infer(decoded)
            except Unavailable:
                if self.stopping or self.plane.draining:
                    raise _Stopping from None
                await asyncio.sleep(BUSY_PAUSE)
            except ServingError:
                raise
            except Exception as exc:  # noqa: BLE001  # counts as the model's failure
                raise ModelFailed(f"{type(exc).__name__}: {exc}") from exc

    async def _finish(self, model: str, version: str, request_id: str, submitted: float,
                      message: aio_pika.abc.AbstractIncomingMessage, result: Result) -> None:
        """Writes the request's one result, and tells whoever waits for it."""
        if not await asyncio.to_thread(self.store.answer, model, request_id, result):
            metrics.ASYNC_DUPLICATES.labels(model).inc()
            return
        metrics.ASYNC_COMPLETED.labels(model, version, result.status).inc()
        metrics.ASYNC_END_TO_END.labels(model).observe(max(0.0, time.time() - submitted))
        channel = self._replies
        if channel is None or channel.is_closed:
            return
        with contextlib.suppress(Exception):  # the result is written; news is best effort
            if message.reply_to:
                await channel.default_exchange.publish(
                    aio_pika.Message(result.to_bytes(), correlation_id=request_id),
                    routing_key=message.reply_to, mandatory=False)
            if self._events is None:
                self._events = await channel.get_exchange(queues.RESULTS_EXCHANGE,
                                                          ensure=False)
            await self._events.publish(aio_pika.Message(orjson.dumps(
                {"id": request_id, "model": model, "version": version,
                 "status": result.status, "code": result.code})),
                routing_key=f"{model}.{version}.{result.status}", mandatory=False)

    # -- a dead letter ---------------------------------------------------------------------
    async def _dead_letter(self, model: str, version: str, config: AsyncConfig,
                           message: aio_pika.abc.AbstractIncomingMessage) -> None:
        headers = message.headers or {}
        reason = _text(headers.get("x-first-death-reason")) or "unknown"
        metrics.ASYNC_DEAD_LETTERS.labels(model, reason).inc()
        request_id = message.message_id or ""
        if not self.store.answered(model, request_id):
            result = (expired(config) if reason == "expired" else
                      error_result("failed", 500, f"the model's server stopped while "
                                                  f"predicting, {config.maxAttempts} times"))
            submitted = _seconds(headers.get(SUBMITTED)) or time.time()
            await self._finish(model, version, request_id, submitted, message, result)
        await message.ack()

    # -- housekeeping ------------------------------------------------------------------------
    async def _sweep(self) -> None:
        """Results past retention go, once an hour."""
        while True:
            for model in self.plane.config.models:
                if model.asynchronous:
                    await asyncio.to_thread(self.store.sweep, model.name,
                                            model.asynchronous.resultRetentionHours * 3600.0,
                                            float(model.asynchronous.timeoutSeconds))
            await asyncio.sleep(SWEEP_SECONDS)

    async def _count(self) -> None:
        """The depth of every queue this server consumes, every few seconds, for the
        backlog alert and the catalog (a passive declare: it changes nothing)."""
        for model, version, config in self.served():
            metrics.ASYNC_QUEUE_LIMIT.labels(model, version).set(config.maxQueued)
        while True:
            for model, version, _ in self.served():
                for kind, name in (("waiting", queues.queue_name(model, version)),
                                   ("dead", queues.dead_name(model, version))):
                    if self._replies is None:
                        return
                    try:
                        async with asyncio.timeout(BROKER_SECONDS):
                            channel = await self._replies.get_underlay_channel()
                            declared = await channel.queue_declare(name, passive=True)
                    except Exception:  # noqa: BLE001  # down, reconnecting, or any one
                        continue  # failure: the last count stands, and counting goes on
                    metrics.ASYNC_QUEUE_DEPTH.labels(model, version, kind).set(
                        declared.message_count or 0)
            await asyncio.sleep(DEPTH_SECONDS)

    async def _watch_sleepers(self) -> None:
        """A relayed model is `ready` while something consumes its queues, `waking`
        while requests wait with no one to take them, else `asleep`."""
        sleepers = [s for s in self.plane.registry.models.values() if s.config.relay]
        while sleepers:
            for served in sleepers:
                await self._wakefulness(served)
            await asyncio.sleep(SLEEPERS_SECONDS)

    async def _wakefulness(self, served: ServedModel) -> None:
        if self.link.connection is None:
            return
        consumers = waiting = 0
        model = served.config.name
        try:
            async with asyncio.timeout(BROKER_SECONDS):
                channel = await self.link.connection.channel()
                try:
                    for version in served.config.versions:
                        declared = (await channel.declare_queue(queues.queue_name(
                            model, version.name), passive=True)).declaration_result
                        consumers += declared.consumer_count or 0
                        waiting += declared.message_count or 0
                        metrics.ASYNC_QUEUE_DEPTH.labels(model, version.name, "waiting").set(
                            declared.message_count or 0)  # its servers may all be asleep
                finally:
                    await channel.close()
        except Exception:  # noqa: BLE001  # not declared yet, or the broker away
            return
        served.state = "ready" if consumers else "waking" if waiting else "asleep"

    async def stop(self, grace: float) -> None:
        """Takes no more messages, and lets those in hand finish (SIGTERM)."""
        self.stopping = True
        for task in (self._sweeper, self._depth, self._sleepers):
            if task is not None:
                task.cancel()
        for queue, tag in self.consumers:
            with contextlib.suppress(Exception):  # the broker may be gone: no waiting for it
                async with asyncio.timeout(BROKER_SECONDS):
                    await queue.cancel(tag)
        if self.in_flight:
            await asyncio.wait(set(self.in_flight), timeout=grace)
        if self.in_flight:
            print(f"modelops server: {len(self.in_flight)} asynchronous request(s) still "
                  "running at the end of the drain; the broker will hand them out again",
                  file=sys.stderr, flush=True)


class _Expired(Exception):
    pass


class _Stopping(Exception):
    pass
