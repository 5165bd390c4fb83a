"""Models that sleep, in the cluster (autoscaling.minReplicas 0; README: models that sleep).

  <a sleeping version's directory>/scaler.yaml   KEDA's ScaledObject, in place of the
        server's HPA (KEDA refuses a target that an HPA also scales), its
        TriggerAuthentication, and the broker user KEDA reads the queue's counts as
  overlays/<env>/platform/front-door/            the always-on server that takes the
        sleeping models' requests (see platform.py)

KEDA wakes a version when more requests wait or run in its queue than the spec's
`activationQueueDepth`, adds replicas toward `targetQueueDepth` requests each, and scales
it to zero `idleSeconds` after its queue was last above the threshold. It counts over
the management API (`protocol: http`), which includes unacknowledged requests, so a
replica is never taken away mid-request. The only trigger is the queue: a CPU trigger
cannot wake what is not running, and KEDA refuses one alone with a minimum of 0.
"""

from __future__ import annotations

from modelops import names
from modelops.generate import broker
from modelops.settings import EnvironmentSettings
from modelops.spec import Autoscaling, ModelSpec, PoolSpec
from modelops_runtime import queues

API = "keda.sh/v1alpha1"
SCALER_FILE = "scaler.yaml"
AFTER_SERVER = {"argocd.argoproj.io/sync-wave": "1"}
"""KEDA's objects come after the server: a model that used to have an HPA loses it first
(Argo CD prunes in the wave of the pruned object, 0), and KEDA's admission webhook
refuses a ScaledObject whose Deployment an HPA still scales."""
POLLING_SECONDS = 5
"""How often KEDA counts a sleeping model's queue (its default is 30 s): the most a first
request waits before its model starts to wake."""
NO_RESOURCE = "^$"
"""A permission pattern that matches no queue or exchange RabbitMQ has."""


def sleeps(spec: ModelSpec | PoolSpec) -> bool:
    return isinstance(spec, ModelSpec) and spec.autoscaling is not None and \
        spec.autoscaling.sleeps


def management_url(settings: EnvironmentSettings) -> str:
    """The broker's management API inside the cluster, where KEDA counts queues."""
    return f"http://{names.BROKER}.{settings.namespace}.svc:{broker.MANAGEMENT_PORT}"


def scaler(name_prefix: str, model: str, version: str, autoscaling: Autoscaling,
           settings: EnvironmentSettings) -> list[dict]:
    """What scales one sleeping version: KEDA's objects, and the broker user they read as
    (tagged `management` to read queue counts over HTTP; its permissions match nothing,
    so it can neither consume nor publish)."""
    user = name_prefix + "scaler"
    credentials = user + "-user-credentials"  # made by the Messaging Topology Operator
    account = [
        {"apiVersion": broker.API, "kind": "User", "metadata": {"name": "scaler"},
         "spec": {"tags": ["management"], **broker.REFERENCE}},
        {"apiVersion": broker.API, "kind": "Permission", "metadata": {"name": "scaler"},
         "spec": {"vhost": "/", "userReference": {"name": user},
                  "permissions": {"configure": NO_RESOURCE, "read": NO_RESOURCE,
                                  "write": NO_RESOURCE}, **broker.REFERENCE}}]
    authentication = {
        "apiVersion": API, "kind": "TriggerAuthentication",
        "metadata": {"name": "scaler", "annotations": dict(AFTER_SERVER)},
        "spec": {"secretTargetRef": [{"parameter": key, "name": credentials, "key": key}
                                     for key in ("username", "password")]}}
    scaled = {
        "apiVersion": API, "kind": "ScaledObject",
        "metadata": {"name": "server", "annotations": dict(AFTER_SERVER)},
        "spec": {
            "scaleTargetRef": {"name": name_prefix + "server"},
            "minReplicaCount": 0, "maxReplicaCount": autoscaling.maxReplicas,
            "pollingInterval": POLLING_SECONDS, "cooldownPeriod": autoscaling.idleSeconds,
            "advanced": {"horizontalPodAutoscalerConfig": {"behavior": {"scaleDown": {
                "stabilizationWindowSeconds": autoscaling.scaleDownStabilizationSeconds}}}},
            "triggers": [{
                "type": "rabbitmq",
                "metadata": {"protocol": "http", "mode": "QueueLength",
                             "value": str(autoscaling.targetQueueDepth),
                             "activationValue": str(autoscaling.activationQueueDepth),
                             "queueName": queues.queue_name(model, version),
                             "vhostName": "/", "host": management_url(settings)},
                "authenticationRef": {"name": name_prefix + "scaler"}}]}}
    return [broker.before_servers(obj) for obj in account] + [authentication, scaled]
