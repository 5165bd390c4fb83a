"""Capacity: what every model and pool can claim at peak, against the budget.

The budget, plus one surge pod per server for rollouts, is also the namespace's
ResourceQuota, which counts every pod: so the check
counts, besides the servers at max replicas, every training and batch pod running at once
and the platform's own pods (the catalog, the log compactor), or the quota would refuse a
job's pods on the night the servers run at max.
"""

from __future__ import annotations

import dataclasses
from decimal import Decimal
from pathlib import Path

import yaml
from pydantic import Field

from modelops import quantity
from modelops.settings import Broker, EnvironmentSettings, FrontDoor, Settings
from modelops.spec import ModelSpec, PoolSpec, Quantity, Strict


class Budget(Strict):
    cpu: Quantity
    """Total CPU requests allowed at peak: servers at max replicas, every job running, and
    the platform's own pods (cores). Also the namespace's ResourceQuota."""
    memory: Quantity
    """Total memory requests allowed at peak, as for cpu."""
    gpu: int = Field(default=0, ge=0)


class CapacityBudget(Strict):
    """platform/capacity.yaml: the budget per environment, and optionally per team."""

    apiVersion: str = "modelops/v1"
    kind: str = "CapacityBudget"
    environments: dict[str, Budget]
    teams: dict[str, dict[str, Budget]] = Field(default_factory=dict)
    """team -> environment -> budget."""


@dataclasses.dataclass(frozen=True)
class Usage:
    """Requests of one model or pool in one environment, at min and at max replicas."""

    name: str
    team: str
    file: str
    cpu_min: Decimal
    cpu_max: Decimal
    memory_min: Decimal
    memory_max: Decimal
    gpu_min: int
    gpu_max: int
    replicas_min: int
    replicas_max: int


def usage(name: str, team: str, file: str, spec: ModelSpec | PoolSpec) -> Usage | None:
    """None for a model in a pool: the pool's own entry counts it."""
    if isinstance(spec, ModelSpec) and spec.placement != "dedicated":
        return None
    res, hpa = spec.resources, spec.autoscaling
    servers = len(spec.versions) if isinstance(spec, ModelSpec) else 1
    cpu, mem = quantity.parse(res.cpu), quantity.parse(res.memory)
    gpu = res.gpu.count if res.gpu else 0
    lo, hi = servers * hpa.minReplicas, servers * hpa.maxReplicas
    return Usage(name, team, file, cpu * lo, cpu * hi, mem * lo, mem * hi, gpu * lo, gpu * hi,
                 lo, hi)


def surge(entries, env: str, settings: EnvironmentSettings) -> tuple[Decimal, Decimal, int]:
    """(cpu, memory, gpu) of one extra pod per server Deployment: what rollouts add on top
    of the peak while each starts a new pod before stopping an old one (maxSurge 1)."""
    cpu, memory, gpu = Decimal(0), Decimal(0), 0
    if sleeps(entries, env):  # the front door's Deployment
        cpu += quantity.parse(settings.frontDoor.cpu)
        memory += quantity.parse(settings.frontDoor.memory)
    for e in entries:
        spec = e.envs.get(env)
        if spec is None or (isinstance(spec, ModelSpec) and spec.placement != "dedicated"):
            continue
        servers = len(spec.versions) if isinstance(spec, ModelSpec) else 1
        cpu += quantity.parse(spec.resources.cpu) * servers
        memory += quantity.parse(spec.resources.memory) * servers
        gpu += (spec.resources.gpu.count if spec.resources.gpu else 0) * servers
    return cpu, memory, gpu


def job_usage(name: str, team: str, file: str, spec: ModelSpec) -> Usage | None:
    """A model's training pod and batch pods (`parallelism` of them), all running: at min
    replicas none are."""
    pods = [(job.resources, count) for job, count in (
        (spec.training, 1), (spec.batch, spec.batch.parallelism if spec.batch else 0)) if job]
    if not pods:
        return None
    cpu = sum((quantity.parse(r.cpu) * n for r, n in pods), Decimal(0))
    memory = sum((quantity.parse(r.memory) * n for r, n in pods), Decimal(0))
    zero = Decimal(0)
    return Usage(f"{name} jobs", team, file, zero, cpu, zero, memory, 0, 0, 0, 0)


def uses_broker(entries, env: str) -> bool:
    """Whether any model of these specs takes asynchronous requests in the environment."""
    return any(isinstance(spec := e.envs.get(env), ModelSpec) and spec.async_ for e in entries)


def broker_usage(broker: Broker) -> Usage:
    """The environment's broker nodes (settings: broker), always running."""
    count = broker.replicas
    cpu, memory = quantity.parse(broker.cpu) * count, quantity.parse(broker.memory) * count
    return Usage("the broker", "", "platform/settings.yaml", cpu, cpu, memory, memory, 0, 0,
                 count, count)


def sleeps(entries, env: str) -> bool:
    """Whether any model of these specs sleeps (minReplicas 0) in the environment."""
    return any(isinstance(spec := e.envs.get(env), ModelSpec) and spec.autoscaling is not None
               and spec.autoscaling.sleeps for e in entries)


def front_door_usage(door: FrontDoor) -> Usage:
    """The front door of the models that sleep (settings: frontDoor), always running."""
    cpu, memory = quantity.parse(door.cpu), quantity.parse(door.memory)
    lo, hi = door.minReplicas, door.maxReplicas
    return Usage("the front door", "", "platform/settings.yaml", cpu * lo, cpu * hi,
                 memory * lo, memory * hi, 0, 0, lo, hi)


def env_usage(entries, env: str, settings: EnvironmentSettings | None = None) -> list[Usage]:
    """Every server and every job of these specs (SpecFiles) in one environment; with the
    environment's settings, also its broker's nodes if any of them takes asynchronous
    requests, and its front door if any sleeps."""
    used = []
    if settings is not None and uses_broker(entries, env):
        used.append(broker_usage(settings.broker))
    if settings is not None and sleeps(entries, env):
        used.append(front_door_usage(settings.frontDoor))
    for e in entries:
        spec = e.envs.get(env)
        if spec is None:
            continue
        if (u := usage(e.name, e.team, e.file, spec)) is not None:
            used.append(u)
        if isinstance(spec, ModelSpec) and (u := job_usage(e.name, e.team, e.file, spec)):
            used.append(u)
    return used


COMPACTOR_BASE = "base/log-compactor/cronjob.yaml"
PLATFORM_PODS = ("base/catalog/deployment.yaml", COMPACTOR_BASE)


class PlatformPodsError(ValueError):
    """A platform base whose pods' requests cannot be read (file, line, column, message)."""


def platform_usages(root: Path, settings: Settings | None) -> dict[str, Usage]:
    """The platform's own pods in each environment's namespace (its log compactor runs as
    many workers as its settings say)."""
    if settings is None:
        return {}
    return {env: platform_usage(root, s.logCompactor.workers)
            for env, s in settings.environments.items()}


def platform_usage(root: Path, compactor_workers: int = 1) -> Usage:
    """The requests of the platform's own pods in an environment's namespace, read from
    their hand-written bases (a Deployment's replicas, a CronJob's parallelism, times the
    log compactor's workers)."""
    cpu = memory = Decimal(0)
    for name in PLATFORM_PODS:
        if not (root / name).is_file():  # a repository without the platform's bases
            continue
        try:
            for manifest in yaml.load_all((root / name).read_text(), Loader=yaml.CSafeLoader):
                spec = manifest["spec"]
                if manifest["kind"] == "CronJob":
                    spec = spec["jobTemplate"]["spec"]
                    count = int(spec.get("parallelism", 1)) * (
                        compactor_workers if name == COMPACTOR_BASE else 1)
                else:
                    count = int(spec.get("replicas", 1))
                for container in spec["template"]["spec"]["containers"]:
                    requests = (container.get("resources") or {}).get("requests") or {}
                    cpu += quantity.parse(str(requests.get("cpu", 0))) * count
                    memory += quantity.parse(str(requests.get("memory", 0))) * count
        except (yaml.YAMLError, KeyError, TypeError, AttributeError, ValueError) as exc:
            mark = getattr(exc, "problem_mark", None)  # where a YAML error is
            raise PlatformPodsError(
                name, mark.line + 1 if mark else 1, mark.column + 1 if mark else 1,
                f"cannot read the requests of its pods, which the capacity check counts: "
                f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}") \
                from None
    name = "the platform's pods" + (f" (log compactor: {compactor_workers} workers)"
                                    if compactor_workers > 1 else "")
    return Usage(name, "", ", ".join(PLATFORM_PODS), cpu, cpu, memory, memory, 0, 0, 0, 0)


def over_budget(budget: Budget, used: list[Usage]) -> list[str]:
    """Sentences, one per resource whose total at peak (servers at max replicas, every job
    running) exceeds the budget."""
    problems = []
    for kind, limit, fmt in (("cpu", quantity.parse(budget.cpu), quantity.cpu),
                             ("memory", quantity.parse(budget.memory), quantity.memory),
                             ("gpu", Decimal(budget.gpu), lambda v: str(int(v)))):
        total = sum((Decimal(getattr(u, f"{kind}_max")) for u in used), Decimal(0))
        if total > limit:
            top = sorted(used, key=lambda u: (-getattr(u, f"{kind}_max"), u.name))[:3]
            largest = ", ".join(f"{u.name} {fmt(Decimal(getattr(u, f'{kind}_max')))}"
                                for u in top if getattr(u, f"{kind}_max"))
            problems.append(f"{kind} requests at peak (servers at max replicas, every job "
                            f"running) total {fmt(total)}, over the budget of {fmt(limit)}; "
                            f"largest: {largest}")
    return problems
