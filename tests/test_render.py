"""Every overlay builds with kustomize and every object is strictly valid and safe."""

from __future__ import annotations

import pytest
import yaml

from conftest import REPO, copy_repo
from modelops import render
from modelops.repo import load


def test_every_overlay_renders_and_validates(tmp_path):
    count, problems = render.render(REPO, load(REPO).settings.kubernetesVersion, out=tmp_path)
    assert problems == []
    assert count > 40
    rendered = list(yaml.safe_load_all((tmp_path / "overlays/production/models/iris.yaml").read_text()))
    kinds = sorted(o["kind"] for o in rendered)
    assert kinds == sorted(["ServiceAccount", "Service", "Service", "ConfigMap", "HTTPRoute",
                            "ConfigMap", "Deployment", "Deployment", "HorizontalPodAutoscaler",
                            "HorizontalPodAutoscaler", "PodDisruptionBudget",
                            "PodDisruptionBudget"])
    for obj in rendered:
        labels = obj["metadata"]["labels"]
        assert labels["app.kubernetes.io/part-of"] == "modelops"
        assert labels["modelops/model"] == "iris" and labels["modelops/team"] == "data-science"


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
     "HTTPRoute/iris"),
    ("overlays/argocd/models.yaml", "preserveResourcesOnDeletion",
     "preserveResourcesOnDelete", "ApplicationSet/models"),
])
def test_a_misspelt_custom_resource_field_fails_the_kept_schema(tmp_path, file, field, typo,
                                                                culprit):
    root = copy_repo(tmp_path)
    path = root / file
    path.write_text(path.read_text().replace(field, typo))
    _, problems = render.render(root, "1.34")
    assert [p.path for p in problems] == [culprit]
    assert typo.strip().split(":")[0] in problems[0].message
