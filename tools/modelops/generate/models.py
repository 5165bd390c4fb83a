"""Model overlays: one Argo CD Application per dedicated model or pool and environment.

  overlays/<env>/models/<model>/             a dedicated model: its ServiceAccount, its
      kustomization.yaml, resources.yaml    HTTPRoute, and the patches every version shares
      route.yaml, deployment.yaml, hpa.yaml
      <version>/                             one server per version over base/model-server,
          kustomization.yaml, server.yaml    named <model>-<version>-server, with the config
          [pdb.yaml] [<model>.py]            it reads (a ConfigMap named by content hash, so
                                             a change rolls the pods)
  overlays/<env>/models/<pool>/              a pool: one server over base/model-pool whose
                                             server.yaml lists its member models
"""

from __future__ import annotations

import dataclasses
from pathlib import PurePosixPath
from typing import Any

from modelops import names, quantity
from modelops.generate import broker, contract, jobs, sleep
from modelops.generate.argocd import app_params
from modelops.generate.objects import (
    Code,
    add_auth,
    add_object_store,
    backend,
    grpc_backend,
    grpc_route,
    image,
    kustomization,
    prefix,
    route,
    service_account,
    up,
    uses_store,
)
from modelops.names import server_name
from modelops.repo import Repo
from modelops.settings import EnvironmentSettings
from modelops.spec import Autoscaling, ModelSpec, PoolSpec, Resources
from modelops.specfile import SpecFile
from modelops_runtime import volume
from modelops_runtime.config import VERSION_HEADER, RelayConfig

Files = dict[str, Any]  # relative path -> data to write as YAML (or Code, copied)

BASE_SERVER = "base/model-server"
BASE_POOL = "base/model-pool"
BASE_NAME = "server"  # name of the base objects; overlays prefix it
CONFIG_FILE = "server.yaml"
RESOURCES = "resources.yaml"  # a model's or pool's own objects, not of one server


FRONT_DOOR = server_name(names.FRONT_DOOR)  # the front door's Service (front_door below)


def root(env: str, name: str) -> str:
    """Where a model's or pool's overlay lives."""
    return f"overlays/{env}/models/{name}"


def labels(spec_file: SpecFile) -> dict[str, str]:
    return {"app.kubernetes.io/name": spec_file.name, "app.kubernetes.io/part-of": "modelops",
            "modelops/team": spec_file.team}


def _resources(res: Resources) -> dict:
    cpu, memory = quantity.parse(res.cpu), quantity.parse(res.memory)
    limit_cpu = quantity.parse(res.limits.cpu) if res.limits.cpu else cpu
    limit_memory = quantity.parse(res.limits.memory) if res.limits.memory else memory
    out = {"requests": {"cpu": quantity.cpu(cpu), "memory": quantity.memory(memory)},
           "limits": {"cpu": quantity.cpu(limit_cpu), "memory": quantity.memory(limit_memory)}}
    if res.gpu:
        for part in out.values():
            part[res.gpu.resource] = str(res.gpu.count)
    return out


def _deployment_patch(service_account: str, spec: ModelSpec | PoolSpec,
                      models: list[ModelSpec], settings: EnvironmentSettings) -> dict:
    """Everything the spec decides about the pod; the base decides the rest. The env is
    the dedicated model's or the pool's own (validation keeps members from setting any)."""
    assert spec.resources is not None
    container: dict[str, Any] = {"name": "server", "resources": _resources(spec.resources)}
    env = [var.model_dump(exclude_none=True) for var in spec.env]
    if env:
        container["env"] = env
    if any(m.logging.enabled for m in models):
        container["volumeMounts"] = [{"name": "shared",
                                      "mountPath": f"{volume.MOUNT}/{volume.LOGS}",
                                      "subPath": volume.LOGS}]
    pod: dict[str, Any] = {"serviceAccountName": service_account, "containers": [container]}
    add_auth(pod, container, settings.authSecret)
    add_object_store(pod, container, settings.objectStore if uses_store(models) else None)
    gpu = spec.resources.gpu
    if gpu:
        if gpu.nodeSelector:
            pod["nodeSelector"] = dict(sorted(gpu.nodeSelector.items()))
        if gpu.tolerations:
            pod["tolerations"] = [t.model_dump(exclude_none=True) for t in gpu.tolerations]
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": BASE_NAME},
            "spec": {"template": {"spec": pod}}}


def _hpa_patch(spec: ModelSpec | PoolSpec) -> dict:
    hpa = spec.autoscaling
    assert hpa is not None
    metrics = [{"type": "Resource", "resource": {"name": "cpu", "target": {
        "type": "Utilization", "averageUtilization": hpa.targetCPUUtilization}}}]
    if hpa.targetMemoryUtilization:
        metrics.append({"type": "Resource", "resource": {"name": "memory", "target": {
            "type": "Utilization", "averageUtilization": hpa.targetMemoryUtilization}}})
    return {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": BASE_NAME},
            "spec": {"minReplicas": hpa.minReplicas, "maxReplicas": hpa.maxReplicas,
                     "metrics": metrics,
                     "behavior": {"scaleDown": {"stabilizationWindowSeconds":
                                                hpa.scaleDownStabilizationSeconds}}}}


def _pdb(selector: dict[str, str], component: str) -> dict:
    """At most one replica of a server down at a time. Its selector names the server's
    component too: a pool's label is also on its members' Job pods, and a budget that
    selected those (no scalable owner) would allow no eviction at all, hanging drains."""
    return {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
            "metadata": {"name": BASE_NAME},
            "spec": {"maxUnavailable": 1, "selector": {"matchLabels": {
                **selector, "app.kubernetes.io/component": component}}}}


BROKER_FILE = "broker.yaml"  # a server's queues, limits, user and permission
BROKER_PATCH = {"path": "broker-access.yaml", "target": {"kind": "Deployment"}}


def _broker_files(directory: str, name_prefix: str, objects: list[dict],
                  settings: EnvironmentSettings) -> Files:
    """What a server that uses the broker adds: its broker objects (queues, limits, its
    own user), and a patch that gives its pods the broker's address and that user's
    credentials."""
    return {f"{directory}/{BROKER_FILE}": objects,
            f"{directory}/{BROKER_PATCH['path']}": _broker_patch(settings, name_prefix)}


def _broker_patch(settings: EnvironmentSettings, name_prefix: str) -> dict:
    """The pod's broker address and its own user's credentials."""
    container: dict[str, Any] = {"name": "server"}
    pod: dict[str, Any] = {"containers": [container]}
    broker.add_broker(pod, container, settings, name_prefix)
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": BASE_NAME},
            "spec": {"template": {"spec": pod}}}


PATCHES = [{"path": "deployment.yaml", "target": {"kind": "Deployment"}},
           {"path": "hpa.yaml", "target": {"kind": "HorizontalPodAutoscaler"}}]
"""The patches of every server in an overlay: one per model or pool, shared by its versions."""
NO_HPA = {"patch": "$patch: delete\napiVersion: autoscaling/v2\nkind: HorizontalPodAutoscaler\n"
                   f"metadata:\n  name: {BASE_NAME}\n"}
"""A sleeping server's base HPA, removed: KEDA scales it (sleep.py)."""


@dataclasses.dataclass
class ServerUnit:
    """One server (Deployment, Service, HPA, maybe a PDB) over a base: what its own
    directory holds."""

    directory: str
    base: str
    name_prefix: str
    config: dict  # its server.yaml
    code: dict[str, str]  # python model classes, by file name
    selector: dict[str, str]  # the labels that tell this server's pods from the others'
    always_two: bool  # minReplicas >= 2: a PodDisruptionBudget keeps one serving

    def files(self, namespace: str, extra_resources: tuple[str, ...] = (),
              labels: dict[str, str] | None = None, **rest: Any) -> Files:
        """Its files; a pool's directory also holds the pool's own objects and patches."""
        depth = self.directory.count("/") + 1
        resources = [up(depth) + self.base, *extra_resources]
        out: Files = {f"{self.directory}/{CONFIG_FILE}": self.config}
        if self.always_two:
            out[f"{self.directory}/pdb.yaml"] = _pdb(
                self.selector, "model-pool" if self.base == BASE_POOL else "model-server")
            resources.append("pdb.yaml")
        for file, text in self.code.items():
            out[f"{self.directory}/{file}"] = text
        out[f"{self.directory}/kustomization.yaml"] = kustomization(
            namespace, resources, selector_labels=self.selector, labels=labels,
            namePrefix=self.name_prefix,
            configMapGenerator=[{"name": "config", "files": [CONFIG_FILE, *sorted(self.code)]}],
            **rest)
        return out


def _code(spec_file: SpecFile, spec: ModelSpec, sources: dict[str, str]) -> dict[str, Code]:
    if spec.runtime != "python":
        return {}
    return {contract.CODE_FILE.format(name=spec_file.name): Code(
        sources[spec_file.name], str(PurePosixPath(spec_file.file).with_name("model.py")))}


def _versions(spec: ModelSpec):
    return sorted(spec.versions, key=lambda v: v.name)


def dedicated(repo: Repo, spec_file: SpecFile, env: str) -> Files:
    spec = spec_file.envs[env]
    assert isinstance(spec, ModelSpec) and repo.settings
    settings = repo.settings.environments[env]
    name, top = spec_file.name, root(env, spec_file.name)
    versions = _versions(spec)
    sleeps = sleep.sleeps(spec)
    out: Files = {f"{top}/{RESOURCES}": [service_account(name)],
                  f"{top}/deployment.yaml": _deployment_patch(name, spec, [spec], settings)}
    if not sleeps:
        out[f"{top}/hpa.yaml"] = _hpa_patch(spec)
    for version in versions:
        server = server_name(name, version.name)
        config = contract.server_config(server, "dedicated", [contract.server_model(
            spec_file, spec, [version.model_copy(update={"weight": 100})])])
        unit = ServerUnit(f"{top}/{version.name}", BASE_SERVER, names.prefix(name, version.name),
                          config, _code(spec_file, spec, repo.sources),
                          {"modelops/version": version.name},
                          spec.autoscaling is not None and spec.autoscaling.minReplicas >= 2)
        served = [(name, version.name, spec.async_)] if spec.async_ else []
        if sleeps:
            assert spec.autoscaling is not None
            out[f"{unit.directory}/{sleep.SCALER_FILE}"] = sleep.scaler(
                unit.name_prefix, name, version.name, spec.autoscaling, settings)
            out |= _broker_files(unit.directory, unit.name_prefix,
                                 broker.topology(unit.name_prefix, served, True), settings)
            out |= unit.files(settings.namespace, (BROKER_FILE, sleep.SCALER_FILE),
                              patches=[BROKER_PATCH, NO_HPA])
        elif served:
            out |= _broker_files(unit.directory, unit.name_prefix,
                                 broker.topology(unit.name_prefix, served, True), settings)
            out |= unit.files(settings.namespace, (BROKER_FILE,), patches=[BROKER_PATCH])
        else:
            out |= unit.files(settings.namespace)
    out[f"{top}/route.yaml"] = _routes(name, versions, settings, sleeps)
    job_files = jobs.files(repo, spec_file, env, f"{top}/jobs", name)
    out |= job_files
    out[f"{top}/kustomization.yaml"] = kustomization(
        settings.namespace, [RESOURCES, "route.yaml"] + [v.name for v in versions] +
        (["jobs"] if job_files else []),
        selector_labels={"modelops/model": name}, labels=labels(spec_file),
        images=[image(spec.image or repo.settings.serverImage)],
        patches=PATCHES[:1] if sleeps else PATCHES)
    out[f"{top}/app.json"] = app_params(repo, env, name, spec_file.team,
                                        ".".join(v.name for v in versions), [name])
    return out


def _routes(name: str, versions: list, settings: EnvironmentSettings,
            sleeps: bool) -> list[dict]:
    """A model's HTTPRoute (and GRPCRoute, with a public host): each version's own path
    (or header) to its server, the rest split by the weights. A model that sleeps has all
    of it go to the front door, which answers for it at any number of replicas."""
    def server(version: str) -> str:
        return FRONT_DOOR if sleeps else server_name(name, version)

    path = f"/v2/models/{name}"
    weighted = [backend(server(v.name), v.weight) for v in versions] if not sleeps \
        else [backend(FRONT_DOOR)]
    routes = [route(name, settings.gateway, settings.gatewayNamespace, [
        *({"matches": [prefix(f"{path}/versions/{v.name}")],
           "backendRefs": [backend(server(v.name))]} for v in versions),
        {"matches": [prefix(path)], "backendRefs": weighted}])]
    if settings.host:  # gRPC: the model's own host; a version pinned by a request header
        routes.append(grpc_route(name, settings.gateway, settings.gatewayNamespace,
                                 [settings.grpc_host(name)], [
            *({"matches": [{"headers": [{"name": VERSION_HEADER, "value": v.name}]}],
               "backendRefs": [grpc_backend(server(v.name))]} for v in versions),
            {"backendRefs": [grpc_backend(server(v.name), v.weight) for v in versions]
             if not sleeps else [grpc_backend(FRONT_DOOR)]}]))
    return routes


def pooled(repo: Repo, pool: SpecFile, members: list[SpecFile], env: str) -> Files:
    spec = pool.envs[env]
    assert isinstance(spec, PoolSpec) and repo.settings
    settings = repo.settings.environments[env]
    top = root(env, pool.name)
    models = [m.envs[env] for m in members]
    assert all(isinstance(m, ModelSpec) for m in models)
    config = contract.server_config(server_name(pool.name), "shared", [
        contract.server_model(m, m.envs[env], _versions(m.envs[env])) for m in members], spec)
    code = {f: t for m in members for f, t in _code(m, m.envs[env], repo.sources).items()}
    out: Files = {
        f"{top}/{RESOURCES}": [service_account(BASE_NAME)],  # prefixed: <pool>-server
        f"{top}/deployment.yaml": _deployment_patch(BASE_NAME, spec, models, settings),
        f"{top}/hpa.yaml": _hpa_patch(spec),
        # One rule: each member's path (and gRPC host) goes to the pool's server.
        f"{top}/route.yaml": [route("route", settings.gateway, settings.gatewayNamespace, [{
            "matches": [prefix(f"/v2/models/{m.name}") for m in members],
            "backendRefs": [backend(server_name(pool.name))]}])] + ([grpc_route(
                "route", settings.gateway, settings.gatewayNamespace,
                [settings.grpc_host(m.name) for m in members],
                [{"backendRefs": [grpc_backend(server_name(pool.name))]}])]
                if settings.host else [])}
    job_dirs = []
    for member in members:
        job_files = jobs.files(repo, member, env, f"{top}/{member.name}-jobs",
                               names.prefix(pool.name) + BASE_NAME)
        out |= job_files
        job_dirs += [f"{member.name}-jobs"] if job_files else []
    unit = ServerUnit(top, BASE_POOL, names.prefix(pool.name), config, code,
                      {"modelops/pool": pool.name}, spec.autoscaling.minReplicas >= 2)
    served = broker.served([(m.name, m.envs[env]) for m in members])  # type: ignore[misc]
    if served:
        out |= _broker_files(top, unit.name_prefix,
                             broker.topology(unit.name_prefix, served, False), settings)
    out |= unit.files(settings.namespace, (RESOURCES, "route.yaml", *job_dirs,
                                           *([BROKER_FILE] if served else [])), labels(pool),
                      images=[image(repo.settings.serverImage)],
                      patches=PATCHES + ([BROKER_PATCH] if served else []))
    out[f"{top}/app.json"] = app_params(repo, env, pool.name, pool.team, "",
                                        [m.name for m in members])
    return out



def front_door(repo: Repo, env: str, top: str) -> Files:
    """The environment's front door, where a model sleeps: the same server, its config
    listing those models as relayed (never loaded), always on and scaled on CPU. Its
    broker user is the platform broker's (broker.py); it syncs after the broker (wave 1),
    so its user's credentials Secret is there when its pods start."""
    assert repo.settings is not None
    settings = repo.settings.environments[env]
    door = settings.frontDoor
    models = []
    for _, spec_file in sorted(repo.models.items()):
        spec = spec_file.envs[env]
        if sleep.sleeps(spec):
            assert isinstance(spec, ModelSpec) and spec.autoscaling is not None
            model = contract.server_model(spec_file, spec, _versions(spec))
            models.append(model.model_copy(update={"code": None, "relay": RelayConfig(
                wakeSeconds=spec.autoscaling.wakeSeconds)}))
    if not models:
        return {}
    shape = PoolSpec(resources=Resources(cpu=door.cpu, memory=door.memory),
                     autoscaling=Autoscaling(minReplicas=door.minReplicas,
                                             maxReplicas=door.maxReplicas))
    name_prefix = names.prefix(names.FRONT_DOOR)
    unit = ServerUnit(top, BASE_POOL, name_prefix, contract.server_config(
        FRONT_DOOR, "shared", models), {}, {"app.kubernetes.io/name": names.FRONT_DOOR},
        door.minReplicas >= 2)
    return unit.files(settings.namespace, (RESOURCES,),
                      labels={"app.kubernetes.io/part-of": "modelops"},
                      commonAnnotations={"argocd.argoproj.io/sync-wave": "1"},
                      images=[image(repo.settings.serverImage)],
                      patches=PATCHES + [BROKER_PATCH]) | {
        f"{top}/{RESOURCES}": [service_account(BASE_NAME)],
        f"{top}/deployment.yaml": _deployment_patch(BASE_NAME, shape, [], settings),
        f"{top}/hpa.yaml": _hpa_patch(shape),
        f"{top}/{BROKER_PATCH['path']}": _broker_patch(settings, name_prefix)}
