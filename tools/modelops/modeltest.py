"""`modelops test`: load each model with the real server and check its example, per version.

Each model is tested in a fresh process (`python -m modelops.modeltest`), so its load
time and memory are its own, not those of the models tested before it.
"""

from __future__ import annotations

import dataclasses
import math
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson

from modelops import quantity
from modelops.repo import Repo
from modelops.serve import local_config


@dataclasses.dataclass
class Result:
    name: str
    problems: list[str]
    load_seconds: float = 0.0
    memory_bytes: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems


def _rss() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def _compare(label: str, want: Any, have: dict | None, tolerance: float) -> list[str]:
    if have is None:
        return [f"{label}: missing from the response"]
    problems = []
    for field in ("datatype", "shape"):
        if getattr(want, field) != have.get(field):
            problems.append(f"{label}: {field} expected {getattr(want, field)!r}, "
                            f"got {have.get(field)!r}")
    data = have.get("data", [])
    if len(data) != len(want.data):
        return problems + [f"{label}: expected {len(want.data)} values, got {len(data)}"]
    for i, (w, h) in enumerate(zip(want.data, data, strict=True)):
        floats = isinstance(w, float) or isinstance(h, float)
        same = (isinstance(h, (int, float)) and math.isclose(w, h, rel_tol=0, abs_tol=tolerance)) \
            if floats and isinstance(w, (int, float)) else w == h
        if not same:
            problems.append(f"{label}: data[{i}] expected {w!r}, got {h!r}"
                            + (f" (tolerance {tolerance})" if floats else ""))
            break
    return problems


def stored_artifact(repo: Repo, name: str) -> str | None:
    """The first s3:// artifact of the model's locally served versions, if any."""
    assert repo.settings is not None
    spec = repo.models[name].envs[repo.settings.local_environment]
    return next((v.artifact for v in spec.versions if (v.artifact or "").startswith("s3://")),
                None)


def test_model(repo: Repo, name: str, shared_root: Path) -> Result:
    """In this process: load, then send the example through the real app to every version."""
    import asyncio

    import httpx

    from modelops_runtime.options import ServerOptions
    from modelops_runtime.registry import Registry
    from modelops_runtime.server import create_app

    spec = repo.models[name].obj.spec
    if spec.runtime == "custom":
        return Result(name, ["runtime 'custom' runs its own image; test it in that image's CI"])
    example = spec.example
    if example is None:
        return Result(name, ["the spec has no example to test (add spec.example)"])
    config = local_config(repo, [name])
    registry = Registry(config, shared_root, repo.root)
    before, started = _rss(), time.perf_counter()
    registry.wait_loaded()
    result = Result(name, [], time.perf_counter() - started, max(0, _rss() - before))
    loaded = registry.models[name]
    if loaded.state != "ready":
        result.problems.append(f"failed to load: {loaded.error}")
        return result
    slowest = max(v.load_seconds for v in loaded.versions.values())
    if example.maxLoadSeconds and slowest > example.maxLoadSeconds:
        result.problems.append(f"loading took {slowest:.2f} s, over maxLoadSeconds "
                               f"{example.maxLoadSeconds}")
    if example.maxMemory and Decimal(result.memory_bytes) > quantity.parse(example.maxMemory):
        grown = quantity.memory(Decimal(result.memory_bytes))
        result.problems.append(f"loading grew memory by {grown}"
                               f", over maxMemory {example.maxMemory}")
    app = create_app(config, ServerOptions(shared_root=shared_root), repo.root, registry)
    body = example.request.model_dump(exclude_none=True)

    async def send(version: str) -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://modelops") as client:
            return await client.post(f"/v2/models/{name}/versions/{version}/infer", json=body)

    for version in loaded.versions:
        response = asyncio.run(send(version))
        if response.status_code != 200:
            result.problems.append(f"{version}: HTTP {response.status_code}: "
                                   f"{response.json().get('error', response.text)}")
            continue
        if example.response is None:
            continue
        outputs = {o["name"]: o for o in response.json()["outputs"]}
        for want in example.response.outputs:
            result.problems += _compare(f"{version}: output {want.name!r}", want,
                                        outputs.get(want.name), example.tolerance)
    return result


def run(root: Path, name: str, shared_root: Path) -> Result:
    """Test one model in a fresh process."""
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "modelops.modeltest", str(root), name,
                           str(shared_root)], capture_output=True, text=True)
    try:
        return Result(**orjson.loads(proc.stdout))
    except (orjson.JSONDecodeError, TypeError):
        return Result(name, [f"the test process failed: {proc.stderr.strip()[-500:]}"])


if __name__ == "__main__":
    import sys

    from modelops.repo import load

    root, model_name, shared = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
    print(orjson.dumps(dataclasses.asdict(test_model(load(root), model_name, shared))).decode())
