"""The data plane: what serving a request means, whatever transport carried it.

Admission (the model's concurrency limit), the checks against the declared tensors,
scheduling (inline or on a worker thread: scheduling.py), metrics and the prediction
record all live here. A transport (http/, grpc/) decodes its own framing into an
`InferRequest` (inference.py), calls these methods, and maps the error kinds they raise
(errors.py) to its own statuses, so every transport behaves alike.
"""

from __future__ import annotations

import asyncio
import random
import sys
import time
import traceback
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
from prometheus_client import Gauge

from modelops_runtime import __version__, batching, metrics
from modelops_runtime.config import ServerConfig
from modelops_runtime.demand import Demand
from modelops_runtime.errors import Conflict, ModelFailed, NotFound, ServingError, Unavailable
from modelops_runtime.inference import InferRequest, InferResponse
from modelops_runtime.options import ServerOptions
from modelops_runtime.predlog import PredictionLog
from modelops_runtime.records import PredictionRecord
from modelops_runtime.registry import LoadedVersion, Registry, ServedModel
from modelops_runtime.watch import DatasetWatcher

SERVER_NAME = "modelops"
EXTENSIONS = ["model_repository", "binary_tensor_data"]
WORKER_THREADS = 40  # slow models' calls at once, over all models (anyio's default too)


class DataPlane:
    """One per server process: the registry of models and everything around a prediction."""

    def __init__(self, config: ServerConfig, options: ServerOptions, registry: Registry):
        self.config = config
        self.options = options
        self.registry = registry
        logging_on = any(m.logging.enabled for m in config.models)
        self.log = PredictionLog(options.logs, config.server, options.log_rotate_bytes,
                                 options.log_rotate_seconds, options.log_queue_size) \
            if logging_on else None
        self.watcher = DatasetWatcher(registry, options.dataset_poll_seconds)
        self.workers = ThreadPoolExecutor(WORKER_THREADS, thread_name_prefix="predict")
        self.draining = False
        self.demand = Demand(registry, config.onDemand, config.memoryBytes) \
            if config.onDemand is not None and config.memoryBytes else None
        self._sweeper: asyncio.Task[None] | None = None
        self.ready_when: list[Callable[[], bool]] = []
        """More conditions of readiness (a front door of sleeping models: its broker)."""

    # -- lifecycle -------------------------------------------------------------------
    def start(self) -> None:
        if self.log:
            self.log.start()
        self.registry.start_loading()
        self.watcher.start()
        if self.demand is not None:  # called on the running loop (the server's lifespan)
            self._sweeper = asyncio.get_running_loop().create_task(self.demand.sweep_idle())

    def stop(self) -> None:
        """Stop taking traffic, and flush the prediction logs."""
        self.draining = True
        self.watcher.stop()
        self.workers.shutdown(wait=False)
        if self.demand is not None:
            self.demand.stop()
            if self._sweeper is not None:
                self._sweeper.cancel()
        if self.log:
            self.log.close()

    # -- health and metadata ------------------------------------------------------------
    def ready(self) -> bool:
        return self.registry.ready() and not self.draining and all(
            check() for check in self.ready_when)

    def server_metadata(self) -> dict[str, Any]:
        return {"name": SERVER_NAME, "version": __version__, "extensions": EXTENSIONS}

    def model_metadata(self, name: str, version: str | None) -> dict[str, Any]:
        served = self.registry.served(name)
        if served.config.relay is not None or self._waits_for_demand(served):
            served.version_name(version)  # not loaded here now: what its spec declares
            return {"name": name, "versions": [v.name for v in served.config.versions],
                    "platform": served.config.runtime,
                    "inputs": [t.model_dump() for t in served.config.inputs],
                    "outputs": [t.model_dump() for t in served.config.outputs]}
        served, loaded = self.registry.pick(name, version)
        return {"name": name, "versions": [v.name for v in served.config.versions],
                "platform": served.config.runtime, **loaded.model.metadata()}

    def model_ready(self, name: str, version: str | None) -> bool:
        served = self.registry.served(name)
        if version is not None and version not in {v.name for v in served.config.versions}:
            raise NotFound(f"model {name!r} has no version {version!r}")
        if served.config.relay is not None or self._waits_for_demand(served):
            return not self.draining  # a request wakes or loads it: ready to take one
        return version in served.versions if version else served.state == "ready"

    def _waits_for_demand(self, served: ServedModel) -> bool:
        """A pool member on demand, not loaded now (and not broken)."""
        return self.demand is not None and not served.versions and served.state != "failed"

    def wakefulness(self, name: str) -> str | None:
        """A model that sleeps: `asleep`, `waking` or `ready`; None for any other."""
        served = self.registry.models.get(name)
        return served.state if served is not None and served.config.relay else None

    def relayed(self, name: str) -> bool:
        """Whether this server hands the model's requests to its queue (it sleeps)."""
        served = self.registry.models.get(name)
        return served is not None and served.config.relay is not None

    # -- inference -----------------------------------------------------------------------
    async def infer(self, request: InferRequest) -> InferResponse:
        """One infer request, whatever the transport that decoded it."""
        started = time.perf_counter()
        name = request.model
        served, loaded = await self._pick(name, request.version)
        config = served.config
        version = loaded.config.name
        if served.in_flight >= config.concurrency:
            metrics.requests(name, version, Unavailable.code).inc()
            raise Unavailable(f"model {name!r} is at its concurrency limit "
                              f"({config.concurrency}); retry shortly", retry_after=1)
        served.in_flight += 1
        gauge = metrics.in_flight(name)
        gauge.inc()
        held = True  # this call still owes the release of its slot
        try:
            batcher = self._batcher(served, loaded)
            if batcher is not None:
                inputs = loaded.signature.check(loaded.model.name, request.arrays())
                running = batcher.submit(inputs, request.output_names())
            elif loaded.timing.inline():  # a thread hop costs more than a fast call
                running = None
                outputs = _predict(loaded, request, True)
            else:
                running = asyncio.get_running_loop().run_in_executor(
                    self.workers, _predict, loaded, request, False)
            if running is not None:
                try:
                    outputs = await asyncio.shield(running)
                except asyncio.CancelledError:
                    # The client went away, but its prediction runs on: it keeps its slot
                    # (and the in-flight gauge) until the worker thread is done.
                    held = False
                    running.add_done_callback(lambda done: _release(served, gauge, done))
                    raise
        except ServingError as exc:
            metrics.requests(name, version, exc.code).inc()
            raise
        except Exception as exc:  # the model's own fault: counted, logged once
            metrics.requests(name, version, ModelFailed.code).inc()
            print(f"modelops server: model {name!r} {version} failed on request "
                  f"{request.request_id}: {type(exc).__name__}: {exc}", file=sys.stderr,
                  flush=True)
            traceback.print_exception(exc, file=sys.stderr)
            raise ModelFailed(f"model {name!r} failed (request id {request.request_id})") \
                from None
        finally:
            if held:
                _release(served, gauge)
        response = InferResponse(name, version, request.id or request.request_id,
                                 request.parameters, outputs)
        elapsed = time.perf_counter() - started
        metrics.requests(name, version, "200").inc()
        metrics.latency(name, version).observe(elapsed)
        log = config.logging
        if self.log and log.enabled and (log.sampleRate >= 1 or random.random() < log.sampleRate):
            self.log.submit(PredictionRecord(
                id=request.request_id, model=name, version=version, dataset=log.dataset,
                ts=time.time(), inputs=[tensor.logged() for tensor in request.inputs],
                outputs=response.output_values(), latency_ms=round(elapsed * 1000, 3),
                status=200))
        return response

    def _batcher(self, served: ServedModel, loaded: LoadedVersion) -> batching.Batcher | None:
        """The version's batcher (made on its first request), while its requests may share
        a call."""
        if loaded.batcher is None:
            loaded.batcher = batching.Batcher(loaded, served.config.batching, self.workers,
                                              served.config.name)
        return loaded.batcher if loaded.batcher.on else None

    async def _pick(self, name: str, version: str | None) -> tuple[ServedModel, LoadedVersion]:
        """The version to serve; a pool member on demand loads first (and again, should
        room for another have unloaded it in the meantime)."""
        if self.demand is None:
            return self.registry.pick(name, version)
        for _ in range(3):
            await self.demand.ensure(name)
            served = self.registry.served(name)
            if served.versions or served.state == "failed":
                break
        return self.registry.pick(name, version)

    def refused(self, name: str, version: str | None, error: ServingError) -> ServingError:
        """A request its transport could not read or decode: counted against the model
        it names, like every other answer. An unknown or unready model is that error
        instead, as it would have been had the body been fine."""
        served = self.registry.served(name)
        if self._waits_for_demand(served):  # not worth loading for a bad request
            metrics.requests(name, served.version_name(version), error.code).inc()
            return error
        _, loaded = self.registry.pick(name, version)
        metrics.requests(name, loaded.config.name, error.code).inc()
        return error

    # -- model repository (management) ------------------------------------------------------
    def repository_index(self) -> list[dict[str, Any]]:
        return self.registry.describe()

    async def reload(self, name: str) -> dict[str, Any]:
        """Reload one model atomically; a failed reload keeps the old versions (409)."""
        served = self.registry.served(name)
        await asyncio.to_thread(self.registry.load, name)
        if served.error:
            serving = served.state == "ready"
            what = "still serving the previous versions" if serving else "not serving"
            kind = Conflict if serving else Unavailable
            raise kind(f"reload of {name!r} failed, {what}: {served.error}")
        return {"name": name, "state": served.state, "versions": sorted(served.versions)}


def _release(served: ServedModel, gauge: Gauge,
             done: asyncio.Future[Any] | None = None) -> None:
    """A call is over: its slot under the model's concurrency limit is free again."""
    served.in_flight -= 1
    gauge.dec()
    if done is not None and not done.cancelled():
        done.exception()  # retrieved: a late failure has no client left to tell


def _predict(loaded: LoadedVersion, request: InferRequest, inline: bool
             ) -> dict[str, np.ndarray[Any, Any]]:
    """Check and predict: the CPU-bound part, timed to choose where the next call runs."""
    started = time.perf_counter()
    inputs = loaded.signature.check(loaded.model.name, request.arrays())
    outputs = batching.predict(loaded.model, inputs, request.output_names())
    loaded.timing.observe(time.perf_counter() - started, inline)
    return outputs
