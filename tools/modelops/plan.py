"""`modelops plan`: what a change does to the cluster, per environment and model.

Both sides are generated from their specs with this generator; only overlays whose
generated files differ (all of them when base/ changed) are rendered with kustomize,
which keeps a plan over hundreds of models to seconds.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import hashlib
import io
import re
import subprocess
import tarfile
import tempfile
from decimal import Decimal
from pathlib import Path

import yaml

from modelops import capacity, quantity, render, yamlemit
from modelops.generate import expected
from modelops.repo import Repo, load
from modelops.spec import ModelSpec
from modelops_catalog import unused as unused_models
from modelops_runtime import queues

_HASHED = re.compile(r"-[a-z0-9]{10}$")  # kustomize's content-hash suffix
_TREES = ("models", "platform", "base")


class PlanError(Exception):
    pass


def default_base(root: Path) -> str:
    for candidate in ("origin/main", "main"):
        proc = subprocess.run(["git", "merge-base", "HEAD", candidate], cwd=root,
                              capture_output=True, text=True)
        if proc.returncode == 0:
            return proc.stdout.strip()
    raise PlanError("no base to compare with: neither origin/main nor main exists (use --base)")


def extract(root: Path, ref: str, into: Path) -> None:
    """The spec folders of `ref`, as they were committed."""
    proc = subprocess.run(["git", "archive", "--format=tar", ref, "--",
                           *[t for t in _TREES if _tracked(root, ref, t)]],
                          cwd=root, capture_output=True)
    if proc.returncode != 0:
        raise PlanError(f"cannot read {ref!r}: {proc.stderr.decode().strip()}")
    with tarfile.open(fileobj=io.BytesIO(proc.stdout)) as archive:
        archive.extractall(into, filter="data")


def _tracked(root: Path, ref: str, folder: str) -> bool:
    return subprocess.run(["git", "cat-file", "-e", f"{ref}:{folder}"], cwd=root,
                          capture_output=True).returncode == 0


def _tree_digest(folder: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*")) if folder.is_dir() else []:
        if path.is_file():
            digest.update(path.relative_to(folder).as_posix().encode() + path.read_bytes())
    return digest.hexdigest()


def _app(path: str) -> tuple[str, str, str] | None:
    """The Argo CD Application a generated file belongs to: (its overlay folder,
    environment, model or pool name); the environment's platform is named `platform`."""
    parts = path.split("/")
    if parts[0] != "overlays" or len(parts) < 4 or parts[1] == "argocd":
        return None
    if parts[2] == "models" and len(parts) > 4:
        return "/".join(parts[:4]), parts[1], parts[3]
    if parts[2] == "platform":
        return "/".join(parts[:3]), parts[1], "platform"
    return None


def _apps(files: dict[str, str]) -> dict[str, dict[str, str]]:
    """Each Application's overlay folder -> its generated files."""
    apps: dict[str, dict[str, str]] = {}
    for path, text in files.items():
        app = _app(path)
        if app:
            apps.setdefault(app[0], {})[path] = text
    return apps


def _objects(tree: Path, bases: Path, app: str, files: dict[str, str]) -> dict[str, dict]:
    """Objects of one app by 'Kind/name', with generated names stripped of their hash."""
    if not files:
        return {}
    if not (tree / "base").exists():
        tree.mkdir(parents=True, exist_ok=True)
        (tree / "base").symlink_to(bases.resolve(), target_is_directory=True)
    for path, text in files.items():
        (tree / path).parent.mkdir(parents=True, exist_ok=True)
        (tree / path).write_text(text)
    text, error = render.kustomize(tree / app)
    if error:
        raise PlanError(f"{app}: kustomize build failed: {error}")
    objects = {}
    for obj in yaml.load_all(text, Loader=yaml.CSafeLoader):
        name = obj["metadata"]["name"]
        if obj["kind"] in ("ConfigMap", "Secret"):
            name = _HASHED.sub("", name)
        objects[f"{obj['kind']}/{name}"] = obj
    return objects


def _lines(obj: dict) -> list[str]:
    """An object as the lines a reviewer reads: a ConfigMap's files (the generated
    configs) line by line, not as one escaped string."""
    if obj["kind"] != "ConfigMap":
        return yamlemit.dump(obj).splitlines()
    files = obj.get("data") or {}
    rest = {k: v for k, v in obj.items() if k != "data"}
    rest["metadata"] = {**rest["metadata"], "name": _HASHED.sub("", rest["metadata"]["name"])}
    lines = yamlemit.dump(rest).splitlines()
    for name, text in sorted(files.items()):
        lines += [f"data {name}:", *("  " + line for line in str(text).splitlines())]
    return lines


def _diff(old: dict, new: dict) -> str:
    a, b = _lines(old), _lines(new)
    if a == b:
        return ""
    return "\n".join(difflib.unified_diff(a, b, "before", "after", lineterm="", n=2))


@dataclasses.dataclass
class AppChange:
    env: str
    name: str
    added: list[str]
    removed: list[str]
    changed: dict[str, str]  # 'Kind/name' -> unified diff
    facts: list[str]  # replicas, resources, weights that changed


def _spec_facts(env: str, old: ModelSpec | None, new: ModelSpec | None) -> list[str]:
    def describe(spec) -> dict[str, str]:
        if spec is None:
            return {}
        out = {}
        if spec.autoscaling is not None:
            out["replicas"] = f"{spec.autoscaling.minReplicas}-{spec.autoscaling.maxReplicas}"
        if spec.resources is not None:
            gpu = f", {spec.resources.gpu.count} GPU" if spec.resources.gpu else ""
            out["resources"] = f"{spec.resources.cpu} CPU, {spec.resources.memory}{gpu}"
        if isinstance(spec, ModelSpec):
            out["traffic"] = ", ".join(f"{v.name} {v.weight}%" for v in spec.versions)
            trained = [_scores(v) for v in spec.versions if v.metrics]
            if trained:
                out["holdout"] = "; ".join(trained)
            out["placement"] = spec.placement if spec.placement == "dedicated" \
                else f"pool {spec.placement.shared}"
            if spec.async_:
                out["queue"] = queues.describe(spec.async_)
        return out

    before, after = describe(old), describe(new)
    return [f"{key}: {before.get(key, '-')} -> {after.get(key, '-')}"
            for key in sorted(set(before) | set(after)) if before.get(key) != after.get(key)]


def _scores(version) -> str:
    """A trained version's holdout scores, next to the serving version's on the same rows."""
    from modelops_jobs.config import score_line

    m = version.metrics
    versus = f" (serving {m.servingVersion}: {score_line(m.serving)})" if m.servingVersion else ""
    return f"{version.name} {score_line(m.holdout)}{versus}"


@dataclasses.dataclass
class Plan:
    base: str
    removed: list[str]  # models and pools this change deletes from the cluster
    changes: list[AppChange]
    capacity: dict[str, dict[str, dict[str, str]]]  # env -> side -> totals
    unused: list[unused_models.Unused] = dataclasses.field(default_factory=list)
    unused_error: str | None = None  # why Prometheus could not say

    def to_json(self) -> dict:
        return dataclasses.asdict(self)


def _totals(repo: Repo, env: str, platform: capacity.Usage | None) -> dict[str, Decimal]:
    """What `validate` holds against the budget: the servers at min and max replicas, and
    at max also every job running; the platform's own pods at both."""
    assert repo.settings is not None
    used = [*capacity.env_usage([*repo.models.values(), *repo.pools.values()], env,
                                repo.settings.environments[env]), *([platform] if platform else [])]
    return {f: sum((Decimal(getattr(u, f)) for u in used), Decimal(0))
            for f in ("replicas_min", "replicas_max", "cpu_min", "cpu_max", "memory_min",
                      "memory_max", "gpu_min", "gpu_max")}


def _fmt(field: str, value: Decimal) -> str:
    """One unit per column, so totals compare at a glance: cores, GiB, GPUs, replicas."""
    if field.startswith("cpu"):
        return _decimal(value)
    if field.startswith("memory"):
        return _decimal(value / 2 ** 30)
    return str(int(value))


def _decimal(value: Decimal) -> str:
    """At most two decimals, no trailing zeros: 2.25, 6, 0.5."""
    text = f"{value.quantize(Decimal('0.01')):f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def _unused(repo: Repo, url: str) -> list[unused_models.Unused]:
    """Per environment, the models (and pool members) nobody asked for lately."""
    assert repo.settings is not None
    days = repo.settings.unusedModels.afterDays
    return [unused_models.find(url, env, settings.namespace, sorted(repo.models), days)
            for env, settings in repo.settings.environments.items()]


def make_plan(root: Path, base_ref: str, prometheus: str | None = None) -> Plan:
    head = load(root)
    if not head.ok:
        raise PlanError("the working tree does not validate; run `modelops validate`")
    assert head.settings is not None
    environments = list(head.settings.environments)
    with tempfile.TemporaryDirectory(prefix="modelops-plan-") as tmp:
        base_root = Path(tmp) / "base-ref"
        base_root.mkdir()
        extract(root, base_ref, base_root)
        base = load(base_root)
        if not base.ok:
            raise PlanError(f"{base_ref} does not validate, so there is nothing to compare with")
        platform = (capacity.platform_usages(base_root, base.settings),
                    capacity.platform_usages(root, head.settings))
        old_apps = _apps(expected(base))
        new_apps = _apps(expected(head))
        bases_changed = _tree_digest(base_root / "base") != _tree_digest(root / "base")
        changes = []
        for app in sorted(set(old_apps) | set(new_apps)):
            old_files, new_files = old_apps.get(app, {}), new_apps.get(app, {})
            if old_files == new_files and not bases_changed:
                continue
            old = _objects(Path(tmp) / "old", base_root / "base", app, old_files)
            new = _objects(Path(tmp) / "new", root / "base", app, new_files)
            diffs = {}
            for key in sorted(set(old) & set(new)):
                # A new ConfigMap hash in a Deployment stays visible: it means a rollout.
                diff = _diff(old[key], new[key])
                if diff:
                    diffs[key] = diff
            _, env, name = _app(app + "/kustomization.yaml")
            entries = (base.models.get(name) or base.pools.get(name),
                       head.models.get(name) or head.pools.get(name))
            facts = _spec_facts(env, *(e.envs.get(env) if e else None for e in entries))
            added, removed = sorted(set(new) - set(old)), sorted(set(old) - set(new))
            if added or removed or diffs or facts:
                changes.append(AppChange(env, name, added, removed, diffs, facts))
        # Models whose spec changed without changing any object (e.g. weights of a
        # dedicated model, which only routing reads) are still worth a line.
        for name in sorted(set(base.models) & set(head.models)):
            for env in environments:
                if any(c.env == env and c.name == name for c in changes):
                    continue
                facts = _spec_facts(env, base.models[name].envs.get(env),
                                    head.models[name].envs[env])
                if facts:
                    changes.append(AppChange(env, name, [], [], {}, facts))
    totals = {}
    for env in environments:
        before = _totals(base, env, platform[0].get(env))
        after = _totals(head, env, platform[1].get(env))
        budget = head.budget.environments.get(env) if head.budget else None
        totals[env] = {
            "before": {k: _fmt(k, v) for k, v in before.items()},
            "after": {k: _fmt(k, v) for k, v in after.items()},
            "budget": budget.model_dump() if budget else {}}
    changes.sort(key=lambda c: (environments.index(c.env), c.name))
    gone = sorted(set(base.models) - set(head.models)) + \
        sorted(set(base.pools) - set(head.pools))
    plan = Plan(base_ref, gone, changes, totals)
    if prometheus:
        try:
            plan.unused = _unused(head, prometheus)
        except unused_models.PrometheusError as exc:
            plan.unused_error = str(exc)
    return plan


def _summary(plan: Plan) -> str:
    """One line first, as a reviewer skims a PR comment: which models are added, changed
    and removed (the details follow, folded)."""
    kinds: dict[str, set[str]] = {"added": set(), "changed": set()}
    for change in plan.changes:
        if change.name == "platform":
            continue
        new = change.added and not change.changed and not change.removed
        kinds["added" if new else "changed"].add(change.name)
    kinds["changed"] -= kinds["added"] | set(plan.removed)  # a removal is no change too
    parts = [f"{len(names)} {kind} ({', '.join(f'`{n}`' for n in sorted(names))})"
             for kind, names in (("added", kinds["added"]), ("changed", kinds["changed"]),
                                 ("removed", set(plan.removed))) if names]
    return "**Models:** " + ("; ".join(parts) if parts else "none; only the platform changes")


_UNITS = (("replicas_max", "replicas"), ("cpu_max", "cores"), ("memory_max", "GiB"),
          ("gpu_max", "GPU"))


def _capacity_summary(plan: Plan) -> str:
    """The second line: what each environment can claim at peak (servers at max replicas,
    every job running), as deltas."""
    parts = []
    for env, sides in plan.capacity.items():
        before, after = sides["before"], sides["after"]
        deltas = [f"{'+' if d > 0 else ''}{_decimal(d)} {unit}" for k, unit in _UNITS
                  if (d := Decimal(after[k]) - Decimal(before[k]))]
        parts.append(f"{env} {', '.join(deltas)}" if deltas else f"{env} unchanged")
    return "**At peak:** " + "; ".join(parts)


def _cell(text: str) -> str:
    """Text from a spec (metric names, version names), inert in a Markdown table cell of a
    pull-request comment: no HTML, image, link, code span, or cell break of its own."""
    escaped = text.replace("\n", " ").replace("&", "&amp;").replace("<", "&lt;")
    for mark in ("\\", "|", "`", "[", "]", "!"):
        escaped = escaped.replace(mark, "\\" + mark)
    return escaped


def markdown(plan: Plan) -> str:
    lines = [f"## modelops plan: `{plan.base[:12]}` -> this change", ""]
    if plan.removed:
        lines += ["> [!CAUTION]",
                  f"> **This change removes {len(plan.removed)} model(s) or pool(s) from "
                  f"every environment**: {', '.join(f'`{n}`' for n in plan.removed)}. Once "
                  "merged they keep serving, their Applications out of sync, until deleted "
                  "with `argocd app delete <environment>-<name>`.", ""]
    if not plan.changes:
        lines += ["No change to any model or pool.", ""]
    else:
        lines += [_summary(plan), "", _capacity_summary(plan), ""]
    lines += _unused_lines(plan)
    for env in plan.capacity:  # every environment, in the order settings declare them
        changes = [c for c in plan.changes if c.env == env]
        if not changes:
            continue
        lines += [f"### {env}", "", "| model | objects added | changed | removed | spec |",
                  "|---|---|---|---|---|"]
        for c in changes:
            lines.append(f"| `{c.name}` | {', '.join(c.added) or '-'} | "
                         f"{', '.join(c.changed) or '-'} | {', '.join(c.removed) or '-'} | "
                         f"{'<br>'.join(map(_cell, c.facts)) or '-'} |")
        lines.append("")
        for c in changes:
            for key, diff in c.changed.items():
                lines += [f"<details><summary>{env}/{c.name}: {key}</summary>", "",
                          "```diff", diff, "```", "</details>", ""]
    lines += ["### Capacity (requests at min replicas - at peak: max replicas, every job running)",
              "",
              "| env | replicas | CPU (cores) | memory (GiB) | GPU | budget |",
              "|---|---|---|---|---|---|"]
    for env, sides in plan.capacity.items():
        b, a, budget = sides["before"], sides["after"], sides["budget"]
        pair = functools.partial(_capacity_pair, b, a)
        limit = functools.partial(_capacity_limit, budget)
        lines.append(f"| {env} | {pair('replicas')} | {pair('cpu')} | {pair('memory')} | "
                     f"{pair('gpu')} | "
                     f"{limit('cpu')} cores, {limit('memory')} GiB, {limit('gpu')} GPU |")
    return "\n".join(lines) + "\n"


def _unused_lines(plan: Plan) -> list[str]:
    """Models that answered nothing lately: candidates for removal, by pull request."""
    if plan.unused_error:
        return [f"_Unused models: not checked. {_cell(plan.unused_error)}_", ""]
    found = [u for u in plan.unused if u.models]
    if not found:
        return []
    days = found[0].days
    return [f"**Unused for {days} days** (no request; remove a model by deleting its "
            "folder in a pull request): " + "; ".join(
                f"{u.env} {', '.join(f'`{m}`' for m in u.models)}" for u in found), ""]


def _capacity_pair(before: dict, after: dict, kind: str) -> str:
    """`min-max` of one resource, with what it was when the change moves it."""
    lo, hi = f"{kind}_min", f"{kind}_max"
    text = f"{after[lo]}-{after[hi]}"
    if (before[lo], before[hi]) == (after[lo], after[hi]):
        return text
    return f"{before[lo]}-{before[hi]} -> **{text}**"


def _capacity_limit(budget: dict, kind: str) -> str:
    value = budget.get(kind)
    return "-" if value is None else _fmt(kind, quantity.parse(value))
