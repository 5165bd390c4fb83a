"""Prediction logs: JSON lines on the shared volume, written off the request path.

Requests append records to a bounded deque and never wait: when it is full the
record is dropped and counted. The writer thread wakes on a short timer rather than
per record (a wake-up per request made the two threads trade the GIL on every
request), and serialises what accumulated in one batch into
`<dir>/<server>/<date>/<host>-<pid>-<seq>.jsonl.open`; when that file reaches the
size or age limit (or the server stops) it is flushed, fsynced and renamed to
`.jsonl`. A reader (the compactor) takes only `.jsonl` files, so it only ever sees
complete files.

Nothing accepted is lost to one bad record or a crash:
- The writer serialises record by record; one it cannot write is counted by reason
  (`modelops_prediction_log_unwritable_total`) and the rest go on. A failing disk is
  retried, and `modelops_prediction_log_writer_up` drops to 0 (an alert) meanwhile.
- Every batch reaches the file within FLUSH_SECONDS (kill -9 loses at most what was
  queued in that time), and is fsynced at least every SYNC_SECONDS (a node crash loses at
  most that much).
- The open file carries an exclusive flock, which dies with its process. `recover()`
  (run by the server at start and by the compactor) closes every `.open` file no live
  writer holds: it keeps every complete line, drops a torn last one, and renames it
  `.jsonl`. flock works across the nodes of an NFS volume (Linux maps it to NFS locks).
"""

from __future__ import annotations

import collections
import contextlib
import fcntl
import io
import os
import socket
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import orjson

from modelops_runtime import metrics
from modelops_runtime.records import CLOSED_SUFFIX, OPEN_SUFFIX, PredictionRecord

FLUSH_SECONDS = 0.05  # how often the writer drains what requests appended
SYNC_SECONDS = 1.0  # the most a node crash can lose of what reached the file


_OPTIONS = orjson.OPT_SERIALIZE_NUMPY


def recover(directory: Path, mine: Callable[[Path], bool] = lambda path: True) -> int:
    """Close the `.open` files under `directory` that no live writer holds (and that
    `mine` picks: a compactor worker's share): keep their complete lines, drop a torn last
    one, rename them `.jsonl`. Returns how many."""
    recovered = 0
    for path in sorted(directory.rglob(f"*{OPEN_SUFFIX}")):
        if not mine(path):
            continue
        try:
            handle = open(path, "r+b")
        except FileNotFoundError:  # closed by its writer meanwhile
            continue
        with handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # a live writer holds it
            data = handle.read()
            complete = data.rfind(b"\n") + 1
            if complete < len(data):
                handle.truncate(complete)
            handle.flush()
            os.fsync(handle.fileno())
            if complete:
                os.replace(path, path.with_name(path.name[:-len(OPEN_SUFFIX)] + CLOSED_SUFFIX))
            else:
                path.unlink()
            recovered += 1
    return recovered


class PredictionLog:
    def __init__(self, directory: Path, server: str, rotate_bytes: int, rotate_seconds: float,
                 queue_size: int):
        self.directory = directory / server
        self.rotate_bytes = rotate_bytes
        self.rotate_seconds = rotate_seconds
        self.pending: collections.deque[PredictionRecord] = collections.deque()
        self.limit = queue_size
        self.stopping = threading.Event()
        self.prefix = f"{socket.gethostname()}-{os.getpid()}"
        self.sequence = 0
        self.handle: io.FileIO | None = None
        self.path: Path | None = None
        self.opened = 0.0
        self.synced = 0.0
        self.size = 0
        self.healthy = True
        self.unwritten = b""  # lines a failed write still owes the file
        self.thread = threading.Thread(target=self._run, name="prediction-log", daemon=True)

    def start(self) -> None:
        recover(self.directory)  # what a crashed predecessor left open
        metrics.LOG_WRITER_UP.set_function(lambda: float(self.healthy and self.thread.is_alive()))
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

    def _open(self) -> io.FileIO:
        day = time.strftime("%Y-%m-%d", time.gmtime())
        folder = self.directory / day
        folder.mkdir(parents=True, exist_ok=True)
        self.sequence += 1
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
        self.path = folder / f"{self.prefix}-{stamp}-{self.sequence:06d}{OPEN_SUFFIX}"
        # Made under another name and locked before it is named .open, so recover() never
        # sees an .open file that no writer holds while its writer lives.
        making = self.path.with_name(self.path.name + ".new")
        handle = self.handle = open(making, "ab", buffering=0)  # each batch: one write() call
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)  # held until it is renamed
        os.replace(making, self.path)
        self.opened = self.synced = time.monotonic()
        self.size = 0
        return handle

    def _rotate(self) -> None:
        if self.handle is None or self.path is None:
            return
        self.handle.flush()
        os.fsync(self.handle.fileno())
        # Renamed while the lock is held, so recover() can never take it half-way.
        os.replace(self.path, self.path.with_name(self.path.name[:-len(OPEN_SUFFIX)]
                                                  + CLOSED_SUFFIX))
        self.handle.close()
        self.handle, self.path = None, None

    def _encode(self, batch: list[PredictionRecord]) -> bytes:
        """The batch as JSON lines; a record that cannot be one is counted and left out."""
        try:
            return b"".join(orjson.dumps(r, option=_OPTIONS) + b"\n" for r in batch)
        except (orjson.JSONEncodeError, TypeError):
            lines = []
            for record in batch:
                try:
                    lines.append(orjson.dumps(record, option=_OPTIONS) + b"\n")
                except (orjson.JSONEncodeError, TypeError) as exc:
                    reason = "too_deep" if "recursion" in str(exc).lower() else "not_json"
                    metrics.LOG_UNWRITABLE.labels(reason).inc()
            return b"".join(lines)

    def _write(self, data: bytes) -> None:
        """Append whole lines to the open file: in the kernel at once, so kill -9 keeps
        them. A failed write (disk full, volume gone) leaves no part of them behind: the
        lines wait for the next try, in a new file, neither lost nor written twice."""
        if not data:
            return
        handle = self.handle or self._open()
        fd = handle.fileno()
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
        except OSError:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, self.size)
                handle.close()
            self.handle, self.path = None, None
            self.unwritten = data + self.unwritten
            raise
        self.size += len(data)
        metrics.LOG_WRITTEN.inc(data.count(b"\n"))

    def _drain(self) -> None:
        batch: list[PredictionRecord] = []
        pending = self.pending
        while pending:
            batch.append(pending.popleft())
        if batch:
            self._write(self._encode(batch))
        metrics.LOG_QUEUE.set(len(pending))
        now = time.monotonic()
        if self.handle is not None and (self.size >= self.rotate_bytes
                                        or now - self.opened >= self.rotate_seconds):
            self._rotate()
        elif self.handle is not None and now - self.synced >= SYNC_SECONDS:
            os.fsync(self.handle.fileno())
            self.synced = now

    def _run(self) -> None:
        while True:
            stopping = self.stopping.wait(FLUSH_SECONDS)
            try:
                if self.unwritten:
                    data, self.unwritten = self.unwritten, b""
                    self._write(data)
                self._drain()
                if stopping:
                    self._rotate()
                    return
                self.healthy = True
            except Exception as exc:  # the writer never dies: it reports and retries
                if self.healthy:
                    print(f"modelops server: prediction log: {type(exc).__name__}: {exc}; "
                          f"retrying", file=sys.stderr, flush=True)
                self.healthy = False
                if stopping:
                    return
                time.sleep(1.0)
