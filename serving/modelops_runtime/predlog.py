"""Prediction logs: JSON lines on the shared volume, written off the request path.

Requests put records on a bounded queue and never wait: when it is full the record
is dropped and counted. One writer thread serialises records in batches into
`<dir>/<server>/<date>/<host>-<pid>-<seq>.jsonl.open`; when that file reaches the
size or age limit (or the server stops) it is flushed, fsynced and renamed to
`.jsonl`. A reader (the compactor) takes only `.jsonl` files, so it only ever sees
complete files; after a crash only the `.open` file can end in a torn line.
"""

from __future__ import annotations

import os
import queue
import socket
import threading
import time
from pathlib import Path

import orjson

from modelops_runtime import metrics

OPEN_SUFFIX = ".jsonl.open"
CLOSED_SUFFIX = ".jsonl"
_STOP = object()
_BATCH = 512


class PredictionLog:
    def __init__(self, directory: Path, server: str, rotate_bytes: int, rotate_seconds: float,
                 queue_size: int):
        self.directory = directory / server
        self.rotate_bytes = rotate_bytes
        self.rotate_seconds = rotate_seconds
        self.queue: queue.Queue = queue.Queue(maxsize=queue_size)
        self.prefix = f"{socket.gethostname()}-{os.getpid()}"
        self.sequence = 0
        self.handle = None
        self.path: Path | None = None
        self.opened = 0.0
        self.size = 0
        self.thread = threading.Thread(target=self._run, name="prediction-log", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def submit(self, record: dict) -> None:
        """Never blocks the request: a full queue drops the record (and counts it)."""
        try:
            self.queue.put_nowait(record)
        except queue.Full:
            metrics.LOG_DROPPED.inc()

    def close(self, timeout: float = 10.0) -> None:
        """Write everything queued, close the open file, stop the writer."""
        if self.thread.is_alive():
            self.queue.put(_STOP)
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

    def _write(self, batch: list[dict]) -> None:
        if self.handle is None:
            self._open()
        data = b"".join(orjson.dumps(r, option=orjson.OPT_SERIALIZE_NUMPY) + b"\n"
                        for r in batch)
        self.handle.write(data)
        self.handle.flush()  # complete lines reach the file; fsync waits for rotation
        self.size += len(data)
        metrics.LOG_WRITTEN.inc(len(batch))

    def _run(self) -> None:
        stopping = False
        while not stopping:
            wait = None
            if self.handle is not None:
                wait = max(0.0, self.rotate_seconds - (time.monotonic() - self.opened))
            try:
                first = self.queue.get(timeout=wait)
            except queue.Empty:
                self._rotate()  # idle past the age limit
                continue
            batch: list[dict] = []
            item = first
            while True:
                if item is _STOP:
                    stopping = True
                    break
                batch.append(item)
                if len(batch) >= _BATCH:
                    break
                try:
                    item = self.queue.get_nowait()
                except queue.Empty:
                    break
            metrics.LOG_QUEUE.set(self.queue.qsize())
            if batch:
                self._write(batch)
            if self.handle is not None and (
                    self.size >= self.rotate_bytes
                    or time.monotonic() - self.opened >= self.rotate_seconds):
                self._rotate()
        self._rotate()
