"""Hostile and careless requests, as a table: each case is named for what a client did.

One server (a pool: a scikit-learn model with prediction logging, a python model, an ONNX
model) takes every case; none may answer 5xx, each answer is JSON naming the problem, and
afterwards the server still serves, still logs, and its metrics count every answer.
"""

from __future__ import annotations

import json
import socket
import time

import httpx
import pytest
from conftest import REPO
from servers import config, model

IRIS = "/v2/models/iris/infer"
CANCER = "/v2/models/cancer-screen/infer"
DIGITS = "/v2/models/digits/infer"
ROW = [5.1, 3.5, 1.4, 0.2]


def tensor(**fields) -> dict:
    return {"name": "input-0", "datatype": "FP64", "shape": [1, 4], "data": ROW} | fields


def deep(levels: int, leaf=1.0):
    value = leaf
    for _ in range(levels):
        value = [value]
    return value


def deep_object(levels: int):
    value: dict = {}
    for _ in range(levels):
        value = {"k": value}
    return value


# (what the client did, path, JSON body or raw bytes, expected status, words in the error)
CASES = [
    ("nested data deeper than its shape", IRIS, {"inputs": [tensor(data=[[ROW]])]}, 400,
     "nested unlike its shape"),
    ("ragged nested data", IRIS, {"inputs": [tensor(shape=[2, 4], data=[ROW, [1.0]])]}, 400,
     "nested unlike its shape"),
    ("an extra key nested 300 deep in an input", IRIS,
     {"inputs": [tensor(extra=deep_object(300))]}, 400, "unknown key 'extra'"),
    ("parameters nested 300 deep", IRIS, {"inputs": [tensor()], "parameters": deep_object(300)},
     400, "parameters must be an object of strings"),
    ("input parameters nested", IRIS, {"inputs": [tensor(parameters={"a": [1]})]}, 400,
     "parameters must be an object of strings"),
    ("id nested 300 deep", IRIS, {"inputs": [tensor()], "id": deep_object(300)}, 400,
     "'id' must be a string"),
    ("a numeric id", IRIS, {"inputs": [tensor()], "id": 12345}, 400, "'id' must be a string"),
    ("an id of 10,000 characters", IRIS, {"inputs": [tensor()], "id": "x" * 10_000}, 400,
     "at most 256 characters"),
    ("a value that overflows FP32", "/v2/models/digits/infer",
     {"inputs": [{"name": "pixels", "datatype": "FP32", "shape": [1, 64],
                  "data": [1e300] * 64}]}, 400, "out of the range of FP32"),
    ("an FP64 value beyond FP32 sent to an FP32 model", "/v2/models/digits/infer",
     {"inputs": [{"name": "X", "datatype": "FP64", "shape": [1, 64],
                  "data": [1e300] * 64}]}, 400,
     "input 'X': a value is out of the range of FP32, the declared datatype"),
    ("a value that overflows FP16", IRIS, {"inputs": [tensor(datatype="FP16", data=[1e6] * 4)]},
     400, "out of the range of FP16"),
    ("a zero-row batch to scikit-learn", IRIS, {"inputs": [tensor(shape=[0, 4], data=[])]}, 400,
     "input 'input-0': the batch has no rows"),
    ("a zero-row batch to a python model", CANCER,
     {"inputs": [{"name": "features", "datatype": "FP64", "shape": [0, 30], "data": []}]}, 400,
     "input 'features': the batch has no rows"),
    ("a python model fed the wrong input name", CANCER, {"inputs": [tensor()]}, 400,
     "model 'cancer-screen' has no input 'input-0'; it takes features (FP32 [-1, 30])"),
    ("a python model fed too few features", CANCER,
     {"inputs": [{"name": "features", "datatype": "FP64", "shape": [1, 4], "data": ROW}]}, 400,
     "input 'features': expected 30 features per row, got 4"),
    ("a python model fed strings", CANCER,
     {"inputs": [{"name": "features", "datatype": "BYTES", "shape": [1, 30],
                  "data": ["x"] * 30}]}, 400, "expected datatype FP32, got BYTES"),
    ("a python model sent a 1-D tensor", CANCER,
     {"inputs": [{"name": "features", "datatype": "FP64", "shape": [30], "data": [1.0] * 30}]},
     400, "expected shape [-1, 30] (2 dimensions), got [30]"),
    ("a python model sent a second input", CANCER,
     {"inputs": [{"name": "features", "datatype": "FP64", "shape": [1, 30], "data": [1.0] * 30},
                 tensor(name="extra")]}, 400, "has no input 'extra'"),
    ("integers where floats are declared", IRIS,
     {"inputs": [tensor(datatype="INT64", data=[5, 3, 1, 0])]}, 200, ""),
    ("a shape of 300 dimensions", IRIS,
     {"inputs": [tensor(shape=[1] * 300, data=deep(300))]}, 400, "300 dimensions"),
    ("a shape of a trillion values", IRIS, {"inputs": [tensor(shape=[10**6, 10**6])]}, 400,
     "needs 1000000000000 values"),
    ("a datatype that is an object", IRIS, {"inputs": [tensor(datatype={})]}, 400,
     "unknown datatype {}"),
    ("a name that is a list", IRIS, {"inputs": [tensor(name=["x"])]}, 400, "an input has no name"),
    ("a boolean as a dimension", IRIS, {"inputs": [tensor(shape=[True, 4])]}, 400,
     "shape must be a list"),
    ("NaN in the body", IRIS, b'{"inputs": [{"name": "input-0", "datatype": "FP64", '
     b'"shape": [1, 4], "data": [NaN, 1, 2, 3]}]}', 400, "not valid JSON"),
    ("a body nested 2,000 deep", IRIS, b"[" * 2000 + b"]" * 2000, 400, "not valid JSON"),
    ("a body that is a list", IRIS, [1, 2], 400, "must be a JSON object"),
    ("invalid UTF-8", IRIS, b'{"inputs": "\xff\xfe"}', 400, "not valid JSON"),
    ("the same input twice", IRIS, {"inputs": [tensor(), tensor()]}, 400, "given twice"),
    ("an output that is not an object", IRIS, {"inputs": [tensor()], "outputs": ["x"]}, 400,
     "'outputs' must be a list"),
    ("a string where numbers go", IRIS, {"inputs": [tensor(data=["1", "2", "3", "4"])]}, 400,
     "must be numbers"),
    ("an integer past INT64", "/v2/models/iris/infer",
     {"inputs": [tensor(datatype="INT64", data=[2**70, 1, 2, 3])]}, 400, "input 'input-0'"),
    ("a trailing slash", IRIS + "/", {"inputs": [tensor()]}, 404, "no such endpoint"),
    ("an unknown model", "/v2/models/nope/infer", {"inputs": [tensor()]}, 404,
     "not served here"),
    ("a path with dot segments", "/v2/models/../../etc/passwd", None, 404, "no such endpoint"),
]


@pytest.fixture(scope="module")
def server(tmp_path_factory, shared_root):
    from servers import Server

    work = tmp_path_factory.mktemp("hostile")
    logged = {"enabled": True, "dataset": "iris-predictions", "sampleRate": 1.0}
    cfg = config(model("iris", logging=logged),
                 model("cancer-screen", "python", code=str(REPO / "models/cancer-screen/model.py")),
                 model("digits", "onnx"))
    started = Server(work, cfg, shared_root, log_dir=work / "logs", log_rotate_seconds=3600)
    started.wait()
    started.logs = work / "logs"
    yield started
    started.stop()


def _send(server, path: str, body):
    if body is None:
        return server.client.get(path)
    if isinstance(body, bytes):
        return server.client.post(path, content=body)
    return server.client.post(path, json=body)


@pytest.mark.parametrize("what, path, body, status, words", CASES, ids=[c[0] for c in CASES])
def test_a_hostile_request_gets_a_4xx_that_names_the_problem(server, what, path, body, status,
                                                             words):
    response = _send(server, path, body)
    assert response.status_code == status, response.text
    if status != 200:
        assert words in response.json()["error"], response.json()


def _answers(server) -> dict[str, float]:
    """modelops_http_responses_total by status code."""
    codes = {}
    for line in server.client.get("/metrics").text.splitlines():
        if line.startswith("modelops_http_responses_total{"):
            codes[line.split('"')[1]] = float(line.rsplit(" ", 1)[1])
    return codes


def test_after_every_hostile_request_the_server_still_serves_logs_and_counts(server, capsys):
    before = _answers(server)
    for _, path, body, _, _ in CASES:
        _send(server, path, body)
    ok = server.client.post(IRIS, json={"inputs": [tensor()]})
    assert ok.status_code == 200
    assert "modelops_prediction_log_writer_up 1.0" in server.client.get("/metrics").text
    after = _answers(server)
    codes = {c: n - before.get(c, 0) for c, n in after.items() if n > before.get(c, 0)}
    assert not any(code.startswith("5") for code in codes), codes
    for status in (400, 404):  # every answer counted, whether or not a model saw it
        assert codes[str(status)] == sum(1 for c in CASES if c[3] == status), codes
    # The writer took the accepted requests and is alive: the last one reaches the file.
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        lines = [json.loads(line) for f in server.logs.rglob("*.jsonl*") for line in
                 f.read_text().splitlines()]
        if any(r["status"] == 200 and r["id"] == ok.headers["x-request-id"] for r in lines):
            break
        time.sleep(0.1)
    else:
        raise AssertionError("the accepted request never reached the prediction log")
    with capsys.disabled():
        print(f"\nhostile requests: {len(CASES)} kinds, {sum(codes.values()):.0f} answers: " +
              ", ".join(f"{c}: {n:.0f}" for c, n in sorted(codes.items())))


def _raw(server, data: bytes, wait: float = 15) -> bytes:
    with socket.create_connection(("127.0.0.1", server.port), timeout=wait) as sock:
        sock.sendall(data)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
        return b"".join(chunks)


FAULTY = """
from modelops_runtime.model import Model


class Faulty(Model):
    def predict(self, inputs):
        raise RuntimeError("a bug in the model")
"""


def test_a_models_own_fault_is_one_counted_500_logged_once(start_server, tmp_path):
    code = tmp_path / "faulty.py"
    code.write_text(FAULTY)
    faulty = start_server(config(model("faulty", "python", versions=[{"name": "v1"}],
                                       code=str(code)), placement="dedicated"))
    response = faulty.client.post("/v2/models/faulty/infer", json={"inputs": [tensor()]},
                                  headers={"X-Request-ID": "req-42"})
    assert response.status_code == 500
    assert response.json() == {"error": "model 'faulty' failed (request id req-42)"}
    metrics = faulty.client.get("/metrics").text
    assert 'modelops_requests_total{code="500",model="faulty",version="v1"} 1.0' in metrics
    stderr = faulty.stderr.read_text()
    assert stderr.count("Traceback") == 1 and "request req-42: RuntimeError: a bug" in stderr


def test_a_huge_header_is_refused_before_it_grows_the_process(server):
    header = b"X-Junk: " + b"a" * (1024 * 1024) + b"\r\n"
    with socket.create_connection(("127.0.0.1", server.port), timeout=15) as sock:
        sock.sendall(b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\n")
        try:
            for _ in range(48):  # 48 MB, as an attacker would send it
                sock.sendall(header)
        except (BrokenPipeError, ConnectionResetError):
            pass
        answer = sock.recv(65536)
    assert answer.startswith(b"HTTP/1.1 431 ")
    assert b'"error":"request headers over 65536 bytes"' in answer


def test_a_client_that_stalls_gets_408_and_frees_its_slot(tmp_path, start_server):
    from servers import config as server_config

    slow = start_server(server_config(model("iris"), placement="dedicated"),
                        header_timeout_seconds=1, body_timeout_seconds=1)
    headers_only = _raw(slow, b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\n")
    assert headers_only.startswith(b"HTTP/1.1 408 ") and b"request headers not received" \
        in headers_only
    half_body = _raw(slow, b"POST /v2/models/iris/infer HTTP/1.1\r\nHost: x\r\n"
                           b"Content-Type: application/json\r\nContent-Length: 500\r\n\r\n{\"in")
    assert b" 408 " in half_body.split(b"\r\n")[0]
    assert b"request body not received within 1 s" in half_body
    with socket.create_connection(("127.0.0.1", slow.port)) as sock:  # gone mid-body
        sock.sendall(b"POST /v2/models/iris/infer HTTP/1.1\r\nHost: x\r\nContent-Length: 500"
                     b"\r\n\r\n{")
    time.sleep(0.3)
    assert slow.client.post(IRIS, json={"inputs": [tensor()]}).status_code == 200
    stderr = slow.stderr.read_text()
    assert "Traceback" not in stderr, stderr
    assert "client went away mid-body" in stderr and stderr.count("\n") <= 6


def test_a_trailing_slash_is_not_an_open_redirect(server):
    response = server.client.get("/v2/models/iris/", headers={"Host": "evil.example"})
    assert response.status_code == 404 and "location" not in response.headers


AUTH = "Bearer-token-of-32-characters-00"


PROBES = [  # (Authorization header, expected status)
    (None, 401), ("", 401), ("Bearer", 401), (f"Basic {AUTH}", 401),
    (f"Bearer {AUTH[:-1]}", 401), (f"Bearer {AUTH}x", 401), (AUTH, 401), (f"Bearer{AUTH}", 401),
    (f"Bearer {AUTH.upper()}", 401), ("Bearer \u00e9", 401),
    (f"Bearer {AUTH}", 200), (f"bearer {AUTH}", 200), (f"BEARER {AUTH}", 200),
    (f"Bearer  {AUTH}", 200),
]


def test_the_bearer_scheme_is_case_insensitive_and_nothing_else_passes(start_server, capsys):
    from servers import config as server_config

    guarded = start_server(server_config(model("iris"), placement="dedicated"), auth_token=AUTH)
    for path in (IRIS, "/v2/models/iris", "/v2", "/v2/repository/index", "/docs"):
        for header, status in PROBES:
            headers = {"Authorization": header.encode("utf-8")} if header is not None else {}
            response = guarded.client.request("POST" if path == IRIS else "GET", path,
                                              json={"inputs": [tensor()]} if path == IRIS
                                              else None, headers=headers)
            assert response.status_code == status, (path, header, response.text)
            if status == 401:
                assert response.json() == {"error": "missing or wrong bearer token"}
    assert guarded.client.get("/v2/health/ready").status_code == 200  # probes carry no token
    with capsys.disabled():
        print(f"\nauth probes: {5 * len(PROBES)}, none past the token")


@pytest.mark.parametrize("token", ["", "   ", "short"])
def test_a_set_but_empty_or_short_token_refuses_to_start(start_server, token):
    from servers import config as server_config

    refused = start_server(server_config(model("iris"), placement="dedicated"), wait=None,
                           auth_token=token)
    assert refused.proc.wait(30) != 0
    stderr = refused.stderr.read_text()
    assert "MODELOPS_AUTH_TOKEN is set but has fewer than 16 characters" in stderr
    assert "Traceback" not in stderr
    with pytest.raises(httpx.TransportError):
        httpx.get(refused.url + "/v2/health/live", timeout=1)
