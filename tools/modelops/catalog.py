"""The catalog's data, built from the specs: for the cluster (generated) or a local server."""

from __future__ import annotations

from modelops.repo import Entry, Repo
from modelops.spec import ModelSpec
from modelops_runtime.config import CatalogConfig, CatalogModel, CatalogVersion

def _model(entry: Entry, spec: ModelSpec, pool_spec, ready_url, docs_url: str | None,
           dashboard_url: str | None) -> CatalogModel:
    hpa = (pool_spec or spec).autoscaling
    placement = "dedicated" if spec.placement == "dedicated" else f"pool {spec.placement.shared}"
    return CatalogModel(
        name=entry.name, team=entry.team, description=entry.obj.metadata.description,
        runtime=spec.runtime, placement=placement, minReplicas=hpa.minReplicas,
        maxReplicas=hpa.maxReplicas, docsUrl=docs_url, dashboardUrl=dashboard_url,
        versions=[CatalogVersion(name=v.name, weight=v.weight, readyUrl=ready_url(v.name))
                  for v in sorted(spec.versions, key=lambda v: v.name)])


def for_cluster(repo: Repo, env: str) -> CatalogConfig:
    """Readiness from each serving Service inside the namespace; links through the gateway."""
    assert repo.settings is not None
    settings = repo.settings.environments[env]
    models = []
    for name, entry in sorted(repo.models.items()):
        spec = entry.envs[env]
        pool = None if spec.placement == "dedicated" else spec.placement.shared
        pool_spec = repo.pools[pool].envs[env] if pool else None

        def ready(version: str, name: str = name, pool: str | None = pool) -> str:
            service = f"{pool}-server" if pool else f"{name}-{version}-server"
            return (f"http://{service}.{settings.namespace}.svc/v2/models/{name}/versions/"
                    f"{version}/ready")

        models.append(_model(entry, spec, pool_spec, ready, settings.docs_url(name),
                             settings.dashboard_url(name)))
    return CatalogConfig(environment=env, models=models)


def for_local(repo: Repo, server: str) -> CatalogConfig:
    """Readiness from one local `modelops serve`."""
    models = []
    for name, entry in sorted(repo.models.items()):
        spec = entry.envs["staging"]
        pool_spec = None if spec.placement == "dedicated" else \
            repo.pools[spec.placement.shared].envs["staging"]
        models.append(_model(
            entry, spec, pool_spec,
            lambda v, name=name: f"{server}/v2/models/{name}/versions/{v}/ready",
            f"{server}/docs", None))
    return CatalogConfig(environment="local", models=models)
