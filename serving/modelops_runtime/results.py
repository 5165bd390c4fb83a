"""Asynchronous requests on the shared volume: each one accepted once and answered once.

`<id>.accepted` is written when a front door takes a request; `<id>.result` when a runner
(or the dead-letter consumer) has its final answer. Both are created with O_EXCL-like
semantics (a hard link of a complete, synced file), so a client that submits the same
request id twice, or a message redelivered after a crash, never makes a second one. Any
replica of any server reads them, so a result can be fetched from wherever the gateway
routes the client.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import time
from pathlib import Path

import orjson

from modelops_runtime import identity, volume
from modelops_runtime.errors import InvalidRequest


@dataclasses.dataclass(frozen=True)
class Result:
    status: str
    """How the request ended: done; invalid (refused for its input, never retried); failed
    (on every attempt); expired (not started before its deadline); cancelled (by its
    client)."""
    code: int
    """The HTTP status the synchronous call would have had."""
    body: bytes
    """The synchronous answer's body: the v2 response, or `{"error": ...}`."""
    media_type: str = "application/json"
    header_length: int | None = None
    """Binary outputs: the length of the JSON before them (Inference-Header-Content-Length)."""

    def to_bytes(self) -> bytes:
        """One line of JSON about the result, then its body."""
        return orjson.dumps({"status": self.status, "code": self.code,
                             "mediaType": self.media_type,
                             "headerLength": self.header_length}) + b"\n" + self.body

    @classmethod
    def from_bytes(cls, data: bytes) -> Result:
        head, _, body = data.partition(b"\n")
        meta = orjson.loads(head)
        return cls(meta["status"], meta["code"], body, meta["mediaType"], meta["headerLength"])


@dataclasses.dataclass(frozen=True)
class Accepted:
    version: str
    submitted: float
    deadline: float


class ResultStore:
    def __init__(self, shared_root: Path):
        self.root = shared_root / volume.RESULTS

    def _path(self, model: str, request_id: str, kind: str) -> Path:
        """Where a request's record is. An id becomes a file name, so one that could leave
        the folder (a gRPC Fetch carries any string) is refused here, for every caller."""
        if not identity.VALID_REQUEST_ID.match(request_id) or set(request_id) == {"."}:
            raise InvalidRequest(f"{request_id[:128]!r} is not a request id: 1 to 128 "
                                 "letters, digits and . _ : -")
        return self.root / model / f"{request_id}.{kind}"

    def _create(self, path: Path, data: bytes, durable: bool = True) -> bool:
        """Writes `path` whole, unless it exists: False then (the first one stands).
        `durable`: synced to disk before it appears."""
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.{os.getpid()}.{time.monotonic_ns()}")
        with temporary.open("wb") as handle:
            handle.write(data)
            if durable:
                handle.flush()
                os.fsync(handle.fileno())
        try:
            os.link(temporary, path)
            return True
        except FileExistsError:
            return False
        finally:
            temporary.unlink()

    def accept(self, model: str, request_id: str, version: str, timeout: float) -> bool:
        """Records a submitted request; False when its id was submitted before. Not synced:
        the broker holds the request durably, and the record only tells a GET "queued"
        from "unknown" until the result exists (0.6 ms less on every submit)."""
        now = time.time()
        record = {"version": version, "submitted": now, "deadline": now + timeout}
        return self._create(self._path(model, request_id, "accepted"), orjson.dumps(record),
                            durable=False)

    def accepted(self, model: str, request_id: str) -> Accepted | None:
        try:
            record = orjson.loads(self._path(model, request_id, "accepted").read_bytes())
        except (FileNotFoundError, orjson.JSONDecodeError):
            return None
        return Accepted(record["version"], record["submitted"], record["deadline"])

    def withdraw(self, model: str, request_id: str) -> None:
        """Forgets a submission the broker refused, so the client may submit it again."""
        with contextlib.suppress(FileNotFoundError):
            self._path(model, request_id, "accepted").unlink()

    def answer(self, model: str, request_id: str, result: Result) -> bool:
        """Writes the request's one result; False when it already has one (a redelivery)."""
        return self._create(self._path(model, request_id, "result"), result.to_bytes())

    def result(self, model: str, request_id: str) -> Result | None:
        try:
            data = self._path(model, request_id, "result").read_bytes()
        except FileNotFoundError:
            return None
        return Result.from_bytes(data)

    def answered(self, model: str, request_id: str) -> bool:
        return self._path(model, request_id, "result").exists()

    def sweep(self, model: str, retention: float, timeout: float) -> int:
        """Removes results answered more than `retention` seconds ago, and the records of
        requests accepted before that and their deadline; returns how many files went."""
        folder, now, removed = self.root / model, time.time(), 0
        if not folder.is_dir():
            return 0
        for entry in os.scandir(folder):
            kept = retention + (timeout if entry.name.endswith(".accepted") else 0)
            with contextlib.suppress(FileNotFoundError):
                if entry.stat().st_mtime < now - kept:
                    os.unlink(entry.path)
                    removed += 1
        return removed
