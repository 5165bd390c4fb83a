"""The server's FastAPI part: OpenAPI docs and the extra endpoints of model classes.

Every path that the protocol routes of routes.py do not match comes here: /docs and
/openapi.json (also under each model's own path, where the gateway routes its
traffic), and the routes a model class declares, mounted under the model's path when
it (re)loads. The document describes the protocol routes too, from the same table that
routes them.
"""

from __future__ import annotations

import importlib.resources
import re
import sys
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse, Response
from starlette.routing import BaseRoute

from modelops_runtime import __version__
from modelops_runtime.dataplane import DataPlane
from modelops_runtime.http import openapi_schemas as shapes
from modelops_runtime.http.errors import HANDLERS, error
from modelops_runtime.http.routes import Endpoint

# The first segment of a model's protocol paths: an extra route may not take one.
_PROTOCOL_PATHS = {"", "ready", "infer", "versions", "docs", "openapi.json"}  # docs/assets too
_ERRORS = (("400", "Malformed request, or tensors the model does not take"),
           ("401", "Missing or wrong bearer token"), ("404", "Unknown model or version"),
           ("408", "Headers or body too slow"), ("413", "Body too large"),
           ("431", "Headers too large"), ("500", "The model failed (see the server log)"),
           ("503", "Not ready, or at the concurrency limit"))


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def _operation(endpoint: Endpoint, models: list[str], versions: list[str], path: str = "",
               request: dict[str, Any] = shapes.INFER_REQUEST) -> dict[str, Any]:
    """The OpenAPI operation of a protocol route: the served models' names and versions
    are the path parameters' values."""
    values = {"name": models, "version": versions}
    path = path or endpoint.path
    operation: dict[str, Any] = {
        "tags": [endpoint.tag], "summary": endpoint.summary,
        "operationId": re.sub(r"\W+", "_", f"{endpoint.method} {path}").strip("_").lower(),
        "parameters": [{"name": name, "in": "path", "required": True,
                        "schema": {"type": "string", **({"enum": values[name]}
                                                        if values.get(name) else {})}}
                       for name in re.findall(r"{(\w+)}", path)],
        "responses": {"200": {"description": "OK", "content": _json(endpoint.response or {})},
                      **{code: {"description": text, "content": _json(shapes.ERROR)}
                         for code, text in _ERRORS}}}
    if endpoint.unready:
        operation["responses"]["503"] = {"description": "Not ready",
                                         "content": _json(endpoint.response or {})}
    if endpoint.path.endswith("/infer"):
        operation["requestBody"] = {"required": True, "content": _json(request)}
        operation["responses"]["200"]["content"]["application/octet-stream"] = {
            "schema": {"type": "string", "format": "binary"}}  # binary tensor data
    if endpoint.path.endswith("/load"):
        operation["responses"]["409"] = {"description": "Reload failed; still serving the "
                                                        "previous versions",
                                         "content": _json(shapes.ERROR)}
    return operation


def _infer_paths(endpoint: Endpoint, plane: DataPlane) -> dict[str, Any]:
    """An infer route's operations, one per served model (and per version where the route
    names one), each stating the tensors that model declares: a request the document
    allows is one the model takes."""
    paths: dict[str, Any] = {}
    for name, served in sorted(plane.registry.models.items()):
        signatures = {v: loaded.signature for v, loaded in served.versions.items()}
        if "{version}" in endpoint.path:
            targets = [(v, signatures.get(v.name)) for v in served.config.versions]
            for version, signature in targets:
                path = endpoint.path.format(name=name, version=version.name)
                paths[path] = {"post": _operation(endpoint, [], [], path,
                                                  shapes.infer_request(signature))}
        else:
            agreed = set(signatures.values())  # the versions the weights choose from
            signature = agreed.pop() if len(agreed) == 1 else None
            path = endpoint.path.format(name=name)
            paths[path] = {"post": _operation(endpoint, [], [], path,
                                              shapes.infer_request(signature))}
    return paths


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    first = exc.errors()[0] if exc.errors() else {}
    where = ".".join(str(p) for p in first.get("loc", ()))
    return error(400, f"{where}: {first.get('msg', 'invalid request')}")


ASSETS = importlib.resources.files("fastapi_offline") / "static"
"""Swagger UI's files, from a pinned package: /docs works offline and in air-gapped
clusters, where a CDN is out of reach."""
_ASSET_TYPES = {"swagger-ui-bundle.js": "text/javascript", "swagger-ui.css": "text/css",
                "favicon.png": "image/png"}


def swagger(openapi_url: str, title: str, assets: str) -> HTMLResponse:
    return get_swagger_ui_html(openapi_url=openapi_url, title=title,
                               swagger_js_url=f"{assets}/swagger-ui-bundle.js",
                               swagger_css_url=f"{assets}/swagger-ui.css",
                               swagger_favicon_url=f"{assets}/favicon.png")


def asset(file: str) -> Response:
    if file not in _ASSET_TYPES:
        raise HTTPException(404)
    return Response((ASSETS / file).read_bytes(), media_type=_ASSET_TYPES[file],
                    headers={"Cache-Control": "public, max-age=86400"})


def mount_docs(app: FastAPI, path: str, openapi_url: str) -> None:
    """Swagger UI at `path`, its files at `path`/assets/ (both left out of the document)."""

    @app.get(path, include_in_schema=False)
    async def docs() -> HTMLResponse:
        return swagger(openapi_url, app.title, f"{path}/assets")

    @app.get(f"{path}/assets/{{file}}", include_in_schema=False)
    async def docs_asset(file: str) -> Response:
        return asset(file)


def create_docs_app(plane: DataPlane, endpoints: list[Endpoint]) -> FastAPI:
    app = FastAPI(title=f"modelops server: {plane.config.server}", version=__version__,
                  docs_url=None, redoc_url=None,
                  description="Open Inference Protocol v2, the model repository API, and "
                              "the extra endpoints of the models served here.")
    app.router.redirect_slashes = False  # its redirect is built from the Host header
    for exc, handler in HANDLERS.items():
        app.add_exception_handler(exc, handler)
    app.add_exception_handler(RequestValidationError, _validation_error)

    mount_docs(app, "/docs", "/openapi.json")

    @app.get("/v2/models/{name}/docs/assets/{file}", include_in_schema=False)
    async def model_docs_asset(name: str, file: str) -> Response:
        plane.registry.served(name)  # the gateway routes only this model's path here
        return asset(file)

    @app.get("/v2/models/{name}/openapi.json", include_in_schema=False)
    async def model_openapi(name: str) -> dict[str, Any]:
        plane.registry.served(name)
        return app.openapi()

    @app.get("/v2/models/{name}/docs", include_in_schema=False)
    async def model_docs(name: str) -> HTMLResponse:
        plane.registry.served(name)
        return swagger(f"/v2/models/{name}/openapi.json", f"{name}: model server API",
                        f"/v2/models/{name}/docs/assets")

    mounted: dict[str, list[BaseRoute]] = {}  # each model's extra routes

    def mount_routes(name: str) -> None:
        served = plane.registry.models[name]
        if not served.versions:
            return
        model = served.versions[max(served.versions,
                                    key=lambda v: served.versions[v].config.weight)].model
        stale = {id(route) for route in mounted.pop(name, [])}
        app.router.routes[:] = [r for r in app.router.routes if id(r) not in stale]
        for method, path, handler in model.routes():
            first = path.strip("/").split("/")[0]
            if first in _PROTOCOL_PATHS:  # a warning, not a load failure: the model serves
                print(f"modelops server: model {name!r}: extra route {path!r} would shadow a "
                      "protocol endpoint; ignored", file=sys.stderr)
                continue
            app.add_api_route(f"/v2/models/{name}/{path.strip('/')}", handler,
                              methods=[method], tags=[f"model: {name}"])
            mounted.setdefault(name, []).append(app.router.routes[-1])
        app.openapi_schema = None  # rebuild /docs with the new routes

    plane.registry.on_change.append(mount_routes)
    for name, served in list(plane.registry.models.items()):
        if served.versions:  # loaded before this app existed
            mount_routes(name)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version,
                                 description=app.description, routes=app.routes)
            models = sorted(plane.registry.models)
            versions = sorted({v.name for served in plane.registry.models.values()
                               for v in served.config.versions})
            for endpoint in endpoints:
                if endpoint.path.endswith("/infer"):
                    schema["paths"].update(_infer_paths(endpoint, plane))
                elif endpoint.tag:
                    schema["paths"].setdefault(endpoint.path, {})[endpoint.method.lower()] = \
                        _operation(endpoint, models, versions)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented way
    return app
