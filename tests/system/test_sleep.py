"""Models that sleep, on one machine: `modelops serve --scale-to-zero` as a user runs it,
with Debian's RabbitMQ started by the command itself, standard clients with their defaults,
and the runner processes it wakes and puts to sleep watched by their PIDs."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
import tritonclient.grpc as triton_grpc
import tritonclient.http as triton_http
from conftest import copy_repo
from servers import free_port
from tritonclient.utils import InferenceServerException

SLOW = """
import os, time
from pathlib import Path
from modelops_runtime.model import Model


class Slow(Model):
    '''Sleeps DELAY seconds, then doubles x; every call is a line in CALLS.'''

    def predict(self, inputs):
        x = inputs["x"]
        with open(os.environ["CALLS"], "a") as calls:
            calls.write(f"{float(x.ravel()[0])}\\n")
        time.sleep(float(os.environ.get("DELAY", "0")))
        return {"y": x * 2}
"""
SLOW_SPEC = """
apiVersion: modelops/v1
kind: Model
metadata: {name: slow, team: data-science, description: "Sleeps, then doubles x."}
spec:
  runtime: python
  versions: [{name: v1}]
  resources: {cpu: 100m, memory: 128Mi}
  autoscaling: {minReplicas: 0, maxReplicas: 1, idleSeconds: 1}
  async: {}
  inputs: [{name: x, datatype: FP64, shape: [-1, 1]}]
  outputs: [{name: y, datatype: FP64, shape: [-1, 1]}]
"""
LATE = """
import time
from modelops_runtime.model import Model


class Late(Model):
    '''Takes 4 s to load: longer than its front door holds a request.'''

    def load(self):
        time.sleep(4)

    def predict(self, inputs):
        return {"y": inputs["x"] * 2}
"""
LATE_SPEC = SLOW_SPEC.replace("name: slow", "name: late").replace(
    '"Sleeps, then doubles x."', '"Loads slowly, then doubles x."').replace(
    "idleSeconds: 1}", "idleSeconds: 30, wakeSeconds: 1}")
IRIS_ROW = np.array([[5.1, 3.5, 1.4, 0.2]], dtype=np.float64)


class Serving:
    """A running `modelops serve --scale-to-zero`: its URLs and what it printed."""

    def __init__(self, root: Path, stderr: Path, port: int, grpc_port: int):
        self.root, self.stderr = root, stderr
        self.url, self.grpc = f"http://127.0.0.1:{port}", f"127.0.0.1:{grpc_port}"
        self.client = httpx.Client(base_url=self.url, timeout=60)

    def log(self) -> str:
        return self.stderr.read_text()

    def runners(self, name: str) -> list[int]:
        """The PIDs of the runners it has started for `name`, in order."""
        return [int(p) for p in re.findall(rf"waking {name} \(pid (\d+)\)", self.log())]

    def state(self, name: str) -> str:
        index = self.client.get("/v2/repository/index").json()
        return next(m["state"] for m in index if m["name"] == name)

    def catalog(self, name: str) -> str:
        """What the catalog (`modelops catalog --serve` over this server) shows for the
        model's first version."""
        from modelops.generate.contract import catalog_config
        from modelops.repo import load
        from modelops_catalog.app import create_catalog_app

        repo = load(self.root)
        app = create_catalog_app(catalog_config(repo, repo.settings.local_environment,
                                                self.url))

        async def listed() -> list[dict]:
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app),
                                         base_url="http://catalog") as client:
                return (await client.get("/catalog/api/models")).json()

        models = asyncio.run(listed())
        return next(m for m in models if m["name"] == name)["versions"][0]["state"]

    def until(self, what, timeout: float = 60, step: float = 0.05):  # type: ignore[no-untyped-def]
        deadline = time.monotonic() + timeout
        while not (found := what()):
            assert time.monotonic() < deadline, self.log()[-4000:]
            time.sleep(step)
        return found

    def outcome(self, name: str, request_id: str, timeout: float = 90) -> httpx.Response:
        """An asynchronous request's answer, once it is no longer 202."""
        def answered() -> httpx.Response | None:
            got = self.client.get(f"/v2/models/{name}/async/{request_id}")
            return got if got.status_code != 202 else None
        return self.until(answered, timeout)

    def asleep(self, name: str, timeout: float = 60) -> None:
        """Its runners have all exited, and the front door says so."""
        self.until(lambda: all(not alive(p) for p in self.runners(name)), timeout)
        self.until(lambda: self.state(name) == "asleep", timeout)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with contextlib.suppress(OSError):  # a zombie has exited: its parent has not reaped it
        if Path(f"/proc/{pid}/stat").read_text().split(") ")[1].startswith("Z"):
            return False
    return True


@pytest.fixture
def sleepy_repo(tmp_path: Path) -> Path:
    """The examples, with iris asleep after 2 idle seconds and a slow python model."""
    root = copy_repo(tmp_path)
    spec = root / "models/iris/model.yaml"
    text = spec.read_text()
    spec.write_text(text.replace("    minReplicas: 1\n    maxReplicas: 3\n",
                                 "    minReplicas: 0\n    maxReplicas: 3\n    idleSeconds: 2\n", 1))
    assert "idleSeconds: 2" in spec.read_text()
    (root / "models/slow").mkdir()
    (root / "models/slow/model.yaml").write_text(textwrap.dedent(SLOW_SPEC))
    (root / "models/slow/model.py").write_text(SLOW)
    (root / "models/late").mkdir()
    (root / "models/late/model.yaml").write_text(textwrap.dedent(LATE_SPEC))
    (root / "models/late/model.py").write_text(LATE)
    return root


@pytest.fixture
def serving(sleepy_repo: Path, shared_root: Path, tmp_path: Path) -> Iterator[Serving]:
    port, grpc_port = free_port(), free_port()
    stderr = tmp_path / "serve.stderr"
    calls = tmp_path / "calls.txt"
    proc = subprocess.Popen(
        [sys.executable, "-m", "modelops", "serve", "iris", "slow", "late", "--scale-to-zero",
         "--shared", str(shared_root), "--port", str(port), "--grpc-port", str(grpc_port)],
        cwd=sleepy_repo, stderr=stderr.open("wb"),
        env={**os.environ, "CALLS": str(calls), "DELAY": "3"})
    running = Serving(sleepy_repo, stderr, port, grpc_port)
    running.calls = calls  # type: ignore[attr-defined]
    try:
        running.until(lambda: _ready(running.url) or proc.poll() is not None, timeout=120)
        assert proc.poll() is None, running.log()
        yield running
    finally:
        pids = [p for name in ("iris", "slow", "late") for p in running.runners(name)]
        proc.terminate()
        proc.wait(90)
        running.client.close()
        assert not [p for p in pids if alive(p)], "a runner outlived `modelops serve`"


def _ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/v2/health/ready").status_code == 200
    except httpx.TransportError:
        return False


def _iris_http(url: str) -> np.ndarray:
    client = triton_http.InferenceServerClient(url.removeprefix("http://"))
    tensor = triton_http.InferInput("input-0", [1, 4], "FP64")
    tensor.set_data_from_numpy(IRIS_ROW)
    return client.infer("iris", [tensor]).as_numpy("predict")


def _iris_grpc(address: str) -> np.ndarray:
    client = triton_grpc.InferenceServerClient(address)
    tensor = triton_grpc.InferInput("input-0", [1, 4], "FP64")
    tensor.set_data_from_numpy(IRIS_ROW)
    return client.infer("iris", [tensor]).as_numpy("predict")


def test_a_sleeping_model_wakes_for_its_first_request_and_sleeps_again(serving: Serving):
    """HTTP, then gRPC, then an asynchronous request, each to a model at zero: answered by
    standard clients with their defaults, and asleep again (no process) after idleSeconds."""
    assert serving.state("iris") == "asleep" and serving.runners("iris") == []
    assert serving.catalog("iris") == "asleep"
    ready = serving.client.get("/v2/models/iris/ready")
    assert ready.status_code == 200 and ready.json()["state"] == "asleep"  # a request wakes it

    assert _iris_http(serving.url).tolist() == [0]  # setosa
    assert len(serving.runners("iris")) == 1
    assert serving.catalog("iris") == "ready"  # awake until idleSeconds pass
    serving.asleep("iris")
    assert serving.catalog("iris") == "asleep"

    assert _iris_grpc(serving.grpc).tolist() == [0]
    assert len(serving.runners("iris")) == 2
    serving.asleep("iris")

    body = {"inputs": [{"name": "input-0", "datatype": "FP64", "shape": [1, 4],
                        "data": IRIS_ROW.ravel().tolist()}]}
    submitted = serving.client.post("/v2/models/iris/infer", json=body,
                                    headers={"Prefer": "respond-async", "X-Request-ID": "a1"})
    assert submitted.status_code == 202, submitted.text
    done = serving.outcome("iris", "a1")
    assert done.status_code == 200 and done.json()["outputs"][0]["data"] == [0]
    assert len(serving.runners("iris")) == 3
    serving.asleep("iris")


def test_bad_input_to_a_sleeping_model_is_a_4xx_at_once(serving: Serving):
    """Framing is checked at the front door; a wrong tensor comes back as the model's 400."""
    garbage = serving.client.post("/v2/models/iris/infer", content=b"{not json",
                                  headers={"content-type": "application/json"})
    assert garbage.status_code == 400 and "error" in garbage.json()
    assert serving.runners("iris") == []  # nothing worth waking for
    wrong = serving.client.post("/v2/models/iris/infer", json={"inputs": [
        {"name": "nope", "datatype": "FP64", "shape": [1, 4], "data": [1, 2, 3, 4]}]})
    assert wrong.status_code == 400 and "nope" in wrong.json()["error"]
    assert serving.client.post("/v2/models/iris/versions/v9/infer", json={}).status_code == 404


def test_not_put_to_sleep_while_a_request_is_unacknowledged(serving: Serving):
    """`slow` takes 3 s a request and sleeps after 1 idle second: its runner is not told
    to stop (SIGTERM, which a drain would survive only within its grace period) until the
    request is answered, and answers it once."""
    body = {"inputs": [{"name": "x", "datatype": "FP64", "shape": [1, 1], "data": [21.0]}]}
    started = time.monotonic()
    answer = serving.client.post("/v2/models/slow/infer", json=body)
    assert answer.status_code == 200, answer.text
    assert answer.json()["outputs"][0]["data"] == [42.0]
    assert time.monotonic() - started >= 3
    assert "slow idle" not in serving.log(), "told to sleep mid-request"
    assert len(serving.runners("slow")) == 1 and "exited" not in serving.log()
    assert serving.calls.read_text().split() == ["21.0"]  # type: ignore[attr-defined]
    serving.asleep("slow")


def test_a_runner_killed_while_waking_loses_nothing(serving: Serving):
    """kill -9 the runner as it wakes: the broker hands its requests out again, the
    supervisor starts another, and every request is answered exactly once."""
    ids = [f"k{i}" for i in range(4)]
    for i, request_id in enumerate(ids):
        body = {"inputs": [{"name": "x", "datatype": "FP64", "shape": [1, 1], "data": [i]}]}
        got = serving.client.post("/v2/models/slow/infer", json=body, headers={
            "Prefer": "respond-async", "X-Request-ID": request_id})
        assert got.status_code == 202, got.text
    first = serving.until(lambda: serving.runners("slow"))[0]
    calls = serving.calls  # type: ignore[attr-defined]
    # a whole line: the file exists from open(), before the call is written and closed
    serving.until(lambda: calls.exists() and calls.read_text().endswith("\n"))
    assert alive(first) and "slow idle" not in serving.log(), serving.log()  # the one working
    os.kill(first, signal.SIGKILL)  # mid-request: one message unacknowledged
    results = {request_id: serving.outcome("slow", request_id).json()["outputs"][0]["data"]
               for request_id in ids}
    assert results == {f"k{i}": [2.0 * i] for i in range(4)}
    assert len(serving.runners("slow")) >= 2 and not alive(first)
    made = calls.read_text().split()
    assert sorted(set(made)) == ["0.0", "1.0", "2.0", "3.0"]
    assert len(made) == 5  # the killed request ran again, once; the others once each


def test_a_model_that_does_not_wake_in_time_is_a_503_with_retry_after(serving: Serving):
    """`late` loads in 4 s and its front door holds a request 1 s (wakeSeconds): the caller
    gets 503 and Retry-After (HTTP) or UNAVAILABLE (gRPC), and, once awake, it answers."""
    body = {"inputs": [{"name": "x", "datatype": "FP64", "shape": [1, 1], "data": [4.0]}]}
    started = time.monotonic()
    answer = serving.client.post("/v2/models/late/infer", json=body)
    assert answer.status_code == 503, answer.text
    assert answer.headers["retry-after"] == "1" and "did not wake" in answer.json()["error"]
    assert 1 <= time.monotonic() - started < 3
    client = triton_grpc.InferenceServerClient(serving.grpc)
    tensor = triton_grpc.InferInput("x", [1, 1], "FP64")
    tensor.set_data_from_numpy(np.array([[4.0]]))
    with pytest.raises(InferenceServerException) as refused:
        client.infer("late", [tensor])
    assert refused.value.status() == "StatusCode.UNAVAILABLE"
    serving.until(lambda: serving.state("late") == "ready", timeout=30)
    awake = serving.client.post("/v2/models/late/infer", json=body)
    assert awake.status_code == 200 and awake.json()["outputs"][0]["data"] == [8.0]
    assert len(serving.runners("late")) == 1  # one wake: the refused requests expired
