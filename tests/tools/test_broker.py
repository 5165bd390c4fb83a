"""Asynchronous inference in the cluster, as rendered: the environment's broker, and each
async server's queues, limits and own broker user, named so that the operators' objects
and the pods that use them meet (kustomize's name prefixes included)."""

from __future__ import annotations

import re
from pathlib import Path

import yaml
from conftest import copy_repo, examples, run_modelops

from modelops import render
from modelops.repo import load


def _render(root: Path, out: Path) -> Path:
    count, problems = render.render(root, load(root).settings.kubernetesVersion, out=out)
    assert problems == [] and count > 40
    return out


def _objects(out: Path, app: str) -> list[dict]:
    return [o for o in yaml.safe_load_all((out / app).read_text()) if o]


def _named(objects: list[dict], kind: str, name: str) -> dict:
    return next(o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name)


def test_each_async_server_connects_as_its_own_user_to_its_own_queues(tmp_path):
    out = _render(examples(), tmp_path / "out")
    iris = _objects(out, "overlays/production/models/iris.yaml")
    for version, other in (("v1", "v2"), ("v2", "v1")):
        pod = _named(iris, "Deployment", f"iris-{version}-server")["spec"]["template"]["spec"]
        user = _named(iris, "User", f"iris-{version}-broker")
        permission = _named(iris, "Permission", f"iris-{version}-broker")["spec"]
        assert permission["userReference"]["name"] == user["metadata"]["name"]
        secret = next(v["secret"] for v in pod["volumes"] if v["name"] == "broker-user")
        # the Secret the Topology Operator makes for that User
        assert secret["secretName"] == f"iris-{version}-broker-user-credentials"
        container = pod["containers"][0]
        env = {e["name"]: e.get("value") for e in container["env"]}
        assert env["MODELOPS_BROKER_URL"] == "amqp://modelops-broker.models-production.svc:5672/"
        assert env["MODELOPS_BROKER_DECLARES"] == "false"
        assert {"name": "shared", "mountPath": "/mnt/shared/results",
                "subPath": "results"} in container["volumeMounts"]  # writable: results
        read = re.compile(permission["permissions"]["read"])
        assert read.match(f"modelops.iris.{version}") and read.match(
            f"modelops.iris.{version}.dead") and read.match("modelops.replies.5f0c")
        for foreign in (f"modelops.iris.{other}", "modelops.wine.v1",
                        f"modelops.iris.{version}0", f"xmodelops.iris.{version}"):
            assert not read.match(foreign), foreign
        write = re.compile(permission["permissions"]["write"])
        assert write.match("amq.default") and write.match("modelops.results")
        assert not write.match("amq.topic")
        queues = {o["spec"]["name"]: o["spec"] for o in iris if o["kind"] == "Queue"}
        for name in (f"modelops.iris.{version}", f"modelops.iris.{version}.dead"):
            assert queues[name]["type"] == "quorum" and queues[name]["deletionPolicy"] == "retain"
        limits = _named(iris, "Policy", f"iris-{version}-limits")["spec"]
        assert re.fullmatch(limits["pattern"], f"modelops.iris.{version}")
        assert not re.match(limits["pattern"], f"modelops.iris.{version}.dead")
        assert limits["definition"]["delivery-limit"] == 2  # maxAttempts 3: 2 redeliveries
        assert limits["definition"]["dead-letter-routing-key"] == f"modelops.iris.{version}.dead"
    wine = _objects(out, "overlays/production/models/tabular.yaml")  # no member has async
    assert not [o for o in wine if o["metadata"].get("annotations", {}).get(
        "argocd.argoproj.io/sync-wave") or o["apiVersion"].startswith("rabbitmq.com")]
    platform = _objects(out, "overlays/production/platform.yaml")
    cluster = _named(platform, "RabbitmqCluster", "modelops-broker")["spec"]
    assert cluster["replicas"] == 3 and cluster["image"] == "rabbitmq:4.2.6-management"
    assert _named(platform, "Exchange", "modelops-results")["spec"]["type"] == "topic"
    quota = _named(platform, "ResourceQuota", "capacity-budget")["spec"]["hard"]
    assert quota["persistentvolumeclaims"] == "5"  # one volume per broker node


def test_a_pool_with_async_members_has_one_user_for_their_queues(tmp_path):
    root = copy_repo(tmp_path)
    for member in ("wine", "diabetes"):
        spec = root / f"models/{member}/model.yaml"
        spec.write_text(spec.read_text().replace("  concurrency:", "  async:\n    maxAttempts: 5\n"
                                                 "  concurrency:", 1))
    assert run_modelops("generate", cwd=root).returncode == 0
    pool = _objects(_render(root, tmp_path / "out"), "overlays/staging/models/tabular.yaml")
    users = [o["metadata"]["name"] for o in pool if o["kind"] == "User"]
    assert users == ["tabular-broker"]
    read = re.compile(_named(pool, "Permission", "tabular-broker")["spec"]["permissions"]["read"])
    for name in ("modelops.wine.v1", "modelops.wine.v1.dead", "modelops.diabetes.v1"):
        assert read.match(name), name
    assert not read.match("modelops.iris.v1")
    assert _named(pool, "Policy", "tabular-wine-v1-limits")["spec"]["definition"][
        "delivery-limit"] == 4
    pod = _named(pool, "Deployment", "tabular-server")["spec"]["template"]["spec"]
    assert {"name": "broker-user", "secret": {
        "secretName": "tabular-broker-user-credentials", "defaultMode": 0o444, "items": [
            {"key": "username", "path": "username"}, {"key": "password", "path": "password"}]}} \
        in pod["volumes"]


def test_no_async_model_no_broker(tmp_path):
    root = copy_repo(tmp_path)
    for spec in root.glob("models/*/model.yaml"):  # no async, so none sleeps either
        text = re.sub(r"  async:.*\n(    .*\n)*", "", spec.read_text())
        spec.write_text(text.replace("minReplicas: 0 ", "minReplicas: 1 "))
        assert "async:" not in spec.read_text()
    assert run_modelops("generate", cwd=root).returncode == 0
    assert not list(root.glob("overlays/*/platform/broker"))
    assert not list(root.glob("overlays/*/models/*/*/broker.yaml"))
    # and the operators need not be installed then
    settings = root / "platform/settings.yaml"
    settings.write_text(settings.read_text().replace("  - rabbitmq.com/v1beta1", "  # none"))
    assert run_modelops("validate", cwd=root).returncode == 0


def test_async_without_the_operators_named_is_refused_at_the_spec(tmp_path):
    root = copy_repo(tmp_path)
    settings = root / "platform/settings.yaml"
    settings.write_text(settings.read_text().replace("  - rabbitmq.com/v1beta1", "  # none"))
    result = run_modelops("validate", cwd=root)
    assert result.returncode == 1
    line = next(n for n, text in enumerate(
        (root / "models/iris/model.yaml").read_text().splitlines(), 1) if text.startswith(
        "  async:"))
    assert f"models/iris/model.yaml:{line}:3: spec.async: asynchronous requests need " \
        "RabbitMQ's Cluster and Messaging Topology Operators" in result.stderr
