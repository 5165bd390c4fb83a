"""Declaring a version's queues and the results exchange, where the server may: locally
and in tests. In the cluster the Messaging Topology Operator makes them (with a Policy
for the limits) and the server's broker user may not declare."""

from __future__ import annotations

import sys

import aio_pika
import aiormq

from modelops_runtime.config import AsyncConfig
from modelops_runtime.queues import RESULTS_EXCHANGE, arguments, dead_name, queue_name


async def declare(connection: aio_pika.abc.AbstractRobustConnection, model: str, version: str,
                  config: AsyncConfig) -> None:
    """Declares the version's queues (the same call from every process is a no-op). A queue
    declared before with other arguments is used as it is, with a warning: its arguments
    cannot change, and in the cluster a Policy carries the limits."""
    channel = await connection.channel()
    try:
        await channel.declare_queue(dead_name(model, version), durable=True,
                                    arguments={"x-queue-type": "quorum"})
        await channel.declare_exchange(RESULTS_EXCHANGE, aio_pika.ExchangeType.TOPIC,
                                       durable=True)
        await channel.declare_queue(queue_name(model, version), durable=True,
                                    arguments=arguments(model, version, config))
    except aiormq.exceptions.ChannelPreconditionFailed as exc:
        print(f"modelops server: queue {queue_name(model, version)} exists with other "
              f"arguments; using it as it is ({exc})", file=sys.stderr, flush=True)
    finally:
        if not channel.is_closed:
            await channel.close()
