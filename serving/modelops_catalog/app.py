"""The model catalog: one page (and a JSON API) listing every model, its versions and
their live readiness, with links to each model's API docs and dashboard.

`python -m modelops_catalog` serves the catalog.yaml that `modelops generate`
writes (MODELOPS_CATALOG); `modelops catalog --serve` serves one built from the specs.
"""

from __future__ import annotations

import asyncio
import html
import sys
import time
from pathlib import Path

import httpx
from fastapi import FastAPI
from fastapi.responses import HTMLResponse, JSONResponse
from prometheus_client.parser import text_string_to_metric_families

from modelops_catalog import charts, unused
from modelops_catalog.config import CatalogConfig, CatalogModel, CatalogOptions, CatalogVersion
from modelops_jobs.config import score_line
from modelops_runtime.http.docs import mount_docs


async def _ready(client: httpx.AsyncClient, url: str) -> str:
    try:
        response = await client.get(url)
    except httpx.HTTPError:
        return "unreachable"
    if response.status_code == 401:
        return "unauthorized"  # the servers require a token the catalog was not given
    try:
        answer = response.json()
    except ValueError:
        return "not ready"
    if response.status_code == 200 and answer.get("state") in ("asleep", "waking", "ready"):
        return str(answer["state"])  # a model that sleeps, as its front door sees it
    return "ready" if response.status_code == 200 and answer.get("ready") else "not ready"


async def _queue(client: httpx.AsyncClient, url: str | None, model: str,
                 version: str) -> dict[str, float] | None:
    """An async version's queue as its server counts it (modelops_async_queue_depth), or
    None: not async, unreachable, or not counted yet."""
    if url is None:
        return None
    try:
        text = (await client.get(url)).text
    except httpx.HTTPError:
        return None
    found = {sample.labels["queue"]: sample.value
             for family in text_string_to_metric_families(text)
             if family.name == "modelops_async_queue_depth" for sample in family.samples
             if sample.labels.get("model") == model and sample.labels.get("version") == version}
    return found or None


UNUSED_SECONDS = 300.0
"""How long the catalog keeps Prometheus's answer on which models are unused."""

PAGE = r"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Model catalog: {env}</title>
<style>
 body {{ font: 15px/1.45 system-ui, sans-serif; margin: 2rem; color: #1d2330; background: #f6f7fb }}
 h1 {{ font-size: 1.5rem; margin: 0 0 1rem }} .model {{ background: #fff; border-radius: 10px;
 padding: 1rem 1.25rem; margin: 0 0 1rem; box-shadow: 0 1px 3px #0002 }}
 .model h2 {{ margin: 0; font-size: 1.15rem }} .meta {{ color: #5a6273; font-size: .9rem }}
 table {{ border-collapse: collapse; margin: .5rem 0 }} td, th {{ padding: .2rem .8rem .2rem 0;
 text-align: left }} .state {{ border-radius: 999px; padding: .05rem .6rem; font-size: .85rem;
 background: #e4e6eb }} .state.ready {{ background: #d3f5dc; color: #11612b }}
 .state.not-ready, .state.unreachable {{ background: #fde0e0; color: #8a1c1c }}
 .state.asleep {{ background: #e3e8f4; color: #2c3e66 }}
 .state.waking {{ background: #fff1cc; color: #6b4e00 }}
 .unused {{ background: #fde9d9; color: #7a3b0c; border-radius: 999px; padding: .05rem .6rem }}
 a {{ color: #2458d6 }} .charts {{ display: flex; gap: 2rem; flex-wrap: wrap; margin: .5rem 0 }}
 figure {{ margin: 0 }} figcaption {{ color: #5a6273; font-size: .85rem; margin: 0 0 .3rem }}
</style></head>
<body><h1>Model catalog <span class="meta">({env}, {count} models)</span></h1>
{models}
<script>
async function refresh() {{
  const response = await fetch(location.pathname.replace(/\/$/, "") + "/api/models");
  for (const model of await response.json()) {{
    const unused = document.getElementById(`unused-${{model.name}}`);
    if (unused) {{ unused.hidden = !model.unused; }}
    for (const version of model.versions) {{
      const cell = document.getElementById(`state-${{model.name}}-${{version.name}}`);
      if (cell) {{ cell.textContent = version.state;
                  cell.className = "state " + version.state.replace(" ", "-"); }}
      const queue = document.getElementById(`queue-${{model.name}}-${{version.name}}`);
      if (queue) {{ queue.textContent = version.queue ? `${{version.queue.waiting ?? 0}} waiting, `
                    + `${{version.queue.dead ?? 0}} dead letters` : "not counted"; }}
    }}
  }}
  document.body.dataset.refreshed = "true";
}}
refresh(); setInterval(refresh, 10000);
</script></body></html>"""


def _charts_html(model: CatalogModel, shared_root: Path | None) -> str:
    """The traffic split, and the newest drift summary when the model's logs have one."""
    figures = [("traffic per version", charts.traffic([(v.name, v.weight)
                                                       for v in model.versions]))]
    if model.drift:
        report = charts.latest_drift(shared_root, model.drift) if shared_root else None
        if report is None:
            figures.append(("drift: no summary yet (the log compactor writes one a day)", ""))
        elif report["features"]:
            caption = (f"drift (PSI) on {report['date']}, {report['version']}: "
                       f"{report.get('rows', 0)} rows vs {Path(str(report.get('reference'))).name}")
            if any(isinstance(f, dict) and f.get("drift") == "too few rows"
                   for f in report["features"].values()):
                caption += (f": too few rows to judge (fewer than {report.get('minRows')}, "
                            "the bars are grey)")
            figures.append((caption, charts.drift(report["features"])))
        else:
            figures.append((f"drift on {report['date']}: "
                            f"{report.get('error') or 'no feature matches the reference'}", ""))
    return '<div class="charts">' + "".join(
        f'<figure><figcaption>{html.escape(caption)}</figcaption>{svg}</figure>'
        for caption, svg in figures) + "</div>"


def _model_html(model: CatalogModel, shared_root: Path | None = None,
                unused_text: str = "") -> str:
    e = html.escape
    def trained(v: CatalogVersion) -> str:
        if not v.metrics:
            return "-"
        scores = e(score_line(v.metrics))
        lineage = f' · <abbr title="{e(v.lineage)}">lineage</abbr>' if v.lineage else ""
        return scores + lineage

    def queue(v: CatalogVersion) -> str:
        return f'<td id="queue-{e(model.name)}-{e(v.name)}">counting</td>' if model.queue else ""

    rows = "".join(
        f'<tr><td>{e(v.name)}</td><td>{v.weight}%</td><td><span class="state" '
        f'id="state-{e(model.name)}-{e(v.name)}">checking</span></td>{queue(v)}'
        f'<td class="trained">{trained(v)}</td></tr>'
        for v in model.versions)
    links = " · ".join(f'<a href="{e(url)}">{label}</a>' for label, url in
                       (("API docs", model.docsUrl), ("dashboard", model.dashboardUrl)) if url)
    return (f'<section class="model" id="model-{e(model.name)}"><h2>{e(model.name)} '
            f'<span class="unused" id="unused-{e(model.name)}" hidden>{e(unused_text)}</span>'
            f'</h2><div class="meta">team {e(model.team)} · {e(model.runtime)} · '
            f'{e(model.placement)}'
            f' · {model.minReplicas}-{model.maxReplicas} replicas'
            f'{" · asynchronous: " + e(model.queue) if model.queue else ""}</div>'
            f'<p>{e(model.description)}</p><table><tr><th>version</th><th>traffic</th>'
            f'<th>state</th>{"<th>queue</th>" if model.queue else ""}'
            f'<th>holdout scores</th></tr>{rows}</table>'
            f'{_charts_html(model, shared_root)}{links}</section>')


def create_catalog_app(config: CatalogConfig, token: str | None = None,
                       shared_root: Path | None = None) -> FastAPI:
    """The catalog; `token` is the model servers' bearer token, when they require one;
    `shared_root` the shared volume, whose drift summaries the page charts."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    app = FastAPI(title="modelops catalog", docs_url=None, redoc_url=None,
                  openapi_url="/catalog/openapi.json")

    mount_docs(app, "/catalog/docs", "/catalog/openapi.json")
    remembered: dict[str, tuple[float, set[str]]] = {}

    def unused_now() -> set[str]:
        """The models Prometheus says served nothing lately (asked once in UNUSED_SECONDS;
        none when it is not set or does not answer: the page still works)."""
        check = config.unused
        if check is None:
            return set()
        cached = remembered.get("unused")
        if cached and time.monotonic() - cached[0] < UNUSED_SECONDS:
            return cached[1]
        try:
            found = set(unused.find(check.prometheusUrl, config.environment, check.namespace,
                                    [m.name for m in config.models], check.afterDays).models)
        except unused.PrometheusError as exc:
            print(f"modelops catalog: unused models not known: {exc}", file=sys.stderr,
                  flush=True)
            found = set()
        remembered["unused"] = (time.monotonic(), found)
        return found

    @app.get("/catalog/api/models")
    async def models() -> JSONResponse:
        """Every model with its versions' live readiness, and an async version's queue."""
        every = [(m, v) for m in config.models for v in m.versions]
        async with httpx.AsyncClient(timeout=2.0, headers=headers) as client:
            states = iter(await asyncio.gather(*(_ready(client, v.readyUrl) for _, v in every)))
            depths = iter(await asyncio.gather(*(_queue(client, v.metricsUrl, m.name, v.name)
                                                 for m, v in every)))
        idle = await asyncio.to_thread(unused_now)
        out = []
        for model in config.models:
            data = model.model_dump(exclude={"versions"})
            data["unused"] = model.name in idle
            data["versions"] = [{**v.model_dump(exclude={"readyUrl", "metricsUrl"}),
                                 "state": next(states), "queue": next(depths)}
                                for v in model.versions]
            out.append(data)
        return JSONResponse(out)

    @app.get("/catalog", response_class=HTMLResponse)
    @app.get("/catalog/", response_class=HTMLResponse, include_in_schema=False)
    async def page() -> HTMLResponse:
        def render() -> str:  # reads the volume: off the event loop, so health still answers
            note = f"no request in {config.unused.afterDays} days: a candidate for " \
                "removal" if config.unused else ""
            return PAGE.format(env=html.escape(config.environment), count=len(config.models),
                               models="\n".join(_model_html(m, shared_root, note)
                                                 for m in config.models))

        return HTMLResponse(await asyncio.to_thread(render))

    @app.get("/v2/health/live", include_in_schema=False)
    @app.get("/v2/health/ready", include_in_schema=False)
    async def health() -> dict[str, bool]:
        return {"live": True}

    return app


def main() -> None:
    import uvicorn

    try:
        options = CatalogOptions()
        config = CatalogConfig.read(options.catalog)
    except (OSError, ValueError) as exc:
        sys.exit(f"modelops catalog: cannot start: {exc}")
    token = options.auth_token.get_secret_value() if options.auth_token else None
    uvicorn.run(create_catalog_app(config, token, options.shared_root), host=options.host,
                port=options.port,
                access_log=False, log_level="warning")

