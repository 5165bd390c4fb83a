"""Errors as JSON: one shape for every transport and every framework in the server.

Bad input is a ProtocolError (4xx) raised anywhere below the transport; whatever
else escapes is a 500 that names the request id and is logged once.
"""

from __future__ import annotations

import sys
import traceback
from typing import Any, Callable

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse

from modelops_runtime.protocol import ProtocolError


def error(status: int, message: str, headers: dict | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


async def _protocol_error(request: Request, exc: ProtocolError) -> JSONResponse:
    return error(exc.status, exc.message, exc.headers)


async def _http_error(request: Request, exc: HTTPException) -> JSONResponse:
    message = exc.detail if isinstance(exc.detail, str) else "request failed"
    if exc.status_code == 404:
        message = f"no such endpoint: {request.method} {request.url.path}"
    return error(exc.status_code, message, getattr(exc, "headers", None))


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    traceback.print_exception(exc, file=sys.stderr)
    return error(500, f"internal error (request id {request.scope['state']['request_id']})")


HANDLERS: dict[Any, Callable] = {ProtocolError: _protocol_error, HTTPException: _http_error,
                                 Exception: _unexpected}
"""The exception handlers of both apps (the protocol routes and the docs)."""
