"""Platform overlays: what each environment needs before and beside its models.

  overlays/<env>/platform/                one Argo CD Application per environment
      kustomization.yaml                  (synced before any model: see argocd.py)
      namespace/    quota from the capacity budget, container defaults, the shared
                    volume, default-deny NetworkPolicies with only the needed paths open
      gateway/      the environment's Gateway (when settings name a GatewayClass)
      catalog/      the model catalog page, with its generated catalog.yaml
      log-compactor/  the CronJob that turns prediction logs into datasets
      broker/       RabbitMQ, where a model takes asynchronous requests (see broker.py)
      front-door/   the server of the models that sleep, where one does (see sleep.py)

These live apart from models/ in the tree, so no model name is taken by the layout.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from modelops import capacity, quantity
from modelops.generate import broker, contract, models, sleep
from modelops.generate.argocd import KEEP, monitoring_namespace
from modelops.generate.objects import (
    GATEWAY_API,
    GRPC_PORT,
    PART_OF,
    SERVER_PORT,
    add_auth,
    backend,
    image,
    kustomization,
    namespace_selector,
    network_policy,
    prefix,
    route,
    up,
)
from modelops.names import CATALOG, LOG_COMPACTOR, SHARED_VOLUME
from modelops.repo import Repo

Files = dict[str, Any]

SOURCE = "platform/settings.yaml and platform/capacity.yaml"
"""What the platform overlays are generated from (the catalog and compactor also read
every spec: their header says so)."""


def root(env: str) -> str:
    return f"overlays/{env}/platform"


def any_sleeps(repo: Repo, env: str) -> bool:
    return any(sleep.sleeps(f.envs[env]) for f in repo.models.values())


def _server_pods() -> dict[str, str]:
    return dict(PART_OF)


def namespace(repo: Repo, env: str) -> Files:
    """The environment namespace's guardrails: a quota from the capacity budget, defaults
    for containers, the shared volume, and default-deny networking with only the paths
    the platform needs opened. (The Namespace itself is made before this, by argocd.py.)"""
    assert repo.settings is not None and repo.budget is not None
    settings = repo.settings.environments[env]
    budget = repo.budget.environments[env]
    # The budget (what validate holds the peak to), plus room for rollouts: at peak, a
    # rollout's surge pod would otherwise be refused and the rollout stall.
    rollout_cpu, rollout_memory, rollout_gpu = capacity.surge(
        [*repo.models.values(), *repo.pools.values()], env, settings)
    cpu = quantity.parse(budget.cpu) + rollout_cpu
    memory = quantity.parse(budget.memory) + rollout_memory
    claims = 2 + (settings.broker.replicas if broker.uses_broker(repo, env) else 0)  # its nodes'
    hard = {"requests.cpu": quantity.cpu(cpu), "requests.memory": quantity.memory(memory),
            "persistentvolumeclaims": str(claims)}
    if budget.gpu or rollout_gpu:
        hard["requests.nvidia.com/gpu"] = str(budget.gpu + rollout_gpu)
    servers = _server_pods()
    catalog_pods = {"app.kubernetes.io/component": CATALOG}
    to_servers = [{"protocol": "TCP", "port": SERVER_PORT}]
    traffic = [*to_servers, {"protocol": "TCP", "port": GRPC_PORT}]  # the gateway's: HTTP, gRPC
    proxies = settings.gatewayProxies
    gateway_source = namespace_selector(proxies.namespace or settings.gatewayNamespace)
    if proxies.podLabels:
        gateway_source["podSelector"] = {"matchLabels": dict(sorted(proxies.podLabels.items()))}
    objects = [
        {"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "capacity-budget"},
         "spec": {"hard": hard}},
        {"apiVersion": "v1", "kind": "LimitRange", "metadata": {"name": "container-defaults"},
         "spec": {"limits": [{"type": "Container",
                              "defaultRequest": {"cpu": "100m", "memory": "128Mi"},
                              "default": {"cpu": "500m", "memory": "512Mi"}}]}},
        {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
         "metadata": {"name": SHARED_VOLUME, "annotations": dict(KEEP)},  # artifacts, datasets
         "spec": {"accessModes": ["ReadWriteMany"], "storageClassName": settings.storageClass,
                  "resources": {"requests": {"storage": settings.storageSize}}}},
        network_policy("default-deny", {}, ["Ingress", "Egress"]),
        network_policy("allow-dns", {}, ["Egress"], egress=[{
            "to": [namespace_selector("kube-system")],
            "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]}]),
        network_policy("allow-gateway-to-servers", servers, ["Ingress"],
                       ingress=[{"from": [gateway_source], "ports": traffic}]),
        network_policy("allow-prometheus-to-servers", servers, ["Ingress"], ingress=[{
            "from": [namespace_selector(settings.monitoringNamespace)], "ports": to_servers}]),
        network_policy("allow-catalog-to-servers", catalog_pods, ["Egress"], egress=[{
            "to": [{"podSelector": {"matchLabels": servers}}], "ports": to_servers}]),
        network_policy("allow-servers-from-catalog", servers, ["Ingress"], ingress=[{
            "from": [{"podSelector": {"matchLabels": catalog_pods}}], "ports": to_servers}]),
    ]
    prometheus = repo.settings.unusedModels.prometheusUrl
    if prometheus:  # the catalog asks it which models are unused
        port = urlsplit(prometheus).port or (443 if prometheus.startswith("https") else 80)
        objects.append(network_policy("allow-catalog-to-prometheus", catalog_pods, ["Egress"],
                                      egress=[{"to": [namespace_selector(
                                          settings.monitoringNamespace)],
                                               "ports": [{"protocol": "TCP", "port": port}]}]))
    top = f"{root(env)}/namespace"
    return {f"{top}/resources.yaml": objects,
            f"{top}/kustomization.yaml": kustomization(settings.namespace, ["resources.yaml"])}


def gateway(repo: Repo, env: str) -> Files:
    """The environment's Gateway, when settings name its class: an HTTP listener (and HTTPS
    when the public URL is https, with its certificate from the Secret <gateway>-tls, made
    outside git; HTTP then only redirects to it) that accepts routes only from the
    environment's namespace, and, when the
    public URL names a host, a `grpc` listener for `*.<host>`: one host name per model."""
    assert repo.settings is not None
    settings = repo.settings.environments[env]
    if not settings.gatewayClass:
        return {}
    host = settings.host

    def allowed(kind: str) -> dict:
        return {"namespaces": {"from": "Selector", "selector": {"matchLabels": {
            "kubernetes.io/metadata.name": settings.namespace}}},
            "kinds": [{"group": "gateway.networking.k8s.io", "kind": kind}]}

    secure = bool(settings.publicUrl and settings.publicUrl.startswith("https://"))
    tls = {"tls": {"mode": "Terminate", "certificateRefs": [
        {"kind": "Secret", "name": f"{settings.gateway}-tls"}]}}
    # Behind HTTPS, plain HTTP serves nothing but a redirect (a route of the Gateway's own
    # namespace): requests, bearer tokens included, never cross the network in clear.
    listeners = [{"name": "http", "protocol": "HTTP", "port": 80, "allowedRoutes": {
        "namespaces": {"from": "Same"},
        "kinds": [{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute"}]}
        if secure else allowed("HTTPRoute")}]
    objects: list[dict] = []
    if secure:
        objects.append({"apiVersion": GATEWAY_API, "kind": "HTTPRoute",
                        "metadata": {"name": f"{settings.gateway}-https-redirect"},
                        "spec": {"parentRefs": [{"name": settings.gateway,
                                                 "sectionName": "http"}],
                                 **({"hostnames": [host]} if host else {}),
                                 "rules": [{"filters": [{"type": "RequestRedirect",
                                                         "requestRedirect": {
                                                             "scheme": "https",
                                                             "statusCode": 301}}]}]}})
    if secure:
        listeners.append({"name": "https", "protocol": "HTTPS", "port": 443,
                          "allowedRoutes": allowed("HTTPRoute"), **tls})
    if host:
        for listener in listeners:
            listener["hostname"] = host
        listeners.append({"name": "grpc", "protocol": "HTTPS" if secure else "HTTP",
                          "port": 443 if secure else 80, "hostname": f"*.{host}",
                          "allowedRoutes": allowed("GRPCRoute"), **(tls if secure else {})})
    top = f"{root(env)}/gateway"
    return {
        f"{top}/resources.yaml": [{"apiVersion": GATEWAY_API, "kind": "Gateway",
                                   "metadata": {"name": settings.gateway},
                                   "spec": {"gatewayClassName": settings.gatewayClass,
                                            "listeners": listeners}}, *objects],
        f"{top}/kustomization.yaml": kustomization(settings.gatewayNamespace, ["resources.yaml"])}


def _service(repo: Repo, env: str, name: str, config_file: str, config: dict,
             resources: tuple[str, ...] = (), patches: Files | None = None) -> Files:
    """A platform service over base/<name>: the pinned server image, its generated
    config file as a ConfigMap, and any patches (file name -> patch)."""
    assert repo.settings is not None
    top = f"{root(env)}/{name}"
    extra = {"patches": [{"path": file} for file in patches]} if patches else {}
    return {f"{top}/{config_file}": config,
            **{f"{top}/{file}": patch for file, patch in (patches or {}).items()},
            f"{top}/kustomization.yaml": kustomization(
                repo.settings.environments[env].namespace, [up(4) + f"base/{name}", *resources],
                images=[image(repo.settings.serverImage)],
                configMapGenerator=[{"name": name, "files": [config_file]}], **extra)}


def catalog(repo: Repo, env: str) -> Files:
    assert repo.settings is not None
    settings = repo.settings.environments[env]
    container: dict = {"name": CATALOG}
    pod: dict = {"containers": [container]}
    add_auth(pod, container, settings.authSecret)  # it asks the servers if they are ready
    patches = {"deployment.yaml": {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": CATALOG},
        "spec": {"template": {"spec": pod}}}} if settings.authSecret else None
    return _service(repo, env, CATALOG, "catalog.yaml",
                    contract.catalog_config(repo, env).model_dump(mode="json"), ("route.yaml",),
                    patches) | {
        f"{root(env)}/{CATALOG}/route.yaml": route(
            CATALOG, settings.gateway, settings.gatewayNamespace,
            [{"matches": [prefix("/catalog")], "backendRefs": [backend(CATALOG)]}])}


def log_compactor(repo: Repo, env: str) -> Files:
    """The CronJob over base/log-compactor, its Jobs Indexed with the settings' workers."""
    assert repo.settings is not None
    workers = repo.settings.environments[env].logCompactor.workers
    container = {"name": "compactor",
                 "env": [{"name": "MODELOPS_COMPACTOR_WORKERS", "value": str(workers)}]}
    patch = {"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": LOG_COMPACTOR},
             "spec": {"jobTemplate": {"spec": {
                 "completionMode": "Indexed", "completions": workers, "parallelism": workers,
                 "template": {"spec": {"containers": [container]}}}}}}
    return _service(repo, env, LOG_COMPACTOR, "compactor.yaml", contract.compactor_config(
        repo, env).model_dump(mode="json", exclude_none=True), patches={"workers.yaml": patch})


def message_broker(repo: Repo, env: str) -> Files:
    return broker.platform(repo, env, f"{root(env)}/broker", any_sleeps(repo, env)) \
        if broker.uses_broker(repo, env) else {}


FRONT_DOOR_DIR = "front-door"


def front_door(repo: Repo, env: str) -> Files:
    return models.front_door(repo, env, f"{root(env)}/{FRONT_DOOR_DIR}")


def environment(repo: Repo, env: str) -> Files:
    """The kustomization that gathers an environment's platform overlays."""
    assert repo.settings is not None
    parts = ["namespace", *(["gateway"] if repo.settings.environments[env].gatewayClass else []),
             CATALOG, LOG_COMPACTOR, *(["broker"] if broker.uses_broker(repo, env) else []),
             *([FRONT_DOOR_DIR] if any_sleeps(repo, env) else [])]
    return {f"{root(env)}/kustomization.yaml": kustomization(
        None, parts, labels=dict(PART_OF))}


def monitoring(repo: Repo) -> Files:
    """overlays/monitoring/: platform/monitoring labelled the way the Prometheus Operator
    in this cluster discovers ServiceMonitors and rules (settings: monitoringLabels), and
    scraping the namespaces the environments run in."""
    assert repo.settings is not None
    namespaces = [env.namespace for env in repo.settings.environments.values()]
    return {
        "overlays/monitoring/kustomization.yaml": {
            **kustomization(monitoring_namespace(repo), [up(2) + "platform/monitoring"],
                            patches=[{"path": "servicemonitor.yaml"}]),
            "labels": [{"pairs": dict(sorted(repo.settings.monitoringLabels.items())),
                        "includeSelectors": False}]},
        "overlays/monitoring/servicemonitor.yaml": {
            "apiVersion": "monitoring.coreos.com/v1", "kind": "ServiceMonitor",
            "metadata": {"name": "modelops-servers"},
            "spec": {"namespaceSelector": {"matchNames": namespaces}}}}
