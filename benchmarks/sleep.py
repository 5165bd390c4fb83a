"""Models that sleep, measured side by side in one run (issue: models that sleep).

1. Cold start: iris asleep at zero under `modelops serve --scale-to-zero` (idleSeconds 1),
   from a first request (HTTP) to its answer; beside it, the floor: a plain server
   process for iris alone, from its start to the answer of its first request (import,
   load, listen). Interleaved rounds; min / median / max and the ratio of the medians.
2. Memory: a pool of 1,000 members (one per customer: a 40-tree random forest each, a
   few MB) loading on demand under a memory request that fits 50, after a request to
   every member; beside it, the same 1,000 loaded at start. Resident memory (VmRSS) of
   each server process.
3. First request: an unloaded member (it loads first) vs a loaded one, medians.

Everything runs on 127.0.0.1 and stops itself.
Usage: python benchmarks/sleep.py [ROUNDS] [--no-pool]
"""

from __future__ import annotations

import hashlib
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

REPO = Path(__file__).resolve().parent.parent
IRIS = "pvc://artifacts/iris/v1/model.joblib"
ROW = {"inputs": [{"name": "input-0", "datatype": "FP32", "shape": [1, 4],
                   "data": [5.1, 3.5, 1.4, 0.2]}]}
CUSTOMER = "pvc://artifacts/customer/v1/model.joblib"
FEATURES = 20
CUSTOMER_ROW = {"inputs": [{"name": "input-0", "datatype": "FP32", "shape": [1, FEATURES],
                            "data": [0.5] * FEATURES}]}
MEMBERS, FITS = 1000, 50
mib = 1 << 20


def _port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _until(check, timeout: float = 120.0, step: float = 0.01):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            found = check()
            if found:
                return found
        except httpx.TransportError:
            pass
        time.sleep(step)
    raise TimeoutError("gave up waiting")


def _server(folder: Path, config: dict, shared: Path) -> tuple[subprocess.Popen, str]:
    (folder / "server.yaml").write_text(yaml.safe_dump(config))
    port = _port()
    env = {**os.environ, "MODELOPS_CONFIG": str(folder / "server.yaml"),
           "MODELOPS_SHARED_ROOT": str(shared), "MODELOPS_HOST": "127.0.0.1",
           "MODELOPS_PORT": str(port), "MODELOPS_GRPC_PORT": "0"}
    return subprocess.Popen([sys.executable, "-m", "modelops_runtime"], env=env,
                            stderr=subprocess.DEVNULL), f"http://127.0.0.1:{port}"


def _rss(pid: int) -> int:
    return int(re.search(r"VmRSS:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text())
               .group(1)) * 1024


def _stop(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _summary(values: list[float], unit: str = "s") -> str:
    return (f"median {statistics.median(values):.3f} {unit} (min {min(values):.3f}, "
            f"max {max(values):.3f}, n={len(values)})")


# -- 1. cold start -------------------------------------------------------------------------
def _floor(folder: Path, shared: Path, sha: str) -> float:
    """A plain server for iris: from its start to its first answer."""
    config = {"server": "floor", "placement": "dedicated", "models": [{
        "name": "iris", "runtime": "sklearn", "logging": {"enabled": False, "dataset": "x"},
        "versions": [{"name": "v1", "artifact": IRIS, "sha256": sha}]}]}
    start = time.monotonic()
    proc, url = _server(folder, config, shared)
    try:
        _until(lambda: httpx.post(f"{url}/v2/models/iris/infer", json=ROW).status_code == 200)
        return time.monotonic() - start
    finally:
        _stop(proc)


def _asleep(url: str) -> bool:
    index = httpx.get(f"{url}/v2/repository/index").json()
    return next(m["state"] for m in index if m["name"] == "iris") == "asleep"


def cold_start(rounds: int, work: Path, shared: Path, sha: str) -> None:
    root = work / "repo"
    for folder in ("platform", "base", "schemas", "overlays"):
        shutil.copytree(REPO / folder, root / folder)
    (root / "models").mkdir()
    shutil.copytree(REPO / "models/iris", root / "models/iris")
    spec = root / "models/iris/model.yaml"
    spec.write_text(spec.read_text().replace("    minReplicas: 1\n", "    minReplicas: 0\n"
                                             "    idleSeconds: 1\n", 1))
    port = _port()
    serve = subprocess.Popen([sys.executable, "-m", "modelops", "serve", "iris",
                              "--scale-to-zero", "--shared", str(shared), "--port", str(port),
                              "--grpc-port", "0"], cwd=root, stderr=subprocess.DEVNULL,
                             start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    colds, floors = [], []
    try:
        _until(lambda: httpx.get(f"{url}/v2/health/ready").status_code == 200, 180)
        for _ in range(rounds):
            _until(lambda: _asleep(url), 60, 0.2)
            time.sleep(0.5)  # the runner gone for good, its port closed
            start = time.monotonic()
            answer = httpx.post(f"{url}/v2/models/iris/infer", json=ROW, timeout=60)
            colds.append(time.monotonic() - start)
            assert answer.status_code == 200, answer.text
            floors.append(_floor(work, shared, sha))
    finally:
        os.killpg(serve.pid, signal.SIGTERM)
        serve.wait(90)
    print("1. cold start of iris, asleep at zero, to its first answer (HTTP)")
    print(f"   from zero (front door -> queue -> runner wakes): {_summary(colds)}")
    print(f"   floor (a server's own start, load, answer):      {_summary(floors)}")
    print(f"   ratio of medians: {statistics.median(colds) / statistics.median(floors):.2f}x"
          f"; target: at most 2 s")


# -- 2 and 3. a pool of many members ---------------------------------------------------
def _customer_model(shared: Path) -> str:
    """One customer's model: a random forest on 5,000 rows of 20 features; its sha256."""
    import joblib
    from sklearn.datasets import make_classification
    from sklearn.ensemble import RandomForestClassifier

    x, y = make_classification(5000, FEATURES, random_state=0)
    path = shared / CUSTOMER.removeprefix("pvc://")
    path.parent.mkdir(parents=True, exist_ok=True)
    joblib.dump(RandomForestClassifier(40, random_state=0).fit(x.astype("float32"), y), path)
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _pool(memory: int | None, sha: str) -> dict:
    members = [{"name": f"customer-{i:04d}", "runtime": "sklearn",
                "versions": [{"name": "v1", "artifact": CUSTOMER, "sha256": sha}],
                "logging": {"enabled": False, "dataset": "x"}} for i in range(MEMBERS)]
    config: dict = {"server": "pool", "placement": "shared", "models": members}
    if memory is not None:
        config |= {"onDemand": {"loadSeconds": 60}, "memoryBytes": memory}
    return config


def _gauge(url: str, name: str) -> float:
    found = re.search(rf"^{name} (\S+)$", httpx.get(f"{url}/metrics").text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


def pool(work: Path, shared: Path) -> None:
    sha = _customer_model(shared)
    size = (shared / CUSTOMER.removeprefix("pvc://")).stat().st_size
    client = httpx.Client(timeout=60)
    # what the server takes itself, and one member, to size a request that fits FITS
    probe, url = _server(work, _pool(8 << 30, sha), shared)
    try:
        _until(lambda: client.get(f"{url}/v2/health/ready").status_code == 200)
        client.post(f"{url}/v2/models/customer-0000/infer", json=CUSTOMER_ROW)
        itself = (8 << 30) - _gauge(url, "modelops_pool_memory_budget_bytes")
        member = _gauge(url, "modelops_pool_loaded_bytes")
    finally:
        _stop(probe)
    memory = int(itself + member * (FITS + 0.5))

    lazy, url = _server(work, _pool(memory, sha), shared)
    unloaded, loaded = [], []
    try:
        _until(lambda: client.get(f"{url}/v2/health/ready").status_code == 200)
        for i in range(MEMBERS):
            name = f"customer-{i:04d}"
            start = time.monotonic()
            assert client.post(f"{url}/v2/models/{name}/infer",
                               json=CUSTOMER_ROW).status_code == 200
            unloaded.append(time.monotonic() - start)
            start = time.monotonic()
            assert client.post(f"{url}/v2/models/{name}/infer",
                               json=CUSTOMER_ROW).status_code == 200
            loaded.append(time.monotonic() - start)
        lazy_rss, count = _rss(lazy.pid), _gauge(url, "modelops_pool_loaded_models")
    finally:
        _stop(lazy)

    eager, url = _server(work, _pool(None, sha), shared)
    try:
        start = time.monotonic()
        _until(lambda: client.get(f"{url}/v2/health/ready").status_code == 200, 600, 0.1)
        ready = time.monotonic() - start
        eager_rss = _rss(eager.pid)
    finally:
        _stop(eager)
    print(f"2. resident memory of a pool of {MEMBERS} members ({size / mib:.1f} MiB on disk "
          f"each, counted at {member / mib:.1f} MiB loaded)")
    print(f"   on demand, under a request of {memory / mib:.0f} MiB ({FITS} fit; "
          f"{count:.0f} loaded at the end): {lazy_rss / mib:.0f} MiB")
    print(f"   all {MEMBERS} loaded at start (ready in {ready:.1f} s):             "
          f"{eager_rss / mib:.0f} MiB")
    print(f"   ratio: {lazy_rss / eager_rss:.2f}x")
    print("3. first request to a member")
    print(f"   unloaded (loads first): {_summary([v * 1000 for v in unloaded], 'ms')}")
    print(f"   loaded:                 {_summary([v * 1000 for v in loaded], 'ms')}")
    print(f"   ratio of medians: "
          f"{statistics.median(unloaded) / statistics.median(loaded):.1f}x")


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 and sys.argv[1].isdigit() else 5
    with tempfile.TemporaryDirectory(prefix="modelops-sleep-") as tmp:
        work = Path(tmp)
        shared = work / "volume"
        subprocess.run([sys.executable, "-m", "modelops.examples", str(shared)], check=True,
                       stdout=subprocess.DEVNULL)
        sha = hashlib.sha256((shared / IRIS.removeprefix("pvc://")).read_bytes()).hexdigest()
        cold_start(rounds, work, shared, sha)
        if "--no-pool" not in sys.argv:
            pool(work, shared)


if __name__ == "__main__":
    main()
