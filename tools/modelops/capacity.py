"""Capacity: what every model and pool can claim at max replicas, against the budget."""

from __future__ import annotations

import dataclasses
from decimal import Decimal

from pydantic import Field, field_validator

from modelops import quantity
from modelops.spec import ModelSpec, PoolSpec, Strict, _quantity


class Budget(Strict):
    cpu: str
    """Total CPU requests allowed at max replicas (cores)."""
    memory: str
    """Total memory requests allowed at max replicas."""
    gpu: int = Field(default=0, ge=0)

    _check = field_validator("cpu", "memory", mode="before")(_quantity)


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


def over_budget(budget: Budget, used: list[Usage]) -> list[str]:
    """Sentences, one per resource whose total at max replicas exceeds the budget."""
    problems = []
    for kind, limit, fmt in (("cpu", quantity.parse(budget.cpu), quantity.cpu),
                             ("memory", quantity.parse(budget.memory), quantity.memory),
                             ("gpu", Decimal(budget.gpu), lambda v: str(int(v)))):
        total = sum((Decimal(getattr(u, f"{kind}_max")) for u in used), Decimal(0))
        if total > limit:
            top = sorted(used, key=lambda u: (-getattr(u, f"{kind}_max"), u.name))[:3]
            largest = ", ".join(f"{u.name} {fmt(Decimal(getattr(u, f'{kind}_max')))}"
                                for u in top if getattr(u, f"{kind}_max"))
            problems.append(f"{kind} requests at max replicas total {fmt(total)}, over the "
                            f"budget of {fmt(limit)}; largest: {largest}")
    return problems
