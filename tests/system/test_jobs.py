"""Training and batch jobs: train -> propose -> validate -> generate -> serve -> infer, the
checks and the gate that stop a run before anything is written, and batch runs killed at
random points that still write every row exactly once."""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import httpx
import numpy as np
import pytest
import yaml
from conftest import REPO, examples, run_modelops
from servers import modelops_serve


def _spec(root: Path, edit) -> None:
    path = root / "models/iris/model.yaml"
    path.write_text(edit(path.read_text()))


def _versions(root: Path) -> set[str]:
    """The published versions, and anything a run left beside them (but the lock file that
    takes runs of one model in turn)."""
    return {p.name for p in (root / "var/volume/artifacts/iris").iterdir()
            if p.name != ".training.lock"}


def test_train_propose_and_serve_the_new_version(fresh_copy):
    root = fresh_copy
    first = run_modelops("train", "iris", cwd=root)
    assert first.returncode == 0, first.stderr
    assert first.stdout.startswith("trained iris v3: accuracy ")
    again = run_modelops("train", "iris", cwd=root)
    assert again.returncode == 0 and again.stdout.startswith("trained iris v4: ")
    folder = root / "var/volume/artifacts/iris"
    v3, v4 = (folder / "v3/model.joblib").read_bytes(), (folder / "v4/model.joblib").read_bytes()
    assert hashlib.sha256(v3).digest() == hashlib.sha256(v4).digest()  # the same data, the same bytes

    metrics = json.loads((folder / "v4/metrics.json").read_text())
    assert metrics["holdout"]["rows"] == 30 and metrics["trainRows"] == 120
    assert metrics["serving"]["version"] == "v1" and metrics["holdout"]["accuracy"] >= 0.9
    lineage = json.loads((folder / "v4/lineage.json").read_text())
    training_file = root / "var/volume/datasets/iris-training/train.csv"
    assert lineage["inputs"][0]["files"] == [{
        "path": "datasets/iris-training/train.csv", "bytes": training_file.stat().st_size,
        "sha256": hashlib.sha256(training_file.read_bytes()).hexdigest()}]
    assert lineage["inputs"][1] == {"dataset": "iris-predictions", "files": [],
                                    "path": "datasets/iris-predictions/model=iris"}
    assert lineage["code"]["sha256"] == hashlib.sha256(
        (root / "models/iris/train.py").read_bytes()).hexdigest()
    assert lineage["parameters"] == {"max_depth": 3} and lineage["seed"] == 0
    assert {"numpy", "scikit-learn", "python"} <= lineage["libraries"].keys()

    proposed = run_modelops("propose", "iris", cwd=root)
    assert proposed.returncode == 0, proposed.stderr
    assert proposed.stdout.startswith("proposed iris v4 at 10% in models/iris/model.yaml")
    spec = yaml.safe_load((root / "models/iris/model.yaml").read_text())["spec"]
    assert [(v["name"], v["weight"]) for v in spec["versions"]] == [("v1", 80), ("v2", 10), ("v4", 10)]
    assert spec["versions"][2]["sha256"] == hashlib.sha256(v4).hexdigest()
    assert "# A dedicated scikit-learn classifier" in (root / "models/iris/model.yaml").read_text()
    for step in (("validate",), ("generate",), ("test", "iris")):
        done = run_modelops(*step, cwd=root)
        assert done.returncode == 0, (step, done.stderr)

    plan = run_modelops("plan", cwd=root).stdout
    assert "traffic: v1 90%, v2 10% -> v1 80%, v2 10%, v4 10%" in plan
    assert f"holdout: - -> v4 accuracy {metrics['holdout']['accuracy']:g}" in plan
    catalog = json.loads(run_modelops("catalog", cwd=root).stdout)
    v4 = next(v for m in catalog["models"] if m["name"] == "iris" for v in m["versions"]
              if v["name"] == "v4")
    assert v4["metrics"]["accuracy"] == metrics["holdout"]["accuracy"]
    assert v4["lineage"] == "pvc://artifacts/iris/v4/lineage.json"
    from modelops_catalog.app import create_catalog_app
    from modelops_catalog.config import CatalogConfig

    async def fetch_page() -> str:
        app = create_catalog_app(CatalogConfig.model_validate(catalog))
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app),
                                     base_url="http://catalog") as client:
            return (await client.get("/catalog")).text

    row = asyncio.run(fetch_page()).split('id="state-iris-v4"')[1].split("</tr>")[0]
    assert f"accuracy {metrics['holdout']['accuracy']:g}" in row
    assert '<abbr title="pvc://artifacts/iris/v4/lineage.json">lineage</abbr>' in row

    with modelops_serve(root, "iris") as url:
        answer = httpx.post(f"{url}/v2/models/iris/versions/v4/infer", json={"inputs": [{
            "name": "input-0", "datatype": "FP64", "shape": [2, 4],
            "data": [5.1, 3.5, 1.4, 0.2, 6.6, 3.0, 4.4, 1.4]}]})
        assert answer.status_code == 200, answer.text
        assert answer.json()["model_version"] == "v4"
        assert answer.json()["outputs"][0]["data"] == [0, 1]


@pytest.mark.parametrize("edit, message", [
    (lambda t: t.replace("minRows: 100,", "minRows: 100000,"),
     "data check: 150 rows with a label, fewer than minRows (100000)"),
    (lambda t: t.replace("in_input-0_3]", "in_input-0_9]"),
     "data check: dataset iris-training has no column 'in_input-0_9' (it has in_input-0_0, "
     "in_input-0_1, in_input-0_2, in_input-0_3, label)"),
    (lambda t: t.replace("threshold: 0.9,", "threshold: 0.999,"),
     "quality gate: accuracy 0.9333 on the holdout is below the threshold 0.999"),
    (lambda t: t.replace("{max_depth: 3}", "{max_depth: 1}"),
     "quality gate: accuracy 0.6000 on the holdout is below the threshold 0.9"),
    (lambda t: t.replace("{max_depth: 3}", "{max_depth: 1}").replace(
        "threshold: 0.9, tolerance: 0.05", "tolerance: 0.01"),
     "quality gate: accuracy 0.6000 is 0.3333 worse than the serving version v1 (0.9333), "
     "past the tolerance 0.01"),
])
def test_a_failing_check_or_gate_writes_nothing(fresh_copy, edit, message):
    _spec(fresh_copy, edit)
    before = _versions(fresh_copy)
    result = run_modelops("train", "iris", cwd=fresh_copy)
    assert result.returncode == 1, result.stdout
    assert result.stderr == f"error: training stopped, nothing written: {message}\n"
    assert _versions(fresh_copy) == before  # no artifact, no half-written folder


def test_drift_since_the_last_training_set_stops_training(fresh_copy):
    assert run_modelops("train", "iris", cwd=fresh_copy).returncode == 0
    data = fresh_copy / "var/volume/datasets/iris-training/train.csv"
    lines = data.read_text().splitlines()
    shifted = [",".join([*row.split(",")[:2], str(float(row.split(",")[2]) + 3), *row.split(",")[3:]])
               for row in lines[1:]]
    data.write_text("\n".join([lines[0], *shifted]) + "\n")
    result = run_modelops("train", "iris", cwd=fresh_copy)
    assert result.returncode == 1
    assert "data check: feature 'in_input-0_2' drifted (PSI " in result.stderr
    assert "past maxDrift (1.0) since the last training set (v3)" in result.stderr


def test_training_and_batch_mistakes_are_located(tiny):
    text = (examples() / "models/iris/model.yaml").read_text()
    tiny.write("models/iris/model.yaml", text.replace("      - dataset: iris-predictions",
                                                       "      - dataset: iris-predictons")
               .replace("input: iris-to-score", "input: iris-to-scor"))
    tiny.write("models/iris/train.py", (examples() / "models/iris/train.py").read_text())
    result = run_modelops("validate", cwd=tiny.root)
    lines = result.stderr.splitlines()
    assert result.returncode == 1
    assert any(line.startswith("models/iris/model.yaml:") and
               ": spec.training.inputs[1].dataset: training input 'iris-predictons' is neither "
               "one of datasets nor the dataset of its prediction logs" in line for line in lines)
    assert any(": spec.batch.input: batch.input 'iris-to-scor' is not one of datasets "
               "(iris-to-score, iris-training)" in line for line in lines), lines
    (tiny.root / "models/iris/train.py").unlink()
    missing = run_modelops("validate", cwd=tiny.root)
    assert "spec.training.function: the training function is in models/iris/train.py, which " \
           "does not exist" in missing.stderr


def test_job_pods_count_against_the_budget_the_namespace_quota_enforces(tiny):
    """The budget is the namespace's ResourceQuota, which counts a job's pods like any other:
    a batch job that would not fit beside the servers at max replicas is refused before merge."""
    text = (examples() / "models/iris/model.yaml").read_text()
    tiny.write("models/iris/train.py", (examples() / "models/iris/train.py").read_text())
    tiny.write("models/iris/model.yaml", text)
    assert run_modelops("validate", cwd=tiny.root).returncode == 0
    tiny.write("models/iris/model.yaml", text.replace("parallelism: 2", "parallelism: 13"))
    result = run_modelops("validate", cwd=tiny.root)
    assert result.returncode == 1
    # staging: the servers 1.5 cores at max, training 1 and batch 13 x 1, the catalog 50m,
    # the log compactor 500m and the broker's node 500m (iris has async): 550m over,
    # though the servers alone use a tenth
    assert ("platform/capacity.yaml:10:3: environments.staging: cpu requests at peak (servers at "
            "max replicas, every job running) total 16550m, over the budget of 16; largest: "
            "iris jobs 14, iris 1500m, the platform's pods 550m") in result.stderr, result.stderr


@pytest.mark.parametrize("edit, where", [
    (lambda text: text.replace("cpu: 50m", "cpu: lots", 1), "1:1"),  # not a quantity
    (lambda text: text.replace("containers:", "containerz:", 1), "1:1"),  # no pods to read
    (lambda text: text.replace("cpu: 50m", "cpu: [50m", 1), "39:19"),  # not YAML, located
])
def test_a_platform_base_the_capacity_check_cannot_read_is_an_error_not_a_traceback(tiny, edit,
                                                                                   where):
    tiny.model("m")
    deployment = tiny.root / "base/catalog/deployment.yaml"
    deployment.write_text(edit(deployment.read_text()))
    result = run_modelops("validate", cwd=tiny.root)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.startswith(f"base/catalog/deployment.yaml:{where}: cannot read the "
                                    "requests of its pods, which the capacity check counts: "), \
        result.stderr


def _batch_inputs(root: Path, files: int, rows: int) -> list[tuple[str, int]]:
    folder = root / "var/volume/datasets/iris-to-score"
    for old in folder.iterdir():
        old.unlink()
    rng = np.random.default_rng(1)
    expected = []
    for i in range(files):
        data = rng.normal([5.8, 3.0, 3.8, 1.2], [0.8, 0.4, 1.7, 0.7], size=(rows, 4)).round(2)
        np.savetxt(folder / f"part-{i:02d}.csv", data, fmt="%.2f", delimiter=",", comments="",
                   header=",".join(f"in_input-0_{j}" for j in range(4)))
        expected += [(f"part-{i:02d}.csv", r) for r in range(rows)]
    return sorted(expected)


def _scored(root: Path) -> list[tuple[str, int]]:
    parts = sorted((root / "var/volume/datasets/iris-scored").rglob("*.parquet"))
    if not parts:
        return []
    with duckdb.connect() as con:
        return con.execute(f"SELECT source, \"row\" FROM read_parquet({[str(p) for p in parts]}) "
                           "ORDER BY ALL").fetchall()


def test_batch_killed_at_random_points_writes_every_row_exactly_once(fresh_copy):
    expected = _batch_inputs(fresh_copy, files=16, rows=20_000)
    rng = random.Random(7)
    command = [sys.executable, "-m", "modelops", "batch", "iris", "--date", "2026-11-22"]
    kills = 0
    for attempt in range(6):  # a killed run retried the next day, and the day after
        day = ["2026-11-22", "2026-11-23", "2026-11-24"][attempt % 3]
        proc = subprocess.Popen([*command[:-1], day], cwd=fresh_copy,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.5, 3.0))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait()
        scored = _scored(fresh_copy)
        assert len(scored) == len(set(scored))  # never a row twice, whatever was killed
        assert set(scored) <= set(expected)
    assert kills >= 1
    done = run_modelops(*command[3:], cwd=fresh_copy)
    assert done.returncode == 0, done.stderr
    assert _scored(fresh_copy) == expected
    rerun = run_modelops(*command[3:], cwd=fresh_copy)
    assert rerun.stdout.startswith("scored 0 row(s) from 0 file(s)") and _scored(fresh_copy) == expected
    leftovers = [p.name for p in (fresh_copy / "var/volume/datasets/iris-scored").rglob("*")
                 if p.is_file() and not p.name.endswith(".parquet")
                 and not (p.parent.name == "_ledger" and p.name.startswith("part-"))]
    assert leftovers == []  # no temporary file of a killed run (the ledger stays, by design)


def test_two_workers_split_the_files_and_agree_with_the_server(fresh_copy):
    expected = _batch_inputs(fresh_copy, files=6, rows=50)
    done = run_modelops("batch", "iris", "--workers", "2", "--date", "2026-11-22", cwd=fresh_copy)
    assert done.returncode == 0, done.stderr
    assert done.stdout == ("scored 300 row(s) from 6 file(s) into datasets/iris-scored/model=iris/"
                           "version=v1/date=2026-11-22 (0 already done)\n")
    assert _scored(fresh_copy) == expected
    import joblib  # the same predictions as the served version's own estimator

    estimator = joblib.load(fresh_copy / "var/volume/artifacts/iris/v1/model.joblib")
    folder = fresh_copy / "var/volume/datasets/iris-to-score"
    with duckdb.connect() as con:
        scored = dict(((s, r), p) for s, r, p in con.execute(
            f"SELECT source, \"row\", out_predict FROM read_parquet('{fresh_copy}/var/volume/"
            "datasets/iris-scored/**/*.parquet')").fetchall())
    for i in range(6):
        rows = np.loadtxt(folder / f"part-{i:02d}.csv", delimiter=",", skiprows=1)
        assert [scored[(f"part-{i:02d}.csv", r)] for r in range(50)] == \
            estimator.predict(rows).tolist()


def test_generated_cronjobs_mount_only_what_they_write():
    jobs = examples() / "overlays/production/models/iris/jobs"
    train = yaml.safe_load((jobs / "train.yaml").read_text())
    batch = yaml.safe_load((jobs / "batch.yaml").read_text())
    copied = (jobs / "train.py").read_text()  # the header names the file it is copied from
    assert copied.startswith("# Generated by `modelops generate` from models/iris/train.py.")
    assert copied.endswith((examples() / "models/iris/train.py").read_text())
    assert (train["spec"]["schedule"], train["spec"]["suspend"]) == ("0 3 * * 0", False)
    container = train["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]
    assert container["volumeMounts"] == [{"name": "shared", "mountPath": "/mnt/shared/artifacts/iris",
                                          "subPath": "artifacts/iris"}]
    assert batch["spec"]["jobTemplate"]["spec"] | {} == {
        "completions": 2, "parallelism": 2,
        "template": batch["spec"]["jobTemplate"]["spec"]["template"]}
    base = yaml.safe_load((REPO / "base/batch-job/cronjob.yaml").read_text())
    assert base["spec"]["jobTemplate"]["spec"]["completionMode"] == "Indexed"
    mounts = base["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["volumeMounts"]
    assert [m for m in mounts if m["name"] == "shared"] == [{
        "name": "shared", "mountPath": "/mnt/shared/datasets", "subPath": "datasets",
        "readOnly": True}]


def test_plan_shows_the_jobs_a_change_removes(fresh_copy):
    _spec(fresh_copy, lambda t: t.split("  batch:")[0] + "  example:" + t.split("  example:")[1])
    assert run_modelops("generate", cwd=fresh_copy).returncode == 0
    plan = json.loads(run_modelops("plan", "-o", "json", cwd=fresh_copy).stdout)
    iris = [(c["env"], c["removed"]) for c in plan["changes"] if c["name"] == "iris"]
    assert iris == [("staging", ["CronJob/iris-batch"]), ("production", ["CronJob/iris-batch"])]


def test_its_own_prediction_logs_train_the_next_version(fresh_copy):
    """The loop closed: served requests -> logs -> compacted dataset -> training input."""
    with modelops_serve(fresh_copy, "iris") as url:
        rows = np.random.default_rng(3).normal([5.8, 3.0, 3.8, 1.2], [0.8, 0.4, 1.7, 0.7],
                                               size=(50, 4)).round(1)
        for chunk in np.split(rows, 10):
            answer = httpx.post(f"{url}/v2/models/iris/versions/v1/infer", json={"inputs": [{
                "name": "input-0", "datatype": "FP64", "shape": [5, 4],
                "data": chunk.ravel().tolist()}]})
            assert answer.status_code == 200
    assert run_modelops("logs", "compact", cwd=fresh_copy).returncode == 0
    trained = run_modelops("train", "iris", cwd=fresh_copy)
    assert trained.returncode == 0, trained.stderr
    metrics = json.loads((fresh_copy / "var/volume/artifacts/iris/v3/metrics.json").read_text())
    lineage = json.loads((fresh_copy / "var/volume/artifacts/iris/v3/lineage.json").read_text())
    logs = lineage["inputs"][1]
    assert logs["dataset"] == "iris-predictions" and logs["label"] == "out_predict"
    assert logs["files"] and all(f["path"].startswith("datasets/iris-predictions/model=iris/")
                                 for f in logs["files"])
    assert metrics["trainRows"] + metrics["holdout"]["rows"] == 150 + 50


def test_bad_data_and_failing_code_are_clear_errors(fresh_copy):
    training = fresh_copy / "var/volume/datasets/iris-training/train.csv"
    lines = training.read_text().splitlines()
    training.write_text("\n".join([*lines[:5], "5.1,abc,1.4,0.2,0", *lines[5:]]) + "\n")
    text_in_numbers = run_modelops("train", "iris", cwd=fresh_copy)
    assert text_in_numbers.returncode == 1 and "Traceback" not in text_in_numbers.stderr
    assert text_in_numbers.stderr.startswith(
        "error: training stopped, nothing written: data check: dataset iris-training: ")
    assert "abc" in text_in_numbers.stderr

    training.write_text("\n".join(lines) + "\n")
    code = fresh_copy / "models/iris/train.py"
    code.write_text(code.read_text().replace("return model.fit(features, labels)",
                                             "return model.fit(features, labels[:3])"))
    failing = run_modelops("train", "iris", cwd=fresh_copy)
    assert failing.returncode == 1 and "Traceback" not in failing.stderr
    assert failing.stderr.startswith("error: training stopped, nothing written: train.py at "
                                     "line 13: ValueError: ")

    original = code.read_text()
    code.write_text("import xgboost_not_in_the_image\n" + original)
    unimportable = run_modelops("train", "iris", cwd=fresh_copy)
    assert unimportable.returncode == 1 and "Traceback" not in unimportable.stderr
    assert unimportable.stderr.startswith(
        "error: training stopped, nothing written: train.py at line 1: ModuleNotFoundError: "
        "No module named 'xgboost_not_in_the_image'"), unimportable.stderr
    code.write_text(original)

    code.write_text(code.read_text().replace("return model.fit(features, labels[:3])",
                                             "model.fit(features, labels)"))
    nothing = run_modelops("train", "iris", cwd=fresh_copy)
    assert nothing.returncode == 1 and "Traceback" not in nothing.stderr
    assert "the trained model does not serve: AttributeError" in nothing.stderr

    artifact = fresh_copy / "var/volume/artifacts/iris/v1/model.joblib"
    kept = artifact.read_bytes()
    artifact.unlink()
    no_artifact = run_modelops("batch", "iris", cwd=fresh_copy)
    assert no_artifact.returncode == 1 and "Traceback" not in no_artifact.stderr
    assert no_artifact.stderr == f"error: artifact {artifact} does not exist\n"
    spec = fresh_copy / "models/iris/model.yaml"
    pinned = spec.read_text()
    artifact.write_bytes(b"not a joblib file")  # damaged, and pinned as it is
    spec.write_text(pinned.replace(hashlib.sha256(kept).hexdigest(),
                                   hashlib.sha256(b"not a joblib file").hexdigest()))
    damaged = run_modelops("batch", "iris", cwd=fresh_copy)
    assert damaged.returncode == 1 and "Traceback" not in damaged.stderr
    assert damaged.stderr.startswith("error: model iris v1 does not load: "), damaged.stderr
    spec.write_text(pinned)
    artifact.write_bytes(kept)

    for date in ("../../escape", "2026-13-45"):
        outside = run_modelops("batch", "iris", "--date", date, cwd=fresh_copy)
        assert outside.returncode == 1 and "Traceback" not in outside.stderr
    assert not (fresh_copy / "var/volume/escape").exists()

    scored = fresh_copy / "var/volume/datasets/iris-to-score/day-1.csv"
    scored.write_text(scored.read_text().replace("in_input-0_3", "petal_width"))
    batch = run_modelops("batch", "iris", cwd=fresh_copy)
    assert batch.returncode == 1 and "Traceback" not in batch.stderr
    assert batch.stderr.startswith("error: datasets/iris-to-score/day-1.csv: ")


def test_propose_refuses_what_it_cannot_do_and_leaves_the_spec_alone(fresh_copy):
    spec = fresh_copy / "models/iris/model.yaml"
    before = spec.read_text()
    nothing = run_modelops("propose", "iris", cwd=fresh_copy)
    assert nothing.returncode == 1 and nothing.stderr.startswith("error: nothing trained under ")
    assert run_modelops("train", "iris", cwd=fresh_copy).returncode == 0
    block = ("    - name: v2\n      artifact: pvc://artifacts/iris/v2/model.joblib\n"
             "      sha256: 44195873da75c5bcce1eb6a33483c1dcb06d60c1177695a859119f419a2df85b\n"
             "      weight: 10\n")
    assert block in before
    flow = before.replace(block, "    - {name: v2, artifact: pvc://artifacts/iris/v2/model.joblib, "
                          "sha256: 44195873da75c5bcce1eb6a33483c1dcb06d60c1177695a859119f419a2df85b,"
                          " weight: 10}\n")
    spec.write_text(flow)
    assert run_modelops("validate", cwd=fresh_copy).returncode == 0
    refused = run_modelops("propose", "iris", cwd=fresh_copy)
    assert refused.returncode == 1 and "flow style" in refused.stderr
    assert spec.read_text() == flow
    assert run_modelops("propose", "wine", cwd=fresh_copy).returncode == 1  # nothing trained

    # A tampered run on the shared volume cannot write YAML of its own into the spec.
    spec.write_text(before)
    run = fresh_copy / "var/volume/artifacts/iris/v3"
    lineage, metrics = json.loads((run / "lineage.json").read_text()), \
        json.loads((run / "metrics.json").read_text())
    for field, value, words in (
            ("sha256", lineage["artifact"]["sha256"] + "\n      weight: 90", "not a sha256"),
            ("path", "artifacts/iris/v3/model.joblib\n    - name: v9", "not a file of"),
            ("path", "artifacts/wine/v1/model.joblib", "not a file of artifacts/iris/v3/")):
        (run / "lineage.json").write_text(json.dumps(
            {**lineage, "artifact": {**lineage["artifact"], field: value}}))
        tampered = run_modelops("propose", "iris", cwd=fresh_copy)
        assert tampered.returncode == 1 and words in tampered.stderr, tampered.stderr
        assert spec.read_text() == before
    (run / "lineage.json").write_text(json.dumps(lineage))
    trained = run / "model.joblib"
    kept = trained.read_bytes()
    for damage, words in ((lambda: trained.write_bytes(b"other bytes"), "was changed since"),
                          (trained.unlink, "was deleted since")):
        damage()
        refused = run_modelops("propose", "iris", cwd=fresh_copy)
        assert refused.returncode == 1 and words in refused.stderr, refused.stderr
        assert spec.read_text() == before
    trained.write_bytes(kept)
    odd = "f1: 1}\n  runtime: custom #"
    (run / "metrics.json").write_text(json.dumps(
        {**metrics, "holdout": {**metrics["holdout"], odd: 0.5, "ok": True}}))
    assert run_modelops("propose", "iris", cwd=fresh_copy).returncode == 0
    proposed = yaml.safe_load(spec.read_text())["spec"]
    assert proposed["runtime"] == "sklearn"
    assert proposed["versions"][-1]["metrics"]["holdout"] == {
        **metrics["holdout"], odd: 0.5}  # the odd name kept as a name; a boolean left out


def test_a_pooled_model_batch_job_renders_in_its_pools_application(tmp_path):
    """Jobs of a model in a pool live in the pool's overlay, with the pool's account."""
    from conftest import copy_repo

    from modelops import render
    from modelops.repo import load

    root = copy_repo(tmp_path)
    spec = root / "models/wine/model.yaml"
    spec.write_text(spec.read_text().replace("  concurrency: 8\n", """  concurrency: 8
  datasets:
    - name: wine-to-score
      path: datasets/wine-to-score
  batch:
    input: wine-to-score
    output: wine-scored
    features: [a, b, c, d, e, f, g, h, i, j, k, l, m]
"""))
    assert run_modelops("generate", cwd=root).returncode == 0
    out = tmp_path / "rendered"
    count, problems = render.render(root, load(root).settings.kubernetesVersion, out=out)
    assert problems == []
    objects = list(yaml.safe_load_all((out / "overlays/staging/models/tabular.yaml").read_text()))
    cronjobs = [o for o in objects if o["kind"] == "CronJob"]
    assert [c["metadata"]["name"] for c in cronjobs] == ["tabular-wine-batch"]  # the pool's prefix
    pod = cronjobs[0]["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "tabular-server" and cronjobs[0]["spec"]["suspend"] is True
    assert pod["automountServiceAccountToken"] is False
    assert any(o["kind"] == "ServiceAccount" and o["metadata"]["name"] == "tabular-server"
               for o in objects)
    mounts = pod["containers"][0]["volumeMounts"]
    assert {m["mountPath"]: m.get("readOnly", False) for m in mounts if m["name"] == "shared"} == {
        "/mnt/shared/datasets": True, "/mnt/shared/artifacts/wine": True,
        "/mnt/shared/datasets/wine-scored/model=wine": False}  # its own part, nothing more


def test_the_gate_cannot_be_passed_without_quality(fresh_copy):
    """Three ways round the quality gate, each closed: a NaN threshold (every comparison
    with NaN is false), a dataset listed twice (its rows learnt and then scored), and text
    labels (a version whose outputs are not the serving version's)."""
    spec = fresh_copy / "models/iris/model.yaml"
    pinned = spec.read_text()
    spec.write_text(pinned.replace("threshold: 0.9,", "threshold: .nan,"))
    nan = run_modelops("validate", cwd=fresh_copy)
    assert nan.returncode == 1 and "spec.training.gate.threshold: " in nan.stderr
    assert "finite number" in nan.stderr
    spec.write_text(pinned.replace("      - dataset: iris-predictions",
                                   "      - dataset: iris-training\n"
                                   "      - dataset: iris-predictions"))
    twice = run_modelops("validate", cwd=fresh_copy)
    assert twice.returncode == 1 and "dataset 'iris-training' is listed twice" in twice.stderr
    spec.write_text(pinned.replace("in_input-0_3]", "in_input-0_3, label]"))
    leaked = run_modelops("validate", cwd=fresh_copy)
    assert leaked.returncode == 1 and "the label 'label' is also a feature" in leaked.stderr
    spec.write_text(pinned)

    data = fresh_copy / "var/volume/datasets/iris-training/train.csv"
    names = {"0": "setosa", "1": "versicolor", "2": "virginica"}
    lines = data.read_text().splitlines()
    data.write_text("\n".join([lines[0], *[row.rsplit(",", 1)[0] + "," +
                                           names[row.rsplit(",", 1)[1]] for row in lines[1:]]])
                    + "\n")
    before = _versions(fresh_copy)
    text = run_modelops("train", "iris", cwd=fresh_copy)
    assert text.returncode == 1 and "Traceback" not in text.stderr
    assert "the new version answers predict BYTES [-1], predict_proba FP64 [-1, 3], the " \
           "serving version v1 predict INT64 [-1], predict_proba FP64 [-1, 3]" in text.stderr
    assert _versions(fresh_copy) == before


def test_every_copy_of_a_row_falls_on_one_side_of_the_holdout():
    import numpy as np

    from modelops_jobs.training import split

    rows = np.arange(40, dtype=float).reshape(20, 2)
    features = np.concatenate([rows, rows, rows[:5]])  # each row twice, five thrice
    labels = np.concatenate([np.arange(20), np.arange(20), np.arange(5)])
    held, kept = split(features, labels, 0.2, seed=3)
    as_rows = {tuple(features[i]) for i in held}
    assert not as_rows & {tuple(features[i]) for i in kept}
    assert len(held) >= 9 and len(held) + len(kept) == 45
    again = split(features, labels, 0.2, seed=3)
    assert held.tolist() == again[0].tolist()  # the same data, the same split


def test_one_bad_input_file_is_set_aside_and_the_others_are_scored(fresh_copy):
    """Seven kinds of bad file among good ones: each is set aside with its reason, every
    good file is scored, the run exits 1; a re-run adds nothing and tries none of them
    again, and a corrected file is scored."""
    folder = fresh_copy / "var/volume/datasets/iris-to-score"
    good = (folder / "day-1.csv").read_text().splitlines()
    header = good[0]
    bad = {
        "header-only.csv": header + "\n",
        "empty.csv": "",
        "text.csv": "\n".join([header, "5.1,abc,1.4,0.2"]) + "\n",
        "infinity.csv": "\n".join([header, "5.1,inf,1.4,0.2"]) + "\n",
        "missing.csv": "\n".join([header, "5.1,,1.4,0.2"]) + "\n",
        "columns.csv": "a,b\n1,2\n",
        "corrupt.parquet": "PAR1 this is not parquet",
    }
    for name, text in bad.items():
        (folder / name).write_text(text)
    first = run_modelops("batch", "iris", "--date", "2026-12-01", cwd=fresh_copy)
    assert first.returncode == 1 and "Traceback" not in first.stderr, first.stderr
    reasons = [line for line in first.stderr.splitlines() if line.startswith("error: ")]
    assert sorted(line.split(":")[1].strip() for line in reasons) == sorted(
        f"datasets/iris-to-score/{name}" for name in bad)
    out = fresh_copy / "var/volume/datasets/iris-scored/model=iris/version=v1/date=2026-12-01"
    assert len(list(out.glob("part-*.parquet"))) == 3  # day-1, day-2, day-3
    assert len(list((out / "_rejected").glob("*.json"))) == len(bad)
    again = run_modelops("batch", "iris", "--date", "2026-12-01", cwd=fresh_copy)
    assert again.returncode == 0 and "0 row(s)" in again.stdout
    (folder / "text.csv").write_text("\n".join([header, "5.1,3.5,1.4,0.2"]) + "\n")
    fixed = run_modelops("batch", "iris", "--date", "2026-12-01", cwd=fresh_copy)
    assert fixed.returncode == 0 and fixed.stdout.startswith("scored 1 row(s) from 1 file(s)")


def test_a_retried_batch_pod_writes_into_the_date_its_cronjob_scheduled():
    """The CronJob names each Job <cronjob>-<scheduled minute>; the pod reads it from its
    job-name label, so a retry after midnight keeps the first try's date."""
    import datetime

    from modelops_jobs.config import JobOptions

    scheduled = datetime.datetime(2026, 11, 22, 23, 59, tzinfo=datetime.UTC)
    minute = int(scheduled.timestamp()) // 60
    assert JobOptions(job_name=f"iris-batch-{minute}").scheduled_date() == "2026-11-22"
    assert JobOptions(job_name="iris-by-hand").scheduled_date() is None  # today, then
    base = yaml.safe_load((REPO / "base/batch-job/cronjob.yaml").read_text())
    env = base["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["env"]
    assert {"name": "MODELOPS_JOB_NAME", "valueFrom": {"fieldRef": {
        "fieldPath": "metadata.labels['job-name']"}}} in env


def test_a_volume_path_with_a_space_or_a_quote_is_just_a_path(fresh_copy):
    """Paths reach DuckDB's SQL (COPY takes no parameter for its file): quoted, always."""
    odd = fresh_copy / "var/it's a volume"
    shutil.copytree(fresh_copy / "var/volume", odd)
    scored = run_modelops("batch", "iris", "--shared", str(odd), cwd=fresh_copy)
    assert scored.returncode == 0, scored.stderr
    assert scored.stdout.startswith("scored 300 row(s) from 3 file(s)")


def test_two_trainings_at_once_take_turns_and_leave_nothing_behind(fresh_copy):
    """Two runs at once could crash each other; a killed run's staging stayed for good; the
    published folder was 0700, unreadable to the servers' other users."""
    artifacts = fresh_copy / "var/volume/artifacts/iris"
    (artifacts / ".staging-killed").mkdir()
    (artifacts / ".staging-killed/model.joblib").write_bytes(b"half")
    command = [sys.executable, "-m", "modelops", "train", "iris"]
    runs = [subprocess.Popen(command, cwd=fresh_copy, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [run.communicate(timeout=300) for run in runs]
    assert [run.returncode for run in runs] == [0, 0], outs
    assert sorted(out.split(":")[0] for out, _ in outs) == ["trained iris v3", "trained iris v4"]
    assert not list(artifacts.glob(".staging-*"))
    assert (artifacts / "v3").stat().st_mode & 0o777 == 0o755


def test_training_reads_only_its_datasets_and_its_own_code(fresh_copy, tmp_path):
    """A dataset file that is a link out of datasets/, a damaged Parquet file among the
    data, and a train.py that links outside the repository are each refused in one line."""
    secret = tmp_path / "elsewhere.csv"
    secret.write_text("in_input-0_0,in_input-0_1,in_input-0_2,in_input-0_3,label\n1,2,3,4,0\n")
    training = fresh_copy / "var/volume/datasets/iris-training"
    (training / "linked.csv").symlink_to(secret)
    linked = run_modelops("train", "iris", cwd=fresh_copy)
    assert linked.returncode == 1 and "Traceback" not in linked.stderr
    assert "linked.csv leads out of" in linked.stderr
    (training / "linked.csv").unlink()
    (training / "damaged.parquet").write_bytes(b"PAR1 not really")
    (training / "train.csv").rename(training / "train.csv.kept")
    damaged = run_modelops("train", "iris", cwd=fresh_copy)
    assert damaged.returncode == 1 and "Traceback" not in damaged.stderr, damaged.stderr
    assert "data check: dataset iris-training: " in damaged.stderr
    (training / "damaged.parquet").unlink()
    (training / "train.csv.kept").rename(training / "train.csv")

    code = fresh_copy / "models/iris/train.py"
    outside = tmp_path / "train.py"
    outside.write_text(code.read_text())
    code.unlink()
    code.symlink_to(outside)
    refused = run_modelops("validate", cwd=fresh_copy)
    assert refused.returncode == 1
    assert "models/iris/train.py:1:1: train.py is a symbolic link" in refused.stderr


def test_an_input_that_grows_is_scored_from_its_first_new_row(fresh_copy):
    """A file that grew between runs (150,000 rows duplicated before): the next run scores
    only the rows it has not seen, on whatever date, so each (file, row) is there once."""
    expected = _batch_inputs(fresh_copy, files=3, rows=500)
    first = run_modelops("batch", "iris", "--date", "2026-11-22", cwd=fresh_copy)
    assert first.returncode == 0, first.stderr
    grown = fresh_copy / "var/volume/datasets/iris-to-score/part-01.csv"
    with grown.open("a") as handle:
        handle.write("".join(f"5.{i % 10},3.0,4.0,1.0\n" for i in range(250)))
    expected = sorted([*expected, *[("part-01.csv", r) for r in range(500, 750)]])
    second = run_modelops("batch", "iris", "--date", "2026-11-23", cwd=fresh_copy)
    assert second.returncode == 0, second.stderr
    assert second.stdout.startswith("scored 250 row(s) from 1 file(s)")
    assert _scored(fresh_copy) == expected
