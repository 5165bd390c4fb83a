"""The runtime contract: what the generator tells each deployable, from the specs.

Each config is written with the deployable's own pydantic classes (the server's
server.yaml, the compactor's compactor.yaml, the catalog's catalog.yaml), and the
deployable reads it with the same classes, so the two cannot disagree.
"""

from __future__ import annotations

from collections.abc import Callable

from modelops import names, quantity
from modelops.names import server_name
from modelops.repo import Repo
from modelops.spec import ModelSpec, PoolSpec, Version
from modelops.specfile import SpecFile
from modelops_catalog.config import CatalogConfig, CatalogModel, CatalogVersion, UnusedCheck
from modelops_compactor.config import CompactedModel, CompactorConfig
from modelops_jobs.config import BatchConfig, JobConfig, TrainingConfig, TrainingInputConfig
from modelops_runtime import queues, volume
from modelops_runtime.config import (
    DatasetConfig,
    LoggingConfig,
    ModelConfig,
    ServerConfig,
    TensorConfig,
    VersionConfig,
)

CODE_FILE = "{name}.py"  # a python model's class, beside the server.yaml that names it
JOB_FILE = "job.yaml"  # a model's training and batch jobs' config, beside their code


def dataset(spec_file: SpecFile, spec: ModelSpec) -> str:
    """The dataset a model's prediction logs feed."""
    return spec.logging.dataset or spec_file.name


def declared(spec: ModelSpec, side: str) -> list[TensorConfig]:
    """A model's tensors as the spec declares them, or as its example shows them (any
    batch size)."""
    written = getattr(spec, side)
    if written is not None:
        return [TensorConfig(**t.model_dump()) for t in written]
    example = spec.example
    shown = (example.request.inputs if side == "inputs" else
             example.response.outputs if example.response else []) if example else []
    return [TensorConfig(name=t.name, datatype=t.datatype,
                         shape=[-1, *t.shape[1:]] if t.shape else []) for t in shown]


def server_model(spec_file: SpecFile, spec: ModelSpec, versions: list[Version],
                 code: str | None = None) -> ModelConfig:
    """One model as a server's config lists it."""
    return ModelConfig(
        inputs=declared(spec, "inputs"), outputs=declared(spec, "outputs"),
        name=spec_file.name, runtime=spec.runtime, concurrency=spec.concurrency,
        versions=[VersionConfig(**v.model_dump(include={"name", "artifact", "sha256", "weight"},
                                               exclude_none=True)) for v in versions],
        logging=LoggingConfig(enabled=spec.logging.enabled, sampleRate=spec.logging.sampleRate,
                              dataset=dataset(spec_file, spec)),
        datasets=[DatasetConfig(**d.model_dump()) for d in spec.datasets],
        asynchronous=spec.async_, batching=spec.batching,
        code=code or (CODE_FILE.format(name=spec_file.name) if spec.runtime == "python" else None))


def server_config(server: str, placement: str, models: list[ModelConfig],
                  pool: PoolSpec | None = None) -> dict:
    """A server's server.yaml; a pool whose members load on demand also says its memory."""
    on_demand = pool.onDemand if pool else None
    memory = int(quantity.parse(pool.resources.memory)) if pool and on_demand else None
    return ServerConfig(server=server, placement=placement, models=models,
                        onDemand=on_demand, memoryBytes=memory).model_dump(
        mode="json", exclude_none=True)


def heaviest(spec: ModelSpec) -> str:
    """The version with the most traffic (the first of equals): the one a new version is
    compared with, and the one that scores batches by default."""
    return max(spec.versions, key=lambda v: v.weight).name


def job_config(spec_file: SpecFile, spec: ModelSpec, code: str | None = None) -> JobConfig | None:
    """What a model's training and batch jobs read (None: it declares neither)."""
    if spec.training is None and spec.batch is None:
        return None
    paths = {d.name: d.path for d in spec.datasets}
    logs = volume.model_dataset(dataset(spec_file, spec), spec_file.name)  # its own, compacted
    training = batch = None
    if spec.training:
        t = spec.training
        training = TrainingConfig(
            function=t.function, features=t.features, parameters=t.parameters, seed=t.seed,
            holdout=t.holdout, checks=t.checks, gate=t.gate, serving=heaviest(spec),
            inputs=[TrainingInputConfig(dataset=i.dataset, path=paths.get(i.dataset, logs),
                                        label=i.label or t.label, optional=i.optional)
                    for i in t.inputs])
    if spec.batch:
        b = spec.batch
        features = b.features or (spec.training.features if spec.training else [])
        batch = BatchConfig(input=paths[b.input], output=b.output,
                            version=b.version or heaviest(spec), features=features)
    model = server_model(spec_file, spec, sorted(spec.versions, key=lambda v: v.name), code)
    return JobConfig(model=model, training=training, batch=batch)


def compactor_config(repo: Repo, env: str | None) -> CompactorConfig:
    """Which models' logs feed which dataset, and the reference each drifts against
    (env None: the specs as written, for a local run)."""
    models = []
    for name, spec_file in sorted(repo.models.items()):
        spec = spec_file.envs[env] if env else spec_file.obj.spec
        assert isinstance(spec, ModelSpec)
        if spec.logging.enabled:
            paths = {d.name: d.path for d in spec.datasets}
            models.append(CompactedModel(model=name, dataset=dataset(spec_file, spec),
                                         reference=paths.get(spec.logging.reference or "")))
    return CompactorConfig(models=models)


def _catalog_model(spec_file: SpecFile, spec: ModelSpec, pool_spec: PoolSpec | None,
                   ready_url: Callable[[str], str], docs_url: str | None,
                   dashboard_url: str | None) -> CatalogModel:
    hpa = (pool_spec or spec).autoscaling
    assert hpa is not None
    placement = "dedicated" if spec.placement == "dedicated" else f"pool {spec.placement.shared}"
    return CatalogModel(
        name=spec_file.name, team=spec_file.team, description=spec_file.obj.metadata.description,
        runtime=spec.runtime, placement=placement, minReplicas=hpa.minReplicas,
        maxReplicas=hpa.maxReplicas, docsUrl=docs_url, dashboardUrl=dashboard_url,
        versions=[CatalogVersion(name=v.name, weight=v.weight, readyUrl=ready_url(v.name),
                                 metrics=v.metrics.holdout if v.metrics else None,
                                 lineage=v.lineage, metricsUrl=ready_url(v.name).split(
                                     "/v2/", 1)[0] + "/metrics" if spec.async_ else None)
                  for v in sorted(spec.versions, key=lambda v: v.name)],
        queue=queues.describe(spec.async_) if spec.async_ else None,
        drift=volume.model_dataset(dataset(spec_file, spec), spec_file.name)
        if spec.logging.enabled and spec.logging.reference else None)


def catalog_config(repo: Repo, env: str, server: str | None = None) -> CatalogConfig:
    """What the catalog lists. In the cluster, readiness comes from each serving Service
    inside the namespace and links go through the gateway; with `server` (a local
    `modelops serve`), everything comes from that one process."""
    assert repo.settings is not None
    settings = repo.settings.environments[env]
    models = []
    for name, spec_file in sorted(repo.models.items()):
        spec = spec_file.envs[env]
        assert isinstance(spec, ModelSpec)
        pool = None if spec.placement == "dedicated" else spec.placement.shared
        pool_spec = repo.pools[pool].envs[env] if pool else None
        assert pool_spec is None or isinstance(pool_spec, PoolSpec)
        sleeps = spec.autoscaling is not None and spec.autoscaling.sleeps

        def ready(version: str, name: str = name, pool: str | None = pool,
                  sleeps: bool = sleeps) -> str:
            if server:
                return f"{server}/v2/models/{name}/versions/{version}/ready"
            service = server_name(pool) if pool else server_name(
                names.FRONT_DOOR) if sleeps else server_name(name, version)
            return (f"http://{service}.{settings.namespace}.svc/v2/models/{name}/versions/"
                    f"{version}/ready")

        docs = f"{server}/docs" if server else settings.docs_url(name)
        dashboard = None if server else settings.dashboard_url(name)
        models.append(_catalog_model(spec_file, spec, pool_spec, ready, docs, dashboard))
    check = repo.settings.unusedModels
    unused = UnusedCheck(prometheusUrl=check.prometheusUrl, namespace=settings.namespace,
                         afterDays=check.afterDays) if check.prometheusUrl and not server \
        else None
    return CatalogConfig(environment="local" if server else env, models=models, unused=unused)

