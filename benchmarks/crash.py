"""Prediction records across kill -9 under load: what is lost, measured.

Five rounds on 127.0.0.1: a dedicated server (iris v1, every request logged) takes
requests from 8 client threads, each with its own request id; after 1 to 2 s it is
killed with SIGKILL in the middle of the load. Before anything touches the volume, the
complete lines in the dead server's `.jsonl.open` file are counted; then a new server
starts on the same volume, recovers that file, and the recovered records are compared
with (a) the complete lines that were there (target: 0 lost) and (b) the requests that
had been answered 200 (those lost are the ones still queued for the writer, at most
FLUSH_SECONDS of traffic).

Usage: python benchmarks/crash.py [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import random
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from serve import BODY, BUILD, iris_model, modelops_server, stop, wait_ready  # noqa: E402


def _load(url: str, stop_at: threading.Event, acked: list[str], prefix: str) -> None:
    with httpx.Client(base_url=url, timeout=5) as client:
        n = 0
        while not stop_at.is_set():
            rid = f"{prefix}-{n}"
            n += 1
            try:
                if client.post("/v2/models/iris/infer", json=BODY,
                               headers={"X-Request-ID": rid}).status_code == 200:
                    acked.append(rid)
            except httpx.TransportError:
                return  # the server died


def _ids(paths) -> list[str]:
    out = []
    for path in paths:
        for line in path.read_bytes().split(b"\n"):
            try:
                out.append(json.loads(line)["id"])
            except ValueError:
                pass  # the torn last line, if any
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    from modelops import examples
    from modelops_runtime.predlog import FLUSH_SECONDS

    BUILD.mkdir(exist_ok=True)
    work = Path(tempfile.mkdtemp(dir=BUILD, prefix="crash-bench-"))
    volume = work / "volume"
    examples.make(volume)
    totals = {"acked": 0, "lines": 0, "lines_lost": 0, "acked_lost": 0}
    print(f"{args.rounds} rounds: 8 threads of requests, then kill -9 after 1-2 s")
    for round_ in range(args.rounds):
        logs = work / "logs"
        proc, url = modelops_server(volume, work, [iris_model()], logging=True)
        wait_ready(f"{url}/v2/health/ready", proc)
        acked: list[str] = []
        stop_at = threading.Event()
        threads = [threading.Thread(target=_load, args=(url, stop_at, acked, f"r{round_}t{t}"))
                   for t in range(8)]
        for thread in threads:
            thread.start()
        time.sleep(random.uniform(1.0, 2.0))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        stop_at.set()
        for thread in threads:
            thread.join()
        on_disk = set(_ids(logs.rglob("*.jsonl.open")))  # complete lines the crash left
        before = set(_ids(logs.rglob("*.jsonl")))
        proc, url = modelops_server(volume, work, [iris_model()], logging=True)
        wait_ready(f"{url}/v2/health/ready", proc)  # the start recovers the open file
        stop(proc)
        recovered = set(_ids(logs.rglob("*.jsonl"))) - before
        lines_lost = len(on_disk - recovered)
        acked_lost = len(set(acked) - recovered)
        print(f"  round {round_ + 1}: {len(acked):6d} answered 200, {len(on_disk):6d} complete "
              f"lines in the open file, {len(recovered):6d} recovered; lost: {lines_lost} "
              f"lines, {acked_lost} answered requests")
        totals["acked"] += len(acked)
        totals["lines"] += len(on_disk)
        totals["lines_lost"] += lines_lost
        totals["acked_lost"] += acked_lost
    print(f"\nacross {args.rounds} kill -9s: {totals['lines_lost']} of {totals['lines']} "
          f"complete lines lost (target 0); {totals['acked_lost']} of {totals['acked']} "
          f"answered requests lost ({totals['acked_lost'] / max(totals['acked'], 1):.2%}: "
          f"those still queued, at most {FLUSH_SECONDS * 1000:.0f} ms of traffic)")


if __name__ == "__main__":
    main()
