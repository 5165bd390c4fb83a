"""Adaptive batching: concurrent requests for one model version, predicted in one call.

A model's `predict` costs nearly as much for one row as for sixty-four (a tree walks its
nodes once per row, but the call's checks and conversions are paid once per call), so the
data plane gathers requests that arrive together: up to `maxBatchSize` rows, or until the
first has waited `maxWaitMs` (a timer: grpcio's asyncio server hands the loop one call per
turn, so "whatever arrived by the next turn" would hold one call). Requests are stacked
along their first axis, predicted once, and the answer is split back by rows.

Each request was checked against the model's tensors before it joined (a bad one fails
alone, before any batch), and only requests alike in their tensors' datatypes, trailing
shapes and requested outputs share a call. Should a shared call still fail, each of its
requests is predicted alone, so the one that broke it fails by itself and its batch-mates
get their answers. A model whose answer does not have one row per input row is not
row-wise: its batch is predicted request by request, and batching stops for it.

The wait adapts to the load, so that the server does not idle for nothing: a batch is
flushed as soon as it holds as many requests as the last full wait gathered (steady
clients have all sent theirs). Every PROBE_SECONDS one batch waits the full time again, to
learn the load anew. A lone client's request waits for nobody: it goes on the loop's next
turn, with whatever requests that turn brought; when it brought any, a burst has begun and
the next batch waits the full time to learn it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import sys
import time
from collections.abc import Hashable
from concurrent.futures import Executor
from typing import Any

import numpy as np

from modelops_runtime import metrics
from modelops_runtime.config import BatchingConfig

Arrays = dict[str, np.ndarray[Any, Any]]
PROBE_SECONDS = 0.25
"""One batch in this long waits the full time (a lone client at 2,000 requests a second
waits in 1 request of 500). Probing more often cost a fifth of the gRPC throughput."""


@dataclasses.dataclass(slots=True)
class _Entry:
    inputs: Arrays
    rows: int
    future: asyncio.Future[Arrays]


@dataclasses.dataclass(slots=True)
class _Batch:
    key: Hashable
    wanted: list[str] | None
    entries: list[_Entry] = dataclasses.field(default_factory=list)
    rows: int = 0
    probe: bool = False
    """It waits the full time, whatever the last wait gathered."""
    timer: asyncio.Handle | None = None


class NotRowwise(Exception):
    """The model answered a stacked call with other than one row per input row."""


class Batcher:
    """The open batches of one loaded version (one per kind of request), and their calls.

    `loaded` is the registry's LoadedVersion: its model, and the timing that says whether
    a call runs on the loop or on a worker thread (scheduling.py)."""

    def __init__(self, loaded: Any, config: BatchingConfig, workers: Executor,
                 model: str) -> None:
        self.loaded = loaded
        self.max_rows = config.maxBatchSize
        self.wait = config.maxWaitMs / 1000
        self.workers = workers
        # Off in the spec, or a model declared for a fixed number of rows (its first axis
        # is not free): decided once, so a request costs the check no more.
        self.on = config.enabled and all(
            t.shape and t.shape[0] == -1 for t in loaded.signature.inputs)
        self._gathered = 0  # requests the last full wait gathered (0: none yet)
        self._probe_at = 0.0
        self._open: dict[Hashable, _Batch] = {}
        self._sizes = metrics.batch_size(model, loaded.config.name) if self.on else None

    def submit(self, inputs: Arrays, wanted: list[str] | None) -> asyncio.Future[Arrays]:
        """Join (or open) the batch of this request's kind; its future gets this request's
        own outputs, or the error predicting it alone raised."""
        loop = asyncio.get_running_loop()
        entry = _Entry(inputs, _rows(inputs), loop.create_future())
        key = _kind(inputs, wanted)
        if key is None or entry.rows >= self.max_rows:
            self._flush(_Batch(None, wanted, [entry], entry.rows))
            return entry.future
        batch = self._open.get(key)
        if batch is not None and batch.rows + entry.rows > self.max_rows:
            self._flush(batch)  # it would overflow: this request opens the next one
            batch = None
        if batch is None:
            batch = _Batch(key, wanted, probe=time.monotonic() >= self._probe_at)
        batch.entries.append(entry)
        batch.rows += entry.rows
        if batch.rows >= self.max_rows or (
                not batch.probe and 1 < self._gathered <= len(batch.entries)):
            self._flush(batch)
        elif batch.timer is None:
            self._open[key] = batch
            lone = not batch.probe and self._gathered <= 1
            batch.timer = loop.call_soon(self._turned, batch) if lone else \
                loop.call_later(self.wait, self._waited, batch)
        return entry.future

    def _turned(self, batch: _Batch) -> None:
        """A lone client's batch, a loop turn later: requests that came with it mean a
        burst has begun, and the next batch learns how large."""
        if len(batch.entries) > 1:
            self._probe_at = 0.0
        self._flush(batch)

    def _waited(self, batch: _Batch) -> None:
        """The first request's wait is over: flush, and learn how many a wait gathers."""
        if batch.probe:
            self._gathered = len(batch.entries)
            self._probe_at = time.monotonic() + PROBE_SECONDS
        self._flush(batch)

    def _flush(self, batch: _Batch) -> None:
        if batch.timer is not None:
            batch.timer.cancel()
        if self._open.get(batch.key) is batch:
            del self._open[batch.key]
        if self._sizes is not None:
            self._sizes.observe(len(batch.entries))
        if self.loaded.timing.inline():
            _settle(batch, self._call(batch, True))
            return
        loop = asyncio.get_running_loop()
        try:
            running = loop.run_in_executor(self.workers, self._call, batch, False)
        except RuntimeError as exc:  # the workers are shut down: the server is stopping
            _settle(batch, [exc] * len(batch.entries))
            return
        running.add_done_callback(lambda done: _settle(batch, done.result()))

    def _call(self, batch: _Batch, inline: bool) -> list[Arrays | BaseException]:
        """Predict the batch (on the loop or a worker thread): each request's outputs, or
        the exception predicting it alone raised."""
        started = time.perf_counter()
        entries = batch.entries
        outcomes: list[Arrays | BaseException] | None = None
        if len(entries) > 1 and self.on:
            try:
                outcomes = list(self._stacked(entries, batch.wanted))
            except NotRowwise as exc:
                self.on = False
                print(f"modelops server: model {self.loaded.model.name!r} "
                      f"{self.loaded.config.name}: {exc}; batching is off for it (set "
                      f"`batching: {{enabled: false}}` in its spec)", file=sys.stderr,
                      flush=True)
            except Exception:  # noqa: BLE001  # one request broke it: each alone says which
                pass
        if outcomes is None:
            outcomes = [self._alone(entry.inputs, batch.wanted) for entry in entries]
        self.loaded.timing.observe(time.perf_counter() - started, inline)
        return outcomes

    def _stacked(self, entries: list[_Entry], wanted: list[str] | None) -> list[Arrays]:
        names = list(entries[0].inputs)
        stacked = {name: np.concatenate([e.inputs[name] for e in entries]) for name in names}
        total = sum(e.rows for e in entries)
        outputs = predict(self.loaded.model, stacked, wanted)
        for name, array in outputs.items():
            if array.ndim == 0 or array.shape[0] != total:
                raise NotRowwise(f"output {name!r} has shape {list(array.shape)} for "
                                 f"{total} input rows")
        split = []
        start = 0
        for entry in entries:
            end = start + entry.rows
            split.append({name: array[start:end] for name, array in outputs.items()})
            start = end
        return split

    def _alone(self, inputs: Arrays, wanted: list[str] | None) -> Arrays | BaseException:
        try:
            return predict(self.loaded.model, inputs, wanted)
        except Exception as exc:  # noqa: BLE001  # handed to its own request
            return exc


def predict(model: Any, inputs: Arrays, wanted: list[str] | None) -> Arrays:
    """The model's answer to checked inputs, every output an array (whatever `predict`
    returned): one request's, or a batch's."""
    return {name: np.asarray(array) for name, array in model.infer(inputs, wanted).items()}


def _rows(inputs: Arrays) -> int:
    first = next(iter(inputs.values()))
    return first.shape[0] if first.ndim else 1


def _kind(inputs: Arrays, wanted: list[str] | None) -> Hashable | None:
    """What requests must share to be stacked: per input its name, datatype and shape
    past the first axis, and the outputs asked for. None: it cannot be stacked (a scalar,
    or inputs whose row counts differ)."""
    rows = None
    kind: list[Hashable] = [tuple(wanted) if wanted else None]
    for name, array in inputs.items():
        if array.ndim == 0 or (rows is not None and array.shape[0] != rows):
            return None
        rows = array.shape[0]
        kind.append((name, array.dtype.str, array.shape[1:]))
    return tuple(kind)


def _settle(batch: _Batch, outcomes: list[Arrays | BaseException]) -> None:
    for entry, outcome in zip(batch.entries, outcomes, strict=True):
        if entry.future.done():  # its client went away before the answer
            continue
        if isinstance(outcome, BaseException):
            entry.future.set_exception(outcome)
        else:
            entry.future.set_result(outcome)
