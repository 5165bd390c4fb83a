"""The server's FastAPI part: OpenAPI docs and the extra endpoints of model classes.

Every path that the protocol routes of endpoints.py do not match comes here: /docs and
/openapi.json (also under each model's own path, where the gateway routes its
traffic), and the routes a model class declares, mounted under the model's path when
it (re)loads. The document describes the protocol routes too, from the same table that
routes them.
"""

from __future__ import annotations

import re
import sys
from typing import TYPE_CHECKING

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.openapi.utils import get_openapi

from modelops_runtime import __version__
from modelops_runtime.errors import HANDLERS, error

if TYPE_CHECKING:  # types only: endpoints.py imports this module, never the reverse
    from modelops_runtime.dataplane import DataPlane
    from modelops_runtime.endpoints import Endpoint

# The first segment of a model's protocol paths: an extra route may not take one.
_PROTOCOL_PATHS = {"", "ready", "infer", "versions", "docs", "openapi.json"}
_ERRORS = (("400", "Malformed request or wrong tensors"), ("404", "Unknown model or version"),
           ("413", "Body too large"), ("503", "Not ready, or at the concurrency limit"))
_INFER_BODY = {"content": {"application/json": {"schema": {
    "type": "object", "required": ["inputs"], "properties": {
        "id": {"type": "string"},
        "parameters": {"type": "object"},
        "inputs": {"type": "array", "items": {"type": "object", "required": [
            "name", "shape", "datatype", "data"]}},
        "outputs": {"type": "array", "items": {"type": "object", "required": ["name"]}}}}}},
    "required": True}


def _operation(endpoint: "Endpoint") -> dict:
    """The OpenAPI operation of a protocol route."""
    json_object = {"application/json": {"schema": {"type": "object"}}}
    error_body = {"application/json": {"schema": {
        "type": "object", "properties": {"error": {"type": "string"}}}}}
    operation = {
        "tags": [endpoint.tag], "summary": endpoint.summary,
        "operationId": re.sub(r"\W+", "_", f"{endpoint.method} {endpoint.path}").strip("_").lower(),
        "parameters": [{"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
                       for name in re.findall(r"{(\w+)}", endpoint.path)],
        "responses": {"200": {"description": "OK", "content": json_object},
                      **{code: {"description": text, "content": error_body}
                         for code, text in _ERRORS}}}
    if endpoint.path.endswith("/infer"):
        operation["requestBody"] = _INFER_BODY
    return operation


async def _validation_error(request: Request, exc: RequestValidationError):
    first = exc.errors()[0] if exc.errors() else {}
    where = ".".join(str(p) for p in first.get("loc", ()))
    return error(400, f"{where}: {first.get('msg', 'invalid request')}")


def create_docs_app(plane: "DataPlane", endpoints: list["Endpoint"]) -> FastAPI:
    app = FastAPI(title=f"modelops server: {plane.config.server}", version=__version__,
                  docs_url="/docs", redoc_url=None,
                  description="Open Inference Protocol v2, the model repository API, and "
                              "the extra endpoints of the models served here.")
    app.router.redirect_slashes = False  # its redirect is built from the Host header
    for exc, handler in HANDLERS.items():
        app.add_exception_handler(exc, handler)
    app.add_exception_handler(RequestValidationError, _validation_error)

    @app.get("/v2/models/{name}/openapi.json", include_in_schema=False)
    async def model_openapi(name: str) -> dict:
        plane.registry.served(name)
        return app.openapi()

    @app.get("/v2/models/{name}/docs", include_in_schema=False)
    async def model_docs(name: str):
        plane.registry.served(name)
        return get_swagger_ui_html(openapi_url=f"/v2/models/{name}/openapi.json",
                                   title=f"{name}: model server API")

    def mount_routes(name: str) -> None:
        served = plane.registry.models[name]
        if not served.versions:
            return
        model = served.versions[max(served.versions,
                                    key=lambda v: served.versions[v].config.weight)].model
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

    plane.registry.on_change.append(mount_routes)
    for name, served in list(plane.registry.models.items()):
        if served.versions:  # loaded before this app existed
            mount_routes(name)

    def openapi() -> dict:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version,
                                 description=app.description, routes=app.routes)
            for endpoint in endpoints:
                if endpoint.tag:
                    schema["paths"].setdefault(endpoint.path, {})[endpoint.method.lower()] = \
                        _operation(endpoint)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi
    return app
