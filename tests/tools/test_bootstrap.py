"""A first Argo CD bootstrap, walked step by step as the README's cluster guide gives it.

What exists after each step is tracked: the install (Argo CD's CRDs, its namespace and
its `default` project), the prerequisites named in platform/settings.yaml, then every
object the root Application syncs, wave by wave, and every Application it makes, in the
order Argo CD applies them. A step fails when it needs what is not there yet: an
Application's project or destination namespace, a namespace for an object, a CRD for a
kind, the claim a pod mounts. Each of the three first-round mistakes is reproduced on a
broken copy, and the Application health check runs under Lua 5.1 as Argo CD runs it.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import lupa.lua51 as lua51
import pytest
import yaml
from conftest import REPO, copy_repo, examples, run_modelops

from modelops import render
from modelops.repo import load

FINALIZER = "resources-finalizer.argocd.argoproj.io"

CORE_GROUPS = {"", "apps", "autoscaling", "policy", "batch", "networking.k8s.io",
               "rbac.authorization.k8s.io"}
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition"}
# Within one wave Argo CD applies namespaces first and custom resources last (its kind order).
KIND_ORDER = ["Namespace", "ResourceQuota", "LimitRange", "NetworkPolicy", "ServiceAccount",
              "PersistentVolumeClaim", "ConfigMap", "Service", "Deployment", "CronJob",
              "HorizontalPodAutoscaler", "PodDisruptionBudget"]


METRICS = "metrics.k8s.io/v1beta1"  # metrics-server: served by an APIService, not a CRD


class BootstrapError(AssertionError):
    pass


class Cluster:
    """What exists, as Argo CD would find it."""

    def __init__(self, root: Path):
        self.root = root
        self.api = {"argoproj.io/v1alpha1"}  # step 2: the Argo CD install's CRDs
        self.namespaces = {"argocd", "default", "kube-system"}
        self.projects = {"default"}  # Argo CD makes it at start
        self.objects: set[tuple[str, str, str]] = set()  # (kind, namespace, name)
        self.log: list[str] = []
        self.apps: dict[str, dict] = {}  # Application name -> {"app", "objects", "owner"}
        self.files_root = root  # what the ApplicationSet's git generator reads
        # What the cluster does to a child Application's resources, as Argo CD reports it
        # (its built-in checks): (kind, namespace, name) -> (health, message), and the
        # children whose sync ends otherwise than Synced after success.
        self.resource_health: dict[tuple[str, str, str], tuple[str, str]] = {}
        self.after_sync: dict[str, dict] = {}
        self.operated: list[tuple[dict, str]] = []  # applied in this wave, for an operator

    def _order(self, obj: dict) -> tuple:
        wave = int((obj["metadata"].get("annotations") or {}).get(
            "argocd.argoproj.io/sync-wave", "0"))
        kind = obj["kind"]
        return wave, KIND_ORDER.index(kind) if kind in KIND_ORDER else len(KIND_ORDER), kind

    def apply(self, obj: dict, app: str, default_namespace: str) -> None:
        kind, api = obj["kind"], obj["apiVersion"]
        group = api.rpartition("/")[0]
        if group not in CORE_GROUPS and api not in self.api:
            raise BootstrapError(f"{app}: {kind} {obj['metadata']['name']}: no CRD serves {api}")
        namespace = None if kind in CLUSTER_SCOPED else \
            obj["metadata"].get("namespace", default_namespace)
        if namespace is not None and namespace not in self.namespaces:
            raise BootstrapError(f"{app}: {kind} {obj['metadata']['name']}: namespace "
                                 f"{namespace} does not exist")
        pod = (obj.get("spec") or {}).get("template", {}).get("spec", {})
        for volume in pod.get("volumes", []):
            claim = (volume.get("persistentVolumeClaim") or {}).get("claimName")
            if claim and ("PersistentVolumeClaim", namespace, claim) not in self.objects:
                raise BootstrapError(f"{app}: {kind} {obj['metadata']['name']} mounts the "
                                     f"claim {claim}, which does not exist yet")
        secrets = [(volume.get("secret") or {}).get("secretName")
                   for volume in pod.get("volumes", [])]
        secrets += [((var.get("valueFrom") or {}).get("secretKeyRef") or {}).get("name")
                    for container in pod.get("containers", []) for var in container.get("env", [])]
        for secret in filter(None, secrets):
            if ("Secret", namespace, secret) not in self.objects:
                raise BootstrapError(f"{app}: {kind} {obj['metadata']['name']} reads the "
                                     f"Secret {secret}, which does not exist")
        if kind == "HorizontalPodAutoscaler" and METRICS not in self.api:
            raise BootstrapError(f"{app}: HorizontalPodAutoscaler {obj['metadata']['name']} "
                                 f"reads FailedGetResourceMetric: nothing serves {METRICS}, "
                                 "and Argo CD calls the model Degraded")
        name = obj["metadata"]["name"]
        if (group == "rabbitmq.com" and kind != "RabbitmqCluster") or group == "keda.sh":
            self.operated.append((obj, namespace or ""))  # its operator acts after the apply
        self.objects.add((kind, namespace or "", name))
        if app in self.apps:
            self.apps[app]["objects"][(kind, namespace or "", name)] = obj
        self.log.append(f"{app}: {kind} {namespace or '-'}/{name}")
        if kind == "Namespace":
            self.namespaces.add(name)
        elif kind == "AppProject":
            self.projects.add(name)
        elif kind == "Application":
            self.sync(obj)
        elif kind == "ApplicationSet":
            for application in self.generate(obj):
                if application["metadata"]["name"] not in self.apps:
                    self.sync(application, owner=name)

    def _operators(self) -> None:
        """The operators act on what the wave applied, once it is all applied (RabbitMQ's
        topology objects first: a ScaledObject's credentials come from a User)."""
        operated, self.operated = self.operated, []
        for obj, namespace in sorted(operated, key=lambda o: o[0]["kind"] == "ScaledObject"):
            if obj["apiVersion"].startswith("keda.sh/"):
                self._keda(obj, namespace)
            else:
                self._topology_operator(obj, namespace)

    def _keda(self, obj: dict, namespace: str) -> None:
        """KEDA: a ScaledObject is refused (Ready False, as its admission check and
        controller say it) when its Deployment is missing or an HPA already scales it,
        and cannot read its queue without its TriggerAuthentication and that one's
        Secret; otherwise Ready, and the model asleep at zero."""
        if obj["kind"] != "ScaledObject":
            return
        spec, name = obj["spec"], obj["metadata"]["name"]
        target = spec["scaleTargetRef"]["name"]
        hpas = [o["metadata"]["name"] for app in self.apps.values()
                for (kind, ns, _), o in app["objects"].items()
                if kind == "HorizontalPodAutoscaler" and ns == namespace
                and o["spec"]["scaleTargetRef"]["name"] == target]
        problem = None
        if ("Deployment", namespace, target) not in self.objects:
            problem = ("ScaledObjectCheckFailed", f"deployments.apps \"{target}\" not found")
        elif hpas:
            problem = ("ScaledObjectCheckFailed", f"the workload '{target}' of type "
                       f"'apps/v1.Deployment' is already managed by the hpa '{hpas[0]}'")
        for trigger in spec["triggers"]:
            auth = (trigger.get("authenticationRef") or {}).get("name")
            found = next((o for app in self.apps.values() for (kind, ns, n), o in
                          app["objects"].items() if kind == "TriggerAuthentication"
                          and ns == namespace and n == auth), None) if auth else None
            secrets = [ref["name"] for ref in (found or {}).get("spec", {}).get(
                "secretTargetRef", [])]
            if auth and found is None:
                problem = problem or ("TriggerError", f"triggerauthentication {auth} not found")
            for secret in secrets:
                if ("Secret", namespace, secret) not in self.objects:
                    problem = problem or ("TriggerError", f"error getting secret {secret}")
        conditions = [{"type": "Ready", "status": "True", "reason": "ScaledObjectReady",
                       "message": "ScaledObject is defined correctly and is ready for scaling"},
                      {"type": "Active", "status": "False", "reason": "ScalerNotActive"},
                      {"type": "Fallback", "status": "False", "reason": "NoFallbackFound"},
                      {"type": "Paused", "status": "False"},
                      {"type": "HPAActive", "status": "True", "reason": "ScalingDisabled"}]
        if problem:
            conditions = [{"type": "Ready", "status": "False", "reason": problem[0],
                           "message": problem[1]}, {"type": "Paused", "status": "False"}]
        self.resource_health[("ScaledObject", namespace, name)] = lua_health(
            self.root, "keda-scaledobject.lua", {**obj, "status": {"conditions": conditions}})

    def _topology_operator(self, obj: dict, namespace: str) -> None:
        """RabbitMQ's Messaging Topology Operator: it applies an object to the broker its
        cluster reference names, once that RabbitmqCluster exists (until then it leaves
        the status empty and retries), and makes a User's credentials Secret."""
        cluster = obj["spec"]["rabbitmqClusterReference"]["name"]
        obj = {**obj, "metadata": {**obj["metadata"], "generation": 1}}
        if ("RabbitmqCluster", namespace, cluster) in self.objects:
            obj["status"] = {"observedGeneration": 1, "conditions": [{
                "type": "Ready", "status": "True", "reason": "SuccessfulCreateOrUpdate",
                "lastTransitionTime": "2026-12-06T10:00:00Z"}]}
            if obj["kind"] == "User":
                secret = obj["metadata"]["name"] + "-user-credentials"
                obj["status"] |= {"credentials": {"name": secret}, "username": "generated"}
                self.objects.add(("Secret", namespace, secret))
        self.resource_health[(obj["kind"], namespace, obj["metadata"]["name"])] = \
            lua_health(self.root, "rabbitmq-topology.lua", obj)

    def _wave_done(self, app: str, objects: list[dict], default_namespace: str) -> None:
        """Argo CD starts an Application's next sync wave only when this one is healthy."""
        self._operators()
        for obj in objects:
            key = (obj["kind"], obj["metadata"].get("namespace", default_namespace),
                   obj["metadata"]["name"])
            health, message = self.resource_health.get(key, ("Healthy", ""))
            if health != "Healthy" and "argocd.argoproj.io/sync-wave" in (
                    obj["metadata"].get("annotations") or {}):
                raise BootstrapError(f"{app}: the sync waits for ever at {key[0]} {key[2]}, "
                                     f"{health}: {message}")

    def sync(self, application: dict, owner: str | None = None) -> None:
        """An Application: refused without its project; synced wave by wave."""
        name, spec = application["metadata"]["name"], application["spec"]
        self.apps.setdefault(name, {"app": application, "objects": {}, "owner": owner})
        if spec["project"] not in self.projects:
            raise BootstrapError(f"Application {name}: project {spec['project']} does not exist")
        destination = spec["destination"]["namespace"]
        create = "CreateNamespace=true" in (spec.get("syncPolicy") or {}).get("syncOptions", [])
        if destination not in self.namespaces and not create:
            raise BootstrapError(f"Application {name}: destination namespace {destination} "
                                 "does not exist")
        text, error = render.kustomize(self.root / spec["source"]["path"])
        assert error is None, error
        objects = sorted((o for o in yaml.safe_load_all(text) if o), key=self._order)
        for wave in sorted({self._order(o)[0] for o in objects}):
            in_wave = [o for o in objects if self._order(o)[0] == wave]
            for obj in in_wave:
                self.apply(obj, name, destination)
            self._wave_done(name, in_wave, destination)
        if owner is None and name != "modelops-root":  # a child of the root: its waves wait
            self.wait_healthy(name)

    def wait_healthy(self, name: str) -> None:
        """The root goes on to its next wave only when the project's Application health
        check, under Lua 5.1, calls this child Healthy, on the status Argo CD gives it after
        the sync: its resources' worst health, its sync status, its operation."""
        order = ["Healthy", "Suspended", "Progressing", "Missing", "Degraded"]
        found = [h for key, h in self.resource_health.items()
                 if key in self.apps[name]["objects"]]
        worst = max(found, key=lambda h: order.index(h[0]), default=("Healthy", ""))
        status = {"sync": {"status": "Synced"}, "operationState": {"phase": "Succeeded"},
                  "health": {"status": worst[0], "message": worst[1]},
                  **self.after_sync.get(name, {})}
        health, message = application_health(self.root, status)
        if health != "Healthy":
            raise BootstrapError(f"the root stops at {name}, {health}: {message}; auto-sync "
                                 "does not retry the same commit")

    def generate(self, appset: dict) -> list[dict]:
        """The git files generator: one Application per matching app.json."""
        pattern = appset["spec"]["generators"][0]["git"]["files"][0]["path"]
        out = []
        for params_file in sorted(self.files_root.glob(pattern)):
            params = json.loads(params_file.read_text())
            params["path.path"] = params_file.parent.relative_to(self.root).as_posix()
            text = json.dumps(appset["spec"]["template"])
            text = re.sub(r"{{\.([\w.]+)}}", lambda m, p=params: p[m.group(1)], text)
            out.append(json.loads(text))
        return out


    # -- day 2: what a change to the repository deletes ------------------------------------

    def delete_application(self, name: str, cascade: bool | None = None) -> None:
        """A parent's prune or owner (cascading when the Application has the resources
        finalizer), or `argocd app delete` (cascading by default): the objects go too,
        except those that say Delete=false."""
        entry = self.apps.pop(name)
        self.objects.discard(("Application", "argocd", name))
        if cascade is None:
            cascade = FINALIZER in entry["app"]["metadata"].get("finalizers", [])
        if not cascade:
            return
        for key, obj in entry["objects"].items():
            if "Delete=false" in _options(obj):
                continue
            self.objects.discard(key)
            if key[0] == "Application" and key[2] in self.apps:
                self.delete_application(key[2])
            if key[0] == "ApplicationSet":
                self.delete_appset(obj)

    def delete_appset(self, appset: dict) -> None:
        """Its Applications go with it (owner references); preserveResourcesOnDeletion
        takes their finalizer off first, so their objects stay."""
        keep = appset["spec"].get("syncPolicy", {}).get("preserveResourcesOnDeletion", False)
        for name in [n for n, e in self.apps.items() if e["owner"] == appset["metadata"]["name"]]:
            if keep:
                self.apps[name]["app"]["metadata"]["finalizers"] = []
            self.delete_application(name)

    def changed(self, root: Path, files_root: Path | None = None) -> None:
        """The repository moved on: the root syncs it (pruning what it no longer holds,
        unless Prune=false), then the ApplicationSet reconciles by its policy (its own
        when argocd-cmd-params-cm allows policy overrides, else the controller's sync)."""
        self.root, self.files_root = root, files_root or root
        text, error = render.kustomize(root / "overlays/argocd")
        assert error is None, error
        wanted = [o for o in yaml.safe_load_all(text) if o]
        keys = {(o["kind"], o["metadata"].get("namespace", "argocd") if o["kind"]
                 not in CLUSTER_SCOPED else "", o["metadata"]["name"]) for o in wanted}
        root_app = self.apps["modelops-root"]["app"]
        prune = root_app["spec"]["syncPolicy"].get("automated", {}).get("prune", False)
        held = self.apps["modelops-root"]["objects"]
        for key, obj in list(held.items()):
            if prune and key not in keys and "Prune=false" not in _options(obj):
                held.pop(key)
                self.objects.discard(key)
                if key[0] == "Application" and key[2] in self.apps:
                    self.delete_application(key[2])
                if key[0] == "ApplicationSet":
                    self.delete_appset(obj)
        params = yaml.safe_load((root / "platform/argocd/install/argocd-cmd-params-cm.yaml")
                                .read_text())["data"]
        override = params.get("applicationsetcontroller.enable.policy.override") == "true"
        for appset in (o for o in wanted if o["kind"] == "ApplicationSet"):
            policy = appset["spec"].get("syncPolicy", {}).get("applicationsSync", "sync") \
                if override else "sync"
            made = {a["metadata"]["name"] for a in self.generate(appset)}
            for name in [n for n, e in self.apps.items()
                         if e["owner"] == appset["metadata"]["name"] and n not in made]:
                if policy in ("sync", "create-delete"):
                    self.delete_application(name)

    def serving(self) -> set[str]:
        return {name for kind, _, name in self.objects if kind == "Deployment"}


def _options(obj: dict) -> str:
    return (obj["metadata"].get("annotations") or {}).get("argocd.argoproj.io/sync-options", "")


def bootstrap(root: Path, without_token_secrets: bool = False,
              trouble: Callable[[Cluster], None] | None = None) -> Cluster:
    """The README's cluster guide, step by step (`trouble` sets what goes wrong)."""
    cluster = Cluster(root)
    if trouble:
        trouble(cluster)
    settings = load(root).settings
    cluster.api |= set(settings.prerequisites)  # step 1: prerequisites installed, the
    cluster.namespaces |= {e.monitoringNamespace for e in settings.environments.values()}
    # Prometheus Operator in its namespace
    for env in settings.environments.values():  # step 1: the token Secrets, outside git
        if env.authSecret and not without_token_secrets:
            cluster.namespaces.add(env.namespace)
            cluster.objects.add(("Secret", env.namespace, env.authSecret))
    root_app = yaml.safe_load((root / "overlays/argocd/root.yaml").read_text())
    cluster.apply(root_app, "kubectl apply", "argocd")  # step 3
    return cluster


def test_a_first_bootstrap_brings_every_model_and_platform_piece_up():
    cluster = bootstrap(examples())
    made = cluster.objects
    repo = load(examples())
    for env, settings in repo.settings.environments.items():
        assert ("PersistentVolumeClaim", settings.namespace, "modelops-shared") in made
        assert ("Gateway", settings.gatewayNamespace, settings.gateway) in made
        for model in repo.models.values():
            if model.obj.spec.placement == "dedicated":
                for version in model.envs[env].versions:
                    assert ("Deployment", settings.namespace,
                            f"{model.name}-{version.name}-server") in made
        assert ("Deployment", settings.namespace, "tabular-server") in made
    # The monitoring comes with the bootstrap, not by hand.
    assert ("ServiceMonitor", "monitoring", "modelops-servers") in made
    assert ("PrometheusRule", "monitoring", "modelops-alerts") in made
    # The platform of every environment is in place before the first model server.
    model_apps = tuple(f"{env}-" for env in repo.settings.environments)
    first_model = next(i for i, line in enumerate(cluster.log) if line.startswith(model_apps))
    last_platform = max(i for i, line in enumerate(cluster.log) if line.startswith("platform-"))
    assert last_platform < first_model


@pytest.mark.parametrize("file, old, new, failure", [
    # 1. The root in a project that only the root itself creates: a deadlock.
    ("overlays/argocd/root.yaml", "project: default", "project: platform",
     "project platform does not exist"),
    # 2. A Gateway whose namespace nothing creates.
    ("overlays/argocd/namespaces.yaml", "name: modelops-gateway", "name: unused",
     "namespace modelops-gateway does not exist"),
    # 3. Models ordered before the platform they need (their volume, quota and policies).
    ("overlays/argocd/models.yaml", 'argocd.argoproj.io/sync-wave: "-1"',
     'argocd.argoproj.io/sync-wave: "-3"', "mounts the claim modelops-shared, which does not"),
    # A custom resource whose CRD is not a named prerequisite.
    ("platform/settings.yaml", "  - gateway.networking.k8s.io/v1\n", "",
     "no CRD serves gateway.networking.k8s.io/v1"),
    # Every HPA needs the resource metrics API (issue 24, finding 6).
    ("platform/settings.yaml", "  - metrics.k8s.io/v1beta1", "",
     "reads FailedGetResourceMetric: nothing serves metrics.k8s.io/v1beta1"),
    # Asynchronous inference: RabbitMQ's operators, the broker, then each server's user.
    ("platform/settings.yaml", "  - rabbitmq.com/v1beta1", "",
     "no CRD serves rabbitmq.com/v1beta1"),
    ("overlays/staging/platform/kustomization.yaml", "- broker\n", "",
     "modelops-front-server reads the Secret modelops-front-broker-user-credentials, which "
     "does not exist"),
    ("overlays/staging/models/iris/v1/broker.yaml", 'argocd.argoproj.io/sync-wave: "-1"',
     'argocd.argoproj.io/sync-wave: "0"',
     "reads the Secret iris-v1-broker-user-credentials, which does not exist"),
    # Models that sleep: KEDA, and never an HPA beside the ScaledObject, which comes after
    # its Deployment.
    ("platform/settings.yaml", "  - keda.sh/v1alpha1", "", "no CRD serves keda.sh/v1alpha1"),
    ("overlays/staging/models/digits/v1/kustomization.yaml", "$patch: delete", "$patch: merge",
     "waits for ever at ScaledObject digits-v1-server, Degraded: the workload "
     "'digits-v1-server' of type 'apps/v1.Deployment' is already managed by the hpa"),
    ("overlays/staging/models/digits/v1/scaler.yaml", 'argocd.argoproj.io/sync-wave: "1"',
     'argocd.argoproj.io/sync-wave: "-1"',
     'waits for ever at ScaledObject digits-v1-server, Degraded: deployments.apps '
     '"digits-v1-server" not found'),
], ids=["root-project-deadlock", "gateway-namespace-missing", "models-before-platform",
        "prerequisite-not-named", "metrics-server-not-named", "rabbitmq-operators-not-named",
        "no-broker-in-the-platform", "server-before-its-broker-user", "keda-not-named",
        "an-hpa-beside-the-scaledobject", "scaledobject-before-its-deployment"])
def test_a_broken_bootstrap_fails_where_argo_cd_would(tmp_path, file, old, new, failure):
    root = copy_repo(tmp_path)
    path = root / file
    assert old in path.read_text()
    path.write_text(path.read_text().replace(old, new))
    with pytest.raises(BootstrapError, match=failure):
        bootstrap(root)


def test_a_token_secret_not_made_first_stops_the_models():
    with pytest.raises(BootstrapError, match="reads the Secret model-servers-token, which "
                                             "does not exist"):
        bootstrap(examples(), without_token_secrets=True)


def test_the_readme_guide_follows_these_steps():
    guide = (REPO / "README.md").read_text().split("## Running it on a real cluster")[1]
    steps = [guide.index(s) for s in ("prerequisites", "authSecret", "platform/argocd/install",
                                      "overlays/argocd/root.yaml")]
    assert steps == sorted(steps)


# -- the Application health check, under Lua 5.1 ----------------------------------------
def application_health(root: Path, status: dict | None) -> tuple[str, str]:
    """The repository's Application health check (argocd-cm), run as Argo CD runs it."""
    check = yaml.safe_load((root / "platform/argocd/install/argocd-cm.yaml").read_text())[
        "data"]["resource.customizations.health.argoproj.io_Application"]
    runtime = lua51.LuaRuntime()
    obj = {"apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
           "metadata": {"name": "platform-staging"}}
    if status is not None:
        obj["status"] = status
    runtime.globals().obj = runtime.table_from(obj, recursive=True)
    result = runtime.execute(check)
    return result["status"], result["message"]


def lua_health(root: Path, check_file: str, obj: dict) -> tuple[str, str]:
    """One of the repository's own health checks (platform/argocd/install/health/), as
    Argo CD runs it: under Lua 5.1, with the object as `obj`."""
    check = (root / "platform/argocd/install/health" / check_file).read_text()
    runtime = lua51.LuaRuntime()
    runtime.globals().obj = runtime.table_from(obj, recursive=True)
    result = runtime.execute(check)
    return result["status"], result["message"]


def _health(status: dict | None) -> str:
    return application_health(REPO, status)[0]


@pytest.mark.parametrize("status, expected", [
    (None, "Progressing"),  # just created
    ({"sync": {"status": "OutOfSync"}, "operationState": {"phase": "Running"}}, "Progressing"),
    # Synced, its claim still Pending on a WaitForFirstConsumer class: the models may come.
    ({"sync": {"status": "Synced"}, "health": {"status": "Progressing"},
      "operationState": {"phase": "Succeeded"}}, "Healthy"),
    ({"sync": {"status": "Synced"}, "health": {"status": "Healthy"}}, "Healthy"),
    ({"sync": {"status": "OutOfSync"}, "operationState": {"phase": "Failed",
                                                          "message": "one or more objects failed"}},
     "Degraded"),
    # A resource's trouble is the child's own (its page shows it), never its parent's: a
    # Gateway waiting for its TLS Secret or one failed job run stopped the root's waves.
    ({"sync": {"status": "Synced"}, "health": {"status": "Degraded", "message": "no cert"},
      "operationState": {"phase": "Succeeded"}}, "Healthy"),
    # Drift after a successful sync (a mutating webhook) must not wedge the root.
    ({"sync": {"status": "OutOfSync"}, "operationState": {"phase": "Succeeded"}}, "Healthy"),
    # Retries exhausted: the sync failed, and that the parent must see.
    ({"sync": {"status": "OutOfSync"}, "health": {"status": "Missing"},
      "operationState": {"phase": "Error", "message": "retried 5 times"}}, "Degraded"),
])
def test_an_application_counts_as_healthy_to_its_parent_once_synced(status, expected):
    assert _health(status) == expected


READY = {"type": "Ready", "status": "True", "reason": "SuccessfulCreateOrUpdate",
         "lastTransitionTime": "2026-12-06T10:00:00Z"}
REFUSED = "Error: API responded with a 400 Bad Request error: PRECONDITION_FAILED - " \
    "inequivalent arg 'x-queue-type' for queue 'modelops.iris.v1' in vhost '/'"


def _not_ready(message: str) -> dict:
    return {"type": "Ready", "status": "False", "reason": "FailedCreateOrUpdate",
            "message": message, "lastTransitionTime": "2026-12-06T10:00:00Z"}


@pytest.mark.parametrize("kind, generation, status, expected", [
    ("Queue", 1, None, ("Progressing", "Waiting for the Messaging Topology Operator")),
    ("Queue", 1, {"observedGeneration": 1, "conditions": [READY]},
     ("Healthy", "Applied to RabbitMQ")),
    # maxAttempts changed: the Policy's new generation is not applied yet
    ("Policy", 2, {"observedGeneration": 1, "conditions": [READY]},
     ("Progressing", "The operator has not applied the latest change yet")),
    # the broker refused it: the operator's reason reaches the dashboard
    ("Queue", 1, {"conditions": [_not_ready(REFUSED)]}, ("Degraded", REFUSED)),
    # a change that failed: the generation applied before is older, the failure wins
    ("Policy", 3, {"observedGeneration": 2, "conditions": [_not_ready("failed to declare")]},
     ("Degraded", "failed to declare")),
    ("Permission", 1, {"conditions": [_not_ready(
        "RabbitmqCluster is scaled to zero replicas; waiting for it to scale up")]},
     ("Degraded", "RabbitmqCluster is scaled to zero replicas; waiting for it to scale up")),
    ("User", 1, {"observedGeneration": 1, "conditions": [READY]},
     ("Progressing", "Waiting for the user's credentials Secret")),
    ("User", 1, {"observedGeneration": 1, "conditions": [READY, {
        "type": "PasswordSynced", "status": "True", "reason": "SuccessfulPasswordSync"}],
        "credentials": {"name": "iris-v1-broker-user-credentials"}, "username": "x"},
     ("Healthy", "Applied to RabbitMQ")),
])
def test_the_broker_objects_health_as_argo_cd_reads_it(kind, generation, status, expected):
    obj = {"apiVersion": "rabbitmq.com/v1beta1", "kind": kind,
           "metadata": {"name": "iris-v1-queue", "generation": generation}, "spec": {}}
    if status is not None:
        obj["status"] = status
    assert lua_health(REPO, "rabbitmq-topology.lua", obj) == expected
    obj["metadata"]["deletionTimestamp"] = "2026-12-06T11:00:00Z"
    assert lua_health(REPO, "rabbitmq-topology.lua", obj)[0] == "Progressing"


def _keda(kind: str, status: str, reason: str = "", message: str = "") -> dict:
    """A condition as KEDA writes it (empty fields are left out)."""
    return {key: value for key, value in (("type", kind), ("status", status),
                                          ("reason", reason), ("message", message)) if value}


ASLEEP = [_keda("Ready", "True", "ScaledObjectReady",
                "ScaledObject is defined correctly and is ready for scaling"),
          _keda("Active", "False", "ScalerNotActive", "Scaling is not performed because "
                                                      "triggers are not active"),
          _keda("Fallback", "False", "NoFallbackFound", "No fallbacks are active on this "
                                                        "scaled object"),
          _keda("Paused", "False"),
          _keda("HPAActive", "True", "ScalingDisabled", "scaling is disabled since the "
                                                        "replica count of the target is zero")]
CHECK_FAILED = "ScaledObject doesn't have correct scaleTargetRef specification"


@pytest.mark.parametrize("conditions, expected", [
    (None, ("Progressing", "Waiting for KEDA to check the ScaledObject")),
    # as KEDA initialises them, before its first check
    ([_keda("Ready", "Unknown"), _keda("Active", "Unknown"), _keda("Fallback", "Unknown"),
      _keda("Paused", "False")], ("Progressing", "KEDA is checking the triggers")),
    (ASLEEP, ("Healthy", "Asleep or idle: no requests waiting")),
    # waking: its queue is active, and the HPA has no metrics for the new replica yet
    ([*ASLEEP[:1], _keda("Active", "True", "ScalerActive"), *ASLEEP[2:4],
      _keda("HPAActive", "False", "FailedGetExternalMetric",
            "HPA is not actively scaling: the HPA was unable to compute the replica count")],
     ("Progressing", "HPA is not actively scaling: the HPA was unable to compute the "
                     "replica count")),
    ([*ASLEEP[:1], _keda("Active", "True", "ScalerActive"), *ASLEEP[2:4],
      _keda("HPAActive", "True", "HPAActive", "HPA is actively scaling")],
     ("Healthy", "Awake: requests are waiting or running")),
    # what needs a person: KEDA refused it, cannot read the queue, or fell back
    ([_keda("Ready", "False", "ScaledObjectCheckFailed", CHECK_FAILED), *ASLEEP[1:]],
     ("Degraded", CHECK_FAILED)),
    ([_keda("Ready", "False", "TriggerError", "Triggers defined in ScaledObject are not "
                                              "working correctly"), *ASLEEP[1:]],
     ("Degraded", "Triggers defined in ScaledObject are not working correctly")),
    ([*ASLEEP[:2], _keda("Fallback", "True", "FallbackExists", "At least one trigger is "
                                                              "falling back on this scaled "
                                                              "object"), *ASLEEP[3:]],
     ("Degraded", "At least one trigger is falling back on this scaled object")),
    ([*ASLEEP[:3], _keda("Paused", "True", "ScaledObjectPaused", "ScaledObject is paused"),
      *ASLEEP[4:]], ("Suspended", "ScaledObject is paused")),
    ([_keda("Ready", "False", "ScaledObjectCheckFailed"), *ASLEEP[1:]],  # a reason alone
     ("Degraded", "ScaledObjectCheckFailed")),
])
def test_a_sleeping_models_scaledobject_health_as_argo_cd_reads_it(conditions, expected):
    """Shaped as KEDA v2.20.2 writes them (apis/keda/v1alpha1/condition_types.go and
    pkg/scaling/executor): a normal scale-up from zero never reads Degraded."""
    obj = {"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject",
           "metadata": {"name": "digits-v1-server"}, "spec": {}}
    if conditions is not None:
        obj["status"] = {"conditions": conditions}
    assert lua_health(REPO, "keda-scaledobject.lua", obj) == expected


def test_the_install_gives_every_topology_kind_the_check(tmp_path):
    """The install's kustomization merges the check into Argo CD's own argocd-cm, beside
    the patches (rendered here over a stand-in for the remote install)."""
    install = tmp_path / "install"
    shutil.copytree(REPO / "platform/argocd/install", install)
    config = install / "kustomization.yaml"
    remote = next(line for line in config.read_text().splitlines() if "https://" in line)
    config.write_text(config.read_text().replace(remote, "- upstream.yaml"))
    (install / "upstream.yaml").write_text("".join(
        f"---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  labels:\n"
        f"    app.kubernetes.io/part-of: argocd\n"
        for name in ("argocd-cm", "argocd-cmd-params-cm", "argocd-notifications-cm",
                     "argocd-rbac-cm")))
    text, error = render.kustomize(install)
    assert error is None, error
    cm = next(o for o in yaml.safe_load_all(text) if o["metadata"]["name"] == "argocd-cm")
    check = (REPO / "platform/argocd/install/health/rabbitmq-topology.lua").read_text()
    for kind in ("Queue", "Policy", "User", "Permission", "Exchange"):
        assert cm["data"][f"resource.customizations.health.rabbitmq.com_{kind}"] == check
    assert cm["data"]["resource.customizations.health.keda.sh_ScaledObject"] == (
        REPO / "platform/argocd/install/health/keda-scaledobject.lua").read_text()
    assert "resource.customizations.health.argoproj.io_Application" in cm["data"]
    assert cm["metadata"]["labels"] == {"app.kubernetes.io/part-of": "argocd"}


def test_the_generated_argocd_tree_is_current_and_renders(tmp_path):
    root = copy_repo(tmp_path)
    shutil.rmtree(root / "overlays/argocd")
    assert run_modelops("generate", cwd=root).returncode == 0
    assert (root / "overlays/argocd/root.yaml").read_text() == \
        (examples() / "overlays/argocd/root.yaml").read_text()


# -- day 2: deletions have a brake ---------------------------------------------------------
def _changed_copy(tmp_path: Path, change) -> Path:
    root = copy_repo(tmp_path / "after")
    change(root)
    done = run_modelops("generate", cwd=root)
    assert done.returncode == 0, done.stderr
    return root


def _without_staging(root: Path) -> None:
    settings = root / "platform/settings.yaml"
    text = settings.read_text()
    start, end = text.index("  staging:\n"), text.index("  production:\n")
    settings.write_text(text[:start] + text[end:])
    for spec in root.glob("models/*/*.yaml"):  # the specs' overrides for it go too
        data = yaml.safe_load(spec.read_text())
        if data["spec"].get("environments", {}).pop("staging", None) is not None:
            spec.write_text(yaml.safe_dump(data))


@pytest.mark.parametrize("change", ["a removed spec", "a removed environment",
                                    "a revision with no specs", "the root deleted",
                                    "the ApplicationSet deleted"])
def test_a_change_deletes_no_running_model_without_an_explicit_delete(tmp_path, change):
    """Argo CD's deletion rules: a root that does not prune, platform pieces that say
    Prune=false and Delete=false, an ApplicationSet that may create and update but not
    delete Applications (argocd-cmd-params-cm lets it keep that policy) and that preserves
    resources when it goes. None of these changes stops a model server."""
    before = bootstrap(copy_repo(tmp_path))
    serving = before.serving()
    assert {"iris-v1-server", "tabular-server", "digits-v1-server"} <= serving
    if change == "a removed spec":
        before.changed(_changed_copy(tmp_path, lambda r: shutil.rmtree(r / "models/iris")))
    elif change == "a removed environment":
        before.changed(_changed_copy(tmp_path, lambda r: shutil.rmtree(r / "models/iris")
                                     or _without_staging(r)))
    elif change == "a revision with no specs":
        empty = tmp_path / "empty-revision"
        empty.mkdir()
        before.changed(before.root, files_root=empty)
    elif change == "the root deleted":
        before.delete_application("modelops-root", cascade=True)  # `argocd app delete`
    else:
        appset = before.apps["staging-iris"]["owner"]
        before.delete_appset(next(obj for key, obj in before.apps["modelops-root"][
            "objects"].items() if key[0] == "ApplicationSet" and key[2] == appset))
    assert before.serving() == serving
    assert ("PersistentVolumeClaim", "models-staging", "modelops-shared") in before.objects


def test_a_model_goes_when_its_application_is_deleted(tmp_path):
    """The documented, explicit way: `argocd app delete <env>-<model>` (its finalizer
    removes its objects)."""
    cluster = bootstrap(copy_repo(tmp_path))
    cluster.changed(_changed_copy(tmp_path, lambda r: shutil.rmtree(r / "models/iris")))
    cluster.delete_application("staging-iris")
    gone = {"iris-v1-server", "iris-v2-server"}
    assert ("Deployment", "models-staging", "iris-v1-server") not in cluster.objects
    assert ("Deployment", "models-production", "iris-v1-server") in cluster.objects
    assert gone & cluster.serving()  # production's iris is still there until deleted too


def test_without_the_policy_override_a_removed_spec_deletes_its_model(tmp_path):
    """The broken copy: the controller's default policy (sync) deletes the Application,
    whose finalizer deletes the model; the simulation catches it."""
    root = copy_repo(tmp_path)
    (root / "platform/argocd/install/argocd-cmd-params-cm.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: argocd-cmd-params-cm}\ndata: {}\n")
    cluster = bootstrap(root)
    after = _changed_copy(tmp_path, lambda r: shutil.rmtree(r / "models/iris"))
    shutil.copyfile(root / "platform/argocd/install/argocd-cmd-params-cm.yaml",
                    after / "platform/argocd/install/argocd-cmd-params-cm.yaml")
    cluster.changed(after)
    assert "iris-v1-server" not in cluster.serving()


# -- a child's trouble and the root's waves ------------------------------------------------
def _gateway_without_certificate(cluster: Cluster) -> None:
    cluster.resource_health[("Gateway", "modelops-gateway", "models-staging")] = (
        "Degraded", "Listener https: invalid certificate reference models-staging-tls")


def _failed_compaction(cluster: Cluster) -> None:
    cluster.resource_health[("CronJob", "models-staging", "log-compactor")] = (
        "Degraded", "CronJob has not completed its last execution successfully")


def _drifted_after_sync(cluster: Cluster) -> None:  # a mutating webhook added a field
    cluster.after_sync["platform-staging"] = {"sync": {"status": "OutOfSync"}}


def _retries_exhausted(cluster: Cluster) -> None:
    cluster.after_sync["platform-staging"] = {"operationState": {
        "phase": "Failed", "message": "one or more objects failed to apply (retried 5 times)"}}


@pytest.mark.parametrize("trouble", [_gateway_without_certificate, _failed_compaction,
                                     _drifted_after_sync], ids=lambda f: f.__name__[1:])
def test_a_childs_trouble_never_stops_the_bootstrap(tmp_path, trouble):
    """On a first bootstrap the Gateway's TLS Secret cannot exist yet (the root makes its
    namespace); on day 2 a job run fails or a webhook mutates an object. The models must
    deploy all the same: the child's page shows its trouble."""
    cluster = bootstrap(copy_repo(tmp_path), trouble=trouble)
    assert {"iris-v1-server", "tabular-server"} <= cluster.serving()


def test_a_sync_that_failed_after_its_retries_stops_the_root(tmp_path):
    with pytest.raises(BootstrapError, match="the root stops at platform-staging, Degraded: "
                                             "one or more objects failed to apply"):
        bootstrap(copy_repo(tmp_path), trouble=_retries_exhausted)


def test_a_check_that_passes_on_a_resources_health_wedges_the_bootstrap(tmp_path):
    """The broken copy: the round-two check, which made a child Degraded whenever one of
    its resources was."""
    root = copy_repo(tmp_path)
    config = root / "platform/argocd/install/argocd-cm.yaml"
    config.write_text(config.read_text().replace(
        '    if operation ~= nil and operation.phase == "Succeeded" then\n',
        '    if obj.status.health ~= nil and obj.status.health.status == "Degraded" then\n'
        '      return {status = "Degraded", message = obj.status.health.message}\n'
        '    end\n'
        '    if operation ~= nil and operation.phase == "Succeeded" then\n'))
    with pytest.raises(BootstrapError, match="the root stops at platform-staging, Degraded: "
                                             "Listener https: invalid certificate"):
        bootstrap(root, trouble=_gateway_without_certificate)


def test_a_check_that_wants_synced_after_success_wedges_the_bootstrap(tmp_path):
    """The broken copy for drift: a check that asks Synced even after a successful sync
    waits forever on a child a webhook mutated (Argo CD has no sync timeout)."""
    root = copy_repo(tmp_path)
    config = root / "platform/argocd/install/argocd-cm.yaml"
    succeeded = '    if operation ~= nil and operation.phase == "Succeeded" then\n'
    assert succeeded in config.read_text()
    config.write_text(config.read_text().replace(succeeded, succeeded.replace(
        " then", ' and obj.status.sync.status == "Synced" then')))
    with pytest.raises(BootstrapError, match="the root stops at platform-staging, Progressing"):
        bootstrap(root, trouble=_drifted_after_sync)
