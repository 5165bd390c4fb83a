"""What the generated objects are called: the one home of every generated name.

The generator names objects with these functions, and validation checks with the same
functions that no two specs, and no spec and the platform, would make two objects of
one kind with one name in one namespace (the second would take the first's traffic).
"""

from __future__ import annotations

SERVER_KINDS = ("Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget")
CATALOG = "catalog"
LOG_COMPACTOR = "log-compactor"
SHARED_VOLUME = "modelops-shared"
BROKER = "modelops-broker"  # the RabbitmqCluster, and the Service its operator makes
FRONT_DOOR = "modelops-front"  # the server of the models that sleep: its name prefix

PLATFORM: dict[tuple[str, str], str] = {
    **{(kind, CATALOG): "the catalog" for kind in ("Deployment", "Service", "ServiceAccount",
                                                     "HTTPRoute", "ConfigMap")},
    **{(kind, LOG_COMPACTOR): "the log compactor" for kind in ("CronJob", "ServiceAccount",
                                                               "ConfigMap")},
    ("RabbitmqCluster", BROKER): "the broker", ("Service", BROKER): "the broker",
    **{(kind, f"{FRONT_DOOR}-server"): "the front door" for kind in (*SERVER_KINDS,
                                                                     "ServiceAccount")},
    ("ConfigMap", f"{FRONT_DOOR}-config"): "the front door",
}
"""The objects each environment's platform overlay puts beside the models."""


def prefix(model_or_pool: str, version: str | None = None) -> str:
    """The kustomize namePrefix of a server's objects: `<pool>-`, or `<model>-<version>-`."""
    return f"{model_or_pool}-{version}-" if version else f"{model_or_pool}-"


def server_name(model_or_pool: str, version: str | None = None) -> str:
    """A server's Deployment, Service, HPA and PDB (the base names them `server`)."""
    return prefix(model_or_pool, version) + "server"


def config_name(model_or_pool: str, version: str | None = None) -> str:
    """A server's ConfigMap (`config` in the overlay, before kustomize appends its hash)."""
    return prefix(model_or_pool, version) + "config"


def dedicated_objects(model: str, versions: list[str]) -> set[tuple[str, str]]:
    """(kind, name) of every object a dedicated model makes."""
    out = {("ServiceAccount", model), ("HTTPRoute", model)}
    for version in versions:
        out |= {(kind, server_name(model, version)) for kind in SERVER_KINDS}
        out.add(("ConfigMap", config_name(model, version)))
    return out


def job_objects(model: str, pool: str | None, training: bool,
                batch: bool) -> set[tuple[str, str]]:
    """(kind, name) of a model's CronJobs and their config: `<model>-` prefixed, and a pool
    member's by its pool too (`<pool>-<model>-batch` may meet a dedicated `<pool>-<model>`)."""
    named = f"{pool}-{model}-" if pool else f"{model}-"
    out = {("CronJob", named + "train")} if training else set()
    out |= {("CronJob", named + "batch")} if batch else set()
    return out | ({("ConfigMap", named + "jobs")} if out else set())


def pool_objects(pool: str) -> set[tuple[str, str]]:
    """(kind, name) of every object a pool makes."""
    return ({(kind, server_name(pool)) for kind in (*SERVER_KINDS, "ServiceAccount")}
            | {("HTTPRoute", f"{pool}-route"), ("ConfigMap", config_name(pool))})
