"""The checked-in gRPC stubs are what grpcio-tools makes of the checked-in proto."""

from __future__ import annotations

import subprocess
import sys

import pytest
from conftest import REPO

PROTOS = ["inference", "asynchronous"]


@pytest.mark.parametrize("proto", PROTOS)
def test_the_generated_stubs_are_current(tmp_path, proto):
    source = f"modelops_runtime/grpc/proto/{proto}.proto"
    made = subprocess.run([sys.executable, "-m", "grpc_tools.protoc", f"-I{REPO / 'serving'}",
                           f"--python_out={tmp_path}", f"--grpc_python_out={tmp_path}",
                           f"--pyi_out={tmp_path}", source], capture_output=True, text=True)
    assert made.returncode == 0, made.stderr
    for name in (f"{proto}_pb2.py", f"{proto}_pb2_grpc.py", f"{proto}_pb2.pyi"):
        fresh = (tmp_path / "modelops_runtime/grpc/proto" / name).read_text()
        kept = (REPO / "serving/modelops_runtime/grpc/proto" / name).read_text()
        assert fresh == kept, f"{name} is stale: regenerate it (see the header of {source})"
