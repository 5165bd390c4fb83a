"""Checks that need more than one field or more than one file."""

from __future__ import annotations

import math
import re
from collections import Counter
from pathlib import PurePosixPath

from modelops import capacity, names
from modelops.capacity import CapacityBudget
from modelops.diagnostics import Diagnostic, format_path
from modelops.located import closest
from modelops.settings import EnvironmentSettings, Settings
from modelops.spec import ModelDocument, ModelSpec
from modelops.specfile import SpecFile
from modelops.yamlload import Document, Loc
from modelops_runtime.config import LOADS_ARTIFACT

_SECRET_NAME = re.compile(
    r"(PASSW(OR)?D|(^|_)PASS($|_)|(^|_)PWD($|_)|SECRET|TOKEN|API_?KEY|ACCESS_?KEY|PRIVATE_?KEY"
    r"|CREDENTIAL|(^|_)DSN($|_)|CONN(ECTION)?_?STR)", re.IGNORECASE)
_SECRET_VALUE = re.compile(
    r"(AKIA[0-9A-Z]{16}|gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{30,}"
    r"|glpat-[A-Za-z0-9_-]{20,}|xox[abpr]-[A-Za-z0-9-]{10,}|sk-[A-Za-z0-9_-]{20,}"
    r"|[sr]k_(live|test)_[A-Za-z0-9]{16,}|AIza[0-9A-Za-z_-]{35}|hf_[A-Za-z0-9]{30,}"
    r"|npm_[A-Za-z0-9]{36}|-----BEGIN [A-Z ]*PRIVATE KEY-----"
    r"|eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}"
    r"|AccountKey=[A-Za-z0-9+/=]{20,}"  # Azure storage connection strings
    r"|[a-z][a-z0-9+.-]*://[^/\s:@]+:[^/\s@]+@)",  # URLs with user:password@
    re.IGNORECASE)


_SECRET_ADVICE = ("env %s looks like a credential; never commit it: use "
                  "valueFrom.secretKeyRef to read it from a Kubernetes Secret")


def _entropy(text: str) -> float:
    counts = Counter(text)
    return -sum(n / len(text) * math.log2(n / len(text)) for n in counts.values())


def looks_secret(name: str, value: str) -> bool:
    """A literal env value that is, or is named like, a credential."""
    if not value:
        return False
    if _SECRET_NAME.search(name) or _SECRET_VALUE.search(value):
        return True
    # Long random-looking strings (keys, tokens) but not paths, URLs or prose.
    return (len(value) >= 32 and " " not in value and "/" not in value
            and _entropy(value) > 4.0)


class _Reporter:
    def __init__(self) -> None:
        self.out: list[Diagnostic] = []

    def at(self, entry: SpecFile, loc: Loc, message: str, hint: str = "",
           key: bool = False) -> None:
        line, col = entry.doc.where(loc, key=key)
        self.out.append(Diagnostic(entry.file, line, col, format_path(loc), message, hint))


def _env_loc(entry: SpecFile, env: str, field: str) -> Loc:
    """Where the value of `field` in environment `env` was written."""
    overrides = entry.doc.data["spec"].get("environments") or {}
    if field in (overrides.get(env) or {}):
        return ("spec", "environments", env, field)
    return ("spec", field)


def cross_file(entries: list[SpecFile], settings: Settings | None,
               budget: tuple[CapacityBudget, Document] | None,
               platform: dict[str, capacity.Usage] | None = None) -> list[Diagnostic]:
    report = _Reporter()
    unique: dict[str, SpecFile] = {}
    for entry in entries:
        kind = "Model" if isinstance(entry.obj, ModelDocument) else "Pool"
        path = PurePosixPath(entry.file)
        expected = f"models/{entry.name}/{'model.yaml' if kind == 'Model' else 'pool.yaml'}"
        if entry.file != expected:
            report.at(entry, ("metadata", "name"),
                      f"a {kind} named {entry.name!r} must live at {expected}, not {path}")
        if entry.name in unique:
            report.at(entry, ("metadata", "name"),
                      f"name {entry.name!r} is already used by {unique[entry.name].file}",
                      key=False)
        else:
            unique[entry.name] = entry
    _check_object_names(report, [e for e in entries if unique.get(e.name) is e])

    pools = {e.name: e for e in entries if not isinstance(e.obj, ModelDocument)}
    used_pools: set[str] = set()
    for entry in entries:
        if isinstance(entry.obj, ModelDocument):
            _check_model(report, entry, pools, used_pools, settings)
    for name, pool in sorted(pools.items()):
        for spec in pool.envs.values():
            for i, var in enumerate(spec.env):
                if var.value is not None and looks_secret(var.name, var.value):
                    report.at(pool, ("spec", "env", i, "value"), _SECRET_ADVICE % var.name)
        if name not in used_pools:
            report.at(pool, ("metadata", "name"),
                      f"pool {name!r} has no models: place a model in it with "
                      f"`placement: {{shared: {name}}}`, or delete it")

    _check_batch_outputs(report, [e for e in entries if isinstance(e.obj, ModelDocument)])
    if settings is not None:
        _check_broker_prerequisite(report, entries, settings)
        _check_sleepers(report, entries, settings)
    for env in settings.environments if settings is not None else ():
        if budget is not None:
            _check_budget(report, entries, budget, env, (platform or {}).get(env),
                          settings.environments[env])
    return report.out


BROKER_API = "rabbitmq.com/v1beta1"


def _check_broker_prerequisite(report: _Reporter, entries: list[SpecFile],
                               settings: Settings) -> None:
    """A model with `async` needs RabbitMQ's operators in the cluster: said at its `async`,
    in the pull request, rather than by an Application that never syncs."""
    if BROKER_API in settings.prerequisites:
        return
    for entry in entries:
        for env in settings.environments:
            spec = entry.envs.get(env)
            if isinstance(spec, ModelSpec) and spec.async_:
                report.at(entry, _env_loc(entry, env, "async"),
                          f"asynchronous requests need RabbitMQ's Cluster and Messaging "
                          f"Topology Operators in the cluster: install them and add "
                          f"{BROKER_API} to `prerequisites` in platform/settings.yaml",
                          key=True)
                break


SCALER_API = "keda.sh/v1alpha1"


def _check_sleepers(report: _Reporter, entries: list[SpecFile], settings: Settings) -> None:
    """A model at zero replicas must have something to wake it (its queue), and KEDA in
    the cluster to do the waking: said at its minReplicas, once per spec."""
    for entry in entries:
        for env in settings.environments:
            spec = entry.envs.get(env)
            if not (isinstance(spec, ModelSpec) and spec.autoscaling
                    and spec.autoscaling.sleeps):
                continue
            written = (entry.doc.data["spec"].get("environments") or {}).get(env) or {}
            loc = (("spec", "environments", env) if "minReplicas" in (
                written.get("autoscaling") or {}) else ("spec",)) + ("autoscaling",
                                                                    "minReplicas")
            if not spec.async_:
                report.at(entry, loc, f"minReplicas 0 (in {env}) needs `async`: a model at "
                          "zero replicas is woken by the requests waiting in its queue, and "
                          "CPU use cannot wake what is not running; add `async: {}` or keep "
                          "minReplicas at 1 or more")
            elif SCALER_API not in settings.prerequisites:
                report.at(entry, loc, f"minReplicas 0 (in {env}) needs KEDA in the cluster to "
                          f"scale the model from and to zero: install it and add "
                          f"{SCALER_API} to `prerequisites` in platform/settings.yaml")
            else:
                continue
            break


def _check_batch_outputs(report: _Reporter, models: list[SpecFile]) -> None:
    """A batch job writes only a dataset its own spec owns: never one that a model's
    prediction logs feed, that a model reads, or that another batch job writes."""
    owners: dict[str, str] = {}  # dataset -> what else claims it
    for entry in models:
        for spec in entry.envs.values():
            assert isinstance(spec, ModelSpec)
            owners.setdefault(spec.logging.dataset or entry.name,
                              f"the prediction logs of {entry.name!r}")
            for declared in spec.datasets:
                top = PurePosixPath(declared.path).parts[1:2]
                if top:
                    owners.setdefault(top[0], f"a dataset {entry.name!r} reads")
    writers: dict[str, str] = {}
    for entry in models:
        spec = entry.obj.spec
        assert isinstance(spec, ModelSpec)
        if spec.batch is None:
            continue
        output = spec.batch.output
        claim = owners.get(output) or writers.get(output)
        if claim:
            report.at(entry, ("spec", "batch", "output"),
                      f"batch.output {output!r} is {claim}; a batch job writes a dataset of "
                      f"its own")
        writers.setdefault(output, f"written by the batch job of {entry.name!r}")


def _object_names(entry: SpecFile) -> set[tuple[str, str]]:
    if not isinstance(entry.obj, ModelDocument):
        return names.pool_objects(entry.name)
    spec = entry.obj.spec
    placement = spec.placement
    jobs = names.job_objects(entry.name, None if placement == "dedicated" else placement.shared,
                             spec.training is not None, spec.batch is not None)
    if placement != "dedicated":
        return jobs
    versions = {v.name for spec in entry.envs.values() for v in spec.versions}
    return jobs | names.dedicated_objects(entry.name, sorted(versions))


def _check_object_names(report: _Reporter, entries: list[SpecFile]) -> None:
    """No spec may make an object (kind and name) that the platform or another spec makes."""
    owners: dict[tuple[str, str], str] = dict(names.PLATFORM)
    for entry in sorted(entries, key=lambda e: e.name):
        kind = "model" if isinstance(entry.obj, ModelDocument) else "pool"
        made = _object_names(entry)
        clashes = sorted(key for key in made if key in owners)
        if clashes:
            (what, name), = clashes[:1]
            report.at(entry, ("metadata", "name"),
                      f"the {kind} {entry.name!r} would make the {what} {name!r}, which "
                      f"{owners[(what, name)]} already makes in the same namespace; choose "
                      "another name")
        for key in made:
            owners.setdefault(key, f"the {kind} {entry.name!r} ({entry.file})")


def _check_model(report: _Reporter, entry: SpecFile, pools: dict[str, SpecFile],
                 used_pools: set[str], settings: Settings | None) -> None:
    raw_spec = entry.doc.data["spec"]
    found: dict[tuple[Loc, str], list[str]] = {}  # (where, message) -> environments

    def problem(env: str, loc: Loc, message: str) -> None:
        found.setdefault((loc, message), []).append(env)

    for env, spec in entry.envs.items():
        assert isinstance(spec, ModelSpec)
        where = _env_loc(entry, env, "versions")
        names = [v.name for v in spec.versions]
        for i, name in enumerate(names):
            if name in names[:i]:
                problem(env, where + (i, "name"), f"version {name!r} is listed twice")
        if len(joined := ".".join(names)) > 63:
            problem(env, where, f"the versions' names joined ({joined!r}, {len(joined)} "
                    "characters) label the model's Argo CD Application, which allows 63: "
                    "remove retired versions or use shorter names")
        total = sum(v.weight for v in spec.versions)
        if total != 100:
            weights = " + ".join(f"{v.name} {v.weight}" for v in spec.versions)
            problem(env, where, f"traffic weights must sum to 100, got {total} ({weights})")
        if spec.runtime in LOADS_ARTIFACT:
            for i, version in enumerate(spec.versions):
                if not version.artifact:
                    problem(env, where + (i,), f"runtime {spec.runtime!r} needs an artifact "
                            f"for version {version.name!r}")
        stores = settings.environments if settings is not None else {}
        for i, version in enumerate(spec.versions):
            if (version.artifact or "").startswith("s3://") and env in stores \
                    and stores[env].objectStore is None:
                problem(env, where + (i, "artifact"), "an s3:// artifact needs an objectStore "
                        "({bucket, endpoint, region, credentialsSecret}) for the environment "
                        "in platform/settings.yaml")
        reference = spec.logging.reference
        if reference and reference not in {d.name for d in spec.datasets}:
            known = sorted(d.name for d in spec.datasets)
            problem(env, _env_loc(entry, env, "logging") + ("reference",),
                    f"reference {reference!r} is not one of this model's datasets "
                    f"({', '.join(known) or 'none declared'})")
        if spec.async_ and spec.async_.prefetch > spec.concurrency:
            problem(env, _env_loc(entry, env, "async") + ("prefetch",),
                    f"prefetch {spec.async_.prefetch} is more than concurrency "
                    f"({spec.concurrency}): a replica would take requests from the queue "
                    "that its own limit then refuses")
        _check_jobs(spec, entry.name, lambda loc, message, env=env: problem(
            env, _env_loc(entry, env, loc[0]) + loc[1:], message))
        for i, var in enumerate(spec.env):
            if var.value is not None and looks_secret(var.name, var.value):
                problem(env, _env_loc(entry, env, "env") + (i, "value"),
                        _SECRET_ADVICE % var.name)
    # A problem every environment shares is reported once, without naming them.
    for (loc, message), envs in found.items():
        shared = len(envs) == len(entry.envs) and loc[:2] != ("spec", "environments")
        prefix = "" if shared else "".join(f"in {env}: " for env in envs)
        report.at(entry, loc, prefix + message, key=loc[-1] == "versions")
    placement = entry.obj.spec.placement
    if placement == "dedicated":
        return
    pool = placement.shared
    used_pools.add(pool)
    if pool not in pools:
        report.at(entry, ("spec", "placement", "shared"),
                  f"pool {pool!r} does not exist (no models/{pool}/pool.yaml)",
                  closest(pool, sorted(pools)))
    for field in ("resources", "autoscaling", "env"):
        places = [("spec", field)] if field in raw_spec else []
        for env, override in (raw_spec.get("environments") or {}).items():
            if override and field in override:
                places.append(("spec", "environments", env, field))
        why = " (the pool's one process runs every member's code)" if field == "env" else ""
        for loc in places:
            report.at(entry, loc, f"{field} of a shared model are set by its pool {pool!r}"
                      f"{why}: set them in models/{pool}/pool.yaml", key=True)


def _check_jobs(spec: ModelSpec, model: str, problem) -> None:
    """Training and batch blocks name datasets and versions that exist."""
    names = sorted(d.name for d in spec.datasets)
    logged = spec.logging.dataset or model if spec.logging.enabled else None
    if spec.training:
        for i, source in enumerate(spec.training.inputs):
            if source.dataset not in names and source.dataset != logged:
                known = names + ([logged] if logged else [])
                problem(("training", "inputs", i, "dataset"),
                        f"training input {source.dataset!r} is neither one of datasets nor "
                        f"the dataset of its prediction logs ({', '.join(known) or 'none'})")
    if spec.batch:
        if spec.batch.input not in names:
            problem(("batch", "input"), f"batch.input {spec.batch.input!r} is not one of "
                    f"datasets ({', '.join(names) or 'none declared'})")
        versions = [v.name for v in spec.versions]
        if spec.batch.version and spec.batch.version not in versions:
            problem(("batch", "version"), f"batch.version {spec.batch.version!r} is not one "
                    f"of the versions ({', '.join(versions)})")
        if not spec.batch.features and not spec.training:
            problem(("batch",), "batch.features is needed when there is no training block")


def _check_budget(report: _Reporter, entries: list[SpecFile],
                  loaded: tuple[CapacityBudget, Document], env: str,
                  platform: capacity.Usage | None, settings: EnvironmentSettings) -> None:
    budget, doc = loaded

    def add(loc: Loc, message: str) -> None:
        line, col = doc.where(loc, key=True)
        report.out.append(Diagnostic(doc.file, line, col, format_path(loc), message))

    if env not in budget.environments:
        add(("environments",), f"environment {env!r} has no budget")
        return
    used = capacity.env_usage(entries, env, settings)
    for problem in capacity.over_budget(budget.environments[env],
                                        used + ([platform] if platform else [])):
        add(("environments", env), problem)
    for team, envs in sorted(budget.teams.items()):
        if env in envs:
            for problem in capacity.over_budget(envs[env], [u for u in used if u.team == team]):
                add(("teams", team, env), f"team {team}: {problem}")
