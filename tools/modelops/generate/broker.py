"""The broker in the cluster, for models with `async` (README: asynchronous inference).

  overlays/<env>/platform/broker/    only where a model of the environment has `async`
      resources.yaml                 the RabbitmqCluster `modelops-broker` (the Cluster
                                     Operator runs its pods under the restricted profile),
                                     the results Exchange, and the NetworkPolicies of
                                     broker traffic
  <a server's directory>/broker.yaml for each async version the server runs: its Queue,
                                     dead-letter Queue and Policy (the limits), and the
                                     server's own broker User and Permission

The Messaging Topology Operator makes the queues, so the servers never declare them
(MODELOPS_BROKER_DECLARES=false) and each server's user may read only its own queues.
The queues are kept when their objects are deleted (`deletionPolicy: retain`): removing
a version from git never deletes requests still waiting in its queue.
"""

from __future__ import annotations

from typing import Any

from modelops import capacity, names
from modelops.generate.objects import PART_OF, kustomization, namespace_selector, network_policy
from modelops.repo import Repo
from modelops.settings import EnvironmentSettings
from modelops.spec import ModelSpec
from modelops_runtime import queues, volume
from modelops_runtime.config import AsyncConfig

API = "rabbitmq.com/v1beta1"
AMQP_PORT = 5672
METRICS_PORT = 15692  # rabbitmq_prometheus, on by default in the operator's pods
MANAGEMENT_PORT = 15672  # the HTTP API the Topology Operator calls
CLUSTER_PORTS = (4369, 25672)  # epmd and Erlang distribution, between the broker's nodes
PODS = {"app.kubernetes.io/name": names.BROKER, "app.kubernetes.io/component": "rabbitmq"}
"""The labels the Cluster Operator puts on the broker's pods."""
CREDENTIALS_DIR = "/etc/modelops/broker"
REFERENCE = {"rabbitmqClusterReference": {"name": names.BROKER}}
RESULTS_OBJECT = "modelops-results"
BEFORE_SERVERS = {"argocd.argoproj.io/sync-wave": "-1"}
"""A server's queues and user come first in its Application: Argo CD waits for them to be
healthy (platform/argocd/install/health/rabbitmq-topology.lua), so the server starts with
its user's credentials Secret made and its queues declared."""

Files = dict[str, Any]


def uses_broker(repo: Repo, env: str) -> bool:
    """Whether any model of the environment takes asynchronous requests."""
    return capacity.uses_broker(repo.models.values(), env)


def url(settings: EnvironmentSettings) -> str:
    """The broker's AMQP address inside the cluster (the Service the operator makes)."""
    return f"amqp://{names.BROKER}.{settings.namespace}.svc:{AMQP_PORT}/"


def platform(repo: Repo, env: str, top: str, sleeps: bool) -> Files:
    """The environment's broker, the exchange results are announced on, and the paths
    broker traffic may take through the default-deny policies; where a model `sleeps`,
    the front door's user and KEDA's way in."""
    assert repo.settings is not None
    settings = repo.settings.environments[env]
    broker = settings.broker
    resources = {"cpu": broker.cpu, "memory": broker.memory}
    cluster = {"apiVersion": API, "kind": "RabbitmqCluster", "metadata": {"name": names.BROKER},
               "spec": {"replicas": broker.replicas, "image": broker.image,
                        "resources": {"requests": resources, "limits": dict(resources)},
                        "persistence": {"storage": broker.storage, **(
                            {"storageClassName": broker.storageClass}
                            if broker.storageClass else {})}}}
    exchange = {"apiVersion": API, "kind": "Exchange", "metadata": {"name": RESULTS_OBJECT},
                "spec": {"name": queues.RESULTS_EXCHANGE, "type": "topic", "durable": True,
                         **REFERENCE}}
    servers = dict(PART_OF)
    amqp = [{"protocol": "TCP", "port": AMQP_PORT}]
    between = [{"protocol": "TCP", "port": port} for port in CLUSTER_PORTS]
    objects = [
        cluster, exchange,
        network_policy("allow-servers-to-broker", servers, ["Egress"], egress=[{
            "to": [{"podSelector": {"matchLabels": PODS}}], "ports": amqp}]),
        network_policy("allow-broker-from-servers", PODS, ["Ingress"], ingress=[{
            "from": [{"podSelector": {"matchLabels": servers}}], "ports": amqp}]),
        network_policy("allow-broker-cluster", PODS, ["Ingress", "Egress"],
                       ingress=[{"from": [{"podSelector": {"matchLabels": PODS}}],
                                 "ports": between}],
                       egress=[{"to": [{"podSelector": {"matchLabels": PODS}}],
                                "ports": between}]),
        network_policy("allow-prometheus-to-broker", PODS, ["Ingress"], ingress=[{
            "from": [namespace_selector(settings.monitoringNamespace)],
            "ports": [{"protocol": "TCP", "port": METRICS_PORT}]}]),
        network_policy("allow-operators-to-broker", PODS, ["Ingress"], ingress=[{
            "from": [namespace_selector(broker.operatorNamespace)],
            "ports": [{"protocol": "TCP", "port": MANAGEMENT_PORT}]}]),
    ]
    if sleeps:  # KEDA counts their queues; the front door publishes to them
        objects.append(network_policy("allow-keda-to-broker", PODS, ["Ingress"], ingress=[{
            "from": [namespace_selector(settings.frontDoor.kedaNamespace)],
            "ports": [{"protocol": "TCP", "port": MANAGEMENT_PORT}]}]))
        front = names.prefix(names.FRONT_DOOR)
        for obj in account(front, [], ("amq.default",), user(front)):
            del obj["metadata"]["annotations"]  # the broker's own wave: with its cluster
            objects.append(obj)
    return {f"{top}/resources.yaml": objects,
            f"{top}/kustomization.yaml": kustomization(settings.namespace, ["resources.yaml"])}


def user(name_prefix: str) -> str:
    """A server's broker User; the operator puts its credentials in `<user>-user-credentials`."""
    return name_prefix + "broker"


def topology(name_prefix: str, served: list[tuple[str, str, AsyncConfig]],
             local: bool) -> list[dict]:
    """The queues and limits of the async versions one server runs, and the server's user:
    it may consume only those queues (and its own reply queue), and publish
    only to the default exchange and the results exchange. Objects are named `queue`,
    `dead-letters` and `limits` in a version's own directory, else `<model>-<version>-…`
    (`local`: one version, named by the directory's prefix)."""
    objects: list[dict] = []
    readable: list[str] = []
    for model, version, config in served:
        own = "" if local else f"{model}-{version}-"
        main, dead = queues.queue_name(model, version), queues.dead_name(model, version)
        readable += [main, dead]
        for name, queue in ((own + "queue", main), (own + "dead-letters", dead)):
            objects.append({"apiVersion": API, "kind": "Queue", "metadata": {"name": name},
                            "spec": {"name": queue, "type": "quorum", "durable": True,
                                     "deletionPolicy": "retain", **REFERENCE}})
        objects.append({"apiVersion": API, "kind": "Policy", "metadata": {"name": own + "limits"},
                        "spec": {"name": main, "pattern": queues.pattern(main),
                                 "applyTo": "queues", "priority": 1,
                                 "definition": queues.limits(model, version, config),
                                 **REFERENCE}})
    objects = [before_servers(obj) for obj in objects]
    return objects + account(name_prefix, readable, ("amq.default", queues.RESULTS_EXCHANGE))


def account(name_prefix: str, readable: list[str], writable: tuple[str, ...],
            named: str = "broker") -> list[dict]:
    """A server's own broker User and Permission: it may consume `readable` queues and its
    own reply queue, and publish only to the `writable` exchanges (the default exchange,
    `amq.default`, is how a request reaches a queue). `named` is what kustomize prefixes
    into the user's name (in a directory of no prefix, the whole name)."""
    objects = [
        {"apiVersion": API, "kind": "User", "metadata": {"name": named},
         "spec": {"tags": [], **REFERENCE}},
        {"apiVersion": API, "kind": "Permission", "metadata": {"name": named},
         "spec": {"vhost": "/", "userReference": {"name": user(name_prefix)},
                  "permissions": {
                      "configure": queues.pattern(prefix=queues.REPLIES),
                      "read": queues.pattern(*readable, prefix=queues.REPLIES),
                      "write": queues.pattern(*writable)},
                  **REFERENCE}}]
    return [before_servers(obj) for obj in objects]


def before_servers(obj: dict) -> dict:
    obj["metadata"]["annotations"] = dict(BEFORE_SERVERS)
    return obj


def add_broker(pod: dict, container: dict, settings: EnvironmentSettings,
               name_prefix: str) -> None:
    """The broker's address and the server's own credentials (as read-only files), and
    the shared volume's results folder, writable: where answers are kept for clients."""
    container.setdefault("env", []).extend([
        {"name": "MODELOPS_BROKER_URL", "value": url(settings)},
        {"name": "MODELOPS_BROKER_CREDENTIALS", "value": CREDENTIALS_DIR},
        {"name": "MODELOPS_BROKER_DECLARES", "value": "false"}])
    container.setdefault("volumeMounts", []).extend([
        {"name": "broker-user", "mountPath": CREDENTIALS_DIR, "readOnly": True},
        {"name": "shared", "mountPath": f"{volume.MOUNT}/{volume.RESULTS}",
         "subPath": volume.RESULTS}])
    pod.setdefault("volumes", []).append({"name": "broker-user", "secret": {
        "secretName": user(name_prefix) + "-user-credentials", "defaultMode": 0o444,
        "items": [{"key": key, "path": key} for key in ("username", "password")]}})


def served(specs: list[tuple[str, ModelSpec]]) -> list[tuple[str, str, AsyncConfig]]:
    """(model, version, async config) of every async version of these specs."""
    return [(name, version.name, spec.async_) for name, spec in specs if spec.async_
            for version in sorted(spec.versions, key=lambda v: v.name)]

