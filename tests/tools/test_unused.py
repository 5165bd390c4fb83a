"""Unused models, from a real Prometheus (Debian's, started here on 127.0.0.1) holding 40
days of the servers' metrics, written into its storage by promtool's backfill: what
`modelops plan` and the catalog list as candidates for removal."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import time

import httpx
import pytest
import yaml
from conftest import run_modelops
from servers import free_port

DAY = 86_400
STEP = 240  # a sample every 4 minutes (within the 5 minutes a query looks back)


def _series(out: list[str], name: str, labels: dict[str, str], start: float, end: float,
            value) -> None:  # type: ignore[no-untyped-def]
    text = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    t = start
    while t <= end:
        out.append(f"{name}{{{text}}} {value(t)} {t:.3f}")
        t += STEP


def _history(now: float) -> str:
    """Staging, as its servers would have reported it:
      iris     deployed 40 days, answering all along      -> in use
      digits   deployed 40 days, never answered            -> unused
      diabetes deployed 40 days, answered only until day 35 ago -> unused
      wine     deployed 5 days ago, never answered         -> too new to say
      cancer-screen  never seen                            -> not listed
    Production: digits answered there."""
    start, out = now - 40 * DAY, []
    staging = {"namespace": "models-staging"}
    for model in ("iris", "digits", "diabetes"):
        _series(out, "modelops_model_ready", {**staging, "model": model, "version": "v1"},
                start, now, lambda t: 1)
    _series(out, "modelops_model_ready", {**staging, "model": "wine", "version": "v1"},
            now - 5 * DAY, now, lambda t: 1)
    code = {"code": "200", "version": "v1"}
    _series(out, "modelops_requests_total", {**staging, **code, "model": "iris"}, start, now,
            lambda t: int((t - start) // 60))
    _series(out, "modelops_requests_total", {**staging, **code, "model": "diabetes"}, start,
            now, lambda t: int(min(t, now - 35 * DAY) - start) // 60)
    production = {"namespace": "models-production"}
    _series(out, "modelops_model_ready", {**production, "model": "digits", "version": "v1"},
            start, now, lambda t: 1)
    _series(out, "modelops_requests_total", {**production, **code, "model": "digits"},
            start, now, lambda t: int((t - start) // 3600))
    return "\n".join(out) + "\n# EOF\n"


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory):
    binary, promtool = shutil.which("prometheus"), shutil.which("promtool")
    assert binary and promtool, "prometheus is needed (make test installs Debian's)"
    folder = tmp_path_factory.mktemp("prometheus")
    now = time.time() - 60
    (folder / "history.om").write_text(_history(now))
    done = subprocess.run([promtool, "tsdb", "create-blocks-from", "openmetrics",
                           "--max-block-duration=720h", str(folder / "history.om"),
                           str(folder / "data")], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    (folder / "prometheus.yml").write_text("global: {}\n")
    port = free_port()
    proc = subprocess.Popen([binary, f"--config.file={folder / 'prometheus.yml'}",
                             f"--storage.tsdb.path={folder / 'data'}",
                             "--storage.tsdb.retention.time=400d",
                             f"--web.listen-address=127.0.0.1:{port}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"{url}/-/ready").status_code == 200:
                break
        except httpx.TransportError:
            pass
        assert proc.poll() is None and time.monotonic() < deadline, "prometheus did not start"
        time.sleep(0.2)
    yield url
    proc.terminate()
    proc.wait(30)


def test_the_plan_lists_the_models_that_served_nothing_for_30_days(fresh_copy, prometheus):
    plan = run_modelops("plan", "--base", "HEAD", "-o", "json", "--prometheus", prometheus,
                        cwd=fresh_copy)
    assert plan.returncode == 0, plan.stderr
    unused = {u["env"]: u["models"] for u in json.loads(plan.stdout)["unused"]}
    assert unused == {"staging": ["diabetes", "digits"], "production": []}
    markdown = run_modelops("plan", "--base", "HEAD", cwd=fresh_copy,
                            env={"MODELOPS_PROMETHEUS_URL": prometheus}).stdout
    assert "**Unused for 30 days** (no request; remove a model by deleting its folder in a " \
           "pull request): staging `diabetes`, `digits`" in markdown

    settings = fresh_copy / "platform/settings.yaml"  # a shorter period: diabetes is used
    settings.write_text(settings.read_text().replace("  afterDays: 30", "  afterDays: 38"))
    plan = run_modelops("plan", "--base", "HEAD", "-o", "json", "--prometheus", prometheus,
                        cwd=fresh_copy)
    assert {u["env"]: u["models"] for u in json.loads(plan.stdout)["unused"]} == {
        "staging": ["digits"], "production": []}


def test_a_prometheus_that_does_not_answer_is_one_line_not_a_failure(fresh_copy):
    dead = f"http://127.0.0.1:{free_port()}"
    plan = run_modelops("plan", "--base", "HEAD", "--prometheus", dead, cwd=fresh_copy)
    assert plan.returncode == 0, plan.stderr
    assert f"_Unused models: not checked. Prometheus at {dead} did not answer" in plan.stdout
    assert "Traceback" not in plan.stderr


def test_the_catalog_marks_the_unused_models(fresh_copy, prometheus):
    from modelops.generate.contract import catalog_config
    from modelops.repo import load
    from modelops_catalog.app import create_catalog_app

    settings = fresh_copy / "platform/settings.yaml"
    data = yaml.safe_load(settings.read_text())
    data["unusedModels"]["prometheusUrl"] = prometheus
    settings.write_text(yaml.safe_dump(data))
    app = create_catalog_app(catalog_config(load(fresh_copy), "staging"))

    async def fetch() -> tuple[list[dict], str]:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app),
                                     base_url="http://catalog") as client:
            return ((await client.get("/catalog/api/models")).json(),
                    (await client.get("/catalog")).text)

    models, page = asyncio.run(fetch())
    assert {m["name"] for m in models if m["unused"]} == {"diabetes", "digits"}
    assert 'id="unused-digits" hidden>no request in 30 days' in page
    rendered = yaml.safe_load((fresh_copy / "overlays/staging/platform/catalog/catalog.yaml")
                              .read_text())
    assert rendered.get("unused") is None  # generated before the URL was set: generate adds it
    assert run_modelops("generate", cwd=fresh_copy).returncode == 0
    rendered = yaml.safe_load((fresh_copy / "overlays/staging/platform/catalog/catalog.yaml")
                              .read_text())
    assert rendered["unused"] == {"prometheusUrl": prometheus, "namespace": "models-staging",
                                  "afterDays": 30}
    policies = yaml.safe_load_all((fresh_copy / "overlays/staging/platform/namespace/"
                                   "resources.yaml").read_text())
    egress = next(p for p in policies if p["metadata"]["name"] ==
                  "allow-catalog-to-prometheus")["spec"]["egress"][0]
    assert egress["ports"] == [{"protocol": "TCP", "port": int(prometheus.rsplit(":", 1)[1])}]
