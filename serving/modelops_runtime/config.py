"""server.yaml: what the generator tells a server to serve (the generator-server contract).

`modelops generate` writes it from the specs with these very classes, and the
server reads it with them, so the two cannot disagree.
"""

from __future__ import annotations

import typing
from typing import Literal

from pydantic import Field, model_validator

from modelops_runtime.configfile import ConfigFile, Strict

Runtime = Literal["sklearn", "onnx", "python", "custom"]
"""Every runtime a model may name: the one list (the spec, the CLI and the server read it).
This server serves all but `custom`, whose own image implements the same protocol."""
RUNTIMES: tuple[str, ...] = typing.get_args(Runtime)
LOADS_ARTIFACT = ("sklearn", "onnx")
"""Runtimes that cannot serve without an artifact file."""
VERSION_HEADER = "x-model-version"
"""gRPC metadata that pins a version, as the path does over HTTP: the generated routes send
it to that version's server, and a front door (which serves every version) reads it."""



class VersionConfig(Strict):
    name: str
    artifact: str | None = None  # pvc://<path on the shared volume> or file:///<path>
    sha256: str | None = None
    weight: int = 100


class LoggingConfig(Strict):
    enabled: bool = False
    sampleRate: float = 1.0
    dataset: str


class DatasetConfig(Strict):
    name: str
    path: str  # relative to the shared volume


class TensorConfig(Strict):
    name: str
    datatype: str
    shape: list[int]  # -1: any size


class AsyncConfig(Strict):
    """Requests handed in through a queue and fetched later: a client sends the ordinary
    infer request with `Prefer: respond-async`, gets 202 and a `Location`, and comes back."""

    maxAttempts: int = Field(default=3, ge=1, le=20)
    """Deliveries in all before a request fails for good: the model raised, or its server
    died mid-request. Bad input is never retried."""
    timeoutSeconds: int = Field(default=600, ge=1, le=86_400)
    """From submit: a request not started by then ends `expired`."""
    maxQueued: int = Field(default=10_000, ge=1, le=1_000_000)
    """Requests waiting at most; past it a submit gets 503 with Retry-After."""
    prefetch: int = Field(default=1, ge=1, le=1024)
    """Requests one replica takes from the queue at once (at most `concurrency`)."""
    resultRetentionHours: int = Field(default=24, ge=1, le=720)
    """How long a result can be fetched; after that, 404."""


class BatchingConfig(Strict):
    """Concurrent requests for one version, predicted in one call: they are stacked along
    the first axis (rows) and the answer is split back, so each keeps its own id, errors,
    metrics and prediction record. Off for a model whose `predict` is not row-wise (its
    answer for a row depends on the other rows)."""

    enabled: bool = True
    """Off: each request is predicted alone (a python model whose answer for a row depends
    on the other rows it is given, such as one that normalises over the batch)."""
    maxBatchSize: int = Field(default=64, ge=1, le=65_536)
    """Rows in one call at most; a request that would overflow it goes into the next
    call, and one with more rows than this runs alone."""
    maxWaitMs: float = Field(default=2.0, ge=0.05, le=1000)
    """How long the first request of a call waits for others at most (Triton's queue
    delay); under steady load a call goes as soon as it holds what the last wait did."""


class RelayConfig(Strict):
    """The model sleeps: this server never loads it, and hands each request to the model's
    own servers through its queue; they run only while there is work (KEDA in the
    cluster, `modelops serve --scale-to-zero` here)."""

    wakeSeconds: int = Field(default=30, ge=1, le=600)
    """A synchronous request waits this long for the model to wake and answer; past it,
    503 with Retry-After (and the request, not started, is dropped)."""


class ModelConfig(Strict):
    name: str
    runtime: Runtime
    concurrency: int = 16
    versions: list[VersionConfig] = Field(min_length=1)
    logging: LoggingConfig
    datasets: list[DatasetConfig] = Field(default_factory=list)
    code: str | None = None  # the python model's file, relative to the config file
    inputs: list[TensorConfig] = Field(default_factory=list)
    """The tensors the spec declares (or its example shows), for a model whose runtime
    cannot tell them itself."""
    outputs: list[TensorConfig] = Field(default_factory=list)
    asynchronous: AsyncConfig | None = None
    """Its versions also take requests from their queues (the spec's `async`)."""
    batching: BatchingConfig = Field(default_factory=BatchingConfig)
    relay: RelayConfig | None = None
    """Set on the always-on front door of a model that sleeps (needs `asynchronous`)."""

    @model_validator(mode="after")
    def _relay_through_its_queue(self) -> ModelConfig:
        if self.relay is not None and self.asynchronous is None:
            raise ValueError(f"model {self.name!r}: a relayed model needs `asynchronous`: "
                             "its queue is how requests reach it")
        return self


class OnDemandConfig(Strict):
    """A pool whose members load on their first request, rather than all at start, and
    give way to one another when its memory is short (least recently used first)."""

    unloadAfterIdleSeconds: int | None = Field(default=None, ge=1, le=2_592_000)
    """A member that served nothing for this long is unloaded; unset: only for room."""
    loadSeconds: int = Field(default=30, ge=1, le=600)
    """A request waits at most this long for its model to load; then 503 with Retry-After
    (the load goes on, for the next request)."""


class ServerConfig(ConfigFile):
    apiVersion: Literal["modelops/v1"] = "modelops/v1"
    kind: Literal["ServerConfig"] = "ServerConfig"
    server: str
    placement: Literal["dedicated", "shared", "local"]
    models: list[ModelConfig]
    onDemand: OnDemandConfig | None = None
    """Set: members load when first asked for (a pool of many models)."""
    memoryBytes: int | None = Field(default=None, ge=1)
    """The pool's memory request: with onDemand, the models loaded are kept under it."""
