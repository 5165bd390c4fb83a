"""Batch jobs in bounded memory: a file is read, scored and written a chunk at a time, and
a large Parquet file is split by its row groups into slices that workers share. Each (file,
row) is scored exactly once, by any number of workers, and equals what the model answers
for the whole file at once."""

from __future__ import annotations

import hashlib

import duckdb
import joblib
import numpy as np
import pytest

from modelops.examples import ARTIFACTS
from modelops_jobs import batch
from modelops_jobs.config import BatchConfig, JobConfig
from modelops_runtime.config import LoggingConfig, ModelConfig, VersionConfig
from modelops_runtime.runtimes import SklearnModel

IRIS = "artifacts/iris/v1/model.joblib"
COLUMNS = [f"in_input-0_{j}" for j in range(4)]
ROW_GROUP = 2048  # DuckDB's smallest (it rounds a smaller ROW_GROUP_SIZE up)


@pytest.fixture
def volume(tmp_path, monkeypatch):
    """A volume with the iris model and one Parquet file of 12 row groups, under limits
    small enough to slice it: slices of 3 row groups, chunks of 700 rows."""
    monkeypatch.setattr(batch, "SLICE_ROWS", 3 * ROW_GROUP)
    monkeypatch.setattr(batch, "CHUNK_ROWS", 700)
    raw = ARTIFACTS[IRIS]()
    (tmp_path / IRIS).parent.mkdir(parents=True)
    (tmp_path / IRIS).write_bytes(raw)
    folder = tmp_path / "datasets/to-score"
    folder.mkdir(parents=True)
    rows = np.random.default_rng(3).normal([5.8, 3.0, 3.8, 1.2], [0.8, 0.4, 1.7, 0.7],
                                           size=(12 * ROW_GROUP, 4)).round(2)
    _write(folder / "big.parquet", rows)
    _write(folder / "small.parquet", rows[:50])
    config = JobConfig(
        model=ModelConfig(name="iris", runtime="sklearn", logging=LoggingConfig(dataset="iris"),
                          versions=[VersionConfig(name="v1", artifact=f"pvc://{IRIS}",
                                                  sha256=hashlib.sha256(raw).hexdigest())]),
        batch=BatchConfig(input="datasets/to-score", output="scored", version="v1",
                          features=COLUMNS))
    return tmp_path, config, rows


def _write(path, rows: np.ndarray) -> None:
    with duckdb.connect() as con:
        con.register("t", {c: rows[:, j] for j, c in enumerate(COLUMNS)})
        con.execute(f"COPY t TO '{path}' (FORMAT parquet, ROW_GROUP_SIZE {ROW_GROUP})")


def _scored(root) -> list[tuple]:
    with duckdb.connect() as con:
        return con.execute(f"SELECT source, \"row\", out_predict FROM read_parquet("
                           f"'{root}/datasets/scored/**/part-*.parquet') ORDER BY ALL").fetchall()


def _expected(root, rows: np.ndarray) -> list[tuple]:
    estimator = joblib.load(root / IRIS)
    return sorted([("big.parquet", i, int(p)) for i, p in enumerate(estimator.predict(rows))] +
                  [("small.parquet", i, int(p))
                   for i, p in enumerate(estimator.predict(rows[:50]))])


def test_workers_share_one_large_file_by_slices_and_score_each_row_once(volume, monkeypatch):
    root, config, rows = volume
    calls: list[int] = []
    infer = SklearnModel.infer

    def counted(self, inputs, wanted):
        calls.append(len(next(iter(inputs.values()))))
        return infer(self, inputs, wanted)

    monkeypatch.setattr(SklearnModel, "infer", counted)
    summaries = [batch.run(config, root, root, index, 2, "2026-12-07") for index in range(2)]
    assert [s.files for s in summaries] == [3, 2]  # 4 slices of big, and small: 5 parts
    assert sum(s.written for s in summaries) == 5
    assert sum(s.rows for s in summaries) == 12 * ROW_GROUP + 50
    assert _scored(root) == _expected(root, rows)
    assert max(calls) <= 700  # never more than a chunk in memory at once
    again = [batch.run(config, root, root, index, 3, "2026-12-08") for index in range(3)]
    assert sum(s.rows for s in again) == 0  # three workers now: the same slices, all done
    assert sum(s.skipped for s in again) == 5 and _scored(root) == _expected(root, rows)


def test_a_bad_slice_is_set_aside_alone(volume):
    root, config, rows = volume
    broken = rows.copy()
    broken[15_000, 2] = np.inf  # in the third slice (row groups 6-8)
    _write(root / "datasets/to-score/big.parquet", broken)
    summary = batch.run(config, root, root, 0, 1, "2026-12-07")
    assert summary.rejected == {"datasets/to-score/big.parquet rows 12288-18432":
                                "a missing value, NaN or infinity among the features"}
    scored = _scored(root)
    big = [row for source, row, _ in scored if source == "big.parquet"]
    assert big == [r for r in range(12 * ROW_GROUP) if not 12288 <= r < 18432]
    out = root / "datasets/scored/model=iris/version=v1/date=2026-12-07"
    assert not list(out.glob(".*.tmp"))  # the failed slice left nothing half-written
    assert len(list((out / "_rejected").glob("*.json"))) == 1
