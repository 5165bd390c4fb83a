"""Specs that would be dangerous in the cluster, as a table: each case is named for what a
user did, and must fail validation with a located error that says why."""

from __future__ import annotations

import pytest
from broken_specs import HEAD, POOL, V1, model

SHARED = V1 + "  placement: {shared: shared}\n"


def pool(body: str) -> dict[str, str]:
    return {"models/shared/pool.yaml": POOL.replace("spec: {}\n", "spec:\n" + body)}


GPU = "  resources:\n    gpu:\n      count: 1\n"

# (what the user did, files, the start of the error as `modelops validate` prints it)
CASES = [
    ("a pool member sets LD_PRELOAD",
     {**model(SHARED + "  env:\n    - {name: LD_PRELOAD, value: /tmp/x.so}\n"),
      **pool("  resources: {}\n")},
     "models/m/model.yaml:14:14: spec.env[0].name: the name LD_PRELOAD is reserved"),
    ("a pool member empties the auth token",
     {**model(SHARED + "  env:\n    - {name: MODELOPS_AUTH_TOKEN, value: ''}\n"),
      **pool("  resources: {}\n")},
     "models/m/model.yaml:14:14: spec.env[0].name: the name MODELOPS_AUTH_TOKEN is reserved"),
    ("a pool member sets its own variable, which would reach the other members",
     {**model(SHARED + "  env:\n    - {name: THRESHOLD, value: '0.3'}\n"),
      **pool("  resources: {}\n")},
     "models/m/model.yaml:13:3: spec.env: env of a shared model are set by its pool 'shared' "
     "(the pool's one process runs every member's code)"),
    ("a dedicated model sets PYTHONPATH", model(V1 + "  env:\n    - {name: PYTHONPATH, value: /x}\n"),
     "models/m/model.yaml:13:14: spec.env[0].name: the name PYTHONPATH is reserved"),
    ("a pool sets LD_LIBRARY_PATH",
     {**model(SHARED), **pool("  env:\n    - {name: LD_LIBRARY_PATH, value: /x}\n")},
     "models/shared/pool.yaml:8:14: spec.env[0].name: the name LD_LIBRARY_PATH is reserved"),
    ("GPU resource named cpu", model(V1 + GPU + "      resource: cpu\n"),
     "models/m/model.yaml:15:17: spec.resources.gpu.resource: expected text matching"),
    ("GPU resource named memory", model(V1 + GPU + "      resource: memory\n"),
     "models/m/model.yaml:15:17: spec.resources.gpu.resource: expected text matching"),
    ("GPU resource in Kubernetes' own domain",
     model(V1 + GPU + "      resource: kubernetes.io/cpu\n"),
     "models/m/model.yaml:15:17: spec.resources.gpu.resource: "
     "'kubernetes.io/cpu' is not an extended resource"),
    ("tolerates every taint", model(V1 + GPU + "      tolerations:\n        - {operator: Exists}\n"),
     "models/m/model.yaml:16:11: spec.resources.gpu.tolerations[0]: a toleration "
     "needs a key"),
    ("tolerates the control plane",
     model(V1 + GPU + "      tolerations:\n        - {key: node-role.kubernetes.io/control-plane,"
           " operator: Exists}\n"),
     "models/m/model.yaml:16:11: spec.resources.gpu.tolerations[0]: tolerating "
     "'node-role.kubernetes.io/control-plane'"),
    ("tolerates unreachable nodes",
     model(V1 + GPU + "      tolerations:\n        - {key: node.kubernetes.io/unreachable,"
           " operator: Exists}\n"),
     "models/m/model.yaml:16:11: spec.resources.gpu.tolerations[0]: tolerating"),
    ("selects control-plane nodes",
     model(V1 + GPU + "      nodeSelector: {node-role.kubernetes.io/control-plane: ''}\n"),
     "models/m/model.yaml:15:21: spec.resources.gpu.nodeSelector: node selector"),
    ("an artifact path that climbs out of the volume",
     model(V1.replace("pvc://artifacts/m/v1/model.joblib", "pvc://../../etc/shadow")),
     "models/m/model.yaml:10:17: spec.versions[0].artifact: '../../etc/shadow' "
     "must be a plain relative path"),
    ("an artifact path that climbs out of artifacts/",
     model(V1.replace("artifacts/m/v1/model.joblib", "artifacts/../logs/x.jsonl")),
     "models/m/model.yaml:10:17: spec.versions[0].artifact: "
     "'artifacts/../logs/x.jsonl' must be a plain relative path"),
    ("an artifact outside artifacts/", model(V1.replace("artifacts/m/v1", "logs/m")),
     "models/m/model.yaml:10:17: spec.versions[0].artifact: "
     "'logs/m/model.joblib' must be inside artifacts/"),
    ("an image path that climbs", model(V1.replace("pvc://artifacts/m/v1/model.joblib",
                                                   "file:///opt/../etc/passwd")),
     "models/m/model.yaml:10:17: spec.versions[0].artifact: "
     "'opt/../etc/passwd' must be a plain relative path"),
    ("a dataset path that climbs",
     model(V1 + "  datasets:\n    - {name: d, path: ../../etc}\n"),
     "models/m/model.yaml:13:23: spec.datasets[0].path: '../../etc' must be"),
    ("a dataset that reads the prediction logs",
     model(V1 + "  datasets:\n    - {name: d, path: logs}\n"),
     "models/m/model.yaml:13:23: spec.datasets[0].path: 'logs' must be inside "
     "datasets/"),
    ("a dataset that is all of datasets/",
     model(V1 + "  datasets:\n    - {name: d, path: datasets}\n"),
     "models/m/model.yaml:13:23: spec.datasets[0].path: 'datasets' must be inside"),
    ("a database URL with its password",
     model(V1 + "  env:\n    - {name: DATABASE_URL, value: 'postgres://admin:pw@db:5432/x'}\n"),
     "models/m/model.yaml:13:35: spec.env[0].value: env DATABASE_URL looks like a credential"),
    ("a password under a harmless name", model(V1 + "  env:\n    - {name: DB_PASS, value: hunter2}\n"),
     "models/m/model.yaml:13:30: spec.env[0].value: env DB_PASS looks like a credential"),
    ("a GitHub token under a harmless name",
     model(V1 + "  env:\n    - {name: SETTING, value: ghp_" + "a1B2" * 9 + "}\n"),
     "models/m/model.yaml:13:30: spec.env[0].value: env SETTING looks like a credential"),
    ("a Stripe key", model(V1 + "  env:\n    - {name: BILLING, value: sk_live_" + "x9" * 12 + "}\n"),
     "models/m/model.yaml:13:30: spec.env[0].value: env BILLING looks like a credential"),
    ("an Azure connection string",
     model(V1 + "  env:\n    - {name: STORE, value: 'DefaultEndpointsProtocol=https;AccountName=a;"
           "AccountKey=" + "Ab12" * 10 + "=='}\n"),
     "models/m/model.yaml:13:28: spec.env[0].value: env STORE looks like a credential"),
    ("a credential in a pool's env",
     {**model(SHARED), **pool("  env:\n    - {name: REDIS, value: 'redis://u:secret@r:6379'}\n")},
     "models/shared/pool.yaml:8:28: spec.env[0].value: env REDIS looks like a credential"),
    ("a model.py with a syntax error",
     {**model(V1.replace("runtime: sklearn", "runtime: python")),
      "models/m/model.py": "class M(Model):\n    def predict(self, inputs)\n        return {}\n"},
     "models/m/model.py:2:30: model.py does not compile: expected ':'"),
    ("a model.py that is not UTF-8",
     {**model(V1.replace("runtime: sklearn", "runtime: python")), "models/m/model.py": b"x = '\xff'\n"},
     "models/m/model.py:1:6: model.py is not UTF-8 text"),
    ("a model.py with a NUL byte",
     {**model(V1.replace("runtime: sklearn", "runtime: python")), "models/m/model.py": b"x = 1\x00\n"},
     "models/m/model.py:1:1: model.py does not compile"),
    ("a spec of binary junk", {"models/m/model.yaml": b"\x89PNG\r\n\x1a\n\x00\x00"},
     "models/m/model.yaml:3:1: file is binary"),
]


@pytest.mark.parametrize("what, files, error", CASES, ids=[c[0] for c in CASES])
def test_a_dangerous_spec_is_refused_with_a_located_error(tiny, what, files, error):
    from modelops.repo import load

    for rel, text in files.items():
        tiny.write(rel, text)
    got = [d.human() for d in sorted(set(load(tiny.root).diagnostics))]
    assert any(line.startswith(error) for line in got), got


def test_the_table_covers_each_finding(capsys):
    with capsys.disabled():
        print(f"\nhostile specs: {len(CASES)} refused, each at its file, line and column")
    assert len(CASES) >= 25 and HEAD


@pytest.mark.parametrize("name, value", [
    ("DATABASE_URL", "postgres://admin:pw@db:5432/x"), ("BROKER", "amqp://u:p@mq/"),
    ("DB_PASS", "hunter2"), ("MYSQL_PWD", "x"), ("SENTRY_DSN", "https://k@o.ingest/1"),
    ("X", "ghp_" + "a1B2" * 9), ("X", "github_pat_" + "a1B2" * 10), ("X", "glpat-" + "a1B2" * 5),
    ("X", "xoxb-1234567890-abcdef"), ("X", "sk_live_" + "x9" * 12), ("X", "AIza" + "b" * 35),
    ("X", "hf_" + "Ab" * 17), ("X", "npm_" + "a" * 36), ("X", "AKIA" + "A" * 16),
    ("X", "-----BEGIN RSA PRIVATE KEY-----"), ("X", "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.x"),
    ("X", "AccountKey=" + "Ab12" * 10), ("X", "q8Zr2LmK9vXw4TnB7cYp1HsD6gFj3QeA"),
], ids=lambda v: v[:20])
def test_a_credential_is_recognised_by_its_name_or_its_shape(name, value):
    from modelops.checks import looks_secret

    assert looks_secret(name, value)


@pytest.mark.parametrize("name, value", [
    ("DECISION_THRESHOLD", "0.5"), ("PASSENGER_LIMIT", "4"), ("MODEL_URL", "https://x.io/m"),
    ("DATA_DIR", "/mnt/shared/datasets/iris"), ("LOG_LEVEL", "debug"),
])
def test_ordinary_settings_are_not_taken_for_credentials(name, value):
    from modelops.checks import looks_secret

    assert not looks_secret(name, value)
