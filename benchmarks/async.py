"""Asynchronous inference against the synchronous path, side by side on this machine.

A real RabbitMQ (Debian's rabbitmq-server on 127.0.0.1, as the tests start it) and real
model servers (`python -m modelops_runtime`), for two models: the iris example (a fast
scikit-learn tree) and a python model that takes 20 ms a request.
  throughput   one runner (a server consuming its model's queue, filled beforehand as the
               front door fills it) against the same server answering synchronously (wrk,
               for 5 s), with 1 and with 16 requests in flight (prefetch / connections);
               the ratio runner / sync.
  round trip   one client, one request at a time, `Prefer: respond-async, wait=5`: submit,
               queue, predict, result, answer in the same call (p50, p99), beside the
               synchronous call's latency.
  runners      the 20 ms model's queue consumed by two servers instead of one.
Targets (issue 25): async / sync >= 0.8 for iris and >= 0.95 for the 20 ms model; round
trip p50 <= 3 ms and p99 <= 15 ms.

Usage: python benchmarks/async.py [--requests 3000]
Needs wrk (apt-get install wrk) and rabbitmq-server (make debian-tools).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aio_pika
import httpx
import orjson
import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO / "tools"), str(REPO / "serving")]

sys.path.insert(0, str(REPO / "benchmarks"))

from serve import body_script, free_port, wrk  # noqa: E402

from modelops import examples  # noqa: E402
from modelops.broker import start  # noqa: E402
from modelops_runtime import queues  # noqa: E402
from modelops_runtime.amqp import runner, topology  # noqa: E402
from modelops_runtime.config import AsyncConfig  # noqa: E402

SECONDS = 5
PROFILE: list[str] = []

SLOW = """
import time
from modelops_runtime.model import Model


class Slow(Model):
    def predict(self, inputs):
        time.sleep(0.02)
        return {"y": inputs["x"] * 2}
"""
IRIS = {"inputs": [{"name": "input-0", "datatype": "FP32", "shape": [1, 4],
                    "data": [5.1, 3.5, 1.4, 0.2]}]}
X = {"inputs": [{"name": "x", "datatype": "FP64", "shape": [1, 1], "data": [1.0]}]}


def models(work: Path, prefetch: int) -> list[dict]:
    (work / "slow.py").write_text(SLOW)
    iris = yaml.safe_load((REPO / "models/iris/model.yaml").read_text())["spec"]["versions"][0]
    return [{"name": "iris", "runtime": "sklearn", "concurrency": 64,
             "versions": [{"name": "v1", "artifact": iris["artifact"],
                           "sha256": iris["sha256"]}],
             "logging": {"enabled": False, "dataset": "iris"}, "asynchronous": queued(prefetch)},
            {"name": "slow", "runtime": "python", "code": str(work / "slow.py"),
             "concurrency": 64, "versions": [{"name": "v1"}],
             "inputs": [{"name": "x", "datatype": "FP64", "shape": [-1, 1]}],
             "outputs": [{"name": "y", "datatype": "FP64", "shape": [-1, 1]}],
             "logging": {"enabled": False, "dataset": "slow"}, "asynchronous": queued(prefetch)}]


def queued(prefetch: int) -> dict:
    return {"maxAttempts": 3, "timeoutSeconds": 3600, "maxQueued": 1_000_000,
            "prefetch": prefetch, "resultRetentionHours": 24}


class Server:
    def __init__(self, work: Path, shared: Path, broker_url: str, prefetch: int, name: str,
                 wait: bool = True):
        self.work = work
        config = work / f"{name}.yaml"
        config.write_text(yaml.safe_dump({"server": name, "placement": "shared",
                                          "models": models(work, prefetch)}))
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "MODELOPS_CONFIG": str(config), "MODELOPS_SHARED_ROOT": str(shared),
               "MODELOPS_HOST": "127.0.0.1", "MODELOPS_PORT": str(self.port),
               "MODELOPS_GRPC_PORT": "0", "MODELOPS_BROKER_URL": broker_url,
               "PYTHONPATH": str(REPO / "serving")}
        self.proc = subprocess.Popen([sys.executable, *PROFILE, "-m", "modelops_runtime"], env=env,
                                     stderr=(work / f"{name}.stderr").open("wb"))
        if wait:
            self.wait()

    def wait(self) -> None:
        deadline = time.monotonic() + 60
        while "modelops_async_consumers 4.0" not in self.metrics():
            assert time.monotonic() < deadline and self.proc.poll() is None, "no server"
            time.sleep(0.005)

    def metrics(self) -> str:
        try:
            return httpx.get(f"{self.url}/metrics", timeout=5).text
        except httpx.TransportError:
            return ""

    def completed(self, model: str) -> int:
        return sum(int(float(v)) for v in re.findall(
            rf'modelops_async_completed_total{{model="{model}",status="\w+",version="v1"}} '
            r"([\d.e+]+)", self.metrics()))

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(60)


async def _send(url: str, body: dict, total: int,
                headers: dict[str, str] | None = None) -> list[float]:
    """`total` requests, one at a time; each one's seconds."""
    times: list[float] = []
    async with httpx.AsyncClient(timeout=60) as client:
        for _ in range(total):
            began = time.perf_counter()
            answer = await client.post(url, json=body, headers=headers)
            assert answer.status_code == 200, answer.text
            times.append(time.perf_counter() - began)
    return times


def synchronous(server: Server, model: str, body: dict, connections: int) -> float:
    """wrk (C, so the client takes little of the two cores) for SECONDS."""
    script = body_script(server.work / f"{model}.lua", orjson.dumps(body),
                         {"Content-Type": "application/json"})
    return float(wrk(server.url, connections, SECONDS, script, model)["rps"])


async def _prefill(url: str, model: str, body: dict, total: int, config: dict) -> None:
    """`total` requests straight into the model's queue, as the front door puts them."""
    connection = await aio_pika.connect_robust(url)
    async with connection:
        await topology.declare(connection, model, "v1", AsyncConfig(**config))
        channel = await connection.channel()
        data = orjson.dumps(body)
        now = time.time()
        run = time.time_ns()  # ids of this run: earlier runs' results are on the volume
        for i in range(total):
            await channel.default_exchange.publish(aio_pika.Message(
                data, message_id=f"pre-{run}-{i}", delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                headers={runner.SUBMITTED: runner.milliseconds(now),
                         runner.DEADLINE: runner.milliseconds(now + 3600)}),
                routing_key=queues.queue_name(model, "v1"))


def drained(servers: list[Server], model: str, total: int, began: float) -> float:
    """Requests per second from `began` until the servers have answered `total`."""
    while sum(s.completed(model) for s in servers) < total:
        assert time.perf_counter() - began < 600, "results never came"
        time.sleep(0.01)
    return total / (time.perf_counter() - began)


def runners(work: Path, shared: Path, url: str, prefetch: int, model: str, body: dict,
            total: int, count: int) -> float:
    """`count` servers consuming a queue filled with `total` requests beforehand: the
    runners' own throughput, from the moment they consume."""
    asyncio.run(_prefill(url, model, body, total, queued(prefetch)))
    servers = [Server(work, shared, url, prefetch, f"r{i}", wait=False) for i in range(count)]
    try:
        began = time.perf_counter()  # they load for ~1 s, then consume at once
        for server in servers:
            server.wait()
        began = time.perf_counter()
        return drained(servers, model, total, began)
    finally:
        for server in servers:
            server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=3000)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="modelops-async-"))
    shared = work / "shared"
    examples.make(shared)
    broker = start(work / "broker")
    try:
        print(f"{'':24}{'sync (wrk)':>14}{'one runner':>14}{'ratio':>8}{'target':>8}")
        for model, body, total, target in (("iris", IRIS, args.requests, 0.8),
                                           ("slow", X, args.requests // 3, 0.95)):
            for prefetch in (1, 16):
                server = Server(work, shared, broker.vhost(f"s-{model}-{prefetch}"), prefetch,
                                f"s-{model}-{prefetch}")
                try:
                    synchronous(server, model, body, prefetch)  # warm
                    sync = synchronous(server, model, body, prefetch)
                finally:
                    server.stop()
                queued_rps = runners(work, shared, broker.vhost(f"a-{model}-{prefetch}"),
                                     prefetch, model, body, total, 1)
                print(f"{model:5} at {prefetch:2} in flight  {sync:10.1f}/s {queued_rps:10.1f}/s"
                      f"  {queued_rps / sync:5.2f}x  {target:5.2f}x", flush=True)
        server = Server(work, shared, broker.vhost("trip"), 1, "trip")
        try:
            infer = f"{server.url}/v2/models/iris/infer"
            asyncio.run(_send(infer, IRIS, 100, {"Prefer": "respond-async, wait=5"}))  # warm
            trips = asyncio.run(_send(infer, IRIS, args.requests // 3,
                                      {"Prefer": "respond-async, wait=5"}))
            plain = asyncio.run(_send(infer, IRIS, args.requests // 3))
        finally:
            server.stop()
        cuts, base = statistics.quantiles(trips, n=100), statistics.quantiles(plain, n=100)
        print(f"round trip, iris, one client (httpx): async p50 {cuts[49] * 1000:.2f} ms, "
              f"p99 {cuts[98] * 1000:.2f} ms; sync p50 {base[49] * 1000:.2f} ms, "
              f"p99 {base[98] * 1000:.2f} ms; target async p50 <= 3, p99 <= 15")
        total = args.requests // 10
        one = runners(work, shared, broker.vhost("one"), 1, "slow", X, total, 1)
        two = runners(work, shared, broker.vhost("two"), 1, "slow", X, total, 2)
        print(f"runners, 20 ms model, prefetch 1: one {one:.1f}/s, two {two:.1f}/s, "
              f"two / one {two / one:.2f}x")
    finally:
        broker.stop()


if __name__ == "__main__":
    main()
