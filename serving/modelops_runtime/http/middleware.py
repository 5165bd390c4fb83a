"""One plain ASGI middleware for what every request needs: a request id on the response,
the optional bearer token, the body-size limit, and a count of every response by status.
(Plain ASGI: BaseHTTPMiddleware would cost a task and a queue per request.)"""

from __future__ import annotations

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from modelops_runtime import identity, metrics

OPEN_PATHS = ("/v2/health/", "/metrics")  # kubelet and Prometheus carry no token


async def _reply(send: Send, status: int, message: str, request_id: str,
                 extra: list[tuple[bytes, bytes]] | None = None) -> None:
    body = orjson.dumps({"error": message})
    metrics.response(str(status)).inc()
    await send({"type": "http.response.start", "status": status, "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
        (b"x-request-id", request_id.encode()), *(extra or [])]})
    await send({"type": "http.response.body", "body": body})


class ServerMiddleware:
    def __init__(self, app: ASGIApp, token: str | None, max_body: int):
        self.app = app
        self.token = token.encode() if token else None
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        request_id = ""
        length = None
        authorization = b""
        for key, value in scope["headers"]:
            if key == b"x-request-id":
                request_id = value.decode("latin-1")
            elif key == b"content-length":
                length = value
            elif key == b"authorization":
                authorization = value
        request_id = identity.request_id(request_id)
        scope.setdefault("state", {})["request_id"] = request_id

        if self.token is not None and not scope["path"].startswith(OPEN_PATHS):
            if not identity.bearer_ok(authorization, self.token):
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

        async def send_with_id(message: Message) -> None:
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
