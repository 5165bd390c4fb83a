"""Run the app under uvicorn: graceful drain on SIGTERM, prediction logs flushed on exit."""

from __future__ import annotations

import contextlib
import signal
import threading
from pathlib import Path

import uvicorn

from modelops_runtime import limits
from modelops_runtime.config import ServerConfig
from modelops_runtime.endpoints import create_app
from modelops_runtime.options import ServerOptions


class _DrainingServer(uvicorn.Server):
    """Stops reporting ready the moment SIGTERM arrives, then lets uvicorn drain."""

    def __init__(self, config: uvicorn.Config, plane):
        super().__init__(config)
        self.plane = plane

    def handle_exit(self, sig, frame) -> None:
        self.plane.draining = True
        super().handle_exit(sig, frame)

    @contextlib.contextmanager
    def capture_signals(self):
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


def run(config: ServerConfig, options: ServerOptions, config_dir: Path, registry=None) -> None:
    app = create_app(config, options, config_dir, registry)
    uv = uvicorn.Config(app, host=options.host, port=options.port, loop="uvloop",
                        http=limits.configured(options.max_header_bytes,
                                               options.header_timeout_seconds),
                        access_log=False, log_level="warning",
                        timeout_graceful_shutdown=options.drain_seconds,
                        limit_concurrency=None, server_header=False)
    _DrainingServer(uv, app.state.modelops).run()
