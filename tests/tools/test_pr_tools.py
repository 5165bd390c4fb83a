"""The pull-request tools: modelops new, test and plan, as a data scientist uses them."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from pathlib import Path

import pytest
import yaml
from conftest import run_modelops


@pytest.fixture
def clone(fresh_copy) -> Path:
    """The examples' repository committed on main, with the example artifacts."""
    return fresh_copy


def test_a_new_python_model_passes_its_test_and_shows_up_in_the_plan(clone):
    created = run_modelops("new", "churn", "--runtime", "python", "--team", "growth", cwd=clone)
    assert created.returncode == 0, created.stderr
    assert (clone / "models/churn/model.py").is_file()
    assert (clone / "models/churn/model.yaml").read_text().startswith(
        "# yaml-language-server: $schema=../../schemas/model.schema.json")
    tested = run_modelops("test", "churn", cwd=clone)
    assert tested.returncode == 0 and tested.stdout.startswith("ok      churn"), tested.stderr

    plan = json.loads(run_modelops("plan", "--base", "HEAD", "-o", "json", cwd=clone).stdout)
    assert {(c["env"], c["name"]) for c in plan["changes"]} == {
        ("staging", "churn"), ("production", "churn"),
        ("staging", "platform"), ("production", "platform")}  # its catalog lists the new model
    listing = next(c for c in plan["changes"] if c["name"] == "platform")
    assert "+  name: churn" in listing["changed"]["ConfigMap/catalog"] or \
        "name: churn" in listing["changed"]["ConfigMap/catalog"]
    added = next(c for c in plan["changes"] if c["env"] == "production" and c["name"] == "churn")
    assert added["added"] == ["ConfigMap/churn-v1-config", "Deployment/churn-v1-server",
                              "GRPCRoute/churn", "HTTPRoute/churn",
                              "HorizontalPodAutoscaler/churn-v1-server",
                              "Service/churn-v1-server", "ServiceAccount/churn"]
    assert added["changed"] == {} and added["removed"] == []
    staging = plan["capacity"]["staging"]  # the scaffold asks 250m CPU, 1-3 replicas
    # at peak: servers 6 cores, iris's training and 2 batch pods 3, catalog and compactor
    # 0.55, the broker's one node 0.5 (iris takes asynchronous requests), the front door's
    # 4 replicas 1 (digits sleeps: 0 of its cores at min, the front door's 2 replicas 0.5)
    assert staging["before"]["cpu_max"] == "11.05" and staging["after"]["cpu_max"] == "11.8"
    assert staging["before"]["cpu_min"] == "2.8" and staging["after"]["cpu_min"] == "3.05"

    markdown = run_modelops("plan", "--base", "HEAD", cwd=clone).stdout
    assert "| `churn` | ConfigMap/churn-v1-config, Deployment/churn-v1-server" in markdown
    assert markdown.splitlines()[2] == "**Models:** 1 added (`churn`)"
    assert markdown.splitlines()[4] == ("**At peak:** staging +3 replicas, +0.75 cores, "
                                        "+1.5 GiB; production +3 replicas, +0.75 cores, +1.5 GiB")
    assert "| staging | 7-19 -> **8-22** | 2.8-11.05 -> **3.05-11.8** | 4.22-16.09 -> **4.72-17.59** |" \
        in markdown  # one unit per column: replicas, cores, GiB


def test_a_queue_limit_change_edits_the_policy_and_shows_in_the_plan(clone):
    spec = clone / "models/iris/model.yaml"
    spec.write_text(spec.read_text().replace("    maxAttempts: 3\n", "    maxAttempts: 5\n"))
    plan = json.loads(run_modelops("plan", "--base", "HEAD", "-o", "json", cwd=clone).stdout)
    iris = next(c for c in plan["changes"] if c["name"] == "iris" and c["env"] == "production")
    assert iris["added"] == [] and iris["removed"] == []  # the queues stay, with their requests
    assert {"Policy/iris-v1-limits", "Policy/iris-v2-limits"} <= set(iris["changed"])
    assert not [key for key in iris["changed"] if key.startswith(("Queue/", "User/"))]
    assert "+    delivery-limit: 4" in iris["changed"]["Policy/iris-v1-limits"]
    assert iris["facts"] == ["queue: 3 attempts, at most 10000 waiting, 600 s to start -> "
                             "5 attempts, at most 10000 waiting, 600 s to start"]


def test_a_canary_weight_change_changes_only_the_traffic(clone):
    spec = clone / "models/iris/model.yaml"
    spec.write_text(spec.read_text().replace("weight: 90", "weight: 75").replace("weight: 10", "weight: 25"))
    plan = json.loads(run_modelops("plan", "--base", "HEAD", "-o", "json", cwd=clone).stdout)
    iris = [(c["env"], c["added"], list(c["changed"]), c["removed"], c["facts"])
            for c in plan["changes"] if c["name"] == "iris"]
    assert iris == [(env, [], ["GRPCRoute/iris", "HTTPRoute/iris"], [],
                     ["traffic: v1 90%, v2 10% -> v1 75%, v2 25%"])
                    for env in ("staging", "production")]  # exactly the routes of iris
    diff = next(c for c in plan["changes"] if c["name"] == "iris")["changed"]["HTTPRoute/iris"]
    assert [line for line in diff.splitlines() if line[:1] in "+-" and line[:3] not in ("+++", "---")] \
        == ["-      weight: 90", "+      weight: 75", "-      weight: 10", "+      weight: 25"]
    others = {(c["env"], c["name"], tuple(c["changed"])) for c in plan["changes"] if c["name"] != "iris"}
    assert others == {(env, "platform", ("ConfigMap/catalog", "Deployment/catalog"))
                      for env in ("staging", "production")}  # the page shows the new weights
    assert plan["capacity"]["production"]["before"] == plan["capacity"]["production"]["after"]

    markdown = run_modelops("plan", "--base", "HEAD", cwd=clone).stdout
    assert max(len(line) for line in markdown.splitlines()) <= 200
    assert markdown.splitlines()[2:5] == [
        "**Models:** 1 changed (`iris`)", "",
        "**At peak:** staging unchanged; production unchanged"]
    folded = re.findall(r"<summary>(.*)</summary>", markdown)
    assert folded == [f"{env}/{name}: {key}" for env in ("staging", "production")
                      for name, key in (("iris", "GRPCRoute/iris"), ("iris", "HTTPRoute/iris"),
                                        ("platform", "ConfigMap/catalog"),
                                        ("platform", "Deployment/catalog"))]
    catalog = markdown.split("<summary>staging/platform: ConfigMap/catalog</summary>")[1]
    changed = [line for line in catalog.split("</details>")[0].splitlines()
               if line.startswith(("+", "-")) and line[:3] not in ("+++", "---")]
    assert changed == ["-      weight: 90", "+      weight: 75", "-      weight: 10", "+      weight: 25"]


def test_a_pool_change_shows_the_object_diff(clone):
    pool = clone / "models/tabular/pool.yaml"
    pool.write_text(pool.read_text().replace("memory: 1Gi", "memory: 2Gi"))
    plan = json.loads(run_modelops("plan", "--base", "HEAD", "-o", "json", cwd=clone).stdout)
    change = next(c for c in plan["changes"] if c["env"] == "production" and c["name"] == "tabular")
    # its members load on demand, kept under the memory its server.yaml names
    assert list(change["changed"]) == ["ConfigMap/tabular-config", "Deployment/tabular-server"]
    assert "-            memory: 1Gi\n+            memory: 2Gi" in change["changed"]["Deployment/tabular-server"]
    assert "-  memoryBytes: 1073741824\n+  memoryBytes: 2147483648" in \
        change["changed"]["ConfigMap/tabular-config"]
    assert change["facts"] == ["resources: 500m CPU, 1Gi -> 500m CPU, 2Gi"]


def test_new_python_model_with_an_artifact_declares_its_tensors(clone, tmp_path):
    artifact = tmp_path / "weights.npy"
    artifact.write_bytes(b"weights")
    created = run_modelops("new", "churn", "--runtime", "python", "--artifact", str(artifact),
                           cwd=clone)
    assert created.returncode == 0, created.stderr
    spec = yaml.safe_load((clone / "models/churn/model.yaml").read_text())["spec"]
    assert spec["versions"][0]["artifact"] == "pvc://artifacts/churn/v1/model.npy"
    assert spec["versions"][0]["sha256"] == hashlib.sha256(b"weights").hexdigest()
    assert (clone / "var/volume/artifacts/churn/v1/model.npy").read_bytes() == b"weights"
    assert spec["inputs"] == [{"name": "input-0", "datatype": "FP64", "shape": [-1, 3]}]
    assert "self.artifact_path" in (clone / "models/churn/model.py").read_text()
    tested = run_modelops("test", "churn", cwd=clone)
    assert tested.returncode == 0, tested.stderr
    custom = run_modelops("new", "box", "--runtime", "custom", "--artifact", str(artifact),
                          cwd=clone)
    assert custom.returncode == 1 and "a custom image brings its own files" in custom.stderr


def test_new_refuses_to_overwrite_and_checks_the_name(clone):
    again = run_modelops("new", "iris", "--runtime", "sklearn", cwd=clone)
    assert again.returncode == 1
    assert again.stderr == "error: models/iris already exists; not overwriting it\n"
    bad = run_modelops("new", "Iris_2", "--runtime", "sklearn", cwd=clone)
    assert bad.returncode == 1 and "'Iris_2' is not a valid model name" in bad.stderr
    no_pool = run_modelops("new", "x", "--runtime", "sklearn", "--pool", "gpu", cwd=clone)
    assert no_pool.returncode == 1 and "pool 'gpu' does not exist" in no_pool.stderr


def test_a_failing_example_is_a_clear_test_failure(clone):
    spec = clone / "models/iris/model.yaml"
    spec.write_text(spec.read_text().replace("data: [0, 1]", "data: [0, 2]"))
    result = run_modelops("test", "iris", cwd=clone)
    assert result.returncode == 1
    assert "FAILED  iris" in result.stderr
    assert "v1: output 'predict': data[1] expected 2, got 1" in result.stderr
    assert "v2: output 'predict': data[1] expected 2, got 1" in result.stderr


def test_memory_and_load_limits(clone):
    spec = clone / "models/wine/model.yaml"
    spec.write_text(spec.read_text().replace("  example:\n", "  example:\n    maxMemory: 1Mi\n"))
    result = run_modelops("test", "wine", cwd=clone)
    assert result.returncode == 1 and "over maxMemory 1Mi" in result.stderr


def test_every_example_model_passes(clone):
    result = run_modelops("test", cwd=clone)
    assert result.returncode == 0, result.stderr
    assert sorted(line.split()[1] for line in result.stdout.splitlines()) == [
        "cancer-screen", "diabetes", "digits", "iris", "wine"]


def test_removing_many_models_at_once_is_refused_unless_allowed(clone):
    """Argo CD deletes a removed model: a change that removes more than maxRemovedShare
    (25%) of the specs is an error a reviewer sees, and the plan calls the removals out."""
    shutil.rmtree(clone / "models/wine")
    one = run_modelops("validate", cwd=clone)
    assert one.returncode == 0, one.stderr  # one model at a time is an ordinary change
    shutil.rmtree(clone / "models/digits")
    two = run_modelops("validate", cwd=clone)
    assert two.returncode == 1
    assert re.match(r"platform/settings.yaml:\d+:1: maxRemovedShare: this change removes 2 of "
                    r"6 models and pools \(33%\)", two.stderr), two.stderr
    assert "digits, wine" in two.stderr and "--allow-removals" in two.stderr
    assert run_modelops("validate", "--allow-removals", cwd=clone).returncode == 0
    settings = clone / "platform/settings.yaml"
    settings.write_text(settings.read_text().replace("maxRemovedShare: 0.25",
                                                     "maxRemovedShare: 0.5"))
    assert run_modelops("validate", cwd=clone).returncode == 0
    bad_base = run_modelops("validate", "--base", "no-such-ref", cwd=clone)
    assert bad_base.returncode == 2 and "cannot read 'no-such-ref'" in bad_base.stderr

    markdown = run_modelops("plan", "--base", "HEAD", cwd=clone).stdout
    assert markdown.splitlines()[2:6] == [
        "> [!CAUTION]",
        "> **This change removes 2 model(s) or pool(s) from every environment**: `digits`, "
        "`wine`. Once merged they keep serving, their Applications out of sync, until deleted "
        "with `argocd app delete <environment>-<name>`.",
        "", "**Models:** 1 changed (`tabular`); 2 removed (`digits`, `wine`)"]
    # removed, and not also "changed"; the pool that wine left did change


def test_a_canary_change_reads_in_a_pull_request(clone):
    """Short lines, a summary first, and the generated catalog diffed line by line: a
    reviewer sees exactly the weights that changed (issue 14's first finding)."""
    spec = clone / "models/iris/model.yaml"
    spec.write_text(spec.read_text().replace("weight: 90", "weight: 80").replace("weight: 10", "weight: 20"))
    markdown = run_modelops("plan", "--base", "HEAD", cwd=clone).stdout
    assert run_modelops("plan", "--base", "HEAD", "-o", "markdown", cwd=clone).stdout == markdown
    assert run_modelops("plan", "-o", "human", cwd=clone).returncode == 2  # plan's own formats
    assert max(len(line) for line in markdown.splitlines()) <= 200
    assert markdown.splitlines()[2] == "**Models:** 1 changed (`iris`)"
    catalog = markdown.split("<summary>production/platform: ConfigMap/catalog</summary>")[1]
    changed = [line for line in catalog.split("</details>")[0].splitlines()
               if line.startswith(("+", "-")) and not line.startswith(("+++", "---"))]
    assert changed == ["-      weight: 90", "+      weight: 80", "-      weight: 10",
                       "+      weight: 20"]


def test_what_a_spec_says_is_inert_in_the_plan_comment(clone):
    """Metric names come from a training run's files: an image, a link, HTML or a `|` in
    one must not reach the pull-request comment as Markdown."""
    spec = clone / "models/iris/model.yaml"
    odd = "acc | ![pwned](https://evil.example/x.png) <img src=x> `code`"
    spec.write_text(spec.read_text().replace(
        "      weight: 10\n",
        f"      weight: 10\n      metrics:\n        holdout: {{{json.dumps(odd)}: 0.5}}\n", 1))
    assert run_modelops("validate", cwd=clone).returncode == 0
    markdown = run_modelops("plan", "--base", "HEAD", cwd=clone).stdout
    row = next(line for line in markdown.splitlines() if line.startswith("| `iris` |"))
    assert "![pwned]" not in row and "<img" not in row and " | ![" not in row
    assert r"acc \| \!\[pwned\](https://evil.example/x.png) &lt;img src=x> \`code\`" in row
    assert row.count(" | ") == 4  # still the five cells of the table
