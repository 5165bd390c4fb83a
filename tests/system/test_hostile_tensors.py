"""Hostile tensors, one table sent over every transport: HTTP JSON (where the values can
be written as JSON), HTTP with Triton's binary data, and gRPC with raw contents (as the
standard clients send them). No case may answer 5xx, INTERNAL or UNKNOWN; each refusal
names the tensor and the rule; and a claimed size is checked against the bytes sent
before anything is allocated, so the server's memory does not grow.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import grpc
import numpy as np
import pytest
from servers import Server, config, model
from tritonclient.grpc import service_pb2 as pb
from tritonclient.grpc import service_pb2_grpc as pb_grpc

HTTP_STATUS = {grpc.StatusCode.INVALID_ARGUMENT: 400, grpc.StatusCode.NOT_FOUND: 404}


def _strings(*values: bytes) -> bytes:
    return b"".join(struct.pack("<I", len(v)) + v for v in values)


def f64(*values: float) -> bytes:
    return np.asarray(values, dtype="<f8").tobytes()


# (what the client did, model, input name, datatype, shape, raw bytes, JSON values or None,
#  gRPC status, words in the error)
CASES = [
    ("a BYTES tensor claiming 2**27 elements in 16 bytes", "iris", "input-0", "BYTES",
     [2 ** 27], b"\0" * 16, None, grpc.StatusCode.INVALID_ARGUMENT,
     "input 'input-0': 134217728 BYTES elements need at least 536870912 bytes"),
    ("a BYTES tensor claiming 2**40 elements", "iris", "input-0", "BYTES", [2 ** 40],
     b"\0" * 16, None, grpc.StatusCode.INVALID_ARGUMENT, "BYTES elements need at least"),
    ("an empty dimension beside a huge one", "iris", "input-0", "FP64", [0, 2 ** 62], b"", [],
     grpc.StatusCode.INVALID_ARGUMENT, "spans more than 2**40 values"),
    ("FP64 rows claiming more bytes than sent", "iris", "input-0", "FP64", [2 ** 20, 4],
     f64(1, 2, 3, 4), None, grpc.StatusCode.INVALID_ARGUMENT,
     "shape [1048576, 4] of FP64 needs 33554432 bytes"),
    ("an FP64 value past FP32's range to a scikit-learn tree", "iris", "input-0", "FP64",
     [1, 4], f64(1e300, 3.5, 1.4, 0.2), [1e300, 3.5, 1.4, 0.2],
     grpc.StatusCode.INVALID_ARGUMENT,
     "input 'input-0': a value is out of the range of FP32, the declared datatype"),
    ("an input name of 100 KB", "iris", "n" * 100_000, "FP64", [1, 4], f64(1, 2, 3, 4),
     [1, 2, 3, 4], grpc.StatusCode.INVALID_ARGUMENT, "... (truncated)"),
    ("an unknown datatype", "iris", "input-0", "FP99", [1, 4], f64(1, 2, 3, 4), [1, 2, 3, 4],
     grpc.StatusCode.INVALID_ARGUMENT, "input 'input-0': unknown datatype 'FP99'"),
    ("a BYTES element that is not UTF-8", "iris", "input-0", "BYTES", [1],
     _strings(b"\xff\xfe"), None, grpc.StatusCode.INVALID_ARGUMENT,
     "input 'input-0': BYTES element 0 is not UTF-8"),
    ("NaN in raw FP64 data", "iris", "input-0", "FP64", [1, 4], f64(float("nan"), 1, 2, 3),
     None, grpc.StatusCode.INVALID_ARGUMENT, "input 'input-0': NaN or infinity in FP64 data"),
    ("strings to a model of numbers", "iris", "input-0", "BYTES", [1, 4],
     _strings(b"a", b"b", b"c", b"d"), ["a", "b", "c", "d"], grpc.StatusCode.INVALID_ARGUMENT,
     "input 'input-0': expected datatype FP32, got BYTES"),
    ("an unknown model", "nope", "input-0", "FP64", [1, 4], f64(1, 2, 3, 4), [1, 2, 3, 4],
     grpc.StatusCode.NOT_FOUND, "model 'nope' is not served here"),
]
IDS = [c[0] for c in CASES]


@pytest.fixture(scope="module")
def server(tmp_path_factory, shared_root: Path):
    started = Server(tmp_path_factory.mktemp("tensors"), config(model("iris")), shared_root)
    started.wait()
    yield started
    started.stop()


@pytest.fixture(scope="module")
def stub(server):
    with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
        yield pb_grpc.GRPCInferenceServiceStub(channel), channel


def _grpc_request(model_name, name, datatype, shape, raw) -> pb.ModelInferRequest:
    request = pb.ModelInferRequest(model_name=model_name)
    request.inputs.add(name=name, datatype=datatype, shape=shape)
    request.raw_input_contents.append(raw)
    return request


@pytest.mark.parametrize("what, model_name, name, datatype, shape, raw, values, code, words",
                         CASES, ids=IDS)
def test_over_grpc(stub, what, model_name, name, datatype, shape, raw, values, code, words):
    with pytest.raises(grpc.RpcError) as refused:
        stub[0].ModelInfer(_grpc_request(model_name, name, datatype, shape, raw), timeout=20)
    assert refused.value.code() == code, refused.value.details()
    assert words in refused.value.details()


@pytest.mark.parametrize("what, model_name, name, datatype, shape, raw, values, code, words",
                         CASES, ids=IDS)
def test_over_binary_http(server, what, model_name, name, datatype, shape, raw, values, code,
                          words):
    header = json.dumps({"inputs": [{"name": name, "datatype": datatype, "shape": shape,
                                     "parameters": {"binary_data_size": len(raw)}}]}).encode()
    response = server.client.post(f"/v2/models/{model_name}/infer", content=header + raw,
                                  headers={"Inference-Header-Content-Length": str(len(header))})
    assert response.status_code == HTTP_STATUS[code], response.text
    assert words in response.json()["error"]


@pytest.mark.parametrize("what, model_name, name, datatype, shape, raw, values, code, words",
                         [c for c in CASES if c[6] is not None],
                         ids=[c[0] for c in CASES if c[6] is not None])
def test_over_json(server, what, model_name, name, datatype, shape, raw, values, code, words):
    response = server.client.post(f"/v2/models/{model_name}/infer", json={"inputs": [
        {"name": name, "datatype": datatype, "shape": shape, "data": values}]})
    assert response.status_code == HTTP_STATUS[code], response.text
    assert words in response.json()["error"]


def test_a_body_that_is_no_message_is_invalid_argument_and_counted(server, stub):
    garbage = stub[1].unary_unary("/inference.GRPCInferenceService/ModelInfer",
                                  request_serializer=lambda raw: raw,
                                  response_deserializer=lambda raw: raw)
    with pytest.raises(grpc.RpcError) as refused:
        garbage(b"\xff\xff\xff\xff not protobuf", timeout=10)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "not a valid ModelInferRequest" in refused.value.details()
    metrics = server.client.get("/metrics").text
    assert 'modelops_grpc_responses_total{code="INVALID_ARGUMENT"}' in metrics
    assert 'code="UNKNOWN"' not in metrics and 'code="INTERNAL"' not in metrics


def test_after_the_table_the_server_is_whole(server, stub):
    """It still answers, never said 500, and its memory did not grow by what was claimed."""
    rss = _rss_mb(server)
    for case in CASES:
        for _ in range(3):
            with pytest.raises(grpc.RpcError):
                stub[0].ModelInfer(_grpc_request(*case[1:6]), timeout=20)
    assert _rss_mb(server) < rss + 64  # 2**40 BYTES claimed, nothing allocated for them
    ok = stub[0].ModelInfer(_grpc_request("iris", "input-0", "FP64", [1, 4],
                                          f64(5.1, 3.5, 1.4, 0.2)), timeout=20)
    assert np.frombuffer(ok.raw_output_contents[0], dtype="<i8").tolist() == [0]
    metrics = server.client.get("/metrics").text
    assert 'modelops_http_responses_total{code="500"}' not in metrics  # (503: before ready)
    assert not any(f'code="{c}"' in metrics for c in ("INTERNAL", "UNKNOWN"))


def _rss_mb(server) -> float:
    for line in Path(f"/proc/{server.proc.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")
