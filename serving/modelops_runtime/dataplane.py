"""The data plane: what serving a request means, whatever transport carried it.

Admission (the model's concurrency limit), scheduling (inline on the event loop for a
model whose calls take under 2 ms on average, where a thread hop would cost more than
the prediction; a worker thread otherwise, so a slow model never blocks health checks
or the other models of a pool), metrics and the prediction record all live here. A
transport (endpoints.py for HTTP) parses its own framing, calls these methods and
turns a ProtocolError into its own error reply, so every transport behaves alike.
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
import sys
import time
import traceback
from typing import Any, Awaitable, Callable

import numpy as np
from starlette.concurrency import run_in_threadpool

from modelops_runtime import __version__, metrics
from modelops_runtime.config import ServerConfig
from modelops_runtime.options import ServerOptions
from modelops_runtime.predlog import PredictionLog
from modelops_runtime.protocol import ProtocolError, as_logged, encode_tensor, \
    requested_outputs
from modelops_runtime.records import PredictionRecord
from modelops_runtime.registry import Loaded, Registry
from modelops_runtime.watch import DatasetWatcher

SERVER_NAME = "modelops"
EXTENSIONS = ["model_repository", "binary_tensor_data"]


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
        self.draining = False

    # -- lifecycle -------------------------------------------------------------------
    def start(self) -> None:
        if self.log:
            self.log.start()
        self.registry.start_loading()
        self.watcher.start()

    def stop(self) -> None:
        """Stop taking traffic, and flush the prediction logs."""
        self.draining = True
        self.watcher.stop()
        if self.log:
            self.log.close()

    # -- health and metadata ------------------------------------------------------------
    def ready(self) -> bool:
        return self.registry.ready() and not self.draining

    def server_metadata(self) -> dict:
        return {"name": SERVER_NAME, "version": __version__, "extensions": EXTENSIONS}

    def model_metadata(self, name: str, version: str | None) -> dict:
        served, loaded = self.registry.pick(name, version)
        return {"name": name, "versions": [v.name for v in served.config.versions],
                "platform": served.config.runtime, **loaded.model.metadata()}

    def model_ready(self, name: str, version: str | None) -> bool:
        served = self.registry.served(name)
        if version is not None and version not in {v.name for v in served.config.versions}:
            raise ProtocolError(f"model {name!r} has no version {version!r}", 404)
        return version in served.versions if version else served.state == "ready"

    # -- inference -----------------------------------------------------------------------
    async def infer(self, name: str, version: str | None, request_id: str,
                    read_body: Callable[[], Awaitable[bytes]],
                    decode: Callable[[bytes], tuple[dict, dict[str, np.ndarray]]]
                    ) -> Inference:
        """One infer request, whatever the transport: `decode` turns the body into the
        request and its input arrays (it runs where `predict` runs). The body is read
        only once the model has admitted the request."""
        started = time.perf_counter()
        served, loaded = self.registry.pick(name, version)
        config = served.config
        model_version = loaded.config.name
        if served.in_flight >= config.concurrency:
            metrics.requests(name, model_version, "503").inc()
            raise ProtocolError(f"model {name!r} is at its concurrency limit "
                                f"({config.concurrency}); retry shortly", 503, {"Retry-After": "1"})
        body = await read_body()
        served.in_flight += 1
        gauge = metrics.in_flight(name)
        gauge.inc()
        try:
            if loaded.fast or loaded.probe_due():  # a thread hop costs more than a
                payload, inputs, outputs = _predict(loaded, body, decode, True)  # fast call
            else:
                payload, inputs, outputs = await run_in_threadpool(_predict, loaded, body,
                                                                   decode, False)
        except ProtocolError as exc:
            metrics.requests(name, model_version, str(exc.status)).inc()
            raise
        except Exception as exc:  # the model's own fault: counted, logged once, a JSON 500
            metrics.requests(name, model_version, "500").inc()
            print(f"modelops server: model {name!r} {model_version} failed on request "
                  f"{request_id}: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
            traceback.print_exception(exc, file=sys.stderr)
            raise ProtocolError(f"model {name!r} failed (request id {request_id})", 500) \
                from None
        finally:
            served.in_flight -= 1
            gauge.dec()
        result = Inference(name, model_version, payload.get("id") or request_id,
                           payload.get("parameters"), outputs, payload)
        elapsed = time.perf_counter() - started
        metrics.requests(name, model_version, "200").inc()
        metrics.latency(name, model_version).observe(elapsed)
        log = config.logging
        if self.log and log.enabled and (log.sampleRate >= 1 or random.random() < log.sampleRate):
            self.log.submit(PredictionRecord(
                id=request_id, model=name, version=model_version, dataset=log.dataset,
                ts=time.time(),
                inputs=[as_logged(t, inputs[t["name"]]) for t in payload["inputs"]],
                outputs=result.encoded(), latency_ms=round(elapsed * 1000, 3), status=200))
        return result

    # -- model repository (management) ------------------------------------------------------
    def repository_index(self) -> list[dict]:
        return self.registry.describe()

    async def reload(self, name: str) -> dict:
        """Reload one model atomically; a failed reload keeps the old versions (409)."""
        served = self.registry.served(name)
        await asyncio.to_thread(self.registry.load, name)
        if served.error:
            serving = served.state == "ready"
            what = "still serving the previous versions" if serving else "not serving"
            raise ProtocolError(f"reload of {name!r} failed, {what}: {served.error}",
                                409 if serving else 503)
        return {"name": name, "state": served.state, "versions": sorted(served.versions)}


@dataclasses.dataclass
class Inference:
    """What a model answered, for a transport to encode."""

    model: str
    version: str
    id: str
    parameters: dict | None
    outputs: dict[str, np.ndarray]
    request: dict  # as decoded: which outputs it wants, and how
    _encoded: list[dict[str, Any]] | None = None

    def encoded(self) -> list[dict[str, Any]]:
        """The outputs as v2 JSON tensors (numpy data, which orjson writes)."""
        if self._encoded is None:
            self._encoded = [encode_tensor(n, a) for n, a in self.outputs.items()]
        return self._encoded


def _predict(loaded: Loaded, body: bytes, decode: Callable, inline: bool
             ) -> tuple[dict, dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Decode, check, predict: the whole CPU-bound part, timed to choose where it runs."""
    started = time.perf_counter()
    payload, inputs = decode(body)
    inputs = loaded.signature.check(loaded.model.name, inputs)
    results = loaded.model.infer(inputs, requested_outputs(payload))
    outputs = {name: np.asarray(array) for name, array in results.items()}
    loaded.observe(time.perf_counter() - started, inline)
    return payload, inputs, outputs
