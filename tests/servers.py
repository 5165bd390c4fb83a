"""Start a real model server process on 127.0.0.1 for a test, and stop it afterwards."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import yaml
from conftest import examples


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    def __init__(self, workdir: Path, config: dict, shared_root: Path, **settings):
        self.config_path = workdir / "server.yaml"
        self.config_path.write_text(yaml.safe_dump(config))
        self.port, self.grpc_port = free_port(), free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "MODELOPS_CONFIG": str(self.config_path),
               "MODELOPS_SHARED_ROOT": str(shared_root), "MODELOPS_HOST": "127.0.0.1",
               "MODELOPS_PORT": str(self.port), "MODELOPS_GRPC_PORT": str(self.grpc_port),
               **{f"MODELOPS_{k.upper()}": str(v) for k, v in settings.items()}}
        self.stderr = workdir / "server.stderr"
        self.proc = subprocess.Popen([sys.executable, "-m", "modelops_runtime"], env=env,
                                     stderr=self.stderr.open("wb"), cwd=workdir)
        self.client = httpx.Client(base_url=self.url, timeout=30)

    def wait(self, path: str = "/v2/health/ready", timeout: float = 30) -> float:
        """Seconds until `path` answered 200."""
        start = time.monotonic()
        while time.monotonic() - start < timeout:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.stderr.read_text()}")
            try:
                if self.client.get(path).status_code == 200:
                    return time.monotonic() - start
            except httpx.TransportError:
                pass
            time.sleep(0.02)
        raise TimeoutError(f"{path} not 200 after {timeout}s: {self.stderr.read_text()}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.client.close()
        return self.proc.returncode


@contextlib.contextmanager
def modelops_serve(root: Path, *targets: str, timeout: float = 30) -> Iterator[str]:
    """`modelops serve` in `root`, as a user runs it, on a free port (no gRPC); yields its
    URL once ready, and stops it afterwards."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "modelops", "serve", *targets, "--port",
                             str(port), "--grpc-port", "0"], cwd=root, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                if httpx.get(f"{url}/v2/health/ready").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, "serve never got ready"
            time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(30)


def example_artifacts(root: Path) -> Path:
    """The example artifacts, built once per test session into `root`."""
    from modelops import examples

    if not (root / "artifacts/iris/v1/model.joblib").is_file():
        examples.make(root)
    return root


def model(name: str, runtime: str = "sklearn", versions=None, **extra) -> dict:
    """A model's server config; an example model's declares its tensors as the
    generator writes them."""
    from modelops.generate.contract import declared
    from modelops.repo import load

    tensors = {}
    if versions is None:
        spec = load(examples()).models[name].obj.spec
        versions = [v.model_dump(exclude_none=True) for v in spec.versions]
        tensors = {side: [t.model_dump() for t in declared(spec, side)]
                   for side in ("inputs", "outputs")}
    return {"name": name, "runtime": runtime, "versions": versions,
            "logging": {"enabled": False, "dataset": name}, **tensors, **extra}


def config(*models: dict, placement: str = "shared") -> dict:
    return {"server": "test", "placement": placement, "models": list(models)}
