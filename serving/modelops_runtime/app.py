"""The HTTP server: Open Inference Protocol v2, the management API, per-model routes.

The app is thin: it routes, validates the protocol and asks the registry. The
infer handler parses the body itself with orjson. Decode, predict and encode run
inline for a model whose calls take under 2 ms on average (a thread hop would cost
more than the prediction), and in a worker thread otherwise, so a slow model never
blocks health checks or the other models of a pool.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.routing import Route

from modelops_runtime import __version__, metrics
from modelops_runtime.config import ServerConfig
from modelops_runtime.middleware import ServerMiddleware
from modelops_runtime.predlog import PredictionLog
from modelops_runtime.protocol import (ProtocolError, decode_request, dumps, encode_tensor,
                                       requested_outputs)
from modelops_runtime.registry import Registry
from modelops_runtime.settings import Settings
from modelops_runtime.watch import DatasetWatcher

_PROTOCOL_PATHS = {"", "ready", "infer", "versions", "docs", "openapi.json"}
_INFER_BODY = {"content": {"application/json": {"schema": {
    "type": "object", "required": ["inputs"], "properties": {
        "id": {"type": "string"},
        "parameters": {"type": "object"},
        "inputs": {"type": "array", "items": {"type": "object", "required": [
            "name", "shape", "datatype", "data"]}},
        "outputs": {"type": "array", "items": {"type": "object", "required": ["name"]}}}}}},
    "required": True}


class State:
    """Everything a request handler needs, created once per app."""

    def __init__(self, config: ServerConfig, settings: Settings, registry: Registry):
        self.settings = settings
        self.registry = registry
        logging_on = any(m.logging.enabled for m in config.models)
        self.log = PredictionLog(settings.logs, config.server, settings.log_rotate_bytes,
                                 settings.log_rotate_seconds, settings.log_queue_size) \
            if logging_on else None
        self.watcher = DatasetWatcher(self.registry, settings.dataset_poll_seconds)
        self.draining = False


def _error(status: int, message: str, headers: dict | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


async def _read_body(request: Request, limit: int) -> bytes:
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ProtocolError(f"request body over {limit} bytes", 413)
        chunks.append(chunk)
    return b"".join(chunks)


def create_app(config: ServerConfig, settings: Settings, config_dir: Path,
               registry: Registry | None = None) -> FastAPI:
    """The app; pass a registry that is already loading to overlap loading with start-up."""
    state = State(config, settings,
                  registry or Registry(config, settings.shared_root, config_dir))

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        if state.log:
            state.log.start()
        state.registry.start_loading()
        state.watcher.start()
        yield
        state.draining = True
        state.watcher.stop()
        if state.log:
            state.log.close()

    app = FastAPI(title=f"modelops server: {config.server}", version=__version__,
                  lifespan=lifespan, docs_url="/docs", redoc_url=None,
                  description="Open Inference Protocol v2, the model repository API, and "
                              "the extra endpoints of the models served here.")
    app.state.modelops = state
    token = settings.auth_token.get_secret_value() if settings.auth_token else None
    app.add_middleware(ServerMiddleware, token=token, max_body=settings.max_body_bytes)

    # -- errors: always JSON, never a 500 for bad input -----------------------------
    @app.exception_handler(ProtocolError)
    async def protocol_error(request: Request, exc: ProtocolError):
        return _error(exc.status, exc.message)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException):
        message = exc.detail if isinstance(exc.detail, str) else "request failed"
        if exc.status_code == 404:
            message = f"no such endpoint: {request.method} {request.url.path}"
        return _error(exc.status_code, message, getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError):
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()))
        return _error(400, f"{where}: {first.get('msg', 'invalid request')}")

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception):
        traceback.print_exception(exc, file=sys.stderr)
        return _error(500, f"internal error (request id {request.scope['state']['request_id']})")

    # -- health and server metadata ---------------------------------------------------
    @app.get("/v2/health/live", tags=["health"])
    async def live() -> dict:
        return {"live": True}

    @app.get("/v2/health/ready", tags=["health"])
    async def ready():
        ok = state.registry.ready() and not state.draining
        return JSONResponse({"ready": ok}, status_code=200 if ok else 503)

    @app.get("/v2", tags=["server"])
    async def server_metadata() -> dict:
        return {"name": "modelops", "version": __version__,
                "extensions": ["model_repository"]}

    @app.get("/metrics", tags=["server"], include_in_schema=False)
    async def prometheus() -> Response:
        return Response(generate_latest(metrics.REGISTRY), media_type=CONTENT_TYPE_LATEST)

    # The docs again under each model's own path, which the gateway routes to its server.
    @app.get("/v2/models/{name}/openapi.json", include_in_schema=False)
    async def model_openapi(name: str) -> dict:
        state.registry.entry(name)
        return app.openapi()

    @app.get("/v2/models/{name}/docs", include_in_schema=False)
    async def model_docs(name: str):
        state.registry.entry(name)
        return get_swagger_ui_html(openapi_url=f"/v2/models/{name}/openapi.json",
                                   title=f"{name}: model server API")

    # -- models ----------------------------------------------------------------------
    def model_metadata(name: str, version: str | None) -> dict:
        entry, loaded = state.registry.pick(name, version)
        return {"name": name, "versions": [v.name for v in entry.config.versions],
                "platform": entry.config.runtime, **loaded.model.metadata()}

    @app.get("/v2/models/{name}", tags=["models"])
    async def metadata(name: str) -> dict:
        return model_metadata(name, None)

    @app.get("/v2/models/{name}/versions/{version}", tags=["models"])
    async def version_metadata(name: str, version: str) -> dict:
        return model_metadata(name, version)

    def model_ready(name: str, version: str | None) -> JSONResponse:
        entry = state.registry.entry(name)
        if version is not None and version not in {v.name for v in entry.config.versions}:
            raise ProtocolError(f"model {name!r} has no version {version!r}", 404)
        ok = version in entry.versions if version else entry.state == "ready"
        return JSONResponse({"name": name, "ready": ok}, status_code=200 if ok else 503)

    @app.get("/v2/models/{name}/ready", tags=["models"])
    async def ready_model(name: str):
        return model_ready(name, None)

    @app.get("/v2/models/{name}/versions/{version}/ready", tags=["models"])
    async def ready_version(name: str, version: str):
        return model_ready(name, version)

    async def infer(request: Request, name: str, version: str | None) -> Response:
        started = time.perf_counter()
        entry, loaded = state.registry.pick(name, version)
        config = entry.config
        if entry.in_flight >= config.concurrency:
            metrics.requests(name, loaded.config.name, "503").inc()
            return _error(503, f"model {name!r} is at its concurrency limit "
                               f"({config.concurrency}); retry shortly", {"Retry-After": "1"})
        body = await _read_body(request, settings.max_body_bytes)
        request_id = request.scope["state"]["request_id"]
        model_version = loaded.config.name
        entry.in_flight += 1
        gauge = metrics.in_flight(name)
        gauge.inc()
        try:
            if loaded.fast:  # a thread hop costs more than a fast model's whole predict
                payload, outputs = _predict(loaded, body)
            else:
                payload, outputs = await run_in_threadpool(_predict, loaded, body)
        except ProtocolError as exc:
            metrics.requests(name, model_version, str(exc.status)).inc()
            raise
        finally:
            entry.in_flight -= 1
            gauge.dec()
        response = {"model_name": name, "model_version": model_version,
                    "id": payload.get("id") or request_id, "outputs": outputs}
        if isinstance(payload.get("parameters"), dict):
            response["parameters"] = payload["parameters"]
        body_out = dumps(response)
        elapsed = time.perf_counter() - started
        metrics.requests(name, model_version, "200").inc()
        metrics.latency(name, model_version).observe(elapsed)
        log = config.logging
        if state.log and log.enabled and (log.sampleRate >= 1 or random.random() < log.sampleRate):
            state.log.submit({"id": request_id, "model": name, "version": model_version,
                              "dataset": log.dataset, "ts": time.time(),
                              "inputs": payload["inputs"], "outputs": outputs,
                              "latency_ms": round(elapsed * 1000, 3), "status": 200})
        return Response(body_out, media_type="application/json")

    # Infer is served by plain Starlette routes: FastAPI's per-request machinery cost a
    # third of the throughput (benchmarks/serve.py). They are documented below.
    async def infer_model(request: Request) -> Response:
        return await infer(request, request.path_params["name"], None)

    async def infer_version(request: Request) -> Response:
        params = request.path_params
        return await infer(request, params["name"], params["version"])

    app.router.routes[:0] = [
        Route("/v2/models/{name}/infer", infer_model, methods=["POST"]),
        Route("/v2/models/{name}/versions/{version}/infer", infer_version, methods=["POST"])]

    # -- model repository (management) ----------------------------------------------
    @app.get("/v2/repository/index", tags=["management"])
    @app.post("/v2/repository/index", tags=["management"], operation_id="repository_index_post")
    async def repository_index() -> list[dict]:
        """Every model with its versions, placement, state and load time."""
        return state.registry.describe()

    @app.post("/v2/repository/models/{name}/load", tags=["management"])
    async def reload(name: str):
        """Reload atomically: the old versions serve until the new ones are loaded."""
        entry = state.registry.entry(name)
        await asyncio.to_thread(state.registry.load, name)
        if entry.error:
            serving = entry.state == "ready"
            what = "still serving the previous versions" if serving else "not serving"
            return _error(409 if serving else 503,
                          f"reload of {name!r} failed, {what}: {entry.error}")
        return {"name": name, "state": entry.state,
                "versions": sorted(entry.versions)}

    # -- per-model extra endpoints, mounted when a model (re)loads ---------------------
    def mount_routes(name: str) -> None:
        entry = state.registry.models[name]
        if not entry.versions:
            return
        model = entry.versions[max(entry.versions, key=lambda v: entry.versions[v].config.weight)].model
        app.router.routes[:] = [r for r in app.router.routes
                                if getattr(r, "modelops_model", None) != name]
        for method, path, handler in model.routes():
            first = path.strip("/").split("/")[0]
            if first in _PROTOCOL_PATHS:  # a warning, not a load failure: the model serves
                print(f"modelops server: model {name!r}: extra route {path!r} would shadow a "
                      "protocol endpoint; ignored", file=sys.stderr)
                continue
            app.add_api_route(f"/v2/models/{name}/{path.strip('/')}", handler,
                              methods=[method], tags=[f"model: {name}"])
            app.router.routes[-1].modelops_model = name
        app.openapi_schema = None  # rebuild /docs with the new routes

    state.registry.on_change.append(mount_routes)
    for name, entry in list(state.registry.models.items()):
        if entry.versions:  # loaded before the app existed
            mount_routes(name)

    def openapi() -> dict:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version,
                                 description=app.description, routes=app.routes)
            for path, params in (("/v2/models/{name}/infer", ["name"]),
                                 ("/v2/models/{name}/versions/{version}/infer", ["name", "version"])):
                schema["paths"][path] = {"post": _infer_operation(params)}
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi
    return app


def _infer_operation(params: list[str]) -> dict:
    return {"tags": ["models"], "summary": "Infer (Open Inference Protocol v2)",
            "operationId": "infer_" + "_".join(params),
            "parameters": [{"name": p, "in": "path", "required": True,
                            "schema": {"type": "string"}} for p in params],
            "requestBody": _INFER_BODY,
            "responses": {"200": {"description": "Outputs", "content": {"application/json": {
                "schema": {"type": "object", "required": ["model_name", "outputs"]}}}},
                **{code: {"description": text, "content": {"application/json": {"schema": {
                    "type": "object", "properties": {"error": {"type": "string"}}}}}}
                   for code, text in (("400", "Malformed request or wrong tensors"),
                                      ("404", "Unknown model or version"),
                                      ("413", "Body too large"),
                                      ("503", "Not ready, or at the concurrency limit"))}}}


def _predict(loaded, body: bytes) -> tuple[dict, list[dict[str, Any]]]:
    """Decode, predict, encode: the whole CPU-bound part, timed to choose where it runs."""
    started = time.perf_counter()
    payload, inputs = decode_request(body)
    results = loaded.model.infer(inputs, requested_outputs(payload))
    encoded = [encode_tensor(name, array) for name, array in results.items()]
    loaded.observe(time.perf_counter() - started)
    return payload, encoded
