"""`modelops serve` runs every example spec locally and each answers its example request."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import time

import httpx
from conftest import examples
from servers import free_port

from modelops.repo import load


def _close(expected, actual, tolerance: float) -> bool:
    if isinstance(expected, float) or isinstance(actual, float):
        return math.isclose(expected, actual, abs_tol=tolerance)
    return expected == actual


def test_every_example_answers_its_example(shared_root):
    port, grpc_port = free_port(), free_port()
    proc = subprocess.Popen([sys.executable, "-m", "modelops", "serve", "--port", str(port),
                             "--grpc-port", str(grpc_port), "--shared", str(shared_root)], cwd=examples(), stderr=subprocess.PIPE,
                            env={**os.environ, "GITHUB_ACTIONS": ""})
    try:
        client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30)
        deadline = time.monotonic() + 60
        while True:
            try:
                if client.get("/v2/health/ready").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline and proc.poll() is None, "server never became ready"
            time.sleep(0.1)
        specs = load(examples()).models
        assert len(specs) >= 5
        for name, entry in specs.items():
            example = entry.obj.spec.example
            metadata = client.get(f"/v2/models/{name}").json()
            # A generic client builds its request from the metadata alone.
            assert [(t["name"], t["datatype"], len(t["shape"])) for t in metadata["inputs"]] \
                == [(t.name, t.datatype, len(t.shape)) for t in example.request.inputs], name
            assert metadata["outputs"], name
            body = example.request.model_dump(exclude_none=True)
            got = client.post(f"/v2/models/{name}/infer", json=body)
            assert got.status_code == 200, (name, got.text)
            outputs = {o["name"]: o for o in got.json()["outputs"]}
            for want in example.response.outputs:
                have = outputs[want.name]
                assert (have["datatype"], have["shape"]) == (want.datatype, want.shape), name
                assert all(_close(e, a, example.tolerance) for e, a in zip(want.data, have["data"], strict=True)), name
    finally:
        proc.terminate()
        _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 0
    assert b"curl -s -H 'content-type: application/json'" in stderr  # ready-to-paste examples
    assert f"and gRPC on 127.0.0.1:{grpc_port}".encode() in stderr
    assert b"  ready   iris (v1, v2)" in stderr  # each model's state, once loading is over


def test_serve_says_what_failed_and_stops_when_nothing_loads(tmp_path):
    """A newcomer who skipped building the artifacts is told why and how, not given 503s."""
    port = free_port()
    ran = subprocess.run([sys.executable, "-m", "modelops", "serve", "iris", "--port", str(port),
                          "--grpc-port", "0", "--shared", str(tmp_path / "empty")], cwd=examples(),
                         capture_output=True, text=True, timeout=120,
                         env={**os.environ, "GITHUB_ACTIONS": ""})
    assert ran.returncode == 1
    assert f"failed  iris: ArtifactError: artifact {tmp_path}/empty/artifacts/iris/v1/" \
           f"model.joblib does not exist" in ran.stderr
    assert f"python -m modelops.examples {tmp_path / 'empty'}" in ran.stderr
    assert ran.stderr.rstrip().endswith("error: no model could load; stopping")
