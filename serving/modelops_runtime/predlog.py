"""Prediction logs: JSON lines on the shared volume, written off the request path.

Requests append records to a bounded deque and never wait: when it is full the
record is dropped and counted. The writer thread wakes on a short timer rather than
per record (a wake-up per request made the two threads trade the GIL on every
request), and serialises what accumulated in one batch into
`<dir>/<server>/<date>/<host>-<pid>-<seq>.jsonl.open`; when that file reaches the
size or age limit (or the server stops) it is flushed, fsynced and renamed to
`.jsonl`. A reader (the compactor) takes only `.jsonl` files, so it only ever sees
complete files; after a crash only the `.open` file can end in a torn line.
"""

from __future__ import annotations

import collections
import os
import socket
import threading
import time
from pathlib import Path

import orjson

from modelops_runtime import metrics
from modelops_runtime.records import CLOSED_SUFFIX, OPEN_SUFFIX, PredictionRecord

FLUSH_SECONDS = 0.05  # how often the writer drains what requests appended


class PredictionLog:
    def __init__(self, directory: Path, server: str, rotate_bytes: int, rotate_seconds: float,
                 queue_size: int):
        self.directory = directory / server
        self.rotate_bytes = rotate_bytes
        self.rotate_seconds = rotate_seconds
        self.pending: collections.deque = collections.deque()
        self.limit = queue_size
        self.stopping = threading.Event()
        self.prefix = f"{socket.gethostname()}-{os.getpid()}"
        self.sequence = 0
        self.handle = None
        self.path: Path | None = None
        self.opened = 0.0
        self.size = 0
        self.thread = threading.Thread(target=self._run, name="prediction-log", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def submit(self, record: PredictionRecord) -> None:
        """Never blocks the request: a full queue drops the record (and counts it)."""
        if len(self.pending) >= self.limit:
            metrics.LOG_DROPPED.inc()
        else:
            self.pending.append(record)  # atomic; wakes nobody

    def close(self, timeout: float = 10.0) -> None:
        """Write everything queued, close the open file, stop the writer."""
        if self.thread.is_alive():
            self.stopping.set()
            self.thread.join(timeout)

    # -- writer thread -------------------------------------------------------------

    def _open(self) -> None:
        day = time.strftime("%Y-%m-%d", time.gmtime())
        folder = self.directory / day
        folder.mkdir(parents=True, exist_ok=True)
        self.sequence += 1
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
        self.path = folder / f"{self.prefix}-{stamp}-{self.sequence:06d}{OPEN_SUFFIX}"
        self.handle = open(self.path, "ab")
        self.opened, self.size = time.monotonic(), 0

    def _rotate(self) -> None:
        if self.handle is None or self.path is None:
            return
        self.handle.flush()
        os.fsync(self.handle.fileno())
        self.handle.close()
        os.replace(self.path, self.path.with_name(self.path.name[:-len(OPEN_SUFFIX)]
                                                  + CLOSED_SUFFIX))
        self.handle, self.path = None, None

    def _write(self, batch: list[PredictionRecord]) -> None:
        if self.handle is None:
            self._open()
        data = b"".join(orjson.dumps(r, option=orjson.OPT_SERIALIZE_NUMPY) + b"\n"
                        for r in batch)
        self.handle.write(data)
        self.handle.flush()  # complete lines reach the file; fsync waits for rotation
        self.size += len(data)
        metrics.LOG_WRITTEN.inc(len(batch))

    def _drain(self) -> None:
        batch = []
        pending = self.pending
        while pending:
            batch.append(pending.popleft())
        if batch:
            self._write(batch)
        metrics.LOG_QUEUE.set(len(pending))
        if self.handle is not None and (
                self.size >= self.rotate_bytes
                or time.monotonic() - self.opened >= self.rotate_seconds):
            self._rotate()

    def _run(self) -> None:
        while not self.stopping.wait(FLUSH_SECONDS):
            self._drain()
        self._drain()
        self._rotate()
