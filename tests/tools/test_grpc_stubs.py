"""The checked-in gRPC stubs are what grpcio-tools makes of the checked-in proto."""

from __future__ import annotations

import subprocess
import sys

from conftest import REPO

PROTO = "modelops_runtime/grpc/proto/inference.proto"


def test_the_generated_stubs_are_current(tmp_path):
    made = subprocess.run([sys.executable, "-m", "grpc_tools.protoc", f"-I{REPO / 'serving'}",
                           f"--python_out={tmp_path}", f"--grpc_python_out={tmp_path}",
                           f"--pyi_out={tmp_path}", PROTO], capture_output=True, text=True)
    assert made.returncode == 0, made.stderr
    for name in ("inference_pb2.py", "inference_pb2_grpc.py", "inference_pb2.pyi"):
        fresh = (tmp_path / "modelops_runtime/grpc/proto" / name).read_text()
        kept = (REPO / "serving/modelops_runtime/grpc/proto" / name).read_text()
        assert fresh == kept, f"{name} is stale: regenerate it (see the header of {PROTO})"
