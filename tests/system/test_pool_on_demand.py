"""A pool of many small models (one per customer) whose members load on demand: 1,000
members under a memory request that fits about 50, served a random stream by a real
server process, with the process's own peak memory read from /proc."""

from __future__ import annotations

import hashlib
import random
import re
import threading
import time
from pathlib import Path

import pytest
from servers import Server, config

MEMBERS = 1000
FITS = 50
IRIS = "pvc://artifacts/iris/v1/model.joblib"
ROW = {"inputs": [{"name": "input-0", "datatype": "FP32", "shape": [1, 4],
                   "data": [5.1, 3.5, 1.4, 0.2]}]}


def _pool(shared_root: Path, memory: int, **on_demand) -> dict:
    """Every member one customer's model (the iris tree, for the size of it)."""
    sha = hashlib.sha256((shared_root / IRIS.removeprefix("pvc://")).read_bytes()).hexdigest()
    members = [{"name": f"customer-{i:04d}", "runtime": "sklearn",
                "versions": [{"name": "v1", "artifact": IRIS, "sha256": sha}],
                "logging": {"enabled": False, "dataset": "x"}} for i in range(MEMBERS)]
    return {**config(*members), "onDemand": {"loadSeconds": 30, **on_demand},
            "memoryBytes": memory}


def _metrics(server: Server) -> dict[str, float]:
    text = server.client.get("/metrics").text
    return {m.group(1): float(m.group(2)) for m in re.finditer(
        r"^(modelops_pool_\w+|modelops_model_(?:loads|evictions)_total\{[^}]*\}) (\S+)$",
        text, re.MULTILINE)}


def _counted(found: dict[str, float], prefix: str) -> float:
    return sum(v for k, v in found.items() if k.startswith(prefix))


def _peak_resident(server: Server) -> int:
    status = Path(f"/proc/{server.proc.pid}/status").read_text()
    return int(re.search(r"VmHWM:\s+(\d+) kB", status).group(1)) * 1024


def _infer(server: Server, name: str) -> None:
    answer = server.client.post(f"/v2/models/{name}/infer", json=ROW)
    assert answer.status_code == 200, (name, answer.status_code, answer.text)
    assert answer.json()["outputs"][0]["data"] == [0]


def _loaded(server: Server) -> set[str]:
    return {m["name"] for m in server.client.get("/v2/repository/index").json()
            if m["state"] == "ready"}


@pytest.fixture
def pool(start_server, shared_root: Path) -> Server:
    """The pool, with a memory request of what the server takes itself (measured by one
    run) and room for FITS members."""
    probe = start_server(_pool(shared_root, 8 << 30))
    _infer(probe, "customer-0000")
    found = _metrics(probe)
    server_itself = (8 << 30) - found["modelops_pool_memory_budget_bytes"]
    member = found["modelops_pool_loaded_bytes"]
    probe.stop()
    memory = int(server_itself + member * (FITS + 0.5))
    server = start_server(_pool(shared_root, memory))
    server.memory, server.member = memory, member  # type: ignore[attr-defined]
    return server


def test_a_thousand_members_serve_a_random_stream_under_the_memory_request(pool: Server):
    assert len(pool.client.get("/v2/repository/index").json()) == MEMBERS
    assert pool.client.get("/v2/health/ready").status_code == 200  # nothing loaded yet
    assert _loaded(pool) == set()
    meta = pool.client.get("/v2/models/customer-0999")
    assert meta.status_code == 200 and _loaded(pool) == set()  # metadata loads nothing

    rng = random.Random(7)
    hot = [f"customer-{i:04d}" for i in rng.sample(range(MEMBERS), 30)]
    stream = [rng.choice(hot) if rng.random() < 0.6 else f"customer-{rng.randrange(MEMBERS):04d}"
              for _ in range(1500)]
    for count, name in enumerate(stream, 1):
        _infer(pool, name)
        if count % 100 == 0:
            found = _metrics(pool)
            assert found["modelops_pool_loaded_bytes"] <= \
                found["modelops_pool_memory_budget_bytes"]
            assert found["modelops_pool_loaded_models"] <= FITS

    found = _metrics(pool)
    budget = found["modelops_pool_memory_budget_bytes"]
    assert FITS - 2 <= budget // pool.member <= FITS  # type: ignore[attr-defined]
    # least recently used out first: what is loaded is exactly the last ones asked for
    loaded = _loaded(pool)
    recent: list[str] = []
    for name in reversed(stream):
        if name not in recent:
            recent.append(name)
    assert loaded == set(recent[:len(loaded)]) and len(loaded) >= FITS - 2
    loads = _counted(found, "modelops_model_loads_total")
    evictions = _counted(found, 'modelops_model_evictions_total{model="customer')
    assert loads - evictions == len(loaded) and evictions > 500
    assert 'reason="idle"' not in " ".join(found)
    assert _peak_resident(pool) <= pool.memory  # type: ignore[attr-defined]


def test_concurrent_requests_to_many_members_fail_none(pool: Server):
    """Eight clients at once over all 1,000: each request waits for its model to load,
    members in use are never unloaded under it, and nothing fails."""
    failures: list[str] = []

    def client(seed: int) -> None:
        rng = random.Random(seed)
        for _ in range(150):
            name = f"customer-{rng.randrange(MEMBERS):04d}"
            answer = pool.client.post(f"/v2/models/{name}/infer", json=ROW)
            if answer.status_code != 200:
                failures.append(f"{name}: {answer.status_code} {answer.text}")

    threads = [threading.Thread(target=client, args=(seed,)) for seed in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    found = _metrics(pool)
    assert found["modelops_pool_loaded_bytes"] <= found["modelops_pool_memory_budget_bytes"]
    assert _peak_resident(pool) <= pool.memory  # type: ignore[attr-defined]


def test_an_idle_member_unloads_and_loads_again_on_its_next_request(start_server,
                                                                     shared_root: Path):
    server = start_server(_pool(shared_root, 8 << 30, unloadAfterIdleSeconds=1))
    _infer(server, "customer-0001")
    assert _loaded(server) == {"customer-0001"}
    deadline = time.monotonic() + 10
    while _loaded(server) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _loaded(server) == set()
    _infer(server, "customer-0001")
    found = _metrics(server)
    assert found['modelops_model_loads_total{model="customer-0001",reason="idle"}'] == 1
    assert found['modelops_model_evictions_total{model="customer-0001",reason="idle"}'] == 1


def test_a_bad_request_to_an_unloaded_member_is_a_400_and_loads_nothing(start_server,
                                                                         shared_root: Path):
    server = start_server(_pool(shared_root, 8 << 30))
    answer = server.client.post("/v2/models/customer-0005/infer", content=b"{oops",
                                headers={"content-type": "application/json"})
    assert answer.status_code == 400 and "error" in answer.json()
    assert _loaded(server) == set()
    assert server.client.post("/v2/models/customer-5000/infer", json=ROW).status_code == 404
