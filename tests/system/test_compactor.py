"""The log compactor: closed prediction logs become Parquet datasets exactly once, even when
it is killed at any point, with a drift summary against a reference."""

from __future__ import annotations

import fcntl
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import numpy as np
import pytest
from conftest import REPO, TinyRepo, run_modelops
from servers import config, model

from modelops_compactor.compactor import Compactor
from modelops_compactor.config import CompactorConfig
from modelops_runtime.config import ServerConfig
from modelops_runtime.registry import Registry
from modelops_runtime.watch import DatasetWatcher

DAY = 1795000000.0  # 2026-11-18 in UTC


def _record(i: int, model_name: str = "iris", version: str = "v1", dataset: str = "iris-log",
            rows: int = 1, ts: float = DAY, nested: bool = False, shift: float = 0.0) -> dict:
    rng = random.Random(i)
    values = [round(rng.gauss(5 + shift, 1), 3) for _ in range(rows * 4)]
    data = [values[r * 4:(r + 1) * 4] for r in range(rows)] if nested else values
    return {"id": f"{model_name}-{i}", "model": model_name, "version": version,
            "dataset": dataset, "ts": ts + i,
            "inputs": [{"name": "input-0", "datatype": "FP64", "shape": [rows, 4], "data": data},
                       {"name": "note", "datatype": "BYTES", "shape": [rows],
                        "data": [f"n{i}-{r}" for r in range(rows)]}],
            "outputs": [{"name": "predict", "datatype": "INT64", "shape": [rows],
                         "data": [i % 3] * rows}],
            "latency_ms": 0.5, "status": 200}


def _write_log(shared: Path, name: str, records: list[dict], server: str = "iris-v1-server",
               day: str = "2026-11-18") -> Path:
    path = shared / "logs" / server / day / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def _query(sql: str) -> list[tuple]:
    with duckdb.connect() as con:
        return con.execute(sql).fetchall()


def _rows(shared: Path, dataset: str = "iris-log") -> list[tuple]:
    files = sorted((shared / "datasets" / dataset).rglob("*.parquet"))
    if not files:
        return []
    return _query(f"SELECT request_id, \"row\" FROM read_parquet({[str(f) for f in files]}) "
                      "ORDER BY ALL")


def _expected(records: list[dict]) -> list[tuple]:
    return sorted((r["id"], row) for r in records for row in range(r["inputs"][0]["shape"][0]))


def test_every_instance_becomes_one_row_and_a_rerun_adds_nothing(tmp_path):
    shared = tmp_path
    flat = [_record(i, rows=1 + i % 3) for i in range(40)]
    nested = [_record(i, rows=2, nested=True) for i in range(40, 60)]
    other = [_record(i, model_name="wine", dataset="wine", version="v3", ts=DAY + 86400)
             for i in range(10)]
    _write_log(shared, "a-1.jsonl", flat)
    _write_log(shared, "a-2.jsonl", nested)
    _write_log(shared, "b-1.jsonl", other, server="tabular-server")
    still_open = _write_log(shared, "a-3.jsonl.open", [_record(99)])
    orphan = _write_log(shared, "c-1.jsonl.open", [_record(98)] * 2)
    orphan.write_bytes(orphan.read_bytes()[:-20])  # a server killed mid-line

    with open(still_open, "ab") as writer:  # a live server holds its open file's lock
        fcntl.flock(writer, fcntl.LOCK_EX)
        summary = Compactor(shared, CompactorConfig()).run()
    assert (summary.records, summary.files, summary.reopened) == (71, 4, 1)
    assert _rows(shared, "iris-log").count(("iris-98", 0)) == 1  # its complete line only
    assert _rows(shared) == _expected(flat + nested + [_record(98)])
    assert _rows(shared, "wine") == _expected(other)
    assert still_open.exists()  # never touches a file still being written
    assert not list((shared / "logs").glob("[!_]*/*/*.jsonl"))  # consumed logs are gone
    partitions = sorted(str(p.parent.relative_to(shared / "datasets"))
                        for p in (shared / "datasets").rglob("*.parquet"))
    assert partitions == ["iris-log/model=iris/version=v1/date=2026-11-18",
                          "wine/model=wine/version=v3/date=2026-11-19"]

    # Values land in the right columns, nested or flat, strings too.
    got = _query(f"""SELECT "in_input-0_0", "in_input-0_3", in_note, out_predict
        FROM read_parquet('{shared}/datasets/iris-log/*/*/*/*.parquet')
        WHERE request_id = 'iris-41' AND "row" = 1""")[0]
    source = nested[1]["inputs"]
    assert got == (source[0]["data"][1][0], source[0]["data"][1][3], "n41-1", 41 % 3)

    again = Compactor(shared, CompactorConfig()).run()
    assert (again.records, again.runs) == (1, 1)  # the file its writer no longer holds
    assert _rows(shared) == _expected(flat + nested + [_record(98), _record(99)])


def _tensor_record(i: int, **tensor) -> dict:
    record = _record(i)
    record["inputs"] = [{"name": "input-0", "datatype": "FP64", "shape": [1, 4],
                         "data": [5.1, 3.5, 1.4, 0.2]} | tensor]
    return record


# (what reached the log, why the compactor cannot type it)
UNTYPABLE = [
    (_tensor_record(900, data=[[[5.1, 3.5, 1.4, 0.2]]]), "nested unlike its shape [1, 4]"),
    (_tensor_record(901, data=["a", "b", "c", "d"]), "a value is not a FP64"),
    (_tensor_record(902, datatype="INT8", data=[300, 1, 2, 3]), "a value is not a INT8"),
    (_tensor_record(903, datatype="FP32", data=[1e300, 1, 2, 3]), "a value is not a FP32"),
    (_tensor_record(904, shape=[2, 4]), "needs 8 values, has 4"),
    (_tensor_record(905, datatype="FP99"), "unknown datatype 'FP99'"),
    (_tensor_record(908, datatype={}), "unknown datatype {}"),
    ({**_record(906), "ts": "yesterday"}, "ts is not a DOUBLE"),
    ({**_record(907), "inputs": []}, "inputs is empty"),
    ([1, 2, 3], "not a JSON object"),
]


def test_a_record_that_cannot_be_typed_is_set_aside_and_the_rest_compacted(tmp_path):
    """Record by record: one bad line never blocks its file, its batch or the volume."""
    good = [_record(i) for i in range(5)]
    bad = _write_log(tmp_path, "bad.jsonl", [])
    lines = [json.dumps(good[0]), json.dumps(UNTYPABLE[0][0]), "not json at all",
             *[json.dumps(r) for r in good[1:3]], *[json.dumps(r) for r, _ in UNTYPABLE[1:]],
             json.dumps(good[3]), json.dumps(good[4])[:-7]]  # torn
    bad.write_text("\n".join(lines) + "\n")

    summary = Compactor(tmp_path, CompactorConfig()).run()
    assert _rows(tmp_path) == _expected(good[:4])
    kept = tmp_path / "logs/_compactor/rejected/iris-v1-server/2026-11-18/bad.jsonl.rejected.jsonl"
    rejected = [json.loads(line) for line in kept.read_text().splitlines()]
    reasons = [r["reason"] for r in rejected]
    assert len(rejected) == len(UNTYPABLE) + 2
    assert reasons[1].startswith("not JSON") and reasons[-1].startswith("not JSON")
    for (record, why), reason in zip(UNTYPABLE, reasons[:1] + reasons[2:], strict=False):
        assert why in reason, (record, reason)
    assert json.loads(rejected[0]["record"]) == UNTYPABLE[0][0]  # nothing is thrown away
    assert rejected[0]["line"] == 2
    assert list(summary.rejected) == ["iris-v1-server/2026-11-18/bad.jsonl"]
    assert not bad.exists()
    again = Compactor(tmp_path, CompactorConfig()).run()
    assert (again.runs, again.rejected) == (0, {})


def test_any_number_of_input_names_keeps_columns_and_memory_bounded(tmp_path):
    """300 requests, each naming its input differently: the most common layouts get
    columns; the rest keep their tensors whole as JSON, and every record is compacted.
    Later runs, with more new names or none, are not blocked by the earlier partitions."""
    records = []
    for i in range(300):
        record = _record(i)
        record["inputs"][0]["name"] = f"feature-{i}"
        records.append(record)
    _write_log(tmp_path, "names.jsonl", records)
    summary = Compactor(tmp_path, CompactorConfig()).run()  # 512MB, the default
    assert summary.records == 300 and summary.rows == 300
    files = [str(f) for f in (tmp_path / "datasets/iris-log").rglob("*.parquet")]
    columns = [c[0] for c in _query(f"DESCRIBE SELECT * FROM read_parquet({files}, "
                                    "union_by_name = true)")]
    assert len(columns) < 600 and "inputs_json" in columns
    whole = _query(f"SELECT inputs_json FROM read_parquet({files}, union_by_name = true) "
                   "WHERE request_id = 'iris-299'")[0][0]
    assert json.loads(whole)[0]["name"] == "feature-299"
    # the next hour, 301 more new names and then clean records: neither run is blocked
    more = [_record(1000 + i) for i in range(301)]
    for i, record in enumerate(more):
        record["inputs"][0]["name"] = f"later-{i}"
    _write_log(tmp_path, "more-names.jsonl", more)
    assert Compactor(tmp_path, CompactorConfig()).run().records == 301
    _write_log(tmp_path, "clean.jsonl", [_record(2000 + i) for i in range(10)])
    clean = Compactor(tmp_path, CompactorConfig()).run()
    assert (clean.records, clean.rejected) == (10, {})
    assert len(_rows(tmp_path)) == 611


def _compact_process(shared: Path, crash_at: str | None = None,
                     batch_bytes: int = 4096, worker: tuple[int, int] = (0, 1),
                     config: Path | None = None) -> subprocess.Popen:
    env = {**os.environ, "MODELOPS_SHARED_ROOT": str(shared),
           "MODELOPS_COMPACTOR_CONFIG": str(config or shared / "none.yaml"),
           "MODELOPS_BATCH_BYTES": str(batch_bytes),
           "JOB_COMPLETION_INDEX": str(worker[0]), "MODELOPS_COMPACTOR_WORKERS": str(worker[1])}
    if crash_at:
        env["MODELOPS_COMPACTOR_CRASH_AT"] = crash_at
    return subprocess.Popen([sys.executable, "-m", "modelops_compactor"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


@pytest.mark.parametrize("step", ["staged", "committed", "moved-one", "deleted-one"])
def test_a_crash_at_any_step_loses_and_duplicates_nothing(tmp_path, step):
    records = [_record(i, rows=2) for i in range(30)]
    for n in range(3):
        _write_log(tmp_path, f"f-{n}.jsonl", records[n * 10:(n + 1) * 10])
    crashed = _compact_process(tmp_path, crash_at=step)
    assert crashed.wait(60) == 137, crashed.stderr.read()
    finished = _compact_process(tmp_path)
    out, err = finished.communicate(timeout=60)
    assert finished.returncode == 0, err
    assert _rows(tmp_path) == _expected(records)
    summary = json.loads(out)
    assert summary["recovered"] == (0 if step == "staged" else 1)


def test_killed_at_random_moments_it_still_writes_each_record_once(tmp_path):
    rng = random.Random(7)
    written: list[dict] = []
    for round_ in range(6):
        batch = [_record(round_ * 1000 + i, rows=1 + i % 2) for i in range(200)]
        for n in range(4):
            _write_log(tmp_path, f"r{round_}-{n}.jsonl", batch[n * 50:(n + 1) * 50])
        written += batch
        victim = _compact_process(tmp_path, batch_bytes=8192)  # many small commits
        time.sleep(rng.uniform(0.05, 1.5))
        victim.send_signal(signal.SIGKILL)
        victim.wait(30)
    finished = _compact_process(tmp_path)
    out, err = finished.communicate(timeout=120)
    assert finished.returncode == 0, err
    assert _rows(tmp_path) == _expected(written)
    assert not list((tmp_path / "logs/_compactor/staging").iterdir())


@pytest.mark.parametrize("rows, drifted, steady", [(500, "significant", "stable"),
                                                   (4, "too few rows", "too few rows")])
def test_drift_summary_tells_a_shifted_feature_from_a_steady_one(tmp_path, rows, drifted,
                                                                 steady):
    """And below MIN_ROWS a day it judges nothing: four rows gave PSI 4.9 to 7.0."""
    rng = np.random.default_rng(0)
    reference = rng.normal(5, 1, size=(2000, 4))
    ref_file = tmp_path / "datasets/iris-training/train.csv"
    ref_file.parent.mkdir(parents=True)
    np.savetxt(ref_file, reference, delimiter=",", comments="",
               header=",".join(f"in_input-0_{j}" for j in range(4)))
    records = []
    for i in range(rows):
        row = rng.normal(5, 1, size=4)
        row[2] += 1.5  # one feature drifts
        record = _record(i)
        record["inputs"][0]["data"] = row.round(4).tolist()
        records.append(record)
    _write_log(tmp_path, "day.jsonl", records)
    config = CompactorConfig(models=[{"model": "iris", "dataset": "iris-log",
                                      "reference": "datasets/iris-training"}])

    summary = Compactor(tmp_path, config).run()
    partition = "iris-log/model=iris/version=v1/date=2026-11-18"
    report = json.loads((tmp_path / "datasets" / partition / "_drift.json").read_text())
    assert report == summary.drift[partition]
    features = report["features"]
    assert features["in_input-0_2"]["drift"] == drifted
    assert features["in_input-0_2"]["psi"] > 0.25  # the value is kept either way
    for column in ("in_input-0_0", "in_input-0_1", "in_input-0_3"):
        assert features[column]["drift"] == steady, features
    assert report["rows"] == rows and report["referenceRows"] == 2000
    assert report["minRows"] == 100


def test_a_servers_logs_become_a_dataset_another_model_can_read(start_server, tmp_path):
    """End to end: requests -> the server's log files -> `modelops logs compact` -> Parquet."""
    shared = tmp_path / "volume"
    iris = model("iris", logging={"enabled": True, "sampleRate": 1.0, "dataset": "iris-predictions"})
    server = start_server(config(iris, placement="dedicated"), log_dir=shared / "logs")
    body = {"inputs": [{"name": "input-0", "datatype": "FP64", "shape": [2, 4],
                        "data": [5.1, 3.5, 1.4, 0.2, 6.6, 3.0, 4.4, 1.4]}]}
    ids = [server.client.post("/v2/models/iris/versions/v1/infer", json=body).headers["x-request-id"]
           for _ in range(20)]
    assert server.stop() == 0

    # A second model reads the dataset the compactor produces, and hears when it grows.
    (tmp_path / "reader.py").write_text(READER)
    reader = ServerConfig.model_validate(config(model(
        "reader", "python", versions=[{"name": "v1"}], code=str(tmp_path / "reader.py"),
        datasets=[{"name": "iris-predictions", "path": "datasets/iris-predictions"}])))
    registry = Registry(reader, shared, tmp_path)
    registry.load_all()
    watcher = DatasetWatcher(registry, 60)
    assert watcher.check() == []

    repo = TinyRepo(tmp_path / "repo")
    for file in ("model.yaml", "train.py"):  # the model's folder, as a data scientist has it
        repo.write(f"models/iris/{file}", (REPO / "models/iris" / file).read_text())
    done = run_modelops("logs", "compact", "--shared", str(shared), "-o", "json",
                        cwd=repo.root)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["records"] == 20
    rows = _query(f"""SELECT request_id, "row", "in_input-0_2", out_predict, version
        FROM read_parquet('{shared}/datasets/iris-predictions/**/*.parquet', hive_partitioning = true)
        ORDER BY ALL""")
    assert rows == sorted((i, r, [1.4, 4.4][r], [0, 1][r], "v1") for i in ids for r in range(2))
    assert watcher.check() == [("reader", "iris-predictions")]
    assert registry.models["reader"].versions["v1"].model.rows == 40


READER = """
import duckdb
from modelops_runtime.model import Model


class Reader(Model):
    def load(self):
        self.rows = 0

    def predict(self, inputs):
        return inputs

    def on_dataset_change(self, name, path):
        with duckdb.connect() as con:
            self.rows = con.execute(f"SELECT count(*) FROM read_parquet('{path}/**/*.parquet')").fetchone()[0]
"""


PEAK_MB = 1024
"""The documented bound of a compaction run (README): DuckDB's 512 MB limit, plus the log
file being screened and the interpreter."""


def test_large_requests_among_ordinary_ones_all_reach_the_dataset_in_bounded_memory(tmp_path):
    """Six 200,000-row requests among a hundred small ones made their whole log file
    "unreadable" (DuckDB out of memory): 0 of 106 records reached the dataset, and the file
    was set aside. Now big records are cut into pieces and loads are bounded: every row
    arrives once, with its index in its request, the run's peak stays under PEAK_MB, and
    the next hour's run has its own records only."""
    records = [_record(i, rows=200_000 if i % 18 == 0 else 2) for i in range(106)]
    _write_log(tmp_path, "big.jsonl", records)
    env = {**os.environ, "MODELOPS_SHARED_ROOT": str(tmp_path),
           "MODELOPS_COMPACTOR_CONFIG": str(tmp_path / "none.yaml")}
    measured = ("import resource, runpy, sys\n"
                "try:\n    runpy.run_module('modelops_compactor', run_name='__main__')\n"
                "finally:\n    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,"
                " file=sys.stderr)\n")
    first = subprocess.run([sys.executable, "-c", measured], env=env, capture_output=True,
                           text=True, timeout=600)
    assert first.returncode == 0, first.stderr
    out, peak_mb = first.stdout, int(first.stderr.split()[-1]) / 1024
    summary = json.loads(out)
    assert (summary["records"], summary["rows"], summary["rejected"]) == (106, 1_200_200, {})
    assert _query(f"SELECT count(*), count(DISTINCT (request_id, \"row\")), max(\"row\") "
                  f"FROM read_parquet('{tmp_path}/datasets/iris-log/**/*.parquet')") == [
        (1_200_200, 1_200_200, 199_999)]
    assert peak_mb < PEAK_MB, f"peak {peak_mb:.0f} MB"

    later = [_record(1000 + i) for i in range(10)]
    _write_log(tmp_path, "next-hour.jsonl", later, day="2026-11-19")
    second = _compact_process(tmp_path)
    out, err = second.communicate(timeout=120)
    assert second.returncode == 0, err
    assert json.loads(out)["records"] == 10


def test_two_workers_share_the_logs_and_write_each_record_once(tmp_path):
    """An Indexed Job of two: each takes its own files (of every server), both write into
    the same partitions at once, and the drift summary written last counts every row."""
    reference = np.random.default_rng(1).normal(5, 1, size=(500, 4))
    ref_file = tmp_path / "datasets/iris-training/train.csv"
    ref_file.parent.mkdir(parents=True)
    np.savetxt(ref_file, reference, delimiter=",", comments="",
               header=",".join(f"in_input-0_{j}" for j in range(4)))
    config = tmp_path / "compactor.yaml"
    config.write_text(json.dumps({"models": [{"model": "iris", "dataset": "iris-log",
                                              "reference": "datasets/iris-training"}]}))
    records = [_record(i, rows=1 + i % 2) for i in range(1200)]
    for n in range(24):  # two servers' replicas, all logging the one partition
        _write_log(tmp_path, f"host-{n}.jsonl", records[n * 50:(n + 1) * 50],
                   server=["iris-v1-server", "iris-v1-canary"][n % 2])
    workers = [_compact_process(tmp_path, worker=(i, 2), batch_bytes=20_000, config=config)
               for i in range(2)]
    outcomes = [w.communicate(timeout=120) for w in workers]
    for worker, (_, err) in zip(workers, outcomes, strict=True):
        assert worker.returncode == 0, err
    files = [json.loads(out)["files"] for out, _ in outcomes]
    assert sum(files) == 24 and min(files) >= 6, files  # both did a share of the work
    assert _rows(tmp_path) == _expected(records)
    partition = tmp_path / "datasets/iris-log/model=iris/version=v1/date=2026-11-18"
    assert json.loads((partition / "_drift.json").read_text())["rows"] == len(_rows(tmp_path))
    assert not list((tmp_path / "logs").glob("[!_]*/*/*.jsonl"))


def test_a_worker_that_died_after_its_commit_is_finished_by_the_next_run(tmp_path):
    """Worker 1 of 2 dies after committing. While something still holds its lock, a run of
    one worker leaves that run's files alone (they are worker 1's to finish); once the lock
    is free, it finishes the run itself: nothing lost, nothing twice."""
    records = [_record(i, rows=2) for i in range(40)]
    for n in range(4):
        _write_log(tmp_path, f"f-{n}.jsonl", records[n * 10:(n + 1) * 10])
    crashed = _compact_process(tmp_path, crash_at="committed", worker=(1, 2))
    assert crashed.wait(60) == 137, crashed.stderr.read()
    (run,) = (tmp_path / "logs/_compactor/worker-1/runs").glob("*.json")
    committed = json.loads(run.read_text())["files"]
    with open(tmp_path / "logs/_compactor/worker-1/lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # as if worker 1 were still at it
        held = _compact_process(tmp_path)
        out, err = held.communicate(timeout=60)
    assert held.returncode == 0, err
    summary = json.loads(out)
    assert summary["recovered"] == 0 and summary["files"] == 4 - len(committed)
    assert all((tmp_path / "logs" / name).exists() for name in committed)
    finished = _compact_process(tmp_path)
    out, err = finished.communicate(timeout=60)
    assert finished.returncode == 0, err
    assert json.loads(out)["recovered"] == 1
    assert _rows(tmp_path) == _expected(records)
