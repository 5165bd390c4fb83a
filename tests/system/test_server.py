"""The model server over real HTTP on 127.0.0.1: protocol paths, errors, operations."""

from __future__ import annotations

import re
import threading

import httpx
import pytest
from servers import config, model

IRIS = {"inputs": [{"name": "input-0", "datatype": "FP64", "shape": [2, 4],
                    "data": [5.1, 3.5, 1.4, 0.2, 6.6, 3.0, 4.4, 1.4]}]}


@pytest.fixture
def iris(start_server):
    return start_server(config(model("iris"), placement="dedicated"))


def test_health_and_server_metadata(iris):
    assert iris.client.get("/v2/health/live").json() == {"live": True}
    assert iris.client.get("/v2/health/ready").json() == {"ready": True}
    meta = iris.client.get("/v2").json()
    assert meta["name"] == "modelops" and "model_repository" in meta["extensions"]


def test_model_metadata_and_readiness(iris):
    meta = iris.client.get("/v2/models/iris").json()
    assert meta["versions"] == ["v1", "v2"] and meta["platform"] == "sklearn"
    # a scikit-learn tree computes in FP32, and says so (FP64 requests are converted)
    assert meta["inputs"] == [{"name": "input-0", "datatype": "FP32", "shape": [-1, 4]}]
    assert iris.client.get("/v2/models/iris/versions/v2").json()["name"] == "iris"
    assert iris.client.get("/v2/models/iris/ready").json() == {"name": "iris", "ready": True}
    assert iris.client.get("/v2/models/iris/versions/v1/ready").status_code == 200
    assert iris.client.get("/v2/models/iris/versions/v7/ready").status_code == 404


def test_infer_with_and_without_a_version(iris):
    pinned = iris.client.post("/v2/models/iris/versions/v2/infer", json=IRIS).json()
    assert pinned["model_version"] == "v2"
    assert pinned["outputs"] == [{"name": "predict", "datatype": "INT64", "shape": [2], "data": [0, 1]}]
    asked = iris.client.post("/v2/models/iris/infer", json={
        **IRIS, "id": "req-1", "outputs": [{"name": "predict_proba"}]}).json()
    assert asked["id"] == "req-1" and asked["outputs"][0]["name"] == "predict_proba"
    assert asked["outputs"][0]["shape"] == [2, 3]


def test_unversioned_calls_follow_the_traffic_weights(iris):
    versions = [iris.client.post("/v2/models/iris/infer", json=IRIS).json()["model_version"]
                for _ in range(300)]
    share = versions.count("v2") / len(versions)
    assert 0.03 < share < 0.20  # 10% canary; 300 draws put it well inside these bounds


@pytest.mark.parametrize("path, body, status, message", [
    ("/v2/models/nope/infer", IRIS, 404, "model 'nope' is not served here"),
    ("/v2/models/iris/versions/v9/infer", IRIS, 404, "has no version 'v9'"),
    ("/v2/models/iris/infer", {"inputs": []}, 400, "non-empty 'inputs'"),
    ("/v2/models/iris/infer", {"inputs": [{"name": "input-0", "datatype": "FP64", "shape": [1, 3],
                                           "data": [1, 2, 3]}]}, 400,
     "input 'input-0': expected 4 features per row, got 3"),
    ("/v2/models/iris/infer", {"inputs": [{"name": "input-0", "datatype": "BYTES", "shape": [1, 4],
                                           "data": ["a", "b", "c", "d"]}]}, 400, "expected datatype FP32, got BYTES"),
    ("/v2/models/iris/infer", {**IRIS, "outputs": [{"name": "logits"}]}, 400, "has no output 'logits'"),
])
def test_bad_requests_get_4xx_json(iris, path, body, status, message):
    response = iris.client.post(path, json=body)
    assert response.status_code == status
    assert message in response.json()["error"]


def test_malformed_bodies_and_unknown_paths_are_4xx_json(iris):
    for response, status in ((iris.client.post("/v2/models/iris/infer", content=b"\x00\xff"), 400),
                             (iris.client.get("/v2/nowhere"), 404),
                             (iris.client.get("/v2/models/nope/docs"), 404),
                             (iris.client.delete("/v2/models/iris/infer"), 405)):
        assert response.status_code == status and "error" in response.json()
    assert iris.client.get("/v2/nowhere").json() == {"error": "no such endpoint: GET /v2/nowhere"}


def test_request_id_is_honoured_or_generated(iris):
    given = iris.client.post("/v2/models/iris/infer", json=IRIS, headers={"X-Request-ID": "abc-123"})
    assert given.headers["x-request-id"] == "abc-123" and given.json()["id"] == "abc-123"
    made = iris.client.get("/v2/models/nope")
    assert len(made.headers["x-request-id"]) == 32


def test_body_size_limit(start_server):
    server = start_server(config(model("iris"), placement="dedicated"), max_body_bytes=2048)
    big = {"inputs": [{"name": "input-0", "datatype": "FP64", "shape": [400, 4], "data": [1.0] * 1600}]}
    response = server.client.post("/v2/models/iris/infer", json=big)
    assert response.status_code == 413 and "over 2048 bytes" in response.json()["error"]
    chunked = server.client.post("/v2/models/iris/infer", content=iter([b" " * 1500, b" " * 1500]))
    assert chunked.status_code == 413


def test_bearer_token(start_server):
    server = start_server(config(model("iris"), placement="dedicated"), auth_token="s3cret-token-0123456789")
    assert server.client.get("/v2/health/ready").status_code == 200  # probes carry no token
    denied = server.client.post("/v2/models/iris/infer", json=IRIS)
    assert denied.status_code == 401 and denied.json() == {"error": "missing or wrong bearer token"}
    wrong = server.client.post("/v2/models/iris/infer", json=IRIS, headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    ok = server.client.post("/v2/models/iris/infer", json=IRIS, headers={"Authorization": "Bearer s3cret-token-0123456789"})
    assert ok.status_code == 200


def test_metrics(iris):
    iris.client.post("/v2/models/iris/versions/v1/infer", json=IRIS)
    iris.client.post("/v2/models/iris/versions/v1/infer", json={"inputs": []})
    text = iris.client.get("/metrics").text
    assert 'modelops_requests_total{code="200",model="iris",version="v1"} 1.0' in text
    assert 'modelops_requests_total{code="400",model="iris",version="v1"} 1.0' in text
    assert 'modelops_request_duration_seconds_count{model="iris",version="v1"} 1.0' in text
    assert 'modelops_model_ready{model="iris",version="v2"} 1.0' in text
    assert "modelops_model_load_seconds" in text and "modelops_inflight_requests" in text


def test_openapi_documents_protocol_management_and_model_routes(start_server, tmp_path):
    from conftest import REPO

    server = start_server(config(model("cancer-screen", "python",
                                       code=str(REPO / "models/cancer-screen/model.py"))))
    paths = server.client.get("/openapi.json").json()["paths"]
    for path in ("/v2/models/cancer-screen/infer", "/v2/repository/index",
                 "/v2/repository/models/{name}/load", "/v2/models/cancer-screen/explain"):
        assert path in paths
    for page, assets in (("/docs", "/docs/assets"),
                         ("/v2/models/cancer-screen/docs", "/v2/models/cancer-screen/docs/assets")):
        html = server.client.get(page).text  # every asset from this server: works offline
        sources = re.findall(r'(?:src|href)=["\']([^"\']+)["\']', html) + \
            re.findall(r"url: ?'([^']+)'", html)
        assert sources and all(s.startswith("/") for s in sources), sources
        for asset in ("swagger-ui-bundle.js", "swagger-ui.css", "favicon.png"):
            assert f"{assets}/{asset}" in sources
            fetched = server.client.get(f"{assets}/{asset}")
            assert fetched.status_code == 200 and len(fetched.content) > 1000
    assert server.client.get("/docs/assets/../../etc/passwd").status_code == 404
    assert server.client.get("/docs/assets/redoc.standalone.js").status_code == 404
    infer = paths["/v2/models/cancer-screen/versions/v1/infer"]["post"]
    assert infer["tags"] == ["models"] and not infer["parameters"]
    # the request states the model's own tensor: its name, datatype and values per shape
    declared = server.client.get("/v2/models/cancer-screen").json()["inputs"][0]
    tensor = infer["requestBody"]["content"]["application/json"]["schema"]["properties"][
        "inputs"]["items"]["oneOf"][0]
    assert tensor["properties"]["name"] == {"const": declared["name"]}
    assert tensor["properties"]["datatype"] == {"const": declared["datatype"]}
    assert tensor["oneOf"][1]["properties"] == {"shape": {"const": [2, 30]},
                                               "data": {"minItems": 60, "maxItems": 60}}
    assert paths["/v2/models/cancer-screen/explain"]["get"]["tags"] == ["model: cancer-screen"]
    assert server.client.get("/v2/models/cancer-screen/openapi.json").json()["paths"] == paths
    top = server.client.get("/v2/models/cancer-screen/explain").json()["top_features"]
    assert len(top) == 5 and top[0]["importance"] >= top[-1]["importance"]


def test_concurrent_requests_all_answer(iris):
    results = []

    def worker():
        with httpx.Client(base_url=iris.url) as client:
            results.extend(client.post("/v2/models/iris/infer", json=IRIS).status_code for _ in range(20))

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [200] * 160
