"""Standard Open Inference Protocol v2 clients work against the server unchanged: with their
default settings, building each request from the server's own metadata."""

from __future__ import annotations

import numpy as np
import pytest
import tritonclient.http as triton
from conftest import REPO, examples
from servers import config, model
from tritonclient.utils import triton_to_np_dtype

from modelops.repo import load

EXAMPLES = load(examples()).models


@pytest.fixture(scope="module")
def every_example(tmp_path_factory, shared_root):
    """One pool serving every example model, as `modelops generate` configures each."""
    from servers import Server

    models = [model(name, spec.obj.spec.runtime,
                    **({"code": str(examples() / f"models/{name}/model.py")}
                       if spec.obj.spec.runtime == "python" else {}))
              for name, spec in EXAMPLES.items()]
    server = Server(tmp_path_factory.mktemp("clients"), config(*models), shared_root)
    server.wait()
    yield server
    server.stop()


def _example_arrays(name: str, metadata: dict) -> dict[str, np.ndarray]:
    """The spec's example request, shaped and typed as the server's metadata says."""
    sent = {t.name: t for t in EXAMPLES[name].obj.spec.example.request.inputs}
    return {t["name"]: np.array(sent[t["name"]].data, dtype=triton_to_np_dtype(t["datatype"]))
            .reshape(sent[t["name"]].shape) for t in metadata["inputs"]}


def _expect(name: str, got: dict[str, np.ndarray]) -> None:
    example = EXAMPLES[name].obj.spec.example
    for want in example.response.outputs:
        have = got[want.name]
        assert list(have.shape) == want.shape, (name, want.name)
        if want.datatype == "BYTES":
            assert [v.decode() if isinstance(v, bytes) else v for v in have.ravel()] == want.data
        else:
            assert np.allclose(have.ravel(), want.data, atol=example.tolerance), (name, want.name)


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_tritonclient_http_with_its_defaults(every_example, name):
    client = triton.InferenceServerClient(url=f"127.0.0.1:{every_example.port}")
    assert client.is_server_live() and client.is_server_ready() and client.is_model_ready(name)
    assert "binary_tensor_data" in client.get_server_metadata()["extensions"]
    metadata = client.get_model_metadata(name)
    inputs = []
    for tensor_name, array in _example_arrays(name, metadata).items():
        tensor = triton.InferInput(tensor_name, list(array.shape),
                                   next(t["datatype"] for t in metadata["inputs"]
                                        if t["name"] == tensor_name))
        tensor.set_data_from_numpy(array)  # binary, as tritonclient sends by default
        inputs.append(tensor)
    result = client.infer(name, inputs, request_id="t-1")  # outputs in binary, by default
    assert result.get_response()["id"] == "t-1"
    _expect(name, {o["name"]: result.as_numpy(o["name"])
                   for o in result.get_response()["outputs"]})
    client.close()


def test_tritonclient_mixes_binary_and_json_tensors(every_example):
    client = triton.InferenceServerClient(url=f"127.0.0.1:{every_example.port}")
    rows = np.array([[5.1, 3.5, 1.4, 0.2], [6.6, 3.0, 4.4, 1.4]])
    tensor = triton.InferInput("input-0", list(rows.shape), "FP64")
    tensor.set_data_from_numpy(rows)
    wanted = [triton.InferRequestedOutput("predict_proba"),
              triton.InferRequestedOutput("predict", binary_data=False)]
    result = client.infer("iris", [tensor], model_version="v1", outputs=wanted)
    proba = result.as_numpy("predict_proba")
    assert proba.shape == (2, 3) and np.allclose(proba.sum(axis=1), 1.0)
    outputs = {o["name"]: o for o in result.get_response()["outputs"]}
    assert "data" in outputs["predict"] and "binary_data_size" in outputs["predict_proba"][
        "parameters"]
    json_only = triton.InferInput("input-0", list(rows.shape), "FP64")
    json_only.set_data_from_numpy(rows, binary_data=False)
    again = client.infer("iris", [json_only], model_version="v1", outputs=[
        triton.InferRequestedOutput("predict_proba", binary_data=False)])
    assert np.allclose(again.as_numpy("predict_proba"), proba)
    client.close()


@pytest.mark.parametrize("what, body, header, message", [
    ("a header length past the body", b'{"inputs": []}', "999", "the body has 14 bytes"),
    ("a header length that is not a number", b"{}", "ten", "must be a number"),
    ("fewer bytes than the shape needs",
     b'{"inputs": [{"name": "input-0", "datatype": "FP64", "shape": [1, 4], '
     b'"parameters": {"binary_data_size": 8}}]}' + b"\0" * 8, None,
     "needs 32 bytes, binary_data_size is 8"),
    ("bytes left over after the inputs",
     b'{"inputs": [{"name": "input-0", "datatype": "FP64", "shape": [1, 4], '
     b'"parameters": {"binary_data_size": 32}}]}' + b"\0" * 40, None,
     "40 bytes follow the JSON, but the inputs' binary_data_size add up to 32"),
    ("NaN in binary floats",
     b'{"inputs": [{"name": "input-0", "datatype": "FP64", "shape": [1, 4], '
     b'"parameters": {"binary_data_size": 32}}]}' + np.array([np.nan, 1, 2, 3]).tobytes(), None,
     "NaN or infinity"),
    ("binary data and JSON data at once",
     b'{"inputs": [{"name": "input-0", "datatype": "FP64", "shape": [1, 4], "data": [1,2,3,4],'
     b' "parameters": {"binary_data_size": 32}}]}' + b"\0" * 32, None, "and no 'data'"),
])
def test_malformed_binary_requests_are_400s(every_example, what, body, header, message):
    json_length = body.index(b"}]}") + 3 if header is None else None
    headers = {"Inference-Header-Content-Length": header or str(json_length)}
    response = every_example.client.post("/v2/models/iris/versions/v1/infer", content=body,
                                         headers=headers)
    assert response.status_code == 400 and message in response.json()["error"], response.text


# -- gRPC ------------------------------------------------------------------------------

def _iris_rows(rows: np.ndarray):
    """iris's input as tritonclient.grpc sends it by default (raw bytes)."""
    import tritonclient.grpc as triton_grpc

    tensor = triton_grpc.InferInput("input-0", list(rows.shape), "FP64")
    tensor.set_data_from_numpy(rows)
    return tensor


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_tritonclient_grpc_with_its_defaults(every_example, name):
    import tritonclient.grpc as triton_grpc

    client = triton_grpc.InferenceServerClient(url=f"127.0.0.1:{every_example.grpc_port}")
    assert client.is_server_live() and client.is_server_ready() and client.is_model_ready(name)
    metadata = client.get_model_metadata(name, as_json=True)
    for tensor in metadata["inputs"]:  # as the protocol says: int64 shapes, as strings in JSON
        tensor["shape"] = [int(d) for d in tensor["shape"]]
    inputs = []
    for tensor_name, array in _example_arrays(name, metadata).items():
        tensor = triton_grpc.InferInput(tensor_name, list(array.shape),
                                        next(t["datatype"] for t in metadata["inputs"]
                                             if t["name"] == tensor_name))
        tensor.set_data_from_numpy(array)
        inputs.append(tensor)
    result = client.infer(name, inputs, request_id="g-1")
    response = result.get_response(as_json=True)
    assert response["id"] == "g-1"
    _expect(name, {o["name"]: result.as_numpy(o["name"]) for o in response["outputs"]})
    client.close()


def test_grpc_errors_are_status_codes_with_the_http_messages(every_example):
    import grpc
    import tritonclient.grpc as triton_grpc
    from tritonclient.utils import InferenceServerException

    client = triton_grpc.InferenceServerClient(url=f"127.0.0.1:{every_example.grpc_port}")
    rows = np.zeros((1, 3))
    tensor = _iris_rows(rows)
    with pytest.raises(InferenceServerException) as bad:
        client.infer("iris", [tensor])
    assert bad.value.status() == "StatusCode.INVALID_ARGUMENT"
    assert "input 'input-0': expected 4 features per row, got 3" in bad.value.message()
    with pytest.raises(InferenceServerException) as unknown:
        client.infer("nope", [tensor])
    assert unknown.value.status() == "StatusCode.NOT_FOUND"
    index = client.get_model_repository_index(as_json=True)["models"]
    assert {"name": "iris", "version": "v2", "state": "READY"} in index
    client.close()
    with grpc.insecure_channel(f"127.0.0.1:{every_example.grpc_port}") as channel:
        # Triton's own stubs (its proto, not ours), as another client would hold them.
        from tritonclient.grpc import service_pb2 as pb
        from tritonclient.grpc import service_pb2_grpc as pb_grpc

        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        with pytest.raises(grpc.RpcError) as empty:
            stub.ModelInfer(pb.ModelInferRequest(model_name="iris"))
        assert empty.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        request = pb.ModelInferRequest(model_name="iris")
        request.inputs.add(name="input-0", datatype="FP64", shape=[1, 4]).contents \
            .fp64_contents.extend([5.1, 3.5, 1.4, 0.2])  # typed contents, not raw bytes
        reply, call = stub.ModelInfer.with_call(request, metadata=(("x-request-id", "r-7"),))
        assert reply.id == "r-7" and dict(call.trailing_metadata())["x-request-id"] == "r-7"
        assert np.frombuffer(reply.raw_output_contents[0], "<i8").tolist() == [0]


def test_kserve_client_over_rest_and_grpc_with_its_defaults(every_example):
    """KServe's own client (in its own venv: its pins clash with ours), REST and gRPC."""
    import json
    import subprocess

    from conftest import isolated_tool

    python = isolated_tool("kserve", "python")
    job = {"http": every_example.url, "grpc": f"127.0.0.1:{every_example.grpc_port}",
           "models": {name: [t.model_dump() for t in spec.obj.spec.example.request.inputs]
                      for name, spec in EXAMPLES.items()}}
    ran = subprocess.run([str(python), str(REPO / "tests/clients/kserve_client.py")],
                         input=json.dumps(job), capture_output=True, text=True, timeout=300)
    assert ran.returncode == 0, ran.stderr[-3000:]
    answers = json.loads(ran.stdout)
    for name, spec in EXAMPLES.items():
        example = spec.obj.spec.example
        assert answers[name]["ids"] == [f"rest-{name}", f"grpc-{name}"]
        for transport in ("rest", "grpc"):
            for want in example.response.outputs:
                have = answers[name][transport][want.name]
                if want.datatype == "BYTES":
                    assert have == want.data, (name, transport)
                else:
                    assert np.allclose(have, want.data, atol=example.tolerance), (name, transport)


def test_grpc_requires_the_same_bearer_token(start_server):
    import tritonclient.grpc as triton_grpc
    from tritonclient.utils import InferenceServerException

    token = "a-token-of-at-least-16-chars"
    server = start_server(config(model("iris"), placement="dedicated"), auth_token=token)
    client = triton_grpc.InferenceServerClient(url=f"127.0.0.1:{server.grpc_port}")
    rows = np.array([[5.1, 3.5, 1.4, 0.2]])
    tensor = _iris_rows(rows)
    for headers in (None, {"authorization": "Bearer wrong-token-of-16-chars"},
                    {"authorization": token}):
        with pytest.raises(InferenceServerException) as denied:
            client.infer("iris", [tensor], headers=headers)
        assert denied.value.status() == "StatusCode.UNAUTHENTICATED"
        assert "missing or wrong bearer token" in denied.value.message()
    answer = client.infer("iris", [tensor], headers={"authorization": f"bearer {token}"})
    assert answer.as_numpy("predict").tolist() == [0]
    client.close()


def test_grpc_has_the_same_body_limit(start_server):
    import tritonclient.grpc as triton_grpc
    from tritonclient.utils import InferenceServerException

    server = start_server(config(model("iris"), placement="dedicated"), max_body_bytes=2048)
    client = triton_grpc.InferenceServerClient(url=f"127.0.0.1:{server.grpc_port}")
    rows = np.ones((400, 4))
    tensor = _iris_rows(rows)
    with pytest.raises(InferenceServerException) as refused:
        client.infer("iris", [tensor])
    assert refused.value.status() == "StatusCode.RESOURCE_EXHAUSTED"
    client.close()


def _batched(server, name: str) -> tuple[float, float]:
    """(requests, calls) the model's batches counted, from /metrics."""
    totals = {"sum": 0.0, "count": 0.0}
    for line in server.client.get("/metrics").text.splitlines():
        for kind in totals:
            if line.startswith(f"modelops_batch_requests_{kind}{{model=\"{name}\""):
                totals[kind] += float(line.split()[-1])
    return totals["sum"], totals["count"]


def test_concurrent_standard_clients_share_calls_and_each_gets_its_own_answer(every_example):
    """Sustained load from standard clients with their defaults: tritonclient.grpc keeping
    8 calls in flight (async_infer) while 6 tritonclient.http clients call from threads
    (14: under the model's concurrency of 16), each request with its own rows. Calls are
    shared, and every answer equals the answer to the same request alone."""
    import concurrent.futures
    import queue

    import tritonclient.grpc as triton_grpc

    rng = np.random.default_rng(5)
    rows = [rng.uniform(0.1, 14, (int(rng.integers(1, 5)), 13)).round(2) for _ in range(400)]
    grpc_rows, http_rows = rows[:240], rows[240:]
    grpc_client = triton_grpc.InferenceServerClient(url=f"127.0.0.1:{every_example.grpc_port}")

    def grpc_input(array: np.ndarray):
        tensor = triton_grpc.InferInput("input-0", list(array.shape), "FP32")
        tensor.set_data_from_numpy(array.astype(np.float32))
        return tensor

    def http_infer(arrays: list[np.ndarray]) -> list[np.ndarray]:
        client = triton.InferenceServerClient(url=f"127.0.0.1:{every_example.port}")
        answers = []
        for array in arrays:
            tensor = triton.InferInput("input-0", list(array.shape), "FP32")
            tensor.set_data_from_numpy(array.astype(np.float32))
            answers.append(client.infer("wine", [tensor]).as_numpy("predict"))
        return answers

    before = _batched(every_example, "wine")
    answers: queue.Queue = queue.Queue()

    def send(i: int) -> None:
        grpc_client.async_infer("wine", [grpc_input(grpc_rows[i])], request_id=str(i),
                                callback=lambda result, error: answers.put((result, error)))

    for i in range(8):
        send(i)
    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        over_http = pool.map(http_infer, [http_rows[t::6] for t in range(6)])
        together = {}
        while len(together) < len(grpc_rows):
            result, error = answers.get(timeout=30)
            assert error is None, error
            together[int(result.get_response().id)] = result.as_numpy("predict")
            if len(together) + 7 < len(grpc_rows):
                send(len(together) + 7)  # keep 8 in flight
        by_thread = list(over_http)
    requests, calls = (a - b for a, b in zip(_batched(every_example, "wine"), before,
                                             strict=True))
    assert requests == 400 and calls <= 360, (requests, calls)  # calls were shared
    http_answers = {id(a): answer for t in range(6)
                    for a, answer in zip(http_rows[t::6], by_thread[t], strict=True)}
    for i, array in enumerate(rows):
        alone = grpc_client.infer("wine", [grpc_input(array)]).as_numpy("predict")
        mine = together[i] if i < len(grpc_rows) else http_answers[id(array)]
        assert mine.tolist() == alone.tolist(), i
    grpc_client.close()
