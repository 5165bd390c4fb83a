"""The cluster side: Argo CD projects and ApplicationSets, the install's config, consistency."""

from __future__ import annotations

import json
import re

import yaml
from conftest import REPO, SHA, VALID_MODEL, copy_repo, run_modelops

from modelops import render
from modelops.repo import load
from modelops.settings import EnvironmentSettings, ObjectStore, Settings

ARGOCD = REPO / "platform/argocd"
GENERATED = REPO / "overlays/argocd"


def _docs(path):
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def test_bootstrap_application_and_install_config_are_valid():
    settings = load(REPO).settings
    root, = _docs(GENERATED / "root.yaml")
    assert render.validate_object(REPO, root, settings.kubernetesVersion) == []
    assert root["spec"]["source"]["path"] == "overlays/argocd"
    assert root["spec"]["project"] == "default"  # exists before the root syncs anything
    for patch in ("argocd-cm.yaml", "argocd-cmd-params-cm.yaml", "argocd-notifications-cm.yaml",
                  "argocd-rbac-cm.yaml"):
        config, = _docs(ARGOCD / "install" / patch)
        assert render.validate_object(REPO, config, settings.kubernetesVersion) == []
    cm, = _docs(ARGOCD / "install/argocd-cm.yaml")
    # Nothing instance-wide: other teams' Deployments under the same Argo CD keep their diffs.
    assert not [key for key in cm["data"] if key.startswith("resource.customizations.ignore")]
    app_set = yaml.safe_load((GENERATED / "models.yaml").read_text())["spec"]["template"]["spec"]
    assert app_set["ignoreDifferences"] == [{"group": "apps", "kind": "Deployment",
                                             "jsonPointers": ["/spec/replicas"]}]
    assert "RespectIgnoreDifferences=true" in app_set["syncPolicy"]["syncOptions"]
    notes, = _docs(ARGOCD / "install/argocd-notifications-cm.yaml")
    assert {"trigger.on-sync-failed", "trigger.on-health-degraded"} <= notes["data"].keys()
    # Built-in health checks stay in force (no override), and so do the default exclusions.
    assert not [key for key in cm["data"] if "gateway.networking.k8s.io" in key]
    assert "resource.exclusions" not in cm["data"]
    assert "argocdUrl" in yaml.safe_load(notes["data"]["context"])


def test_only_the_platform_team_changes_applications_by_hand():
    rbac, = _docs(ARGOCD / "install/argocd-rbac-cm.yaml")
    assert rbac["data"]["policy.default"] == "role:readonly"
    rules = [line.split(", ") for line in rbac["data"]["policy.csv"].splitlines() if line]
    granted = {(r[1], r[3]) for r in rules if r[0] == "p"}
    assert {action for role, action in granted if role == "role:model-operator"} == {
        "get", "sync", "action/apps/Deployment/restart"}
    assert all(r[4] == "models/*" for r in rules if r[0] == "p")  # never the platform project
    assert ["g", "modelops:platform", "role:admin"] in rules


def test_the_install_is_pinned_and_left_out_of_offline_rendering():
    install = yaml.safe_load((ARGOCD / "install/kustomization.yaml").read_text())
    assert install["resources"] == [
        "https://raw.githubusercontent.com/argoproj/argo-cd/v3.3.14/manifests/install.yaml"]
    assert ARGOCD / "install" not in render.roots(REPO, "platform")
    assert GENERATED in render.roots(REPO, "overlays")


def test_one_applicationset_makes_a_labelled_application_per_model_overlay():
    settings = load(REPO).settings
    appset, = _docs(GENERATED / "models.yaml")
    assert appset["spec"]["generators"][0]["git"]["files"] == [
        {"path": "overlays/*/models/*/app.json"}]
    assert appset["spec"]["generators"][0]["git"]["repoURL"] == settings.repoURL
    template = appset["spec"]["template"]
    assert {"modelops/model", "modelops/team", "modelops/version"} <= template["metadata"]["labels"].keys()
    # A model goes by deleting its Application (its finalizer), never by a change in git
    # (what each change does: tests/tools/test_bootstrap.py).
    assert appset["spec"]["syncPolicy"] == {"applicationsSync": "create-update",
                                            "preserveResourcesOnDeletion": True}
    assert "resources-finalizer.argocd.argoproj.io" in template["metadata"]["finalizers"]
    assert template["spec"]["ignoreDifferences"][0]["jsonPointers"] == ["/spec/replicas"]
    assert "RespectIgnoreDifferences=true" in template["spec"]["syncPolicy"]["syncOptions"]
    for env, env_settings in settings.environments.items():
        overlays = {p.parent.name for p in (REPO / "overlays" / env / "models").glob("*/kustomization.yaml")}
        params = {p.parent.name: json.loads(p.read_text())
                  for p in (REPO / "overlays" / env / "models").glob("*/app.json")}
        assert params.keys() == overlays  # every model overlay becomes an Application
        assert params["iris"]["versions"] == "v1.v2" and params["iris"]["team"] == "data-science"
        assert params["tabular"]["models"] == "diabetes, wine"
        assert params["iris"]["namespace"] == env_settings.namespace
    platform = {a["metadata"]["name"]: a for a in _docs(GENERATED / "platform.yaml")}
    assert platform.keys() == {f"platform-{env}" for env in settings.environments} | {
        "monitoring"}  # the ServiceMonitor, alerts and dashboard: synced, not applied by hand
    assert platform["monitoring"]["spec"]["source"]["path"] == "overlays/monitoring"
    assert platform["monitoring"]["spec"]["destination"]["namespace"] == "monitoring"
    waves = {doc["kind"]: int(doc["metadata"]["annotations"]["argocd.argoproj.io/sync-wave"])
             for file in ("namespaces.yaml", "projects.yaml", "platform.yaml", "models.yaml")
             for doc in _docs(GENERATED / file)}
    assert waves["Namespace"] < waves["Application"] < waves["ApplicationSet"]


def test_projects_limit_models_to_their_namespaces_and_kinds():
    settings = load(REPO).settings
    projects = {p["metadata"]["name"]: p["spec"] for p in _docs(GENERATED / "projects.yaml")}
    models = projects["models"]
    assert {d["namespace"] for d in models["destinations"]} == {
        e.namespace for e in settings.environments.values()}
    assert models["clusterResourceWhitelist"] == []
    allowed = {(k["group"], k["kind"]) for k in models["namespaceResourceWhitelist"]}
    rendered = set()
    for env in settings.environments:
        for app in (REPO / "overlays" / env / "models").glob("*/app.json"):
            text, error = render.kustomize(app.parent)
            assert error is None
            for obj in yaml.safe_load_all(text):
                group = obj["apiVersion"].rpartition("/")[0]
                rendered.add((group, obj["kind"]))
    assert rendered <= allowed, rendered - allowed  # models deploy nothing their project forbids
    assert all(p["sourceRepos"] == [settings.repoURL] for p in projects.values())


def test_settings_file_lists_every_setting_with_a_comment():
    """platform/settings.yaml is where a platform engineer looks: each setting is there
    (set, or commented out when it has no default), and the schema explains each."""
    text = (REPO / "platform/settings.yaml").read_text()
    keys = {m.group(1) for m in re.finditer(r"^\s*(?:#\s*)?([A-Za-z]+):", text, re.M)}
    for cls in (Settings, EnvironmentSettings, ObjectStore):
        missing = set(cls.model_fields) - {"apiVersion", "kind"} - keys
        assert not missing, f"{cls.__name__}: {sorted(missing)} not in platform/settings.yaml"
        undocumented = [n for n, f in cls.model_fields.items()
                        if not f.description and n not in ("apiVersion", "kind")]
        assert not undocumented, f"{cls.__name__}: {undocumented} have no description"


def _label_values(app_set: dict, params: dict) -> dict[str, str]:
    """The Application labels the ApplicationSet's template makes from one app.json."""
    labels = app_set["spec"]["template"]["metadata"]["labels"]
    return {key: re.sub(r"\{\{\.(\w+)\}\}", lambda m: str(params[m[1]]), value)
            for key, value in labels.items()}


def _big_pool(tmp_path):
    root = copy_repo(tmp_path)
    for name in ("customer-lifetime-value", "churn-propensity-score", "next-best-offer-ranker",
                 "payment-default-risk"):
        (root / f"models/{name}").mkdir()
        (root / f"models/{name}/model.yaml").write_text(VALID_MODEL.format(name=name) +
                                                        "  placement: {shared: tabular}\n")
    done = run_modelops("generate", cwd=root)
    assert done.returncode == 0, done.stderr
    return root


def _invalid_labels(root) -> list[tuple]:
    """Labels the ApplicationSet would make that Kubernetes refuses (63 characters at most,
    alphanumerics with -_. inside): it then cannot create that Application."""
    app_set = yaml.safe_load((root / "overlays/argocd/models.yaml").read_text())
    return [(params_file.parent.name, key, value)
            for params_file in sorted(root.glob("overlays/*/models/*/app.json"))
            for key, value in _label_values(app_set, json.loads(params_file.read_text())).items()
            if not re.fullmatch(r"([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?", value)]


def test_every_application_label_is_a_valid_label_value_with_a_big_pool(tmp_path):
    """Four members with ordinary long names made a 63+ character label: the ApplicationSet
    could not create the pool's Application."""
    root = _big_pool(tmp_path)
    assert _invalid_labels(root) == []
    pool = json.loads((root / "overlays/production/models/tabular/app.json").read_text())
    assert "payment-default-risk" in pool["models"]  # the members: an annotation


def test_a_label_of_the_members_names_fails_on_a_broken_copy(tmp_path):
    root = _big_pool(tmp_path)
    app_set = root / "overlays/argocd/models.yaml"
    app_set.write_text(app_set.read_text().replace('modelops/model: "{{.name}}"',
                                                   'modelops/model: "{{.models}}"'))
    assert ("tabular", "modelops/model") in [problem[:2] for problem in _invalid_labels(root)]


def test_versions_too_long_for_a_label_are_refused_where_written(tiny):
    versions = "".join(f"    - name: release-2026-11-0{i}\n"
                       f"      artifact: pvc://artifacts/m/{i}/model.joblib\n"
                       f"      sha256: {SHA}\n      weight: 25\n" for i in range(4))
    tiny.model("m", VALID_MODEL.format(name="m").split("  versions:\n")[0]
               + "  versions:\n" + versions)
    refused = run_modelops("validate", cwd=tiny.root)
    assert refused.returncode == 1
    assert refused.stderr.startswith("models/m/model.yaml:8:3: spec.versions: the versions' "
                                     "names joined"), refused.stderr
    assert "label the model's Argo CD Application, which allows 63" in refused.stderr
