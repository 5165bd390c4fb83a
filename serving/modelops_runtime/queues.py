"""The broker's objects for one model version, named and shaped in one place: the server
declares them locally, and the generator makes them in the cluster (the Messaging
Topology Operator's Queue and Policy) from the same names and limits.

A version's requests wait in the quorum queue `modelops.<model>.<version>`. A message the
broker gives up on (its server died mid-request `maxAttempts` times, or it expired
unstarted) moves to `<queue>.dead`, at least once, with the reason in its headers. Past
`maxQueued` waiting requests the broker refuses a publish, which the front door answers
with 503.
"""

from __future__ import annotations

import re

from modelops_runtime.config import AsyncConfig

RESULTS_EXCHANGE = "modelops.results"
"""A topic exchange: every final result is announced as `<model>.<version>.<status>`."""


def queue_name(model: str, version: str) -> str:
    return f"modelops.{model}.{version}"


def dead_name(model: str, version: str) -> str:
    return f"{queue_name(model, version)}.dead"


PROTOBUF_REQUEST = "application/vnd.modelops.infer-request+protobuf"
"""A message submitted over gRPC: a serialized ModelInferRequest (HTTP's are the request's
own JSON or binary body)."""
PROTOBUF_RESPONSE = "application/vnd.modelops.infer-response+protobuf"
"""Its result: a serialized ModelInferResponse, fetched over gRPC."""

REPLIES = "modelops.replies."
"""Each front door's own reply queue (exclusive: only its connection may consume it),
where runners answer the requests sent with `Prefer: respond-async, wait=N`."""


def reply_name(unique: str) -> str:
    return REPLIES + unique


def limits(model: str, version: str, config: AsyncConfig) -> dict[str, object]:
    """The queue's limits, as policy keys. A redelivery counts toward the delivery limit,
    so the limit is the attempts after the first."""
    return {"delivery-limit": config.maxAttempts - 1, "dead-letter-exchange": "",
            "dead-letter-routing-key": dead_name(model, version),
            "dead-letter-strategy": "at-least-once", "overflow": "reject-publish",
            "max-length": config.maxQueued}


def describe(config: AsyncConfig) -> str:
    """A version's limits in one line (the plan, the catalog)."""
    return (f"{config.maxAttempts} attempts, at most {config.maxQueued} waiting, "
            f"{config.timeoutSeconds} s to start")


def arguments(model: str, version: str, config: AsyncConfig) -> dict[str, object]:
    """The same limits as arguments of a queue declared by the server itself (locally,
    where no Policy is made): fixed for the queue's life, unlike a Policy's."""
    return {"x-queue-type": "quorum",
            **{f"x-{key}": value for key, value in limits(model, version, config).items()}}


def pattern(*names: str, prefix: str | None = None) -> str:
    """A regular expression (a Policy's or a Permission's) that matches exactly these
    names, and any name that starts with `prefix`."""
    parts = [re.escape(name) for name in names] + ([re.escape(prefix) + ".*"] if prefix else [])
    return "^(" + "|".join(parts) + ")$"
