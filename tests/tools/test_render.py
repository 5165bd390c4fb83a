"""Every overlay builds with kustomize and every object is strictly valid and safe."""

from __future__ import annotations

import json
import math
import shutil
import subprocess

import pytest
import yaml
from conftest import REPO, copy_repo, isolated_tool, run_modelops

from modelops import crdfields, render
from modelops.repo import load


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    """Every overlay of this repository, as `modelops render --out` writes them."""
    out = tmp_path_factory.mktemp("rendered")
    count, problems = render.render(REPO, load(REPO).settings.kubernetesVersion, out=out)
    assert problems == []
    assert count > 40
    return out


def test_every_overlay_renders_and_validates(rendered):
    rendered = list(yaml.safe_load_all((rendered / "overlays/production/models/iris.yaml").read_text()))
    kinds = sorted(o["kind"] for o in rendered)
    assert kinds == sorted(["ServiceAccount", "Service", "Service", "ConfigMap", "HTTPRoute",
                            "GRPCRoute",
                            "ConfigMap", "Deployment", "Deployment", "HorizontalPodAutoscaler",
                            "HorizontalPodAutoscaler", "PodDisruptionBudget",
                            "PodDisruptionBudget", "ConfigMap", "CronJob", "CronJob",
                            # each version's queues, limits and broker user (async)
                            *["Queue", "Queue", "Policy", "User", "Permission"] * 2])
    grpc = next(o for o in rendered if o["kind"] == "GRPCRoute")  # one host per model
    assert grpc["spec"]["hostnames"] == ["iris.models.example.com"]
    *pinned, weighted = grpc["spec"]["rules"]
    assert [(r["matches"][0]["headers"][0]["value"], r["backendRefs"][0]["name"]) for r in pinned] \
        == [("v1", "iris-v1-server"), ("v2", "iris-v2-server")]
    assert [(b["name"], b["port"], b["weight"]) for b in weighted["backendRefs"]] == [
        ("iris-v1-server", 8081, 90), ("iris-v2-server", 8081, 10)]
    for obj in rendered:
        labels = obj["metadata"]["labels"]
        assert labels["app.kubernetes.io/part-of"] == "modelops"
        assert labels["modelops/model"] == "iris" and labels["modelops/team"] == "data-science"


def test_checkov_fails_no_check_on_any_rendered_manifest(rendered):
    """Skipped checks are listed, with their reasons, in .checkov.yaml and nowhere else."""
    config = (REPO / ".checkov.yaml").read_text().splitlines()
    skips = [line.split("- ")[1] for line in config if line.startswith("  - CKV")]
    for check in skips:  # each skip follows a comment that says why
        at = config.index(f"  - {check}")
        assert config[at - 1].lstrip().startswith("#"), f"{check} is skipped without a reason"
    proc = subprocess.run([str(isolated_tool("checkov", "checkov")), "--config-file",
                           str(REPO / ".checkov.yaml"), "-d", str(rendered), "--quiet",
                           "--compact", "-o", "json"], capture_output=True, text=True)
    report = json.loads(proc.stdout)
    summary = report["summary"]
    failed = [(f["check_id"], f["resource"]) for f in report["results"]["failed_checks"]]
    assert failed == [] and proc.returncode == 0, failed
    assert summary["passed"] > 1000 and summary["resource_count"] > 100
    assert summary["parsing_errors"] == 0 and summary["skipped"] == 0
    print(f"checkov: {summary['passed']} passed, 0 failed over {summary['resource_count']} "
          f"objects; skipped everywhere: {', '.join(skips)}")


def test_a_base_that_breaks_the_restricted_profile_is_caught(tmp_path):
    root = copy_repo(tmp_path)
    deployment = root / "base/model-server/deployment.yaml"
    deployment.write_text(deployment.read_text().replace("runAsNonRoot: true", "runAsNonRoot: false")
                          .replace("allowPrivilegeEscalation: false", "allowPrivilegeEscalation: true"))
    _, problems = render.render(root, "1.34")
    messages = {p.message for p in problems}
    assert "container server: must run as non-root (runAsNonRoot: true)" in messages
    assert "container server: allowPrivilegeEscalation must be false" in messages


def test_an_unknown_field_fails_strict_validation(tmp_path):
    root = copy_repo(tmp_path)
    service = root / "base/model-server/service.yaml"
    service.write_text(service.read_text().replace("  type: ClusterIP", "  type: ClusterIP\n  tipe: x"))
    _, problems = render.render(root, "1.34")
    assert any("'tipe'" in p.message and p.path.startswith("Service/") for p in problems)


def test_a_kind_without_a_schema_is_an_error(tmp_path):
    root = copy_repo(tmp_path)
    (root / "base/model-server/widget.yaml").write_text(
        "apiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: w\n")
    kustomization = root / "base/model-server/kustomization.yaml"
    kustomization.write_text(kustomization.read_text().replace("- hpa.yaml", "- hpa.yaml\n- widget.yaml"))
    _, problems = render.render(root, "1.34")
    assert any(p.message.startswith("no schema for kind Widget (example.com/v1)") for p in problems)


def test_a_broken_kustomization_is_reported_not_raised(tmp_path):
    root = copy_repo(tmp_path)
    (root / "base/model-server/hpa.yaml").unlink()
    _, problems = render.render(root, "1.34")
    assert problems and all(p.message.startswith("kustomize build failed") for p in problems)


@pytest.mark.parametrize("file, field, typo, culprit", [
    ("overlays/production/models/iris/route.yaml", "      weight: 90", "      wieght: 90",
     "GRPCRoute/iris HTTPRoute/iris"),
    ("overlays/production/models/iris/route.yaml", "sectionName: grpc", "sectionNam: grpc",
     "GRPCRoute/iris"),
    ("overlays/argocd/models.yaml", "preserveResourcesOnDeletion",
     "preserveResourcesOnDelete", "ApplicationSet/models"),
])
def test_a_misspelt_custom_resource_field_fails_the_kept_schema(tmp_path, file, field, typo,
                                                                culprit):
    root = copy_repo(tmp_path)
    path = root / file
    path.write_text(path.read_text().replace(field, typo))
    _, problems = render.render(root, "1.34")
    assert [p.path for p in problems] == culprit.split()
    assert typo.strip().split(":")[0] in problems[0].message


KEPT = sorted((REPO / "schemas/crds").glob("*.json"))


@pytest.mark.parametrize("kept", KEPT, ids=[k.stem for k in KEPT])
def test_each_kept_crd_schema_follows_its_named_upstream_release(kept):
    """Every field a kept schema allows exists, with that type, in the upstream release it
    names (the index of that release's CRD is schemas/crds/upstream/<kept>.fields)."""
    upstream = json.loads(kept.read_text())["x-upstream"]
    header, _, _ = crdfields.read_index(kept)
    assert header.startswith(f"# {upstream['repository']} {upstream['release']} {upstream['crd']}")
    assert crdfields.unknown_fields(kept) == []
    if upstream["repository"] == "argoproj/argo-cd":  # the release the install pins
        install = (REPO / "platform/argocd/install/kustomization.yaml").read_text()
        assert f"/argo-cd/{upstream['release']}/manifests/install.yaml" in install


def test_a_field_the_upstream_release_lacks_is_caught(tmp_path):
    """Gateway API v1.6 moved listener TLS validation out of the listener: a kept schema
    that still allows the old field, or types a field otherwise, fails."""
    source = REPO / "schemas/crds/gateway_gateway.networking.k8s.io_v1.json"
    copy = tmp_path / "crds" / source.name
    copy.parent.mkdir()
    (copy.parent / "upstream").mkdir()
    shutil.copy(crdfields.index_path(source), crdfields.index_path(copy))
    kept = json.loads(source.read_text())
    tls = kept["$defs"]["listener"]["properties"]["tls"]["properties"]
    tls["frontendValidation"] = {"type": "object", "properties": {
        "caCertificateRefs": {"type": "array", "items": {"type": "object"}}}}
    tls["mode"] = {"type": "integer"}
    copy.write_text(json.dumps(kept))
    assert crdfields.unknown_fields(copy) == [
        "spec.listeners[].tls.frontendValidation (object)",
        "spec.listeners[].tls.frontendValidation.caCertificateRefs (array)",
        "spec.listeners[].tls.mode (integer)"]


def _rendered(root) -> list[dict]:
    """Every object of every overlay, as kustomize builds them."""
    objects = []
    for overlay in render.roots(root):
        text, error = render.kustomize(overlay)
        assert error is None, error
        objects += [o for o in yaml.safe_load_all(text) if o and o.get("metadata")]
    return objects


def _pod_template(obj: dict) -> dict | None:
    spec = obj.get("spec", {})
    return spec.get("template") or spec.get("jobTemplate", {}).get("spec", {}).get("template")


def stalled_drains(objects: list[dict]) -> list[str]:
    """The disruption controller counts every pod a budget selects; a pod whose owner
    cannot scale (a Job's) under a maxUnavailable budget allows no eviction, and the
    node's drain hangs."""
    problems = []
    for budget in (o for o in objects if o["kind"] == "PodDisruptionBudget"):
        wanted = budget["spec"]["selector"]["matchLabels"]
        owners = {(o["kind"], o["metadata"]["name"]) for o in objects
                  if (template := _pod_template(o)) is not None
                  and o["metadata"].get("namespace") == budget["metadata"]["namespace"]
                  and wanted.items() <= template["metadata"]["labels"].items()}
        if not owners or {kind for kind, _ in owners} != {"Deployment"}:
            problems.append(f"budget {budget['metadata']['name']} selects {sorted(owners)}")
    return problems


def _job_counts(job: dict, exit_code: int, conditions: set[str]) -> str:
    """What the Job controller does with a failed pod, by its podFailurePolicy (rules in
    order; none matching: the failure counts against the backoff limit)."""
    for rule in (job.get("podFailurePolicy") or {}).get("rules", []):
        codes = rule.get("onExitCodes")
        if codes and (exit_code in codes["values"]) == (codes["operator"] == "In"):
            return rule["action"]
        if any(c["type"] in conditions and c["status"] == "True"
               for c in rule.get("onPodConditions", [])):
            return rule["action"]
    return "Count"


def evictions_that_fail_jobs(objects: list[dict]) -> list[str]:
    """A node drain evicted the weekly training's only try (backoffLimit 0) and a batch
    worker's retries; a replacement pod could start beside the one still stopping."""
    problems = []
    for cron in (o for o in objects if o["kind"] == "CronJob"):
        job, name = cron["spec"]["jobTemplate"]["spec"], cron["metadata"]["name"]
        if _job_counts(job, 137, {"DisruptionTarget"}) != "Ignore":
            problems.append(f"{name}: an eviction counts as a failure")
        if _job_counts(job, 1, set()) != "Count":
            problems.append(f"{name}: a failed run does not count")
        if job.get("podReplacementPolicy") != "Failed":
            problems.append(f"{name}: a replacement may overlap the pod it replaces")
    return problems


def refused_at_peak(objects: list[dict]) -> list[str]:
    """Quota admission as the API server does it, at the worst moment: every server at its
    HPA's (or KEDA's) max, each rolling out (its surge pods), every job's pods running, the
    platform's pods."""
    from decimal import Decimal

    from modelops import quantity

    problems = []
    for quota_obj in (o for o in objects if o["kind"] == "ResourceQuota"):
        namespace = quota_obj["metadata"]["namespace"]
        mine = [o for o in objects if o["metadata"].get("namespace") == namespace]
        peaks = {o["spec"]["scaleTargetRef"]["name"]: o["spec"]["maxReplicas"]
                 for o in mine if o["kind"] == "HorizontalPodAutoscaler"}
        peaks |= {o["spec"]["scaleTargetRef"]["name"]: o["spec"].get("maxReplicaCount", 100)
                  for o in mine if o["kind"] == "ScaledObject"}  # KEDA's default max: 100
        used = {"cpu": Decimal(0), "memory": Decimal(0), "nvidia.com/gpu": Decimal(0)}
        for obj in mine:
            if obj["kind"] == "Deployment":
                replicas = peaks.get(obj["metadata"]["name"], obj["spec"].get("replicas", 1))
                surge = obj["spec"].get("strategy", {}).get("rollingUpdate", {}).get(
                    "maxSurge", "25%")  # Kubernetes' default, rounded up
                pods = replicas + (surge if isinstance(surge, int) else
                                   math.ceil(replicas * int(surge.rstrip("%")) / 100))
                pod = obj["spec"]["template"]["spec"]
            elif obj["kind"] == "CronJob":
                job = obj["spec"]["jobTemplate"]["spec"]
                pods, pod = job.get("parallelism", 1), job["template"]["spec"]
            else:
                continue
            for container in pod["containers"]:
                for resource, amount in container["resources"]["requests"].items():
                    used[resource] += quantity.parse(str(amount)) * pods
        for resource, amount in used.items():
            allowed = quantity.parse(quota_obj["spec"]["hard"].get(f"requests.{resource}", "0"))
            if amount > allowed:
                problems.append(f"{namespace}: {resource} {amount} over the quota's {allowed}")
    return problems


def _pool_member_with_a_batch_job(root) -> None:
    wine = root / "models/wine/model.yaml"
    wine.write_text(wine.read_text().replace("\nspec:\n", "\nspec:\n"
        "  datasets: [{name: wine-to-score, path: datasets/wine-to-score}]\n"
        "  batch: {input: wine-to-score, output: wine-scored, features: [a, b]}\n", 1))
    assert run_modelops("generate", cwd=root).returncode == 0


def test_day_two_a_drain_finishes_evictions_retry_and_rollouts_at_peak_are_admitted(tmp_path):
    """Each budget selects its server's Deployment pods and nothing else, also in a pool
    whose member runs a batch job (production's pool has a budget); an evicted job pod is
    replaced, not counted; every pod fits the quota at peak with each server rolling."""
    root = copy_repo(tmp_path)
    _pool_member_with_a_batch_job(root)
    objects = _rendered(root)
    assert len([o for o in objects if o["kind"] == "PodDisruptionBudget"]) >= 3
    assert any(o["kind"] == "CronJob" and "wine" in o["metadata"]["name"] for o in objects)
    assert stalled_drains(objects) == []
    assert evictions_that_fail_jobs(objects) == []
    assert refused_at_peak(objects) == []


BROKEN = [  # (finding, file, what it said before the fix, what it says now, the rule, expected)
    ("3: a pool's budget selects its members' Job pods",
     "overlays/production/models/tabular/pdb.yaml", "      modelops/pool: tabular\n",
     "      app.kubernetes.io/component: model-pool\n      modelops/pool: tabular\n",
     stalled_drains, "budget tabular-server selects [('CronJob', 'tabular-wine-batch')"),
    ("5: an eviction fails the weekly training", "base/training-job/cronjob.yaml",
     "", "      podFailurePolicy:", evictions_that_fail_jobs,
     "iris-train: an eviction counts as a failure"),
    ("8: the quota equals the peak", "overlays/staging/platform/namespace/resources.yaml",
     '    requests.nvidia.com/gpu: "2"\n', '    requests.nvidia.com/gpu: "3"\n',
     refused_at_peak, "models-staging: nvidia.com/gpu 3 over the quota's 2"),
]


@pytest.mark.parametrize("finding, file, before, now, rule, expected", BROKEN,
                         ids=[b[0].split(":")[0] for b in BROKEN])
def test_each_finding_fails_its_rule_on_a_broken_copy(tmp_path, finding, file, before, now,
                                                       rule, expected):
    root = copy_repo(tmp_path)
    _pool_member_with_a_batch_job(root)
    path = root / file
    text = path.read_text()
    assert now in text
    if before:
        path.write_text(text.replace(now, before))
    else:  # the block the fix added, taken out again
        start = text.index(now)
        end = text.index("      podReplacementPolicy:", start)
        end = text.index("\n", text.index("\n", end) + 1) + 1  # and its comment line
        path.write_text(text[:start] + text[end:])
    problems = rule(_rendered(root))
    assert any(p.startswith(expected) for p in problems), (finding, problems)


def test_a_jobs_config_keeps_its_name_when_it_changes(tmp_path):
    """A content-hashed name is pruned at the next sync, and a retried pod of a Job made
    before it waits hours for it: the jobs' ConfigMap has one name, whatever it holds."""
    root = copy_repo(tmp_path)

    def names() -> tuple[list[str], list[str]]:
        text, error = render.kustomize(root / "overlays/production/models/iris")
        assert error is None, error
        objects = list(yaml.safe_load_all(text))
        maps = [o["metadata"]["name"] for o in objects
                if o["kind"] == "ConfigMap" and "jobs" in o["metadata"]["name"]]
        mounted = [v["configMap"]["name"] for o in objects if o["kind"] == "CronJob"
                   for v in o["spec"]["jobTemplate"]["spec"]["template"]["spec"]["volumes"]
                   if "configMap" in v]
        return maps, mounted

    before = names()
    assert before == (["iris-jobs"], ["iris-jobs", "iris-jobs"])
    spec = root / "models/iris/model.yaml"
    spec.write_text(spec.read_text().replace("parameters: {max_depth: 3}",
                                             "parameters: {max_depth: 4}"))
    assert run_modelops("generate", cwd=root).returncode == 0
    assert names() == before


