"""Serving speed and memory, side by side on this machine.

Same scikit-learn model (the iris v1 example), same bounded load (wrk on 127.0.0.1,
1, 16 and 64 connections, a fixed duration each, in interleaved rounds), against:
  modelops        this server, adaptive batching on (its default; prediction logging off)
  unbatched       this server with `batching: {enabled: false}`
  modelops+log    this server, batching on, every request logged to disk
  mlserver        MLServer 1.7 with mlserver-sklearn, in its own venv (build/mlserver-venv),
                  with parallel_workers 0 (inference in the server process). Its default,
                  parallel_workers 1, does not work here: the worker process dies at start
                  ("There is no current event loop in thread 'MainThread'") and restarts.
  mlserver+batch  the same with its adaptive batching on: the same maximum batch size and
                  wait as this server's defaults (max_batch_size 64, max_batch_time 2 ms)
  bare            a bare Starlette route: orjson parse, predict, orjson dump (the floor of a
                  server that predicts each request alone)
Then: the same model over gRPC at 16 and 64 calls in flight, this server vs MLServer's
gRPC and vs the gRPC floor (benchmarks/bare_grpc_server.py: grpcio's asyncio server and
predict alone), h2load driving all alike; the 20-tree forest (iris v2) at 16 connections,
batched vs unbatched vs its bare floor; one 1 MiB FP32 tensor over JSON, binary
HTTP and gRPC, next to numpy reading the same bytes; resident memory of one pool serving
20 models vs 20 dedicated servers; and the time from process start to ready for a
dedicated server, next to the time a bare process takes to import scikit-learn and load
the same model (the floor).

With --baseline REF, it compares this checkout with the server at REF instead (a git
worktree under build/), both with and without prediction logging and both unbatched (like
for like), beside the bare floors:
the check that a change kept the speed.

Usage: python benchmarks/serve.py [--seconds 5] [--rounds 3] [--baseline REF]
Needs wrk and h2load (apt-get install wrk nghttp2-client); creates build/mlserver-venv on
first use.
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import yaml
from worktree import checkout

REPO = Path(__file__).resolve().parent.parent
BUILD = REPO / "build"
MLSERVER_VENV = BUILD / "mlserver-venv"
SCRIPT = BUILD / "serve-bench.lua"
CONNECTIONS = (1, 16, 64)
STREAMS = (16, 64)
IRIS = "artifacts/iris/v1/model.joblib"
FOREST = "artifacts/iris/v2/model.joblib"  # 20 trees: predict costs about 1 ms, 1 row or 64
BATCH_SIZE, BATCH_WAIT_MS = 64, 2.0  # this server's defaults, given to MLServer alike
BODY = {"inputs": [{"name": "input-0", "datatype": "FP64", "shape": [1, 4],
                    "data": [6.6, 3.0, 4.4, 1.4]}]}


GRPC_PORTS: dict[str, int] = {}  # a modelops server's URL -> its gRPC port


_GIVEN: set[int] = set()


def free_port() -> int:
    """A port nobody listens on, and not one given before: servers started together
    would otherwise race for a port the first has not bound yet."""
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        if port not in _GIVEN:
            _GIVEN.add(port)
            return port


def wait_ready(url: str, proc: subprocess.Popen, timeout: float = 120) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited early ({proc.returncode})")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return time.monotonic() - start
        except httpx.TransportError:
            pass
        time.sleep(0.01)
    raise TimeoutError(url)


def stop(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def rss_mb(pid: int) -> float:
    """Resident memory of a process and its children (MLServer forks workers)."""
    total = 0.0
    pids = [pid]
    children = Path(f"/proc/{pid}/task/{pid}/children")
    if children.exists():
        pids += [int(p) for p in children.read_text().split()]
    for p in pids:
        for line in Path(f"/proc/{p}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1]) / 1024
    return total


# -- servers -------------------------------------------------------------------------

def modelops_server(volume: Path, work: Path, models: list[dict], logging: bool = False,
                    placement: str = "dedicated",
                    source: Path = REPO) -> tuple[subprocess.Popen, str]:
    """This server (or the one in the checkout at `source`) serving `models`."""
    port = free_port()
    for m in models:
        m["logging"] = {"enabled": logging, "sampleRate": 1.0, "dataset": m["name"]}
    config = work / f"server-{port}.yaml"
    config.write_text(yaml.safe_dump({"server": "bench", "placement": placement, "models": models}))
    grpc_port = free_port()
    env = {**os.environ, "MODELOPS_CONFIG": str(config), "MODELOPS_SHARED_ROOT": str(volume),
           "MODELOPS_HOST": "127.0.0.1", "MODELOPS_PORT": str(port),
           "MODELOPS_GRPC_PORT": str(grpc_port), "MODELOPS_LOG_DIR": str(work / "logs"),
           "PYTHONPATH": str(source / "serving")}
    proc = subprocess.Popen([sys.executable, "-m", "modelops_runtime"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    GRPC_PORTS[f"http://127.0.0.1:{port}"] = grpc_port
    return proc, f"http://127.0.0.1:{port}"


def iris_model(name: str = "iris", artifact: str = IRIS, batching: bool = True) -> dict:
    from modelops.repo import load

    digest = {v.artifact: v.sha256 for e in load(REPO).models.values() for v in e.obj.spec.versions}
    return {"name": name, "runtime": "sklearn", "concurrency": 256,
            "versions": [{"name": "v1", "artifact": f"pvc://{artifact}",
                          "sha256": digest[f"pvc://{artifact}"]}],
            "batching": {"enabled": batching}}


def ensure_mlserver() -> Path:
    binary = MLSERVER_VENV / "bin/mlserver"
    if not binary.exists():
        print("installing MLServer 1.7 into build/mlserver-venv (first run only)...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(MLSERVER_VENV)], check=True)
        subprocess.run([str(MLSERVER_VENV / "bin/pip"), "install", "-q", "mlserver==1.7.1",
                        "mlserver-sklearn==1.7.1", "scikit-learn==1.9.1", "joblib==1.6.0",
                        "numpy==2.4.6"], check=True)
    return binary


def mlserver(volume: Path, work: Path, workers: int,
             batching: bool = False) -> tuple[subprocess.Popen, str]:
    binary = ensure_mlserver()
    port = free_port()
    folder = work / f"mlserver-{port}"
    (folder / "iris").mkdir(parents=True)
    settings_grpc = free_port()
    (folder / "settings.json").write_text(json.dumps({
        "http_port": port, "grpc_port": settings_grpc, "metrics_port": free_port(),
        "parallel_workers": workers, "debug": False, "host": "127.0.0.1"}))
    (folder / "iris/model-settings.json").write_text(json.dumps({
        "name": "iris", "implementation": "mlserver_sklearn.SKLearnModel",
        "parameters": {"uri": str(volume / IRIS)},
        **({"max_batch_size": BATCH_SIZE, "max_batch_time": BATCH_WAIT_MS / 1000}
           if batching else {})}))
    proc = subprocess.Popen([str(binary), "start", str(folder)], cwd=folder,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    GRPC_PORTS[f"http://127.0.0.1:{port}"] = settings_grpc
    return proc, f"http://127.0.0.1:{port}"


def bare(volume: Path, artifact: str = IRIS) -> tuple[subprocess.Popen, str]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, str(REPO / "benchmarks/bare_server.py"),
                             str(volume / artifact), str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return proc, f"http://127.0.0.1:{port}"


def bare_grpc(volume: Path) -> tuple[subprocess.Popen, str]:
    """The gRPC floor (benchmarks/bare_grpc_server.py), ready once it accepts a call."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, str(REPO / "benchmarks/bare_grpc_server.py"),
                             str(volume / IRIS), str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"grpc-floor:{port}"
    GRPC_PORTS[url] = port
    deadline = time.monotonic() + 60
    while True:
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("the gRPC floor did not start")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return proc, url
        time.sleep(0.05)


def paired(ours: dict, theirs: dict) -> str:
    """The req/s ratio within each round (both ran minutes apart at most, under the same
    neighbours), as its median and range: steadier on a shared host than a ratio of
    medians taken over different minutes."""
    ratios = sorted(a / b for a, b in zip(ours["rounds"], theirs["rounds"], strict=True))
    return f"{statistics.median(ratios):.2f}x (rounds {ratios[0]:.2f}-{ratios[-1]:.2f})"


# -- load -----------------------------------------------------------------------------

def _ms(text: str) -> float:
    value, unit = re.match(r"([\d.]+)(us|ms|s)", text).groups()
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def wrk(url: str, connections: int, seconds: int, script: Path,
        model: str = "iris") -> dict:
    out = subprocess.run(["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency",
                          "-s", str(script), f"{url}/v2/models/{model}/infer"],
                         capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p50 = _ms(re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1))
    p99 = _ms(re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {"rps": rps, "p50": p50, "p99": p99, "non2xx": int(errors.group(1)) if errors else 0}


def grpc_request(path: Path, model: str, name: str, array) -> Path:
    """A ModelInferRequest with the array as raw bytes (what clients send), framed as one
    gRPC message (a 0 byte, then the length as 4 bytes big-endian) for h2load to post."""
    from modelops_runtime.grpc.proto import inference_pb2 as pb

    request = pb.ModelInferRequest(model_name=model)
    request.inputs.add(name=name, datatype={"float64": "FP64", "float32": "FP32"}[
        str(array.dtype)], shape=array.shape)
    request.raw_input_contents.append(array.astype(array.dtype.newbyteorder("<")).tobytes())
    body = request.SerializeToString()
    path.write_bytes(b"\0" + len(body).to_bytes(4, "big") + body)
    return path


def grpc_load(url: str, request: Path, streams: int, seconds: int) -> dict:
    """h2load (C, so the client takes little of the shared CPU): one connection, `streams`
    calls in flight, each posting the same framed ModelInfer message."""
    out = subprocess.run(["h2load", "-D", str(seconds), "-c", "1", "-m", str(streams), "-t", "1",
                          "-d", str(request), "-H", "content-type: application/grpc",
                          "-H", "te: trailers",
                          f"http://127.0.0.1:{GRPC_PORTS[url]}/inference.GRPCInferenceService/"
                          "ModelInfer"], capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"finished in [\d.]+s, ([\d.]+) req/s", out).group(1))
    done = re.search(r"(\d+) succeeded, (\d+) failed", out)
    if int(done.group(2)):
        raise RuntimeError(f"{done.group(2)} gRPC calls failed: {out}")
    mean = re.search(r"time for request:\s+\S+\s+\S+\s+(\S+)", out).group(1)
    return {"rps": rps, "mean": _ms(mean)}


def body_script(path: Path, body: bytes, headers: dict[str, str]) -> Path:
    """A wrk script that posts `body` (written beside it) with `headers`."""
    data = path.with_suffix(".body")
    data.write_bytes(body)
    lines = ["wrk.method = 'POST'", f"local f = io.open('{data}', 'rb')",
             "wrk.body = f:read('*a')", "f:close()"]
    lines += [f"wrk.headers['{k}'] = '{v}'" for k, v in headers.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def start_all(contestants: dict) -> dict:
    """Start every server; a contestant that does not serve is reported and left out."""
    running = {}
    for name, start in contestants.items():
        proc, url = start()
        try:
            wait_ready(f"{url}/v2/health/ready", proc, timeout=60)
            wrk(url, 4, 1, SCRIPT)  # warm up, and prove it answers
            running[name] = (proc, url)
        except (RuntimeError, TimeoutError, subprocess.CalledProcessError) as exc:
            print(f"{name:<14} did not serve: {type(exc).__name__}", flush=True)
            stop(proc)
    return running


def rounds(running: dict, seconds: int, count: int,
           connections_list: tuple[int, ...] = CONNECTIONS) -> dict[str, dict[int, dict]]:
    """Interleaved rounds (every server once per round), then the median of each figure:
    noise on this shared machine then falls on all contestants alike."""
    samples: dict[str, dict[int, list[dict]]] = {n: {c: [] for c in connections_list}
                                                 for n in running}
    for _ in range(count):
        for connections in connections_list:
            for name, (_, url) in running.items():
                samples[name][connections].append(wrk(url, connections, seconds, SCRIPT))
    result = {}
    for name, by_conn in samples.items():
        result[name] = {c: {**{k: statistics.median(r[k] for r in runs)
                               for k in ("rps", "p50", "p99")},
                            "rounds": [r["rps"] for r in runs]}
                        for c, runs in by_conn.items()}
        for c, r in result[name].items():
            print(f"{name:<14} {c:>3} conn  {r['rps']:>8.0f} req/s  p50 {r['p50']:>7.2f} ms  "
                  f"p99 {r['p99']:>7.2f} ms", flush=True)
    return result


def grpc_rounds(running: dict, volume: Path, work: Path, seconds: int,
                count: int) -> dict[str, dict[int, dict]]:
    """16 and 64 calls in flight on one connection, interleaved rounds, medians; with the
    gRPC floor (grpcio and predict alone) beside this server and MLServer."""
    import numpy as np

    request = grpc_request(work / "iris.grpc", "iris", "input-0",
                           np.array([[6.6, 3.0, 4.4, 1.4]]))
    floor, floor_url = bare_grpc(volume)
    urls = {n: url for n, (_, url) in running.items() if not n.endswith("+log")
            and n != "bare"}
    urls["bare gRPC"] = floor_url
    samples: dict[str, dict[int, list[dict]]] = {n: {s: [] for s in STREAMS} for n in urls}
    try:
        for url in urls.values():
            grpc_load(url, request, 4, 1)  # warm up
        for _ in range(count):
            for streams in STREAMS:
                for name, url in urls.items():
                    samples[name][streams].append(grpc_load(url, request, streams, seconds))
    finally:
        stop(floor)
    out: dict[str, dict[int, dict]] = {}
    for name, by_streams in samples.items():
        out[name] = {}
        for streams, runs in by_streams.items():
            figure = {**{k: statistics.median(r[k] for r in runs) for k in ("rps", "mean")},
                      "rounds": [r["rps"] for r in runs]}
            out[name][streams] = figure
            label = name.removesuffix(" gRPC") + " gRPC"
            print(f"{label:<20} {streams:>3} streams {figure['rps']:>6.0f} req/s  mean "
                  f"{figure['mean']:>7.2f} ms", flush=True)
    return out


IDENTITY = """
from modelops_runtime.model import Model


class Sum(Model):
    def predict(self, inputs):
        return {"total": inputs["x"].sum(axis=1)}
"""


def large_tensor(volume: Path, work: Path, seconds: int) -> None:
    """One 1 MiB FP32 input (262,144 values) through a model that only sums it, over JSON,
    binary HTTP and gRPC, next to numpy reading the same bytes (the floor)."""
    import numpy as np

    values = np.random.default_rng(0).random((1, 262144), dtype=np.float32)
    code = work / "sum.py"
    code.write_text(IDENTITY)
    model = {"name": "sum", "runtime": "python", "code": str(code), "versions": [{"name": "v1"}],
             "inputs": [{"name": "x", "datatype": "FP32", "shape": [-1, 262144]}]}
    proc, url = modelops_server(volume, work, [model])
    wait_ready(f"{url}/v2/health/ready", proc)
    header = json.dumps({"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 262144],
                                     "parameters": {"binary_data_size": values.nbytes}}]}).encode()
    as_json = json.dumps({"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 262144],
                                      "data": values.ravel().tolist()}]}).encode()
    scripts = {
        "JSON": body_script(work / "large-json.lua", as_json,
                            {"Content-Type": "application/json"}),
        "binary HTTP": body_script(work / "large-binary.lua", header + values.tobytes(), {
            "Content-Type": "application/octet-stream",
            "Inference-Header-Content-Length": str(len(header))})}
    mib = values.nbytes / 2 ** 20
    try:
        figures = {name: wrk(url, 4, seconds, script, "sum")["rps"] * mib
                   for name, script in scripts.items()}
        request = grpc_request(work / "large.grpc", "sum", "x", values)
        figures["gRPC"] = grpc_load(url, request, 4, seconds)["rps"] * mib
    finally:
        stop(proc)
    raw = values.tobytes()
    started, count = time.perf_counter(), 0
    while time.perf_counter() - started < 1:
        np.frombuffer(raw, dtype="<f4").sum()
        count += 1
    floor = count * mib / (time.perf_counter() - started)
    print(f"\n1 MiB FP32 tensor ({len(as_json) / 2 ** 20:.1f} MiB as JSON), 4 connections:")
    for name, rate in figures.items():
        print(f"  {name:<12} {rate:>8.1f} MiB/s")
    print(f"  numpy alone  {floor:>8.0f} MiB/s (reading the same bytes: the floor)")
    print(f"  binary HTTP / JSON             {figures['binary HTTP'] / figures['JSON']:.1f}x  "
          "(target >= 5)")


def measure_and_stop(running: dict, volume: Path, work: Path,
                     args: argparse.Namespace) -> tuple[dict, dict]:
    """HTTP and gRPC rounds over the running servers, which are stopped after."""
    try:
        return (rounds(running, args.seconds, args.rounds),
                grpc_rounds(running, volume, work, args.seconds, args.rounds))
    finally:
        for proc, _ in running.values():
            stop(proc)


def report(result: dict, grpc_figures: dict) -> None:
    """The ratios the batching targets name, each paired within its rounds."""
    ours, unbatched, floor = result["modelops"], result["unbatched"], result["bare"]
    for conn in (16, 64):
        print(f"\nHTTP JSON at {conn} connections (req/s paired within each round):")
        print(f"  batched / unbatched            {paired(ours[conn], unbatched[conn])}  "
              "(target >= 1.3)")
        print(f"  batched / bare                 {paired(ours[conn], floor[conn])}  "
              "(target >= 1.0)")
        for name in ("mlserver", "mlserver+batch"):
            if name in result:
                print(f"  batched / {name:<20} {paired(ours[conn], result[name][conn])}  "
                      f"{'(target >= 3)' if name == 'mlserver+batch' else ''}")
        print(f"  unbatched / bare               {paired(unbatched[conn], floor[conn])}")
        print(f"  logging on / off req/s         "
              f"{paired(result['modelops+log'][conn], ours[conn])}  (target >= 0.9)")
    limit = unbatched[1]["p99"] + BATCH_WAIT_MS
    print(f"\n1 connection: p99 batched {ours[1]['p99']:.2f} ms, unbatched "
          f"{unbatched[1]['p99']:.2f} ms (target: at most unbatched + the {BATCH_WAIT_MS} ms "
          f"wait, {limit:.2f} ms); req/s {paired(ours[1], unbatched[1])} of unbatched")
    for streams in STREAMS:
        figures = {n: grpc_figures[n][streams] for n in grpc_figures}
        print(f"gRPC at {streams} streams (req/s paired within each round):")
        print(f"  batched / unbatched            "
              f"{paired(figures['modelops'], figures['unbatched'])}  (target >= 1.3)")
        print(f"  batched / bare gRPC            "
              f"{paired(figures['modelops'], figures['bare gRPC'])}  (target >= 1.0)")
        for name in ("mlserver", "mlserver+batch"):
            if name in figures:
                print(f"  batched / {name:<20} {paired(figures['modelops'], figures[name])}  "
                      f"{'(target >= 1.6)' if name == 'mlserver+batch' else ''}")
        if "mlserver" in figures:
            print(f"  bare gRPC / mlserver           "
                  f"{paired(figures['bare gRPC'], figures['mlserver'])}  (what grpcio and the "
                  "model allow)")


def forest(volume: Path, work: Path, args: argparse.Namespace) -> None:
    """The 20-tree forest at 16 connections: where a model costs the same for 1 row or 64,
    batching pays the most."""
    running = start_all({
        "forest": lambda: modelops_server(volume, work, [iris_model(artifact=FOREST)]),
        "forest unbatched": lambda: modelops_server(
            volume, work, [iris_model(artifact=FOREST, batching=False)]),
        "forest bare": lambda: bare(volume, FOREST)})
    try:
        result = rounds(running, args.seconds, args.rounds, (16,))
    finally:
        for proc, _ in running.values():
            stop(proc)
    print(f"  forest batched / unbatched     "
          f"{paired(result['forest'][16], result['forest unbatched'][16])}  (target >= 4)")
    print(f"  forest batched / bare          "
          f"{paired(result['forest'][16], result['forest bare'][16])}")


def older(model: dict) -> dict:
    """A model's config as a server from before adaptive batching reads it (with its
    batching off: like for like)."""
    return {k: v for k, v in model.items() if k != "batching"}


def against_baseline(volume: Path, work: Path, args: argparse.Namespace) -> None:
    """This checkout's server vs the one at args.baseline, same model, same rounds."""
    tree = checkout(args.baseline)
    running = start_all({
        "modelops": lambda: modelops_server(volume, work, [iris_model(batching=False)]),
        "baseline": lambda: modelops_server(volume, work, [older(iris_model())], source=tree),
        "modelops+log": lambda: modelops_server(volume, work, [iris_model(batching=False)],
                                                True),
        "baseline+log": lambda: modelops_server(volume, work, [older(iris_model())], True,
                                                source=tree),
        "bare": lambda: bare(volume)})
    print(f"this checkout vs {args.baseline} ({tree.name}), {args.rounds} interleaved rounds "
          f"of {args.seconds}s; model: iris v1, 1 row; medians:")
    result, grpc_figures = measure_and_stop(running, volume, work, args)
    print("\nratios (req/s paired within each round; target: within 10%, i.e. >= 0.90):")
    for conn in CONNECTIONS:
        print(f"  HTTP JSON, {conn:>2} conn: modelops / baseline          "
              f"{paired(result['modelops'][conn], result['baseline'][conn])}")
        print(f"  HTTP JSON, {conn:>2} conn, logging: modelops / baseline "
              f"{paired(result['modelops+log'][conn], result['baseline+log'][conn])}")
    print(f"  HTTP JSON, 16 conn: modelops / bare          "
          f"{paired(result['modelops'][16], result['bare'][16])}")
    print(f"  HTTP JSON, 16 conn: baseline / bare          "
          f"{paired(result['baseline'][16], result['bare'][16])}")
    for streams in STREAMS:
        ours_g, base_g = grpc_figures["modelops"][streams], grpc_figures["baseline"][streams]
        floor_g = grpc_figures["bare gRPC"][streams]
        print(f"  gRPC, {streams} streams: modelops / baseline        {paired(ours_g, base_g)}")
        print(f"  gRPC, {streams} streams: modelops / bare gRPC       {paired(ours_g, floor_g)}")
        print(f"  gRPC, {streams} streams: baseline / bare gRPC       {paired(base_g, floor_g)}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=5, help="length of one load run")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds")
    parser.add_argument("--baseline", metavar="REF",
                        help="compare with the server at this git ref instead")
    args = parser.parse_args()
    if not shutil.which("wrk") or not shutil.which("h2load"):
        sys.exit("wrk and h2load are needed: apt-get install -y wrk nghttp2-client")
    from modelops import examples

    # The image's pip install compiles the server's bytecode; an editable checkout under
    # PYTHONDONTWRITEBYTECODE would recompile it at every start.
    compileall.compile_dir(REPO / "serving", quiet=1)
    BUILD.mkdir(exist_ok=True)
    work = Path(tempfile.mkdtemp(dir=BUILD, prefix="serve-bench-"))
    volume = work / "volume"
    examples.make(volume)
    SCRIPT.write_text(f"wrk.method = 'POST'\nwrk.body = '{json.dumps(BODY)}'\n"
                      "wrk.headers['Content-Type'] = 'application/json'\n")
    if args.baseline:
        against_baseline(volume, work, args)
        shutil.rmtree(work, ignore_errors=True)
        return
    running = start_all({
        "modelops": lambda: modelops_server(volume, work, [iris_model()]),
        "unbatched": lambda: modelops_server(volume, work, [iris_model(batching=False)]),
        "modelops+log": lambda: modelops_server(volume, work, [iris_model()], True),
        "mlserver": lambda: mlserver(volume, work, 0),
        "mlserver+batch": lambda: mlserver(volume, work, 0, batching=True),
        "bare": lambda: bare(volume)})
    print(f"{len(running)} servers, {args.rounds} interleaved rounds of {args.seconds}s per "
          "load; model: iris v1 (scikit-learn), 1 row; medians:")
    result, grpc_figures = measure_and_stop(running, volume, work, args)
    report(result, grpc_figures)
    lines = sum(len(p.read_text().splitlines()) for p in (work / "logs").rglob("*.jsonl"))
    print(f"  prediction records written     {lines}")
    forest(volume, work, args)
    large_tensor(volume, work, args.seconds)

    # Memory: one pool with 20 models vs 20 dedicated servers.
    artifacts = ["artifacts/iris/v1/model.joblib", "artifacts/iris/v2/model.joblib",
                 "artifacts/wine/v1/model.joblib", "artifacts/diabetes/v1/model.joblib"]
    models = [iris_model(f"m{i:02d}", artifacts[i % 4]) for i in range(20)]
    pool, url = modelops_server(volume, work, models, placement="shared")
    wait_ready(f"{url}/v2/health/ready", pool)
    pool_mb = rss_mb(pool.pid)
    stop(pool)
    dedicated = [modelops_server(volume, work, [m]) for m in models]
    for proc, url in dedicated:
        wait_ready(f"{url}/v2/health/ready", proc)
    dedicated_mb = sum(rss_mb(proc.pid) for proc, _ in dedicated)
    for proc, _ in dedicated:
        stop(proc)
    print(f"\nmemory, 20 models: pool {pool_mb:.0f} MB vs 20 dedicated {dedicated_mb:.0f} MB "
          f"= {pool_mb / dedicated_mb:.0%} (target <= 30%)")

    # Ready: interleaved with the floor, a bare process that imports and loads the model.
    starts, floors = [], []
    artifact = volume / "artifacts/iris/v1/model.joblib"
    for _ in range(9):
        proc, url = modelops_server(volume, work, [iris_model()])
        starts.append(wait_ready(f"{url}/v2/health/ready", proc))
        stop(proc)
        started = time.monotonic()
        subprocess.run([sys.executable, "-c", f"import joblib; joblib.load({str(artifact)!r})"],
                       check=True)
        floors.append(time.monotonic() - started)
    ready, floor = statistics.median(starts), statistics.median(floors)
    print(f"dedicated server ready after {ready:.2f} s (median of 9; target <= 1.5 s); "
          f"importing and loading the model alone takes {floor:.2f} s ({ready / floor:.2f}x)")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
