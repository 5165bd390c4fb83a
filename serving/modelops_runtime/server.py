"""The composition root: one data plane, and the transports over it (HTTP under
uvicorn, gRPC on the same event loop, and with a broker the queue runner and the front
door of asynchronous requests), started and stopped together.

SIGTERM drains: readiness drops at once, uvicorn lets HTTP requests in flight finish,
then gRPC's calls in flight get the same grace, then the prediction logs are flushed.
"""

from __future__ import annotations

import contextlib
import math
import signal
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from types import FrameType

import uvicorn
from starlette.applications import Starlette

from modelops_runtime.config import ServerConfig
from modelops_runtime.dataplane import DataPlane
from modelops_runtime.http import app as http_app
from modelops_runtime.http import limits
from modelops_runtime.options import ServerOptions
from modelops_runtime.registry import Registry


def create_app(config: ServerConfig, options: ServerOptions, config_dir: Path,
               registry: Registry | None = None,
               on_enqueue: Callable[[str], None] | None = None) -> Starlette:
    """The server as an ASGI app whose lifespan also runs gRPC (when its port is set);
    pass a registry that is already loading to overlap loading with start-up, and
    `on_enqueue` to hear of every request queued (by model name)."""
    plane = DataPlane(config, options,
                      registry or Registry(config, options.shared_root, config_dir))
    token = options.auth_token.get_secret_value() if options.auth_token else None
    link = front = runner = None
    if options.broker_url is None and any(m.relay for m in config.models):
        raise ValueError("models that sleep are reached through their queues: set "
                         "MODELOPS_BROKER_URL")
    if options.broker_url is not None:  # aio-pika: only if used
        from modelops_runtime.amqp.front import Front
        from modelops_runtime.amqp.link import BrokerLink
        from modelops_runtime.amqp.runner import Runner
        from modelops_runtime.results import ResultStore

        store = ResultStore(options.shared_root)
        link = BrokerLink(options.broker_url.get_secret_value(), options.broker_declares)
        front, runner = Front(plane, link, store), Runner(plane, link, store)
        if on_enqueue is not None:
            front.on_enqueue.append(on_enqueue)
        if any(m.relay for m in config.models):  # it answers them only through the broker
            plane.ready_when.append(lambda: link.up)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        plane.start()
        if link is not None:
            link.start()
        grpc_server = None
        if options.grpc_port:
            from modelops_runtime.grpc.servicer import create_server  # grpcio: only if used

            relay = None
            if front is not None:
                from modelops_runtime.amqp import grpc_door

                relay = grpc_door.relay(front)
            grpc_server = create_server(plane, options.host, options.grpc_port, token,
                                        options.max_body_bytes, relay)
            if front is not None:  # asynchronous requests over gRPC too
                grpc_door.add_to(grpc_server, plane, token, front)
            await grpc_server.start()
        yield
        if grpc_server is not None:  # HTTP has drained; let gRPC's in-flight calls finish
            await grpc_server.stop(grace=options.drain_seconds)
        if runner is not None and link is not None:  # and the queues' messages in hand
            await runner.stop(grace=options.drain_seconds)
            await link.close()
        plane.stop()

    return http_app.create_app(plane, token, lifespan, front)


class _DrainingServer(uvicorn.Server):
    """Stops reporting ready the moment SIGTERM arrives, then lets uvicorn drain."""

    def __init__(self, config: uvicorn.Config, plane: DataPlane):
        super().__init__(config)
        self.plane = plane

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self.plane.draining = True
        super().handle_exit(sig, frame)

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        """Like uvicorn's, minus re-raising the signal at the end: a clean drain exits 0."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {sig: signal.signal(sig, self.handle_exit)
                    for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def run(config: ServerConfig, options: ServerOptions, config_dir: Path,
        registry: Registry | None = None,
        on_enqueue: Callable[[str], None] | None = None) -> None:
    app = create_app(config, options, config_dir, registry, on_enqueue)
    uv = uvicorn.Config(app, host=options.host, port=options.port, loop="uvloop",
                        http=limits.configured(options.max_header_bytes,
                                               options.header_timeout_seconds),
                        access_log=False, log_level="warning",
                        timeout_graceful_shutdown=math.ceil(options.drain_seconds),
                        limit_concurrency=None, server_header=False)
    _DrainingServer(uv, app.state.modelops).run()
