"""How fast does a server get an s3:// artifact, next to reading the same bytes from disk?

Starts SeaweedFS on 127.0.0.1 (as the tests do), pushes a file of SIZE MiB of random bytes,
then, ROUNDS times each, interleaved:
  fetch   objectstore.fetch into an empty cache: download, hash while streaming, rename
  hit     objectstore.fetch again: the cached file, hashed before it is trusted
  disk    a plain read of the same file from disk with its sha256 (the floor)
and prints the median MB/s of each and the ratios to disk.

Usage: python benchmarks/artifact_fetch.py [SIZE_MiB]   (default 256)
"""

from __future__ import annotations

import hashlib
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))
ROUNDS = 5


def main() -> None:
    from s3server import BUCKET, WRITER, S3Server

    from modelops_runtime import objectstore

    size = int(sys.argv[1]) if len(sys.argv) > 1 else 256
    with tempfile.TemporaryDirectory(prefix="fetch-") as tmp:
        server = S3Server.start(Path(tmp) / "s3")
        try:
            os.environ.update({**WRITER, "MODELOPS_S3_ENDPOINT": server.endpoint})
            source = Path(tmp) / "model.bin"
            with source.open("wb") as out:
                for _ in range(size):
                    out.write(os.urandom(1 << 20))
            digest = hashlib.sha256(source.read_bytes()).hexdigest()
            objectstore.push(source, BUCKET, f"bench/{digest}.bin")
            uri = f"s3://{BUCKET}/bench/{digest}.bin"
            times: dict[str, list[float]] = {"fetch": [], "hit": [], "disk": []}
            for i in range(ROUNDS):
                cache = Path(tmp) / f"cache-{i}"
                os.environ["MODELOPS_ARTIFACT_CACHE"] = str(cache)
                start = time.perf_counter()
                objectstore.fetch(uri, digest)
                times["fetch"].append(time.perf_counter() - start)
                start = time.perf_counter()
                objectstore.fetch(uri, digest)
                times["hit"].append(time.perf_counter() - start)
                start = time.perf_counter()
                with source.open("rb") as handle:
                    assert hashlib.file_digest(handle, "sha256").hexdigest() == digest
                times["disk"].append(time.perf_counter() - start)
                shutil.rmtree(cache)
        finally:
            server.stop()
    rate = {k: size * 1.048576 / statistics.median(v) for k, v in times.items()}
    for name, value in rate.items():
        print(f"{name:5} {value:8.0f} MB/s  (median of {ROUNDS}, {size} MiB)")
    print(f"fetch / disk: {rate['fetch'] / rate['disk']:.2f}x   "
          f"hit / disk: {rate['hit'] / rate['disk']:.2f}x")


if __name__ == "__main__":
    main()
