"""The broker's objects for one model version, named and declared one way for the front
door and the runner (and, in the cluster, generated as the Topology Operator's Queue and
Policy with the same arguments).

A version's requests wait in the quorum queue `modelops.<model>.<version>`. A message the
broker gives up on (its server died mid-request `maxAttempts` times, or it expired
unstarted) moves to `<queue>.dead`, at least once, with the reason in its headers. Past
`maxQueued` waiting requests the broker refuses a publish, which the front door answers
with 503.
"""

from __future__ import annotations

import sys

import aio_pika
import aiormq

from modelops_runtime.config import AsyncConfig

RESULTS_EXCHANGE = "modelops.results"
"""A topic exchange: every final result is announced as `<model>.<version>.<status>`."""


def queue_name(model: str, version: str) -> str:
    return f"modelops.{model}.{version}"


def dead_name(model: str, version: str) -> str:
    return f"{queue_name(model, version)}.dead"


def arguments(model: str, version: str, config: AsyncConfig) -> dict[str, object]:
    """The queue's arguments. A redelivery counts toward the limit, so the limit is the
    attempts after the first."""
    return {"x-queue-type": "quorum", "x-delivery-limit": config.maxAttempts - 1,
            "x-dead-letter-exchange": "", "x-dead-letter-routing-key": dead_name(model, version),
            "x-dead-letter-strategy": "at-least-once", "x-overflow": "reject-publish",
            "x-max-length": config.maxQueued}


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
