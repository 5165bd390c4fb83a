"""Broken specs: each case is the files of a repository and what the checker must say."""

from conftest import SHA

HEAD = """\
apiVersion: modelops/v1
kind: Model
metadata:
  name: m
  team: ds
spec:
"""
V1 = f"""\
  runtime: sklearn
  versions:
    - name: v1
      artifact: pvc://artifacts/m/v1/model.joblib
      sha256: {SHA}
"""


def model(body: str) -> dict[str, str]:
    return {"models/m/model.yaml": HEAD + body}


POOL = """\
apiVersion: modelops/v1
kind: Pool
metadata:
  name: shared
  team: platform
spec: {}
"""

CASES: dict[str, dict[str, str | bytes]] = {
    "typo in a field": model(V1.replace("runtime:", "runtim:") + ""),
    "typo in a nested field": model(V1 + "  autoscaling:\n    maxReplica: 3\n"),
    "unknown top-level key": {"models/m/model.yaml": HEAD.replace("kind: Model", "kind: Model\nstatus: {}") + V1},
    "wrong kind": {"models/m/model.yaml": HEAD.replace("kind: Model", "kind: Modle") + V1},
    "missing kind": {"models/m/model.yaml": HEAD.replace("kind: Model\n", "") + V1},
    "wrong apiVersion": {"models/m/model.yaml": HEAD.replace("modelops/v1", "modelops/v2") + V1},
    "unknown runtime": model(V1.replace("sklearn", "tensorflow")),
    "runtime typo": model(V1.replace("sklearn", "sklern")),
    "bad model name": {"models/m/model.yaml": HEAD.replace("name: m", "name: My_Model") + V1},
    "name does not match directory": {"models/other/model.yaml": HEAD + V1},
    "no versions": model("  runtime: sklearn\n  versions: []\n"),
    "versions not a list": model("  runtime: sklearn\n  versions: v1\n"),
    "bad sha256": model(V1.replace(SHA, "abc123")),
    "artifact without sha256": model(V1.replace(f"      sha256: {SHA}\n", "")),
    "bad artifact scheme": model(V1.replace("pvc://", "gs://")),
    "s3 artifact without an object store": model(V1.replace("pvc://artifacts/", "s3://models/")),
    "weight as text": model(V1 + "      weight: ninety\n"),
    "weight over 100": model(V1 + "      weight: 150\n"),
    "weights not 100": model(V1 + "      weight: 90\n"),
    "duplicate version names": model(V1 + "      weight: 50\n" + V1.split("versions:\n")[1] + "      weight: 50\n"),
    "min above max replicas": model(V1 + "  autoscaling:\n    minReplicas: 4\n    maxReplicas: 2\n"),
    "replicas as float": model(V1 + "  autoscaling:\n    maxReplicas: 2.5\n"),
    "bad cpu quantity": model(V1 + "  resources:\n    cpu: two\n"),
    "async prefetch above concurrency": model(V1 + "  concurrency: 2\n  async:\n    prefetch: 4\n"),
    "async with no attempts": model(V1 + "  async:\n    maxAttempts: 0\n"),
    "async key misspelt": model(V1 + "  async:\n    maxQueue: 10\n"),
    "bad memory quantity": model(V1 + "  resources:\n    memory: 1GB\n"),
    "limit below request": model(V1 + "  resources:\n    memory: 1Gi\n    limits:\n      memory: 512Mi\n"),
    "unknown pool": model(V1 + "  placement:\n    shared: gpu-pool\n"),
    "pool typo": {**model(V1 + "  placement:\n    shared: shraed\n"), "models/shared/pool.yaml": POOL},
    "bad placement": model(V1 + "  placement: everywhere\n"),
    "pool with no models": {**model(V1), "models/shared/pool.yaml": POOL},
    "shared model sets resources": {**model(V1 + "  placement:\n    shared: shared\n  resources:\n    cpu: 1\n"),
                                    "models/shared/pool.yaml": POOL},
    "duplicate model names": {"models/m/model.yaml": HEAD + V1,
                              "models/n/model.yaml": HEAD + V1},
    "inline secret by name": model(V1 + "  env:\n    - name: API_TOKEN\n      value: hunter2\n"),
    "inline secret by shape": model(V1 + "  env:\n    - name: CONFIG\n      value: AKIAIOSFODNN7EXAMPLE\n"),
    "env with value and secretKeyRef": model(V1 + "  env:\n    - name: A\n      value: x\n      valueFrom:\n        secretKeyRef: {name: s, key: k}\n"),
    "override with a bad field": model(V1 + "  environments:\n    production:\n      autoscaling:\n        maxReplicas: 0\n"),
    "override breaks min/max": model(V1 + "  autoscaling:\n    minReplicas: 2\n    maxReplicas: 4\n  environments:\n    staging:\n      autoscaling:\n        maxReplicas: 1\n"),
    "unknown environment": model(V1 + "  environments:\n    prod:\n      concurrency: 4\n"),
    "custom runtime without image": model(V1.replace("sklearn", "custom")),
    "image pinned to latest": model(V1.replace("sklearn", "custom") + "  image: ghcr.io/acme/server:latest\n"),
    "python model without model.py": model(V1.replace("sklearn", "python")),
    "drift reference not a dataset": model(V1 + "  logging:\n    enabled: true\n"
                                           "    reference: training\n"),
    "model named like a platform object": {"models/log-compactor/model.yaml": (HEAD + V1).replace("name: m\n", "name: log-compactor\n")},
    "over the capacity budget": model(V1 + "  resources:\n    cpu: '8'\n  autoscaling:\n    maxReplicas: 10\n"),
    "duplicate keys": model(V1 + "  concurrency: 4\n  concurrency: 8\n"),
    "alias bomb": {"models/m/model.yaml": "a: &a [x, x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
                   "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
                   "e: [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\n"},
    "binary junk": {"models/m/model.yaml": b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"},
    "not UTF-8": {"models/m/model.yaml": b"name: caf\xe9\n"},
    "empty file": {"models/m/model.yaml": ""},
    "only a comment": {"models/m/model.yaml": "# TODO\n"},
    "a list, not a mapping": {"models/m/model.yaml": "- a\n- b\n"},
    "YAML syntax error": model(V1 + "  concurrency: [1, 2\n"),
    "two documents": {"models/m/model.yaml": HEAD + V1 + "---\nkind: Model\n"},
    "python object tag": model(V1 + "  concurrency: !!python/object:os.system echo\n"),
    "huge file": {"models/m/model.yaml": HEAD + V1 + "#" + "x" * 300_000 + "\n"},
    "tab indentation": model(V1 + "  autoscaling:\n\tmaxReplicas: 2\n"),
}

# What the checker must print for each case: file:line:col: field: message (hint).
EXPECTED: dict[str, list[str]] = {
    'typo in a field': [
        "models/m/model.yaml:6:1: spec.runtime: missing required field 'runtime'",
        "models/m/model.yaml:7:3: spec.runtim: unknown field 'runtim' (did you mean 'runtime'?)",
    ],
    'async prefetch above concurrency': [
        "models/m/model.yaml:14:15: spec.async.prefetch: prefetch 4 is more than concurrency (2): a replica would take requests from the queue that its own limit then refuses",
    ],
    'async with no attempts': [
        "models/m/model.yaml:13:18: spec.async.maxAttempts: input should be greater than or equal to 1, got 0",
    ],
    'async key misspelt': [
        "models/m/model.yaml:13:5: spec.async.maxQueue: unknown field 'maxQueue' (did you mean 'maxQueued'?)",
    ],
    'typo in a nested field': [
        "models/m/model.yaml:13:5: spec.autoscaling.maxReplica: unknown field 'maxReplica' (did you mean 'maxReplicas'?)",
    ],
    'unknown top-level key': [
        "models/m/model.yaml:3:1: status: unknown field 'status'",
    ],
    'wrong kind': [
        "models/m/model.yaml:2:7: kind: unknown kind 'Modle': expected one of Model, Pool (did you mean 'Model'?)",
    ],
    'missing kind': [
        "models/m/model.yaml:1:1: kind: missing required field 'kind': expected one of Model, Pool",
    ],
    'wrong apiVersion': [
        "models/m/model.yaml:1:13: apiVersion: input should be 'modelops/v1', got 'modelops/v2' (did you mean 'modelops/v1'?)",
    ],
    'unknown runtime': [
        "models/m/model.yaml:7:12: spec.runtime: input should be 'sklearn', 'onnx', 'python' or 'custom', got 'tensorflow'",
    ],
    'runtime typo': [
        "models/m/model.yaml:7:12: spec.runtime: input should be 'sklearn', 'onnx', 'python' or 'custom', got 'sklern' (did you mean 'sklearn'?)",
    ],
    'bad model name': [
        "models/m/model.yaml:4:9: metadata.name: expected text matching '^[a-z]([-a-z0-9]{0,38}[a-z0-9])?$', got 'My_Model'",
    ],
    'name does not match directory': [
        "models/other/model.yaml:4:9: metadata.name: a Model named 'm' must live at models/m/model.yaml, not models/other/model.yaml",
    ],
    'no versions': [
        'models/m/model.yaml:8:13: spec.versions: list should have at least 1 item after validation, not 0',
    ],
    'versions not a list': [
        "models/m/model.yaml:8:13: spec.versions: input should be a valid list, got 'v1'",
    ],
    'bad sha256': [
        "models/m/model.yaml:11:15: spec.versions[0].sha256: expected text matching '^[0-9a-f]{64}$', got 'abc123'",
    ],
    'artifact without sha256': [
        'models/m/model.yaml:9:7: spec.versions[0]: an artifact needs its sha256 so the server can verify it',
    ],
    'bad artifact scheme': [
        "models/m/model.yaml:10:17: spec.versions[0].artifact: expected pvc://<path on the shared volume>, s3://<bucket>/<key> or file:///<path in the image>, got 'gs://artifacts/m/v1/model.joblib'",
    ],
    's3 artifact without an object store': [
        "models/m/model.yaml:10:17: spec.versions[0].artifact: an s3:// artifact needs an objectStore ({bucket, endpoint, region, credentialsSecret}) for the environment in platform/settings.yaml",
    ],
    'weight as text': [
        "models/m/model.yaml:12:15: spec.versions[0].weight: input should be a valid integer, unable to parse string as an integer, got 'ninety'",
    ],
    'weight over 100': [
        'models/m/model.yaml:12:15: spec.versions[0].weight: input should be less than or equal to 100, got 150',
    ],
    'weights not 100': [
        'models/m/model.yaml:8:3: spec.versions: traffic weights must sum to 100, got 90 (v1 90)',
    ],
    'duplicate version names': [
        "models/m/model.yaml:13:13: spec.versions[1].name: version 'v1' is listed twice",
    ],
    'min above max replicas': [
        'models/m/model.yaml:13:5: spec.autoscaling: minReplicas (4) is above maxReplicas (2)',
    ],
    'replicas as float': [
        'models/m/model.yaml:13:18: spec.autoscaling.maxReplicas: input should be a valid integer, got a number with a fractional part, got 2.5',
    ],
    'bad cpu quantity': [
        "models/m/model.yaml:13:10: spec.resources.cpu: 'two' is not a Kubernetes quantity (e.g. '500m', '2', '512Mi', '1Gi')",
    ],
    'bad memory quantity': [
        "models/m/model.yaml:13:13: spec.resources.memory: '1GB' is not a Kubernetes quantity (e.g. '500m', '2', '512Mi', '1Gi')",
    ],
    'limit below request': [
        'models/m/model.yaml:13:5: spec.resources: limits.memory (512Mi) is below the memory request (1Gi)',
    ],
    'unknown pool': [
        "models/m/model.yaml:13:13: spec.placement.shared: pool 'gpu-pool' does not exist (no models/gpu-pool/pool.yaml)",
    ],
    'pool typo': [
        "models/m/model.yaml:13:13: spec.placement.shared: pool 'shraed' does not exist (no models/shraed/pool.yaml) (did you mean 'shared'?)",
        "models/shared/pool.yaml:4:9: metadata.name: pool 'shared' has no models: place a model in it with `placement: {shared: shared}`, or delete it",
    ],
    'bad placement': [
        "models/m/model.yaml:12:14: spec.placement: expected 'dedicated' or a mapping {shared: <pool name>}, got 'everywhere'",
    ],
    'pool with no models': [
        "models/shared/pool.yaml:4:9: metadata.name: pool 'shared' has no models: place a model in it with `placement: {shared: shared}`, or delete it",
    ],
    'shared model sets resources': [
        "models/m/model.yaml:14:3: spec.resources: resources of a shared model are set by its pool 'shared': set them in models/shared/pool.yaml",
    ],
    'duplicate model names': [
        "models/n/model.yaml:4:9: metadata.name: a Model named 'm' must live at models/m/model.yaml, not models/n/model.yaml",
        "models/n/model.yaml:4:9: metadata.name: name 'm' is already used by models/m/model.yaml",
    ],
    'inline secret by name': [
        'models/m/model.yaml:14:14: spec.env[0].value: env API_TOKEN looks like a credential; never commit it: use valueFrom.secretKeyRef to read it from a Kubernetes Secret',
    ],
    'inline secret by shape': [
        'models/m/model.yaml:14:14: spec.env[0].value: env CONFIG looks like a credential; never commit it: use valueFrom.secretKeyRef to read it from a Kubernetes Secret',
    ],
    'env with value and secretKeyRef': [
        'models/m/model.yaml:13:7: spec.env[0]: set exactly one of value or valueFrom.secretKeyRef',
    ],
    'override with a bad field': [
        'models/m/model.yaml:15:22: spec.autoscaling.maxReplicas: in production: input should be greater than or equal to 1, got 0',
    ],
    'override breaks min/max': [
        'models/m/model.yaml:18:9: spec.autoscaling: in staging: minReplicas (2) is above maxReplicas (1)',
    ],
    'unknown environment': [
        "models/m/model.yaml:13:5: spec.environments.prod: unknown environment 'prod': platform/settings.yaml declares staging, production",
    ],
    'custom runtime without image': [
        "models/m/model.yaml:7:3: spec: runtime 'custom' needs an image",
    ],
    'image pinned to latest': [
        'models/m/model.yaml:12:10: spec.image: must be pinned by a tag other than latest, or by digest',
    ],
    'python model without model.py': [
        "models/m/model.yaml:7:12: spec.runtime: runtime 'python' needs the model class in models/m/model.py, which does not exist",
    ],
    'drift reference not a dataset': [
        "models/m/model.yaml:14:16: spec.logging.reference: reference 'training' is not one of this model's datasets (none declared)",
    ],
    'model named like a platform object': [
        "models/log-compactor/model.yaml:4:9: metadata.name: the model 'log-compactor' would make the ServiceAccount 'log-compactor', which the log compactor already makes in the same namespace; choose another name",
    ],
    'over the capacity budget': [
        "platform/capacity.yaml:10:3: environments.staging: cpu requests at peak (servers at max replicas, every job running) total 80550m, over the budget of 16; largest: m 80, the platform's pods 550m",
        "platform/capacity.yaml:14:3: environments.production: cpu requests at peak (servers at max replicas, every job running) total 81050m, over the budget of 64; largest: m 80, the platform's pods (log compactor: 2 workers) 1050m",
    ],
    'duplicate keys': [
        "models/m/model.yaml:13:3: spec.concurrency: duplicate key 'concurrency' (first defined on line 12)",
    ],
    'alias bomb': [
        'models/m/model.yaml:1:17: e[0][6][8][8][3]: document expands to more than 20000 values (an alias bomb?)',
    ],
    'binary junk': [
        'models/m/model.yaml:3:1: file is binary, not YAML text (it contains NUL bytes)',
    ],
    'not UTF-8': [
        'models/m/model.yaml:1:10: file is not UTF-8 text (bad byte 0xe9 at offset 9)',
    ],
    'empty file': [
        'models/m/model.yaml:1:1: file is empty: expected a spec with apiVersion, kind, metadata and spec',
    ],
    'only a comment': [
        'models/m/model.yaml:1:1: file is empty: expected a spec with apiVersion, kind, metadata and spec',
    ],
    'a list, not a mapping': [
        'models/m/model.yaml:1:1: expected a mapping at the top of the file, found list',
    ],
    'YAML syntax error': [
        "models/m/model.yaml:13:1: invalid YAML: while parsing a flow sequence, did not find expected ',' or ']'",
    ],
    'two documents': [
        'models/m/model.yaml:12:1: invalid YAML: expected a single document in the stream, but found another document',
    ],
    'python object tag': [
        "models/m/model.yaml:12:16: spec.concurrency: unsupported YAML tag 'tag:yaml.org,2002:python/object:os.system'",
    ],
    'huge file': [
        'models/m/model.yaml:1:1: file is 300250 bytes, over the 262144-byte limit for a spec',
    ],
    'tab indentation': [
        'models/m/model.yaml:13:1: invalid YAML: while scanning for the next token, found character that cannot start any token',
    ],
}
