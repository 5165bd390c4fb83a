"""Models that sleep, in the cluster, as rendered: KEDA scales a sleeping version in place
of its HPA (never both, never on CPU alone), its objects meet the Deployment, the broker
user and the queue they name after kustomize's prefixes, and its routes go to the front
door, which relays it and can reach the broker. Plus the spec's rules, said where written."""

from __future__ import annotations

import re
from pathlib import Path

import yaml
from conftest import copy_repo, examples, run_modelops
from test_broker import _named, _objects, _render


def _every_object(out: Path) -> list[dict]:
    return [o for path in sorted(out.rglob("*.yaml")) for o in yaml.safe_load_all(
        path.read_text()) if o]


def test_keda_scales_a_sleeping_version_and_nothing_else_does(tmp_path):
    out = _render(examples(), tmp_path / "out")
    everything = _every_object(out)
    by_hpa = {(o["metadata"]["namespace"], o["spec"]["scaleTargetRef"]["name"])
              for o in everything if o["kind"] == "HorizontalPodAutoscaler"}
    scaled = [o for o in everything if o["kind"] == "ScaledObject"]
    assert {o["metadata"]["namespace"] for o in scaled} == {"models-staging",
                                                            "models-production"}
    for obj in scaled:  # KEDA's admission rules
        spec = obj["spec"]
        assert (obj["metadata"]["namespace"], spec["scaleTargetRef"]["name"]) not in by_hpa
        if spec.get("minReplicaCount", 0) == 0:
            assert {t["type"] for t in spec["triggers"]} - {"cpu", "memory"}

    digits = _objects(out, "overlays/production/models/digits.yaml")
    assert not [o for o in digits if o["kind"] in ("HorizontalPodAutoscaler",
                                                   "PodDisruptionBudget")]
    deployment = _named(digits, "Deployment", "digits-v1-server")
    assert "replicas" not in deployment["spec"]  # KEDA's to set
    spec = _named(digits, "ScaledObject", "digits-v1-server")["spec"]
    assert spec["scaleTargetRef"] == {"name": "digits-v1-server"}
    assert (spec["minReplicaCount"], spec["maxReplicaCount"], spec["cooldownPeriod"]) == \
        (0, 2, 600)
    [trigger] = spec["triggers"]
    assert trigger["type"] == "rabbitmq"
    meta = trigger["metadata"]
    # ready and unacknowledged (http): never scaled away mid-request
    assert meta["protocol"] == "http" and meta["mode"] == "QueueLength"
    assert "excludeUnacknowledged" not in meta
    assert (meta["value"], meta["activationValue"]) == ("4", "0")
    assert meta["host"] == "http://modelops-broker.models-production.svc:15672"
    queue = next(o for o in digits if o["kind"] == "Queue" and not
                 o["spec"]["name"].endswith(".dead"))
    assert meta["queueName"] == queue["spec"]["name"] == "modelops.digits.v1"
    auth = _named(digits, "TriggerAuthentication", trigger["authenticationRef"]["name"])
    user = _named(digits, "User", "digits-v1-scaler")
    assert user["spec"]["tags"] == ["management"]  # reads counts over HTTP
    assert {ref["name"] for ref in auth["spec"]["secretTargetRef"]} == \
        {"digits-v1-scaler-user-credentials"}  # the Secret the Topology Operator makes
    permission = _named(digits, "Permission", "digits-v1-scaler")["spec"]["permissions"]
    for pattern in permission.values():  # it can neither consume nor publish
        for name in ("modelops.digits.v1", "amq.default", "modelops.results", "x"):
            assert not re.match(pattern, name)
    for obj in (auth, _named(digits, "ScaledObject", "digits-v1-server")):
        assert obj["metadata"]["annotations"]["argocd.argoproj.io/sync-wave"] == "1"


def test_a_sleeping_models_routes_go_to_the_front_door(tmp_path):
    out = _render(examples(), tmp_path / "out")
    digits = _objects(out, "overlays/production/models/digits.yaml")
    http = _named(digits, "HTTPRoute", "digits")["spec"]["rules"]
    grpc = _named(digits, "GRPCRoute", "digits")["spec"]["rules"]
    assert {ref["name"] for rule in http + grpc for ref in rule["backendRefs"]} == \
        {"modelops-front-server"}
    platform = _objects(out, "overlays/production/platform.yaml")
    service = _named(platform, "Service", "modelops-front-server")["spec"]
    assert {p["port"] for p in service["ports"]} >= {80, 8081}
    door = _named(platform, "Deployment", "modelops-front-server")
    assert door["metadata"]["annotations"]["argocd.argoproj.io/sync-wave"] == "1"
    pod = door["spec"]["template"]["spec"]
    config_map = next(v["configMap"]["name"] for v in pod["volumes"] if "configMap" in v)
    config = yaml.safe_load(_named(platform, "ConfigMap", config_map)["data"]["server.yaml"])
    assert [(m["name"], m["relay"]["wakeSeconds"]) for m in config["models"]] == \
        [("digits", 60)]
    secret = next(v["secret"]["secretName"] for v in pod["volumes"] if "secret" in v and
                  v["name"] == "broker-user")
    user = _named(platform, "User", "modelops-front-broker")
    assert secret == user["metadata"]["name"] + "-user-credentials"
    write = re.compile(_named(platform, "Permission", "modelops-front-broker")["spec"][
        "permissions"]["write"])
    assert write.match("amq.default") and not write.match("modelops.results")
    assert _named(platform, "HorizontalPodAutoscaler", "modelops-front-server")["spec"][
        "minReplicas"] == 2
    keda = _named(platform, "NetworkPolicy", "allow-keda-to-broker")["spec"]["ingress"][0]
    assert keda["from"][0]["namespaceSelector"]["matchLabels"] == {
        "kubernetes.io/metadata.name": "keda"}
    assert keda["ports"] == [{"protocol": "TCP", "port": 15672}]


def test_no_sleeping_model_no_front_door_and_no_keda_needed(tmp_path):
    root = copy_repo(tmp_path)
    spec = root / "models/digits/model.yaml"
    spec.write_text(spec.read_text().replace("minReplicas: 0 ", "minReplicas: 1 "))
    assert run_modelops("generate", cwd=root).returncode == 0
    assert not list(root.glob("overlays/*/platform/front-door"))
    assert not list(root.glob("overlays/*/models/*/*/scaler.yaml"))
    assert (root / "overlays/staging/models/digits/hpa.yaml").is_file()
    settings = root / "platform/settings.yaml"
    settings.write_text(settings.read_text().replace("  - keda.sh/v1alpha1", "  # none"))
    assert run_modelops("validate", cwd=root).returncode == 0


def _line(path: Path, starts: str) -> int:
    return next(n for n, text in enumerate(path.read_text().splitlines(), 1)
                if text.startswith(starts))


def test_sleeping_needs_a_queue_and_keda_said_at_min_replicas(tmp_path):
    root = copy_repo(tmp_path)
    spec = root / "models/digits/model.yaml"
    line = _line(spec, "    minReplicas: 0")
    spec.write_text(spec.read_text().replace("  async: {}", "  # async: {}"))
    result = run_modelops("validate", cwd=root)
    assert result.returncode == 1
    assert f"models/digits/model.yaml:{line}:18: spec.autoscaling.minReplicas: minReplicas 0 " \
           "(in staging) needs `async`" in result.stderr
    assert "Traceback" not in result.stderr

    spec.write_text(spec.read_text().replace("  # async: {}", "  async: {}"))
    settings = root / "platform/settings.yaml"
    settings.write_text(settings.read_text().replace("  - keda.sh/v1alpha1", "  # none"))
    result = run_modelops("validate", cwd=root)
    assert result.returncode == 1
    assert f"models/digits/model.yaml:{line}:18: spec.autoscaling.minReplicas: minReplicas 0 " \
           "(in staging) needs KEDA" in result.stderr and "keda.sh/v1alpha1" in result.stderr


def test_only_the_environment_that_says_so_sleeps(tmp_path):
    """An override sets minReplicas 0 in production alone: staging keeps its HPA."""
    root = copy_repo(tmp_path)
    spec = root / "models/digits/model.yaml"
    text = spec.read_text().replace("minReplicas: 0 ", "minReplicas: 1 ")
    production = "  environments:\n    production:\n      autoscaling:\n        minReplicas: 0\n"
    spec.write_text(text.replace("  environments:\n", production, 1))
    assert run_modelops("generate", cwd=root).returncode == 0, \
        run_modelops("validate", cwd=root).stderr
    assert (root / "overlays/production/models/digits/v1/scaler.yaml").is_file()
    assert not (root / "overlays/staging/models/digits/v1/scaler.yaml").exists()
    assert (root / "overlays/staging/models/digits/hpa.yaml").is_file()
    assert (root / "overlays/production/platform/front-door").is_dir()
    assert not (root / "overlays/staging/platform/front-door").exists()
    spec.write_text(text.replace("  async: {}", "").replace("  environments:\n", production, 1))
    result = run_modelops("validate", cwd=root)
    line = _line(spec, "        minReplicas: 0")
    assert f"models/digits/model.yaml:{line}:22: spec.environments.production.autoscaling." \
           "minReplicas: minReplicas 0 (in production) needs `async`" in result.stderr


def test_a_pool_keeps_a_replica(tmp_path):
    root = copy_repo(tmp_path)
    pool = root / "models/tabular/pool.yaml"
    pool.write_text(pool.read_text().replace("    minReplicas: 1", "    minReplicas: 0", 1))
    result = run_modelops("validate", cwd=root)
    assert result.returncode == 1 and "a pool keeps at least one replica" in result.stderr
    assert "models/tabular/pool.yaml:" in result.stderr and "Traceback" not in result.stderr
