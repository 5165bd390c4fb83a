"""The process's one connection to the broker: made in the background and remade by
aio-pika after a drop, so a server starts and serves synchronously while the broker is
down, and its front door answers 503 at once rather than hang."""

from __future__ import annotations

import asyncio
import contextlib
import sys
import traceback
from collections.abc import Awaitable, Callable

import aio_pika
import aiormq

from modelops_runtime import metrics

Connected = Callable[[aio_pika.abc.AbstractRobustConnection], Awaitable[None]]
CONNECT_ERRORS = (OSError, asyncio.TimeoutError, aiormq.exceptions.AMQPError)
BROKER_ERRORS = (*CONNECT_ERRORS, aio_pika.exceptions.ChannelInvalidStateError)
"""What a broker that is down, slow or gone raises: a request gets 503, never a hang."""


class BrokerLink:
    def __init__(self, url: str, declares: bool = True):
        self.url = url
        self.declares = declares
        """Whether this process declares the queues (see ServerOptions.broker_declares)."""
        self.connection: aio_pika.abc.AbstractRobustConnection | None = None
        self.on_connect: list[Connected] = []
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        metrics.register_async()
        metrics.BROKER_UP.set_function(lambda: 1.0 if self.up else 0.0)
        self._task = asyncio.get_running_loop().create_task(self._connect())

    @property
    def up(self) -> bool:
        """Connected now (not while aio-pika is reconnecting)."""
        connection = self.connection
        return connection is not None and not connection.is_closed and \
            connection.connected.is_set()

    async def _connect(self) -> None:
        delay, said = 0.5, False
        while True:
            try:
                self.connection = await aio_pika.connect_robust(self.url, timeout=5)
                break
            except CONNECT_ERRORS as exc:
                if not said:
                    print(f"modelops server: broker unreachable ({exc or type(exc).__name__});"
                          " retrying; asynchronous requests get 503 until then",
                          file=sys.stderr, flush=True)
                    said = True
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10)
        if said:
            print("modelops server: broker connected", file=sys.stderr, flush=True)
        for callback in self.on_connect:
            try:
                await callback(self.connection)
            except Exception:  # noqa: BLE001  # said, not swallowed: async is off then
                print("modelops server: setting up asynchronous inference failed; "
                      "asynchronous requests will not be answered:", file=sys.stderr)
                traceback.print_exc(file=sys.stderr)

    async def close(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
        if self.connection is not None:
            with contextlib.suppress(Exception):  # a broker that is down does not answer
                async with asyncio.timeout(2):
                    await self.connection.close()
