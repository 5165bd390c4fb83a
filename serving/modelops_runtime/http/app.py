"""The HTTP app: the protocol routes of routes.py under plain Starlette, and every path
they do not know falls through to the FastAPI app of docs.py: the OpenAPI docs and the
extra endpoints that model classes declare. Importing FastAPI and building that app took
a sixth of the time to ready, so it is built once the models are loaded (or by the
first request that needs it), not before the server can serve.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from modelops_runtime.dataplane import DataPlane
from modelops_runtime.http import errors
from modelops_runtime.http.middleware import ServerMiddleware
from modelops_runtime.http.routes import Asynchronous, Endpoint, endpoints

if TYPE_CHECKING:
    from fastapi import FastAPI

Lifespan = Callable[[Starlette], contextlib.AbstractAsyncContextManager[None]]


class Extras:
    """The app every unmatched path goes to: docs.py's, built once, after the models load
    or by the first request that needs it, whichever comes first."""

    def __init__(self, plane: DataPlane, table: list[Endpoint]):
        self.plane, self.table = plane, table
        self._app: FastAPI | None = None
        self._lock = threading.Lock()

    def get(self) -> FastAPI:
        with self._lock:
            if self._app is None:
                from modelops_runtime.http.docs import create_docs_app  # FastAPI: late

                self._app = create_docs_app(self.plane, self.table)
        return self._app

    def build_when_loaded(self) -> None:
        self.plane.registry.wait_loaded()
        self.get()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        app = self._app if self._app is not None else await asyncio.to_thread(self.get)
        await app(scope, receive, send)


def create_app(plane: DataPlane, token: str | None, lifespan: Lifespan,
               asynchronous: Asynchronous | None = None) -> Starlette:
    """The HTTP app over `plane`; `lifespan` is the composition root's (server.py)."""
    table = endpoints(plane, asynchronous)
    extras = Extras(plane, table)

    @contextlib.asynccontextmanager
    async def with_docs(app: Starlette) -> AsyncIterator[None]:
        threading.Thread(target=extras.build_when_loaded, name="docs-after-load",
                         daemon=True).start()
        async with lifespan(app):
            yield

    methods: dict[str, list[str]] = {}  # one route per path, so a 405 lists every method
    for e in table:
        methods.setdefault(e.path, []).append(e.method)
    handlers = {e.path: e.handler for e in table}
    # Starlette tries routes in order: infer, nearly every request, is tried first.
    order = sorted(methods, key=lambda path: not path.endswith("/infer"))
    app = Starlette(routes=[Route(path, handlers[path], methods=methods[path])
                            for path in order],
                    middleware=[Middleware(ServerMiddleware, token=token,
                                           max_body=plane.options.max_body_bytes)],
                    exception_handlers=errors.HANDLERS, lifespan=with_docs)
    app.router.default = extras
    app.router.redirect_slashes = False  # its redirect is built from the Host header
    app.state.modelops = plane
    return app

