"""The data plane and the two codecs in process, with no server: a typed request from
HTTP JSON, HTTP binary and gRPC gives the same answer, and each error is the same kind
whatever carried it (tests/system/ has the same over real sockets). gRPC messages are
tritonclient's own builds of the protocol's messages, as the standard client sends them."""

from __future__ import annotations

import asyncio
import json
import textwrap

import numpy as np
import pytest
from tritonclient.grpc import service_pb2 as pb

from modelops_runtime import errors, metrics
from modelops_runtime.config import ServerConfig
from modelops_runtime.dataplane import DataPlane
from modelops_runtime.grpc import codec as grpc_codec
from modelops_runtime.http import codec as http_codec
from modelops_runtime.inference import InferRequest
from modelops_runtime.options import ServerOptions
from modelops_runtime.registry import Registry

DOUBLER = """
from modelops_runtime.model import Model


class Doubler(Model):
    def predict(self, inputs):
        x = inputs["x"]
        if (x < 0).any():
            raise RuntimeError("negative input")  # the model's own fault
        return {"y": x * 2}
"""


@pytest.fixture
def plane(tmp_path):
    (tmp_path / "doubler.py").write_text(textwrap.dedent(DOUBLER))
    config = ServerConfig.model_validate({
        "server": "unit", "placement": "dedicated", "models": [{
            "name": "doubler", "runtime": "python", "code": "doubler.py", "concurrency": 2,
            "versions": [{"name": "v1"}], "logging": {"dataset": "d"},
            "inputs": [{"name": "x", "datatype": "FP32", "shape": [-1, 2]}],
            "outputs": [{"name": "y", "datatype": "FP32", "shape": [-1, 2]}]}]})
    registry = Registry(config, tmp_path, tmp_path)
    registry.load_all()
    return DataPlane(config, ServerOptions(shared_root=tmp_path), registry)


def _http(body: dict, version: str | None = None) -> InferRequest:
    return http_codec.decode(json.dumps(body).encode(), None, "doubler", version, "r-1")


def _http_binary(array: np.ndarray) -> InferRequest:
    header = json.dumps({"inputs": [{"name": "x", "datatype": "FP32", "shape": list(array.shape),
                                     "parameters": {"binary_data_size": array.nbytes}}],
                         "parameters": {"binary_data_output": True}}).encode()
    return http_codec.decode(header + array.tobytes(), str(len(header)), "doubler", None, "r-2")


def _grpc(array: np.ndarray) -> InferRequest:
    message = pb.ModelInferRequest(model_name="doubler", id="mine")
    message.inputs.add(name="x", datatype="FP32", shape=array.shape)
    message.raw_input_contents.append(array.astype("<f4").tobytes())
    return grpc_codec.decode(message, "r-3")


def test_every_transport_decodes_to_the_same_request_and_answer(plane):
    rows = np.array([[1.5, 2.0], [3.0, 0.25]], dtype=np.float32)
    requests = [_http({"inputs": [{"name": "x", "datatype": "FP32", "shape": [2, 2],
                                   "data": rows.ravel().tolist()}]}),
                _http_binary(rows), _grpc(rows)]
    answers = [asyncio.run(plane.infer(r)) for r in requests]
    for answer in answers:
        assert answer.model == "doubler" and answer.version == "v1"
        assert answer.outputs["y"].tolist() == (rows * 2).tolist()
    assert [a.id for a in answers] == ["r-1", "r-2", "mine"]  # the client's id wins


def test_each_codec_encodes_the_answer_its_client_asked_for(plane):
    rows = np.array([[1.0, 2.0]], dtype=np.float32)
    request = _http_binary(rows)
    body, media_type, headers = http_codec.encode(asyncio.run(plane.infer(request)), request)
    assert media_type == "application/octet-stream"
    length = int(headers["Inference-Header-Content-Length"])
    assert np.frombuffer(body[length:], dtype="<f4").tolist() == [2.0, 4.0]
    message = grpc_codec.encode(asyncio.run(plane.infer(_grpc(rows))), pb.ModelInferResponse())
    assert np.frombuffer(message.raw_output_contents[0], dtype="<f4").tolist() == [2.0, 4.0]


@pytest.mark.parametrize("make, kind, words", [
    (lambda: _http({"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 3],
                                "data": [1, 2, 3]}]}), errors.InvalidRequest,
     "expected 2 features per row"),
    (lambda: _http({"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 2],
                                "data": [1, 2]}]}, "v9"), errors.NotFound, "no version 'v9'"),
    (lambda: _grpc(np.zeros((1, 3), dtype=np.float32)), errors.InvalidRequest,
     "expected 2 features per row"),
    (lambda: _grpc(np.array([[-1.0, 1.0]], dtype=np.float32)), errors.ModelFailed,
     "model 'doubler' failed (request id r-3)"),
])
def test_errors_are_kinds_whatever_the_transport(plane, make, kind, words):
    with pytest.raises(kind, match=words.replace("(", r"\(").replace(")", r"\)")):
        asyncio.run(plane.infer(make()))


def test_a_request_the_codec_refuses_is_counted_against_its_model(plane):
    before = metrics.requests("doubler", "v1", "400")._value.get()
    with pytest.raises(errors.InvalidRequest) as refused:
        http_codec.decode(b"{", None, "doubler", None, "r-4")
    assert plane.refused("doubler", None, refused.value) is refused.value
    assert metrics.requests("doubler", "v1", "400")._value.get() == before + 1
    with pytest.raises(errors.NotFound):  # an unknown model is that error, as it would be
        plane.refused("nobody", None, refused.value)


def test_the_concurrency_limit_answers_unavailable_with_a_retry_time(plane):
    plane.registry.models["doubler"].in_flight = 2  # as if two requests were running
    with pytest.raises(errors.Unavailable) as busy:
        asyncio.run(plane.infer(_grpc(np.ones((1, 2), dtype=np.float32))))
    assert busy.value.retry_after == 1 and busy.value.code == "503"


def test_a_claimed_size_is_checked_against_the_bytes_before_anything_is_allocated():
    message = pb.ModelInferRequest(model_name="doubler")
    message.inputs.add(name="s", datatype="BYTES", shape=[2 ** 27])
    message.raw_input_contents.append(b"\0" * 16)
    with pytest.raises(errors.InvalidRequest, match="need at least 536870912 bytes"):
        grpc_codec.decode(message, "r-5")
