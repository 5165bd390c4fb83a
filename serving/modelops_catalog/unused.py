"""Models nobody asks for: candidates for removal, listed by the catalog and by
`modelops plan` (README: models that sleep).

Prometheus says how many requests each model's servers answered over the last
`unusedAfterDays` days (modelops_requests_total, every version and status summed, in the
environment's namespace), and since when it has known the model at all (its servers'
readiness, or for a model asleep its front door's count of its queue). A model known for
the whole period that answered nothing in it is listed; one deployed more recently, or
never seen, is not. Removing one is a pull request like any other, under the usual guard
on removals.
"""

from __future__ import annotations

import dataclasses
import time

import httpx

QUERY = 'sum by (model) (increase(modelops_requests_total{{namespace="{namespace}"}}[{days}d]))'
SEEN = ('min by (model) (min_over_time(timestamp({{__name__=~"modelops_model_ready|'
        'modelops_async_queue_depth",namespace="{namespace}"}})[{days}d:1h]))')
"""When, in the period, each model was first seen (to the hour)."""
DAY = 86_400
HOUR = 3_600
TIMEOUT = 10.0


class PrometheusError(Exception):
    """Prometheus did not answer the question; the message says why, in one line."""


@dataclasses.dataclass
class Unused:
    env: str
    models: list[str]  # served no request in `days`
    days: int


def _by_model(url: str, query: str) -> dict[str, float]:
    """An instant query's value per `model` label."""
    try:
        answer = httpx.get(f"{url.rstrip('/')}/api/v1/query", params={"query": query},
                           timeout=TIMEOUT)
        answer.raise_for_status()
        result = answer.json()["data"]["result"]
        return {r["metric"]["model"]: float(r["value"][1]) for r in result
                if "model" in r.get("metric", {})}
    except httpx.HTTPError as exc:
        raise PrometheusError(f"Prometheus at {url} did not answer: "
                              f"{type(exc).__name__}: {exc}") from None
    except (ValueError, KeyError, TypeError, IndexError) as exc:
        raise PrometheusError(f"Prometheus at {url} answered something other than a "
                              f"query result ({type(exc).__name__}: {exc})") from None


def find(url: str, env: str, namespace: str, names: list[str], days: int,
         now: float | None = None) -> Unused:
    """The models of `names` known to Prometheus for all of the last `days` days that
    answered no request in them."""
    served = _by_model(url, QUERY.format(namespace=namespace, days=days))
    seen = _by_model(url, SEEN.format(namespace=namespace, days=days))
    start = (now or time.time()) - days * DAY + HOUR  # the subquery's first step, or so
    return Unused(env, sorted(n for n in names if n in seen and seen[n] <= start
                              and served.get(n, 0.0) == 0.0), days)
