"""Argo CD: what the root Application syncs, and the parameters of each model's Application.

  overlays/argocd/root.yaml         the root Application, applied once by hand (project
                                    `default`, which exists before anything is synced)
  overlays/argocd/                  what the root syncs, in sync waves that Argo CD honours
                                    within one Application:
      namespaces.yaml   wave -3     every environment's namespace (restricted Pod Security)
                                    and each Gateway namespace
      projects.yaml     wave -3     the AppProjects `platform` and `models`
      platform.yaml     wave -2     one Application per environment: overlays/<env>/platform
      models.yaml       wave -1     the ApplicationSet: one Application per model or pool and
                                    environment, from overlays/<env>/models/*/app.json

Applications made by an ApplicationSet are not ordered by waves, so nothing that must
come first is left to one: the root waits for each wave to be healthy before the next,
and an Application counts as healthy to it once its last sync succeeded (the health
check in platform/argocd/install/argocd-cm.yaml), so a PersistentVolumeClaim that binds
only with its first pod, or a load balancer still being provisioned, cannot hold the
models back.
"""

from __future__ import annotations

from typing import Any

from modelops.generate.objects import PART_OF, kustomization
from modelops.repo import Repo

Files = dict[str, Any]

ROOT = "overlays/argocd"
ARGOCD_NAMESPACE = "argocd"
APPLICATION_API = "argoproj.io/v1alpha1"
CLUSTER = "https://kubernetes.default.svc"
FINALIZER = "resources-finalizer.argocd.argoproj.io"  # deleting an Application deletes its objects
SOURCE = "platform/settings.yaml"
MODEL_KINDS = [("apps", "Deployment"), ("", "Service"), ("", "ServiceAccount"), ("", "ConfigMap"),
               ("autoscaling", "HorizontalPodAutoscaler"), ("policy", "PodDisruptionBudget"),
               ("gateway.networking.k8s.io", "HTTPRoute"),
               ("gateway.networking.k8s.io", "GRPCRoute"),
               ("batch", "CronJob"), *(("rabbitmq.com", kind) for kind in (
                   "Queue", "Policy", "User", "Permission")),
               ("keda.sh", "ScaledObject"), ("keda.sh", "TriggerAuthentication")]
"""All a model's Application may create: its project allows nothing else."""
RETRY = {"limit": 5, "backoff": {"duration": "10s", "factor": 2, "maxDuration": "3m"}}
KEEP = {"argocd.argoproj.io/sync-options": "Delete=false,Prune=false"}
"""What the root must never delete: removed from git (an environment dropped from the
settings) or with the root deleted, it stays; deleting it is a deliberate act."""
"""On objects whose loss loses data or everything in them: never deleted by a sync."""


def _wave(wave: int) -> dict[str, str]:
    return {"argocd.argoproj.io/sync-wave": str(wave)}


def app_params(repo: Repo, env: str, name: str, team: str, versions: str,
               models: list[str]) -> dict:
    """What the ApplicationSet needs to make one model's or pool's Application: labels and
    links to the model's API docs and dashboard."""
    assert repo.settings is not None
    settings = repo.settings.environments[env]
    model = models[0] if len(models) == 1 else None
    return {"name": name, "environment": env, "team": team, "versions": versions,
            "models": ", ".join(models), "namespace": settings.namespace,
            "docs": settings.docs_url(model) if model else settings.catalog_url() or "",
            "dashboard": settings.dashboard_url(model) or ""}


def _sync_policy(prune: bool = True) -> dict:
    return {"automated": {"prune": prune, "selfHeal": True},
            "syncOptions": ["RespectIgnoreDifferences=true", "PruneLast=true"], "retry": RETRY}


def _namespaces(repo: Repo) -> list[dict]:
    assert repo.settings is not None
    restricted = {f"pod-security.kubernetes.io/{mode}": "restricted"
                  for mode in ("enforce", "audit", "warn")}
    out = {}
    for env, settings in repo.settings.environments.items():
        out[settings.namespace] = {"modelops/environment": env, **restricted}
    for settings in repo.settings.environments.values():
        if settings.gatewayClass:  # a Gateway we generate needs its namespace
            out.setdefault(settings.gatewayNamespace, {})
    return [{"apiVersion": "v1", "kind": "Namespace",
             "metadata": {"name": name, "annotations": {**_wave(-3), **KEEP},
                          "labels": {**PART_OF, **labels}}}
            for name, labels in sorted(out.items())]


def _projects(repo: Repo) -> list[dict]:
    assert repo.settings is not None
    environments = repo.settings.environments.values()
    model_namespaces = sorted({s.namespace for s in environments})
    gateway_namespaces = sorted({s.gatewayNamespace for s in environments if s.gatewayClass})

    def project(name: str, description: str, namespaces: list[str], kinds: list) -> dict:
        return {"apiVersion": APPLICATION_API, "kind": "AppProject",
                "metadata": {"name": name, "namespace": ARGOCD_NAMESPACE,
                             "annotations": {**_wave(-3), **KEEP}},
                "spec": {"description": description, "sourceRepos": [repo.settings.repoURL],
                         "destinations": [{"server": CLUSTER, "namespace": n} for n in namespaces],
                         "clusterResourceWhitelist": [],
                         "namespaceResourceWhitelist": kinds,
                         "orphanedResources": {"warn": True}}}

    return [project("models", "Model and pool overlays generated by modelops.", model_namespaces,
                    [{"group": g, "kind": k} for g, k in MODEL_KINDS]),
            project("platform", "Quotas, network policies, storage, Gateways, the catalog and "
                    "the log compactor of each environment, and the monitoring.",
                    sorted({*model_namespaces, *gateway_namespaces, monitoring_namespace(repo)}),
                    [{"group": "*", "kind": "*"}])]


def _source(repo: Repo, path: str) -> dict:
    assert repo.settings is not None
    return {"repoURL": repo.settings.repoURL, "targetRevision": repo.settings.revision,
            "path": path}


def _platform_apps(repo: Repo) -> list[dict]:
    assert repo.settings is not None
    out = []
    for env, settings in repo.settings.environments.items():
        links = {"link.argocd.argoproj.io/catalog": settings.catalog_url(),
                 "link.argocd.argoproj.io/dashboard": settings.dashboard_url(None)}
        out.append({
            "apiVersion": APPLICATION_API, "kind": "Application",
            "metadata": {"name": f"platform-{env}", "namespace": ARGOCD_NAMESPACE,
                         "finalizers": [FINALIZER],
                         "labels": {**PART_OF, "modelops/environment": env},
                         "annotations": {**_wave(-2), **KEEP,
                                         **{k: v for k, v in links.items() if v},
                                         "argocd.argoproj.io/manifest-generate-paths": ".;/base"}},
            "spec": {"project": "platform", "source": _source(repo, f"overlays/{env}/platform"),
                     "destination": {"server": CLUSTER, "namespace": settings.namespace},
                     "syncPolicy": _sync_policy()}})
    # The ServiceMonitor, alerts and dashboard, synced like the rest (they were applied by
    # hand): into the Prometheus Operator's namespace, a prerequisite.
    out.append({
        "apiVersion": APPLICATION_API, "kind": "Application",
        "metadata": {"name": "monitoring", "namespace": ARGOCD_NAMESPACE,
                     "finalizers": [FINALIZER], "labels": dict(PART_OF),
                     "annotations": {**_wave(-2), **KEEP,
                                     "argocd.argoproj.io/manifest-generate-paths": "."}},
        "spec": {"project": "platform", "source": _source(repo, "overlays/monitoring"),
                 "destination": {"server": CLUSTER, "namespace": monitoring_namespace(repo)},
                 "syncPolicy": _sync_policy()}})
    return out


def monitoring_namespace(repo: Repo) -> str:
    assert repo.settings is not None
    return repo.settings.environments[repo.settings.local_environment].monitoringNamespace


def _models_appset(repo: Repo) -> dict:
    assert repo.settings is not None
    subscribe = {f"notifications.argoproj.io/subscribe.{trigger}.github": ""
                 for trigger in ("on-sync-failed", "on-health-degraded", "on-deployed")}
    return {
        "apiVersion": APPLICATION_API, "kind": "ApplicationSet",
        "metadata": {"name": "models", "namespace": ARGOCD_NAMESPACE,
                     "annotations": {**_wave(-1), **KEEP}},
        "spec": {
            "goTemplate": True, "goTemplateOptions": ["missingkey=error"],
            "generators": [{"git": {"repoURL": repo.settings.repoURL,
                                    "revision": repo.settings.revision,
                                    "files": [{"path": "overlays/*/models/*/app.json"}]}}],
            # A brake on deletion: the controller creates and updates Applications but never
            # deletes one, however few files the generator matches (a removed spec or
            # environment, a changed revision); a model goes by `argocd app delete`, whose
            # finalizer then removes its objects. Deleting the ApplicationSet itself keeps
            # every model's objects running.
            "syncPolicy": {"applicationsSync": "create-update",
                           "preserveResourcesOnDeletion": True},
            "template": {
                "metadata": {
                    "name": "{{.environment}}-{{.name}}", "finalizers": [FINALIZER],
                    # Label values are 63 characters at most: a pool's members, however
                    # many, are an annotation; its label is the pool's name.
                    "labels": {**PART_OF, "modelops/environment": "{{.environment}}",
                               "modelops/model": "{{.name}}", "modelops/team": "{{.team}}",
                               "modelops/version": "{{.versions}}"},
                    "annotations": {"modelops/models": "{{.models}}",
                                    "argocd.argoproj.io/manifest-generate-paths": ".;/base",
                                    "link.argocd.argoproj.io/docs": "{{.docs}}",
                                    "link.argocd.argoproj.io/dashboard": "{{.dashboard}}",
                                    **subscribe}},
                "spec": {"project": "models", "source": _source(repo, "{{.path.path}}"),
                         "destination": {"server": CLUSTER, "namespace": "{{.namespace}}"},
                         # The HPA owns replicas.
                         "ignoreDifferences": [{"group": "apps", "kind": "Deployment",
                                                "jsonPointers": ["/spec/replicas"]}],
                         "syncPolicy": _sync_policy()}}}}


def root_application(repo: Repo) -> dict:
    return {"apiVersion": APPLICATION_API, "kind": "Application",
            "metadata": {"name": "modelops-root", "namespace": ARGOCD_NAMESPACE,
                         "labels": dict(PART_OF)},
            "spec": {"project": "default", "source": _source(repo, ROOT),
                     "destination": {"server": CLUSTER, "namespace": ARGOCD_NAMESPACE},
                     # Never prune: removing a file here must not delete a whole environment.
                     "syncPolicy": {"automated": {"prune": False, "selfHeal": True},
                                    "retry": RETRY}}}


def cluster(repo: Repo) -> Files:
    """Every file of overlays/argocd/."""
    return {f"{ROOT}/root.yaml": root_application(repo),
            f"{ROOT}/namespaces.yaml": _namespaces(repo),
            f"{ROOT}/projects.yaml": _projects(repo),
            f"{ROOT}/platform.yaml": _platform_apps(repo),
            f"{ROOT}/models.yaml": _models_appset(repo),
            # No `namespace:` here: kustomize would rename the Namespace objects to it.
            f"{ROOT}/kustomization.yaml": kustomization(
                None, ["namespaces.yaml", "projects.yaml", "platform.yaml", "models.yaml"])}


