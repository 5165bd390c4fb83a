"""The catalog page, in a real headless browser, against a real local model server."""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml
from conftest import REPO, examples
from servers import free_port

from modelops_catalog import charts

ARTIFACTS = REPO / "build/test-artifacts"


def _start(args: list[str], ready: str) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-m", "modelops", *args], cwd=examples(),
                            stderr=subprocess.PIPE, env={**os.environ, "GITHUB_ACTIONS": ""})
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(ready, timeout=1).status_code == 200:
                return proc
        except httpx.TransportError:
            pass
        assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()
        time.sleep(0.1)


def _logged_traffic(volume, port: int) -> None:
    """A day of iris traffic whose petal length (feature 2) drifted, logged by the real
    server and compacted by the real compactor into a drift summary."""
    server = _start(["serve", "iris", "--port", str(port), "--grpc-port", "0", "--shared",
                     str(volume)], f"http://127.0.0.1:{port}/v2/health/ready")
    from sklearn.datasets import load_iris

    rng = random.Random(0)
    rows = [[x + (2.5 if j == 2 else 0) for j, x in enumerate(rng.choice(load_iris().data))]
            for _ in range(300)]
    with httpx.Client(base_url=f"http://127.0.0.1:{port}") as client:
        for start in range(0, len(rows), 10):
            chunk = [round(x, 2) for row in rows[start:start + 10] for x in row]
            client.post("/v2/models/iris/infer", json={"inputs": [{
                "name": "input-0", "datatype": "FP64", "shape": [10, 4], "data": chunk}]})
    server.terminate()
    server.wait(30)
    done = subprocess.run([sys.executable, "-m", "modelops", "logs", "compact", "--shared",
                           str(volume)], cwd=examples(), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


@pytest.fixture
def catalog(shared_root, tmp_path):
    volume = tmp_path / "volume"
    shutil.copytree(shared_root, volume)
    serve_port, catalog_port = free_port(), free_port()
    _logged_traffic(volume, serve_port)
    server = _start(["serve", "iris", "wine", "--port", str(serve_port), "--grpc-port", "0",
                     "--shared", str(volume)], f"http://127.0.0.1:{serve_port}/v2/health/ready")
    page = _start(["catalog", "--serve", "--port", str(catalog_port), "--server",
                   f"http://127.0.0.1:{serve_port}", "--shared", str(volume)],
                  f"http://127.0.0.1:{catalog_port}/catalog")
    yield f"http://127.0.0.1:{catalog_port}/catalog"
    for proc in (page, server):
        proc.terminate()
        proc.wait(30)


def _chromium(tmp_path, *args: str) -> str:
    browser = shutil.which("chromium")
    assert browser, "Debian's chromium is needed (make test installs it)"
    result = subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
         "--no-first-run", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}",
         "--virtual-time-budget=8000", "--window-size=1100,1500", *args],
        capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def test_catalog_page_in_a_browser(catalog, tmp_path):
    dom = _chromium(tmp_path, "--dump-dom", catalog)
    assert 'data-refreshed="true"' in dom  # the page's script ran and fetched the API
    for name in ("iris", "wine", "diabetes", "digits", "cancer-screen"):
        assert f'id="model-{name}"' in dom
    state = dict(re.findall(r'id="state-([a-z-]+-v\d)">([a-z ]+)<', dom))
    assert state["iris-v1"] == state["iris-v2"] == state["wine-v1"] == "ready"
    assert state["digits-v1"] == "not ready"  # not served by this local server
    assert "90%" in dom and "10%" in dom and "team data-science" in dom
    assert "pool tabular" in dom and 'href="http://127.0.0.1' in dom  # API docs link
    iris = dom.split('id="model-iris"')[1].split("</section>")[0]
    assert 'aria-label="traffic: v1 90%, v2 10%"' in iris
    assert re.search(r"drift \(PSI\) on \d{4}-\d{2}-\d{2}, v[12]: \d+ rows vs iris-training", iris)
    bars = dict(re.findall(r"<title>(input-0_\d): PSI ([\d.]+)</title>", iris))
    assert float(bars["input-0_2"]) > 0.25 > 0.1 > float(bars["input-0_1"])  # the drifted one
    assert 'fill="#e03131"' in iris  # drawn in the "significant" colour
    wine = dom.split('id="model-wine"')[1].split("</section>")[0]
    assert 'aria-label="traffic: v1 100%"' in wine and "drift" not in wine  # no reference

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / "catalog.png"
    shot.unlink(missing_ok=True)
    _chromium(tmp_path, f"--screenshot={shot}", catalog)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000
    from PIL import Image

    with Image.open(shot) as image:  # the charts' colours are on the picture, not only in the DOM
        colours = {c for _, c in image.convert("RGB").getcolors(2 ** 20)}
    assert {(0x24, 0x58, 0xd6), (0xf0, 0x8c, 0x00), (0xe0, 0x31, 0x31)} <= colours


def test_catalog_json_api(catalog):
    models = {m["name"]: m for m in httpx.get(catalog + "/api/models").json()}
    assert [v["state"] for v in models["iris"]["versions"]] == ["ready", "ready"]
    assert models["wine"]["placement"] == "pool tabular"
    assert (models["iris"]["minReplicas"], models["iris"]["maxReplicas"]) == (1, 3)
    page = httpx.get(catalog + "/docs").text  # its API docs work offline too
    assert "/catalog/docs/assets/swagger-ui-bundle.js" in page and "cdn" not in page.lower()
    assert httpx.get(catalog + "/docs/assets/swagger-ui.css").status_code == 200


def test_generated_catalog_lists_every_model_with_links():
    data = yaml.safe_load((examples() / "overlays/production/platform/catalog/catalog.yaml").read_text())
    iris = next(m for m in data["models"] if m["name"] == "iris")
    assert iris["docsUrl"] == "https://models.example.com/v2/models/iris/docs"
    assert "var-model=iris" in iris["dashboardUrl"]
    assert iris["versions"][0]["readyUrl"] == (
        "http://iris-v1-server.models-production.svc/v2/models/iris/versions/v1/ready")


@pytest.mark.parametrize("with_token, state", [(True, "ready"), (False, "unauthorized")])
def test_the_catalog_calls_authenticated_servers_with_the_mounted_token(
        start_server, tmp_path, with_token, state):
    """As the generated manifests run them: the Secret mounted as a file in both pods."""
    from servers import config, model

    token = tmp_path / "token"
    token.write_text("a-token-of-at-least-16-chars\n")
    server = start_server(config(model("iris"), placement="dedicated"), auth_token_file=token)
    catalog = tmp_path / "catalog.yaml"
    catalog.write_text(yaml.safe_dump({"environment": "staging", "models": [{
        "name": "iris", "team": "ds", "description": "", "runtime": "sklearn",
        "placement": "dedicated", "minReplicas": 1, "maxReplicas": 1, "versions": [{
            "name": "v1", "weight": 100,
            "readyUrl": f"{server.url}/v2/models/iris/versions/v1/ready"}]}]}))
    port = free_port()
    env = {**os.environ, "MODELOPS_CATALOG": str(catalog), "MODELOPS_PORT": str(port),
           "MODELOPS_HOST": "127.0.0.1"}
    if with_token:
        env["MODELOPS_AUTH_TOKEN_FILE"] = str(token)
    page = subprocess.Popen([sys.executable, "-m", "modelops_catalog"], env=env,
                            stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                listed = httpx.get(f"http://127.0.0.1:{port}/catalog/api/models", timeout=5)
                break
            except httpx.TransportError:
                assert page.poll() is None and time.monotonic() < deadline
                time.sleep(0.1)
        assert listed.json()[0]["versions"][0]["state"] == state
    finally:
        page.terminate()
        page.wait(30)
    assert server.client.get("/v2/models/iris").status_code == 401  # the token is required


def test_an_empty_token_file_refuses_to_start(start_server, tmp_path):
    from servers import config, model

    empty = tmp_path / "token"
    empty.write_text("\n")
    refused = start_server(config(model("iris"), placement="dedicated"), wait=None,
                           auth_token_file=empty)
    assert refused.proc.wait(30) != 0
    assert "MODELOPS_AUTH_TOKEN_FILE" in refused.stderr.read_text()


def _partition(shared: Path) -> Path:
    """The partition whose drift summary the catalog page of iris reads."""
    partition = shared / "datasets/logs/model=iris/version=v1/date=2026-11-22"
    partition.mkdir(parents=True)
    return partition


async def _page(shared: Path) -> httpx.Response:
    """The catalog page of one model whose logs have a drift reference, in process."""
    from modelops_catalog.app import create_catalog_app
    from modelops_catalog.config import CatalogConfig

    config = CatalogConfig(environment="staging", models=[{
        "name": "iris", "team": "ds", "description": "", "runtime": "sklearn",
        "placement": "dedicated", "minReplicas": 1, "maxReplicas": 1,
        "drift": "datasets/logs/model=iris", "versions": [{
            "name": "v1", "weight": 100, "readyUrl": "http://127.0.0.1:9/ready"}]}])
    app = create_catalog_app(config, shared_root=shared)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app),
                                 base_url="http://catalog") as client:
        return await client.get("/catalog")


@pytest.mark.parametrize("drift", [
    b"not json", b"[]", b'{"features": "x"}', b'{"features": {"in_a": {"psi": "high"}}, "rows": "many"}',
    b'{"features": {"<script>x</script>": {"psi": 1e308}, "in_b": 7}, "reference": 3}'])
def test_a_damaged_drift_summary_never_breaks_the_page(tmp_path, drift):
    """The page reads files on a shared volume: whatever is in them, it answers 200 and
    escapes what it shows."""
    import asyncio

    (_partition(tmp_path) / "_drift.json").write_bytes(drift)
    response = asyncio.run(_page(tmp_path))
    assert response.status_code == 200
    assert "<script>x" not in response.text and 'aria-label="traffic: v1 100%"' in response.text


@pytest.mark.parametrize("kind", ["fifo", "huge"])
def test_a_fifo_or_a_huge_file_as_drift_summary_neither_hangs_nor_slows_the_page(tmp_path,
                                                                                  kind):
    """A FIFO named _drift.json hung the page, the API and liveness; a 26 MB one was parsed
    on every view. Only a regular file of a summary's size is read."""
    import asyncio
    import threading

    partition = _partition(tmp_path)
    if kind == "fifo":
        os.mkfifo(partition / "_drift.json")
    else:
        features = {f"in_{i}": {"psi": 0.5, "drift": "significant"} for i in range(400_000)}
        (partition / "_drift.json").write_text(json.dumps({"features": features}))
    answered: list = []  # in a daemon thread: a page that hangs fails the test, not the run
    viewer = threading.Thread(target=lambda: answered.append(asyncio.run(_page(tmp_path))),
                              daemon=True)
    viewer.start()
    viewer.join(10)
    assert answered, "the page did not answer within 10 s"
    assert answered[0].status_code == 200
    assert "drift: no summary yet" in answered[0].text


def test_drift_bars_share_one_scale_and_a_small_day_is_grey(tmp_path):
    """Bars of different models and days compare (one axis), and a day with too few rows
    to judge says so instead of showing red."""
    import asyncio

    def bar(svg: str, feature: str) -> float:
        return float(re.search(rf'width="([\d.]+)"[^>]*><title>{feature}:', svg)[1])

    alone = charts.drift({"in_a": {"psi": 0.2, "drift": "moderate"}})
    beside = charts.drift({"in_a": {"psi": 0.2, "drift": "moderate"},
                           "in_b": {"psi": 0.9, "drift": "significant"}})
    assert bar(alone, "a") == bar(beside, "a")  # 0.2 is as long in both charts
    (_partition(tmp_path) / "_drift.json").write_text(json.dumps({
        "date": "2026-11-22", "version": "v1", "rows": 4, "minRows": 100, "reference": "r",
        "features": {"in_a": {"psi": 6.1, "drift": "too few rows"}}}))
    page = asyncio.run(_page(tmp_path)).text
    assert "4 rows vs r: too few rows to judge (fewer than 100, the bars are grey)" in page
    assert charts.VERDICT["too few rows"] in page and charts.VERDICT["significant"] not in page


def test_the_traffic_bar_names_every_version_in_a_legend():
    bar = charts.traffic([("v1", 99), ("v2", 1)])
    legend = re.findall(r'<rect class="key"[^>]*fill="(#[0-9a-f]{6})"/><text[^>]*>([^<]+)</text>',
                        bar)
    assert [text for _, text in legend] == ["v1 99%", "v2 1%"]  # the 1% part is named too
    assert len({colour for colour, _ in legend}) == 2
