"""Alerts tested with promtool, and a real Prometheus scraping a real model server."""

from __future__ import annotations

import json
import shutil
import subprocess
import time

import httpx
import pytest
import yaml
from conftest import REPO, copy_repo, run_modelops
from servers import config, free_port, model

from modelops import render

MONITORING = REPO / "platform/monitoring"


def _rules() -> dict:
    return {"groups": yaml.safe_load((MONITORING / "alerts.yaml").read_text())["spec"]["groups"]}


def _promtool(*args: str, cwd) -> subprocess.CompletedProcess:
    promtool = shutil.which("promtool")
    assert promtool, "promtool is needed (make test installs Debian's prometheus)"
    return subprocess.run([promtool, *args], cwd=cwd, capture_output=True, text=True)


def test_alert_rules_pass_promtool_check_and_unit_tests(tmp_path):
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(_rules()))
    shutil.copy(MONITORING / "tests/alerts.test.yaml", tmp_path)
    checked = _promtool("check", "rules", "rules.yaml", cwd=tmp_path)
    assert checked.returncode == 0 and "SUCCESS: 15 rules found" in checked.stdout, checked.stdout
    tested = _promtool("test", "rules", "alerts.test.yaml", cwd=tmp_path)
    assert tested.returncode == 0, tested.stdout + tested.stderr


def test_every_alert_has_a_unit_test():
    alerts = {r["alert"] for g in _rules()["groups"] for r in g["rules"]}
    tested = {t["alertname"] for case in yaml.safe_load((MONITORING / "tests/alerts.test.yaml").read_text())["tests"]
              for t in case["alert_rule_test"]}
    assert alerts == tested


def test_the_unit_tests_notice_a_wrong_threshold(tmp_path):
    rules = _rules()
    for group in rules["groups"]:
        for rule in group["rules"]:
            if rule.get("alert") == "ModelHighErrorRatio":
                rule["expr"] = rule["expr"].replace("> 0.05", "> 0.5")
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(rules))
    shutil.copy(MONITORING / "tests/alerts.test.yaml", tmp_path)
    assert _promtool("test", "rules", "alerts.test.yaml", cwd=tmp_path).returncode != 0


def test_dashboard_queries_the_server_metrics():
    dashboard = json.loads((MONITORING / "modelops-models.json").read_text())
    assert dashboard["uid"] == "modelops-models"  # the catalog and Argo CD link to it
    exprs = " ".join(t["expr"] for p in dashboard["panels"] for t in p["targets"])
    for metric in ("modelops_requests_total", "modelops_request_duration_seconds_bucket",
                   "kube_horizontalpodautoscaler_spec_max_replicas", "modelops_model_ready"):
        assert metric in exprs


@pytest.fixture
def prometheus(tmp_path):
    binary = shutil.which("prometheus")
    assert binary, "prometheus is needed (make test installs Debian's prometheus)"
    started = []

    def start(target: str) -> str:
        port = free_port()
        (tmp_path / "rules.yaml").write_text(yaml.safe_dump(_rules()))
        (tmp_path / "prometheus.yml").write_text(yaml.safe_dump({
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": ["rules.yaml"],
            "scrape_configs": [{"job_name": "modelops", "static_configs": [
                {"targets": [target], "labels": {"namespace": "models-test", "pod": "test-0"}}]}]}))
        proc = subprocess.Popen([binary, f"--config.file={tmp_path / 'prometheus.yml'}",
                                 f"--storage.tsdb.path={tmp_path / 'data'}",
                                 f"--web.listen-address=127.0.0.1:{port}"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        started.append(proc)
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:  # until its storage is open and it answers queries
            try:
                if httpx.get(f"{url}/-/ready").status_code == 200:
                    return url
            except httpx.TransportError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, "prometheus did not start"
            time.sleep(0.2)

    yield start
    for proc in started:
        proc.terminate()
        proc.wait(30)


def _query(url: str, expr: str, want, timeout: float = 30) -> list:
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = httpx.get(f"{url}/api/v1/query", params={"query": expr}).json()["data"]["result"]
            if want(result):
                return result
        except (httpx.TransportError, KeyError, ValueError):  # not answering queries yet
            pass
        assert time.monotonic() < deadline, f"no result for {expr}"
        time.sleep(0.5)


def test_prometheus_scrapes_a_server_and_evaluates_the_alerts(start_server, prometheus):
    broken = model("iris", versions=[{"name": "v1", "artifact": "pvc://artifacts/missing.joblib",
                                      "sha256": "0" * 64}])
    server = start_server(config(model("wine"), broken))
    url = prometheus(f"127.0.0.1:{server.port}")
    body = {"inputs": [{"name": "input-0", "datatype": "FP64", "shape": [1, 13],
                        "data": [14.23, 1.71, 2.43, 15.6, 127.0, 2.8, 3.06, 0.28, 2.29, 5.64, 1.04, 3.92, 1065.0]}]}
    for _ in range(5):
        assert server.client.post("/v2/models/wine/infer", json=body).status_code == 200

    series = _query(url, 'modelops_requests_total{model="wine"}', lambda r: r and float(r[0]["value"][1]) >= 5)
    assert series[0]["metric"]["version"] == "v1" and series[0]["metric"]["code"] == "200"
    not_ready = next(r["expr"] for g in _rules()["groups"] for r in g["rules"] if r.get("alert") == "ModelNotReady")
    found = _query(url, not_ready, bool)
    assert [(r["metric"]["model"], r["metric"]["version"]) for r in found] == [("iris", "v1")]
    deadline = time.monotonic() + 30
    while True:  # the alert itself: pending, since it must last 5 minutes to fire
        alerts = httpx.get(f"{url}/api/v1/alerts").json()["data"]["alerts"]
        if any(a["labels"]["alertname"] == "ModelNotReady" for a in alerts):
            break
        assert time.monotonic() < deadline, alerts
        time.sleep(0.5)
    alert = next(a for a in alerts if a["labels"]["alertname"] == "ModelNotReady")
    assert alert["state"] == "pending" and alert["labels"]["model"] == "iris"


def test_the_servicemonitor_scrapes_the_namespaces_the_settings_name(tmp_path):
    """Renaming an environment's namespace moves the scraping with it (generated)."""
    root = copy_repo(tmp_path)
    settings = root / "platform/settings.yaml"
    settings.write_text(settings.read_text().replace("namespace: models-staging",
                                                     "namespace: ml-staging"))
    assert run_modelops("generate", "--check", cwd=root).returncode == 1
    assert run_modelops("generate", cwd=root).returncode == 0
    text, error = render.kustomize(root / "overlays/monitoring")
    assert error is None, error
    monitor = next(o for o in yaml.safe_load_all(text) if o["kind"] == "ServiceMonitor")
    assert monitor["spec"]["namespaceSelector"]["matchNames"] == ["ml-staging",
                                                                  "models-production"]
