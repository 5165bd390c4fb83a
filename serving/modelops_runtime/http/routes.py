"""The HTTP routes: Open Inference Protocol v2, the management API and metrics.

Thin: each handler reads what HTTP carries (path parameters, the body, the request id),
decodes it (codec.py), asks the data plane, and writes the answer. The same table feeds
the OpenAPI document (docs.py).
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from typing import Any, NamedTuple, Protocol

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response

from modelops_runtime import metrics
from modelops_runtime.dataplane import DataPlane
from modelops_runtime.errors import ClientGone, ServingError, TooLarge, TooSlow
from modelops_runtime.http import binary, codec, limits
from modelops_runtime.http import openapi_schemas as shapes
from modelops_runtime.inference import InferRequest
from modelops_runtime.options import ServerOptions

Handler = Callable[[Request], Awaitable[Response]]
OFF_LOOP_BYTES = 256 * 1024
"""A body this large is decoded on a worker thread: its millisecond or more would
otherwise hold up every other request on the loop."""


class Asynchronous(Protocol):
    """Asynchronous inference on the infer routes (amqp/front.py), when a broker is set."""

    async def submit(self, request: Request) -> Response: ...

    async def fetch(self, request: Request) -> Response: ...

    async def cancel(self, request: Request) -> Response: ...

    async def relay_http(self, request: Request) -> Response: ...


class Endpoint(NamedTuple):
    """One route of the server, and what the docs say of it (no tag: undocumented)."""

    method: str
    path: str
    handler: Handler
    tag: str | None
    summary: str
    response: dict[str, Any] | None = None  # the JSON schema of its answer
    unready: bool = False  # answers 503 with its own body when not ready


async def _collect(request: Request, limit: int) -> bytes:
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise TooLarge(f"request body over {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def read_body(request: Request, options: ServerOptions) -> bytes:
    """The whole body, within the size limit and the time limit (no timer for a body that
    came whole with its headers, as small requests do)."""
    if request.scope.get(limits.BODY_RECEIVED):
        return await _collect(request, options.max_body_bytes)
    try:
        async with asyncio.timeout(options.body_timeout_seconds):
            return await _collect(request, options.max_body_bytes)
    except TimeoutError:
        raise TooSlow(f"request body not received within "
                      f"{options.body_timeout_seconds:g} s") from None
    except ClientDisconnect:
        print(f"modelops server: client went away mid-body (request id "
              f"{request.scope['state']['request_id']})", file=sys.stderr, flush=True)
        raise ClientGone("client disconnected before sending the whole body") from None


async def decode(request: Request, options: ServerOptions) -> InferRequest:
    body = await read_body(request, options)
    arguments = (body, request.headers.get(binary.HEADER), request.path_params["name"],
                 request.path_params.get("version"), request.scope["state"]["request_id"])
    if len(body) < OFF_LOOP_BYTES:
        return codec.decode(*arguments)
    return await asyncio.to_thread(codec.decode, *arguments)


def _name_and_version(request: Request) -> tuple[str, str | None]:
    return request.path_params["name"], request.path_params.get("version")


def endpoints(plane: DataPlane, asynchronous: Asynchronous | None = None) -> list[Endpoint]:
    """The protocol and management routes, over one data plane; with `asynchronous`,
    `Prefer: respond-async` on an infer route queues the request."""

    async def live(request: Request) -> Response:
        return JSONResponse({"live": True})

    async def ready(request: Request) -> Response:
        ok = plane.ready()
        return JSONResponse({"ready": ok}, status_code=200 if ok else 503)

    async def server_metadata(request: Request) -> Response:
        return JSONResponse(plane.server_metadata())

    async def prometheus(request: Request) -> Response:
        return Response(generate_latest(metrics.REGISTRY), media_type=CONTENT_TYPE_LATEST)

    async def model_metadata(request: Request) -> Response:
        return JSONResponse(plane.model_metadata(*_name_and_version(request)))

    async def model_ready(request: Request) -> Response:
        name, version = _name_and_version(request)
        ok = plane.model_ready(name, version)
        state = plane.wakefulness(name)
        return JSONResponse({"name": name, "ready": ok, **({"state": state} if state else {})},
                            status_code=200 if ok else 503)

    async def infer(request: Request) -> Response:
        if asynchronous is not None and "respond-async" in request.headers.get(
                "prefer", "").lower():
            return await asynchronous.submit(request)
        if asynchronous is not None and plane.relayed(request.path_params["name"]):
            return await asynchronous.relay_http(request)
        try:
            decoded = await decode(request, plane.options)
        except ServingError as exc:
            raise plane.refused(*_name_and_version(request), exc) from None
        body, media_type, headers = codec.encode(await plane.infer(decoded), decoded)
        return Response(body, media_type=media_type, headers=headers)

    async def repository_index(request: Request) -> Response:
        return JSONResponse(plane.repository_index())

    async def reload(request: Request) -> Response:
        return JSONResponse(await plane.reload(request.path_params["name"]))

    async def async_result(request: Request) -> Response:  # one route per path
        assert asynchronous is not None
        if request.method == "DELETE":
            return await asynchronous.cancel(request)
        return await asynchronous.fetch(request)

    model, version = "/v2/models/{name}", "/v2/models/{name}/versions/{version}"
    index = "Every model with its versions, placement, state and load time"
    return [
        Endpoint("GET", "/v2/health/live", live, "health", "Live: the process answers",
                 shapes.LIVE),
        Endpoint("GET", "/v2/health/ready", ready, "health",
                 "Ready: the models are loaded and the server is not draining", shapes.READY,
                 True),
        Endpoint("GET", "/v2", server_metadata, "server", "Server metadata",
                 shapes.SERVER_METADATA),
        Endpoint("GET", "/metrics", prometheus, None, "Prometheus metrics"),
        Endpoint("GET", model, model_metadata, "models", "Model metadata",
                 shapes.MODEL_METADATA),
        Endpoint("GET", version, model_metadata, "models", "Model version metadata",
                 shapes.MODEL_METADATA),
        Endpoint("GET", f"{model}/ready", model_ready, "models", "Model ready",
                 shapes.MODEL_READY, True),
        Endpoint("GET", f"{version}/ready", model_ready, "models", "Model version ready",
                 shapes.MODEL_READY, True),
        Endpoint("POST", f"{model}/infer", infer, "models",
                 "Infer (Open Inference Protocol v2), split by the version weights",
                 shapes.INFER_RESPONSE),
        Endpoint("POST", f"{version}/infer", infer, "models",
                 "Infer (Open Inference Protocol v2) with one version", shapes.INFER_RESPONSE),
        Endpoint("GET", "/v2/repository/index", repository_index, "management", index,
                 shapes.REPOSITORY_INDEX),
        Endpoint("POST", "/v2/repository/index", repository_index, "management", index,
                 shapes.REPOSITORY_INDEX),
        Endpoint("POST", "/v2/repository/models/{name}/load", reload, "management",
                 "Reload atomically: the old versions serve until the new ones are loaded",
                 shapes.RELOADED),
    ] + ([Endpoint("GET", f"{model}/async/{{id}}", async_result, "models",
                   "The result of an asynchronous request (202 while it waits or runs)"),
          Endpoint("DELETE", f"{model}/async/{{id}}", async_result, "models",
                   "Cancel an asynchronous request that has no result yet")]
         if asynchronous is not None else [])
