"""HTTP/1.1 limits uvicorn's httptools protocol does not have: the size of a request's
headers, and how long a client may take to send them.

Without them one connection can grow the process by a 48 MB header before
authentication runs, or hold a connection open forever by sending nothing, or a byte at
a time. Both end in a JSON error and a closed connection, counted like every response.
(The body has its own timeout where it is read: routes.py. A body that arrived whole
with its headers, as small requests do, is marked in the scope so that reading it needs
no timer.)
"""

from __future__ import annotations

import asyncio
import sys

import orjson
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from modelops_runtime import metrics

BODY_RECEIVED = "modelops.body_received"  # scope key: the whole body is already here
_REASONS = {400: b"Bad Request", 408: b"Request Timeout",
            431: b"Request Header Fields Too Large"}


class LimitedHttpTools(HttpToolsProtocol):
    max_header_bytes = 64 * 1024
    header_timeout = 10.0
    _timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._begin_headers()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_timer()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if not self._in_headers:  # the next request on a kept-alive connection
            self._begin_headers()

    def on_headers_complete(self) -> None:
        self._in_headers = False
        self._stop_timer()
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self.scope[BODY_RECEIVED] = True  # type: ignore[literal-required]

    def data_received(self, data: bytes) -> None:
        if self._in_headers:
            self._header_bytes += len(data)
        super().data_received(data)
        # Still in the headers after the parser took all of it: every byte was header.
        if self._in_headers and self._header_bytes > self.max_header_bytes:
            self._refuse(431, f"request headers over {self.max_header_bytes} bytes")

    def send_400_response(self, msg: str) -> None:
        self._refuse(400, f"not an HTTP/1.1 request: {msg.rstrip('.')}")

    # -- helpers ----------------------------------------------------------------------
    def _begin_headers(self) -> None:
        self._in_headers, self._header_bytes = True, 0
        self._stop_timer()
        self._timer = self.loop.call_later(self.header_timeout, self._headers_too_slow)

    def _stop_timer(self) -> None:
        timer = self._timer
        if timer is not None:
            timer.cancel()
            self._timer = None

    def _headers_too_slow(self) -> None:
        self._timer = None
        if self._in_headers and not self.transport.is_closing():
            self._refuse(408, f"request headers not received within {self.header_timeout:g} s")

    def _refuse(self, status: int, message: str) -> None:
        self._stop_timer()
        if self.transport.is_closing():
            return
        body = orjson.dumps({"error": message})
        self.transport.write(b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\n"
                             b"content-length: %d\r\nconnection: close\r\n\r\n%s"
                             % (status, _REASONS[status], len(body), body))
        self.transport.close()
        metrics.response(str(status)).inc()
        client = f"{self.client[0]}:{self.client[1]}" if self.client else "unknown client"
        print(f"modelops server: {status} to {client}: {message}", file=sys.stderr, flush=True)


def configured(max_header_bytes: int, header_timeout: float) -> type[asyncio.Protocol]:
    """The protocol class with the server's options."""
    return type("HttpProtocol", (LimitedHttpTools,), {
        "max_header_bytes": max_header_bytes, "header_timeout": header_timeout})
