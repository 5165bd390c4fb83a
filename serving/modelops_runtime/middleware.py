"""One plain ASGI middleware for what every request needs: a request id on the response,
the optional bearer token, the body-size limit, and a count of every response by status.
(Plain ASGI: BaseHTTPMiddleware would cost a task and a queue per request.)"""

from __future__ import annotations

import hmac
import os
import re

import orjson

from modelops_runtime import metrics

VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
OPEN_PATHS = ("/v2/health/", "/metrics")  # kubelet and Prometheus carry no token


async def _reply(send, status: int, message: str, request_id: str,
                 extra: list[tuple[bytes, bytes]] | None = None) -> None:
    body = orjson.dumps({"error": message})
    metrics.response(str(status)).inc()
    await send({"type": "http.response.start", "status": status, "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
        (b"x-request-id", request_id.encode()), *(extra or [])]})
    await send({"type": "http.response.body", "body": body})


class ServerMiddleware:
    def __init__(self, app, token: str | None, max_body: int):
        self.app = app
        self.token = token.encode() if token else None
        self.max_body = max_body

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        request_id = ""
        length = None
        authorization = b""
        for key, value in scope["headers"]:
            if key == b"x-request-id":
                candidate = value.decode("latin-1")
                request_id = candidate if VALID_REQUEST_ID.match(candidate) else ""
            elif key == b"content-length":
                length = value
            elif key == b"authorization":
                authorization = value
        request_id = request_id or os.urandom(16).hex()
        scope.setdefault("state", {})["request_id"] = request_id

        if self.token is not None and not scope["path"].startswith(OPEN_PATHS):
            scheme, _, credentials = authorization.partition(b" ")
            # RFC 9110: the scheme is case-insensitive; the token is compared in constant time.
            if scheme.lower() != b"bearer" or not hmac.compare_digest(credentials.strip(),
                                                                      self.token):
                return await _reply(send, 401, "missing or wrong bearer token", request_id,
                                    [(b"www-authenticate", b"Bearer")])
        if length is not None:
            try:
                too_big = int(length) > self.max_body
            except ValueError:
                return await _reply(send, 400, "bad Content-Length", request_id)
            if too_big:
                return await _reply(send, 413, f"request body over {self.max_body} bytes",
                                    request_id)
        header = (b"x-request-id", request_id.encode())
        started = False

        async def send_with_id(message):
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                metrics.response(str(message["status"])).inc()
                message["headers"] = [*message.get("headers", []), header]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            if not started:  # the outer error handler answers 500: count it here
                metrics.response("500").inc()
            raise
