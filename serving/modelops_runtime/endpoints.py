"""The HTTP transport: Open Inference Protocol v2 routes, the management API and metrics.

Plain Starlette and thin: each handler reads what HTTP carries (path parameters, the
body, the request id), asks the data plane, and writes the answer with a status code.
Every path these routes do not know falls through to the FastAPI app of docs.py: the
OpenAPI docs and the extra endpoints that model classes declare. Importing FastAPI and
building that app took a sixth of the time to ready, so it is built once the models are
loaded (or by the first request that needs it), not before the server can serve.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import threading
from pathlib import Path
from typing import Callable, NamedTuple

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from modelops_runtime import binary, errors, limits, metrics
from modelops_runtime import openapi_schemas as shapes
from modelops_runtime.config import ServerConfig
from modelops_runtime.dataplane import DataPlane, Inference
from modelops_runtime.middleware import ServerMiddleware
from modelops_runtime.options import ServerOptions
from modelops_runtime.protocol import (ProtocolError, datatype_of, decode_request, dumps,
                                       encode_tensor)
from modelops_runtime.registry import Registry


class Endpoint(NamedTuple):
    """One route of the server, and what the docs say of it (no tag: undocumented)."""

    method: str
    path: str
    handler: Callable
    tag: str | None
    summary: str
    response: dict | None = None  # the JSON schema of its answer (openapi_schemas.py)
    unready: bool = False  # answers 503 with its own body when not ready


async def _collect(request: Request, limit: int) -> bytes:
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ProtocolError(f"request body over {limit} bytes", 413)
        chunks.append(chunk)
    return b"".join(chunks)


async def _read_body(request: Request, options: ServerOptions) -> bytes:
    """The whole body, within the size limit and the time limit (no timer for a body that
    came whole with its headers, as small requests do)."""
    if request.scope.get(limits.BODY_RECEIVED):
        return await _collect(request, options.max_body_bytes)
    try:
        async with asyncio.timeout(options.body_timeout_seconds):
            return await _collect(request, options.max_body_bytes)
    except TimeoutError:
        raise ProtocolError(f"request body not received within "
                            f"{options.body_timeout_seconds:g} s", 408) from None
    except ClientDisconnect:
        print(f"modelops server: client went away mid-body (request id "
              f"{request.scope['state']['request_id']})", file=sys.stderr, flush=True)
        raise ProtocolError("client disconnected before sending the whole body", 499) from None


def _name_and_version(request: Request) -> tuple[str, str | None]:
    return request.path_params["name"], request.path_params.get("version")


def _infer_response(result: Inference, as_binary: set[str] | bool) -> Response:
    """v2 JSON, or JSON then the raw bytes of the outputs the client asked for in binary."""
    response: dict = {"model_name": result.model, "model_version": result.version,
                      "id": result.id}
    if isinstance(result.parameters, dict):
        response["parameters"] = result.parameters
    if not as_binary:
        response["outputs"] = result.encoded()
        return Response(dumps(response), media_type="application/json")
    tensors, blobs = [], []
    for name, array in result.outputs.items():
        if as_binary is True or name in as_binary:
            blob = binary.encode(array)
            blobs.append(blob)
            tensors.append({"name": name, "datatype": datatype_of(array),
                            "shape": list(array.shape),
                            "parameters": {"binary_data_size": len(blob)}})
        else:
            tensors.append(encode_tensor(name, array))
    response["outputs"] = tensors
    header = dumps(response)
    return Response(b"".join([header, *blobs]), media_type="application/octet-stream",
                    headers={"Inference-Header-Content-Length": str(len(header))})


def endpoints(plane: DataPlane) -> list[Endpoint]:
    """The protocol and management routes, over one data plane."""

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
        return JSONResponse({"name": name, "ready": ok}, status_code=200 if ok else 503)

    async def infer(request: Request) -> Response:
        name, version = _name_and_version(request)
        header_length = request.headers.get(binary.HEADER)
        result = await plane.infer(name, version, request.scope["state"]["request_id"],
                                   lambda: _read_body(request, plane.options),
                                   lambda body: decode_request(body, header_length))
        return _infer_response(result, binary.wanted(result.request))

    async def repository_index(request: Request) -> Response:
        return JSONResponse(plane.repository_index())

    async def reload(request: Request) -> Response:
        return JSONResponse(await plane.reload(request.path_params["name"]))

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
    ]


class Extras:
    """The app every unmatched path goes to: docs.py's, built once, after the models load
    or by the first request that needs it, whichever comes first."""

    def __init__(self, plane: DataPlane, table: list[Endpoint]):
        self.plane, self.table = plane, table
        self._app = None
        self._lock = threading.Lock()

    def get(self):
        with self._lock:
            if self._app is None:
                from modelops_runtime.docs import create_docs_app  # FastAPI: imported late

                self._app = create_docs_app(self.plane, self.table)
        return self._app

    def build_when_loaded(self) -> None:
        self.plane.registry.wait_loaded()
        self.get()

    async def __call__(self, scope, receive, send) -> None:
        app = self._app or await asyncio.to_thread(self.get)
        await app(scope, receive, send)


def create_app(config: ServerConfig, options: ServerOptions, config_dir: Path,
               registry: Registry | None = None) -> Starlette:
    """The app; pass a registry that is already loading to overlap loading with start-up."""
    plane = DataPlane(config, options,
                      registry or Registry(config, options.shared_root, config_dir))
    table = endpoints(plane)
    extras = Extras(plane, table)

    token = options.auth_token.get_secret_value() if options.auth_token else None

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette):
        plane.start()
        threading.Thread(target=extras.build_when_loaded, name="docs-after-load",
                         daemon=True).start()
        grpc_server = None
        if options.grpc_port:
            from modelops_runtime.grpc_endpoints import create_server

            grpc_server = create_server(plane, options.host, options.grpc_port, token,
                                        options.max_body_bytes)
            await grpc_server.start()
        yield
        if grpc_server is not None:  # HTTP has drained; let gRPC's in-flight calls finish
            await grpc_server.stop(grace=options.drain_seconds)
        plane.stop()

    methods: dict[str, list[str]] = {}  # one route per path, so a 405 lists every method
    for e in table:
        methods.setdefault(e.path, []).append(e.method)
    handlers = {e.path: e.handler for e in table}
    # Starlette tries routes in order: infer, nearly every request, is tried first.
    order = sorted(methods, key=lambda path: not path.endswith("/infer"))
    app = Starlette(routes=[Route(path, handlers[path], methods=methods[path])
                            for path in order],
                    middleware=[Middleware(ServerMiddleware, token=token,
                                           max_body=options.max_body_bytes)],
                    exception_handlers=errors.HANDLERS, lifespan=lifespan)
    app.router.default = extras
    app.router.redirect_slashes = False  # its redirect is built from the Host header
    app.state.modelops = plane
    return app
