"""The HTTP server: Open Inference Protocol v2, the management API and metrics.

The app is plain Starlette and thin: it routes, validates the protocol and asks the
registry. The infer handler parses the body itself with orjson. Decode, predict and
encode run inline for a model whose calls take under 2 ms on average (a thread hop
would cost more than the prediction), and in a worker thread otherwise, so a slow
model never blocks health checks or the other models of a pool.

Every path these routes do not know falls through to the FastAPI app of docs.py: the
OpenAPI docs and the extra endpoints that model classes declare. Importing FastAPI and
building that app took a sixth of the time to ready, so it is built once the models
are loaded (or by the first request that needs it), not before the server can serve.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any, Callable, NamedTuple

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
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


class Endpoint(NamedTuple):
    """One route of the server, and what the docs say of it (no tag: undocumented)."""

    method: str
    path: str
    handler: Callable
    tag: str | None
    summary: str


class State:
    """Everything a request handler needs, created once per app."""

    def __init__(self, config: ServerConfig, settings: Settings, registry: Registry):
        self.config = config
        self.settings = settings
        self.registry = registry
        logging_on = any(m.logging.enabled for m in config.models)
        self.log = PredictionLog(settings.logs, config.server, settings.log_rotate_bytes,
                                 settings.log_rotate_seconds, settings.log_queue_size) \
            if logging_on else None
        self.watcher = DatasetWatcher(self.registry, settings.dataset_poll_seconds)
        self.draining = False


def error(status: int, message: str, headers: dict | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


# -- errors: always JSON, never a 500 for bad input (docs.py uses them too) ------------
async def _protocol_error(request: Request, exc: ProtocolError) -> JSONResponse:
    return error(exc.status, exc.message)


async def _http_error(request: Request, exc: HTTPException) -> JSONResponse:
    message = exc.detail if isinstance(exc.detail, str) else "request failed"
    if exc.status_code == 404:
        message = f"no such endpoint: {request.method} {request.url.path}"
    return error(exc.status_code, message, getattr(exc, "headers", None))


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    traceback.print_exception(exc, file=sys.stderr)
    return error(500, f"internal error (request id {request.scope['state']['request_id']})")


ERROR_HANDLERS: dict[Any, Callable] = {ProtocolError: _protocol_error, HTTPException: _http_error,
                                       Exception: _unexpected}


class Extras:
    """The app every unmatched path goes to: docs.py's, built once, after the models load
    or by the first request that needs it, whichever comes first."""

    def __init__(self, state: State, endpoints: list[Endpoint]):
        self.state, self.endpoints = state, endpoints
        self._app = None
        self._lock = threading.Lock()

    def get(self):
        with self._lock:
            if self._app is None:
                from modelops_runtime.docs import create_docs_app

                self._app = create_docs_app(self.state, self.endpoints)
        return self._app

    def build_when_loaded(self) -> None:
        self.state.registry.wait_loaded()
        self.get()

    async def __call__(self, scope, receive, send) -> None:
        app = self._app or await asyncio.to_thread(self.get)
        await app(scope, receive, send)


async def _read_body(request: Request, limit: int) -> bytes:
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ProtocolError(f"request body over {limit} bytes", 413)
        chunks.append(chunk)
    return b"".join(chunks)


def create_app(config: ServerConfig, settings: Settings, config_dir: Path,
               registry: Registry | None = None) -> Starlette:
    """The app; pass a registry that is already loading to overlap loading with start-up."""
    state = State(config, settings,
                  registry or Registry(config, settings.shared_root, config_dir))

    # -- health and server metadata ---------------------------------------------------
    async def live(request: Request) -> Response:
        return JSONResponse({"live": True})

    async def ready(request: Request) -> Response:
        ok = state.registry.ready() and not state.draining
        return JSONResponse({"ready": ok}, status_code=200 if ok else 503)

    async def server_metadata(request: Request) -> Response:
        return JSONResponse({"name": "modelops", "version": __version__,
                             "extensions": ["model_repository"]})

    async def prometheus(request: Request) -> Response:
        return Response(generate_latest(metrics.REGISTRY), media_type=CONTENT_TYPE_LATEST)

    # -- models ----------------------------------------------------------------------
    async def metadata(request: Request) -> Response:
        name, version = request.path_params["name"], request.path_params.get("version")
        entry, loaded = state.registry.pick(name, version)
        return JSONResponse({"name": name, "versions": [v.name for v in entry.config.versions],
                             "platform": entry.config.runtime, **loaded.model.metadata()})

    async def model_ready(request: Request) -> Response:
        name, version = request.path_params["name"], request.path_params.get("version")
        entry = state.registry.entry(name)
        if version is not None and version not in {v.name for v in entry.config.versions}:
            raise ProtocolError(f"model {name!r} has no version {version!r}", 404)
        ok = version in entry.versions if version else entry.state == "ready"
        return JSONResponse({"name": name, "ready": ok}, status_code=200 if ok else 503)

    async def infer(request: Request) -> Response:
        started = time.perf_counter()
        name, version = request.path_params["name"], request.path_params.get("version")
        entry, loaded = state.registry.pick(name, version)
        config = entry.config
        if entry.in_flight >= config.concurrency:
            metrics.requests(name, loaded.config.name, "503").inc()
            return error(503, f"model {name!r} is at its concurrency limit "
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

    # -- model repository (management) ----------------------------------------------
    async def repository_index(request: Request) -> Response:
        return JSONResponse(state.registry.describe())

    async def reload(request: Request) -> Response:
        name = request.path_params["name"]
        entry = state.registry.entry(name)
        await asyncio.to_thread(state.registry.load, name)
        if entry.error:
            serving = entry.state == "ready"
            what = "still serving the previous versions" if serving else "not serving"
            return error(409 if serving else 503,
                         f"reload of {name!r} failed, {what}: {entry.error}")
        return JSONResponse({"name": name, "state": entry.state,
                             "versions": sorted(entry.versions)})

    model, version = "/v2/models/{name}", "/v2/models/{name}/versions/{version}"
    endpoints = [
        Endpoint("GET", "/v2/health/live", live, "health", "Live: the process answers"),
        Endpoint("GET", "/v2/health/ready", ready, "health",
                 "Ready: the models are loaded and the server is not draining"),
        Endpoint("GET", "/v2", server_metadata, "server", "Server metadata"),
        Endpoint("GET", "/metrics", prometheus, None, "Prometheus metrics"),
        Endpoint("GET", model, metadata, "models", "Model metadata"),
        Endpoint("GET", version, metadata, "models", "Model version metadata"),
        Endpoint("GET", f"{model}/ready", model_ready, "models", "Model ready"),
        Endpoint("GET", f"{version}/ready", model_ready, "models", "Model version ready"),
        Endpoint("POST", f"{model}/infer", infer, "models",
                 "Infer (Open Inference Protocol v2), split by the version weights"),
        Endpoint("POST", f"{version}/infer", infer, "models",
                 "Infer (Open Inference Protocol v2) with one version"),
        Endpoint("GET", "/v2/repository/index", repository_index, "management",
                 "Every model with its versions, placement, state and load time"),
        Endpoint("POST", "/v2/repository/index", repository_index, "management",
                 "Every model with its versions, placement, state and load time"),
        Endpoint("POST", "/v2/repository/models/{name}/load", reload, "management",
                 "Reload atomically: the old versions serve until the new ones are loaded"),
    ]
    extras = Extras(state, endpoints)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette):
        if state.log:
            state.log.start()
        state.registry.start_loading()
        state.watcher.start()
        threading.Thread(target=extras.build_when_loaded, name="docs-after-load",
                         daemon=True).start()
        yield
        state.draining = True
        state.watcher.stop()
        if state.log:
            state.log.close()

    token = settings.auth_token.get_secret_value() if settings.auth_token else None
    app = Starlette(routes=[Route(e.path, e.handler, methods=[e.method]) for e in endpoints],
                    middleware=[Middleware(ServerMiddleware, token=token,
                                           max_body=settings.max_body_bytes)],
                    exception_handlers=ERROR_HANDLERS, lifespan=lifespan)
    app.router.default = extras
    app.state.modelops = state
    return app


def _predict(loaded, body: bytes) -> tuple[dict, list[dict[str, Any]]]:
    """Decode, predict, encode: the whole CPU-bound part, timed to choose where it runs."""
    started = time.perf_counter()
    payload, inputs = decode_request(body)
    results = loaded.model.infer(inputs, requested_outputs(payload))
    encoded = [encode_tensor(name, array) for name, array in results.items()]
    loaded.observe(time.perf_counter() - started)
    return payload, encoded
