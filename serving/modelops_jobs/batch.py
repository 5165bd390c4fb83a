"""Batch scoring: a dataset through one version of a model, with the runtime and predict()
that serve it, into

    datasets/<output>/model=<m>/version=<v>/date=<d>/part-<input digest>.parquet

one output file per input file, written under a temporary name and renamed, and
skipped when a part of the same input (path and bytes) exists under any date: a re-run
adds nothing, whatever its date, and a run killed anywhere loses nothing (the next one
does what is left). An input file that grew (its earlier rows unchanged) is scored from
its first new row: `_ledger/` records, for each part, the rows of its file it covers and
their digest, written before the part's rename, which commits both.

Memory stays flat however large a file is: its rows are read CHUNK_ROWS at a time (DuckDB
hands them over as Arrow record batches), scored, and written as one row group each. A
Parquet file of more than SLICE_ROWS rows is split by its row groups into slices of about
that many rows, each scored into a part of its own (`part-<digest>-<slice>.parquet`), and
the slices of all files are what workers share: worker `index` of `count` takes every
count-th, which is how an Indexed Job spreads even one large file over its pods. The
slices depend on the file alone, never on the number of workers, so a run with more
workers skips what a run with fewer wrote.

An input file (or slice) that cannot be scored (no rows, text among numbers, infinity,
damaged) is set aside with its reason in `_rejected/<part>.json` beside the parts, and the
others are scored: one bad file never stops the rest, and the run exits non-zero so it is
noticed. The same bytes are not tried again; a corrected file (new bytes) is.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import os
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import duckdb
import numpy as np
import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from modelops_jobs import data
from modelops_jobs.config import JobConfig, JobOptions
from modelops_runtime import volume
from modelops_runtime.config import VersionConfig
from modelops_runtime.errors import ServingError
from modelops_runtime.model import Model
from modelops_runtime.registry import build_model, model_class
from modelops_runtime.runtimes import ArtifactError, file_sha256

CHUNK_ROWS = 131_072
"""Rows read, scored and written at once: what a worker holds of a file."""
SLICE_ROWS = 4 * 1024 * 1024
"""A Parquet file with more rows is split, by its row groups, into slices of about this
many, which the workers share."""


@dataclasses.dataclass(frozen=True)
class Unit:
    """What one part holds: an input file's rows, all of them or one slice."""

    file: Path
    start: int = 0
    stop: int | None = None  # None: to the file's end
    slice: int | None = None  # None: the whole file

    def describe(self, shared_root: Path) -> str:
        where = str(self.file.relative_to(shared_root))
        return where if self.slice is None else f"{where} rows {self.start}-{self.stop}"


@dataclasses.dataclass
class BatchSummary:
    files: int = 0  # input files this worker owns
    written: int = 0  # output files it wrote now
    skipped: int = 0  # already written (or set aside) by an earlier run
    rows: int = 0  # rows it scored now
    rejected: dict[str, str] = dataclasses.field(default_factory=dict)
    """Input files set aside now, with the reason, by their path on the volume."""


def output_dir(config: JobConfig, shared_root: Path, date: str) -> Path:
    assert config.batch is not None
    return (shared_root / volume.model_dataset(config.batch.output, config.model.name) /
            f"version={config.batch.version}" / f"date={date}")


def part_name(unit: Unit, shared_root: Path, file_digest: str) -> str:
    """Named after the input file's path and bytes (and the slice): the same input, the
    same part."""
    digest = hashlib.sha256(str(unit.file.relative_to(shared_root)).encode())
    digest.update(file_digest.encode())
    slice_ = "" if unit.slice is None else f"-{unit.slice:05d}"
    return f"part-{digest.hexdigest()[:20]}{slice_}.parquet"


def units(con: duckdb.DuckDBPyConnection, inputs: list[Path]) -> list[Unit]:
    """Every input file whole, but a Parquet file of more than SLICE_ROWS rows in slices
    of whole row groups (read from its footer; a file whose footer cannot be read stays
    whole, and is set aside when it is scored)."""
    found = []
    for file in inputs:
        groups: list[int] = []
        if file.suffix == ".parquet":
            try:
                groups = [n for _, n in con.execute(
                    "SELECT DISTINCT row_group_id, row_group_num_rows FROM parquet_metadata(?) "
                    "ORDER BY row_group_id", [str(file)]).fetchall()]
            except duckdb.Error:
                groups = []
        if sum(groups) <= SLICE_ROWS:
            found.append(Unit(file))
            continue
        start = rows = 0
        slices: list[Unit] = []
        for count in groups:
            rows += count
            if rows - start >= SLICE_ROWS:
                slices.append(Unit(file, start, rows, len(slices)))
                start = rows
        if rows > start:
            slices.append(Unit(file, start, rows, len(slices)))
        found += slices
    return found


def run(config: JobConfig, shared_root: Path, code_dir: Path, index: int = 0, count: int = 1,
        date: str | None = None) -> BatchSummary:
    batch = config.batch
    if batch is None:
        raise ValueError(f"model {config.model.name} declares no batch job")
    if not 0 <= index < count:
        raise ValueError(f"worker index {index} is outside 0..{count - 1}")
    version = next((v for v in config.model.versions if v.name == batch.version), None)
    if version is None:
        raise ValueError(f"model {config.model.name} has no version {batch.version}")
    date = date or datetime.date.today().isoformat()
    try:  # it becomes a folder name
        if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", date):
            raise ValueError("expected YYYY-MM-DD")
        datetime.date.fromisoformat(date)
    except ValueError as exc:
        raise ValueError(f"date {date!r} is not a date: {exc}") from None
    inputs = data.files(shared_root / batch.input, shared_root / volume.DATASETS)
    with duckdb.connect() as con:
        con.execute("SET threads = 1")  # workers scale out, as the server's replicas do
        mine = units(con, inputs)[index::count]
        return _score_all(con, config, version, mine, shared_root, code_dir, date)


def _score_all(con: duckdb.DuckDBPyConnection, config: JobConfig, version: VersionConfig,
               mine: list[Unit], shared_root: Path, code_dir: Path,
               date: str) -> BatchSummary:
    """Score this worker's units that no earlier run scored."""
    assert config.batch is not None
    summary = BatchSummary(files=len(mine))
    out = output_dir(config, shared_root, date)
    out.mkdir(parents=True, exist_ok=True)
    digests = {u.file: file_sha256(u.file) for u in mine}
    todo = [(u, out / part_name(u, shared_root, digests[u.file])) for u in mine]
    for _, target in todo:  # a killed run's half-written parts: only this worker writes them
        for leftover in out.parent.glob(f"date=*/.{target.name}.*.tmp"):
            leftover.unlink(missing_ok=True)
    rejected = out / "_rejected"
    parts = {p.name for p in out.parent.glob("date=*/part-*.parquet")}
    done = parts | {p.with_suffix(".parquet").name
                    for p in out.parent.glob("date=*/_rejected/part-*.json")}
    todo = [(u, target) for u, target in todo if target.name not in done]  # on any date
    summary.skipped = len(mine) - len(todo)
    if not todo:
        return summary
    try:
        model = build_model(model_class(config.model, code_dir), config.model, version,
                            shared_root)
        model.load()
    except ArtifactError:
        raise
    except Exception as exc:  # the model's code or its artifact: as a server would report it
        raise ArtifactError(f"model {config.model.name} {version.name} does not load: "
                            f"{type(exc).__name__}: {exc}") from None
    tensor = data.input_tensor(model)
    ledger = out.parent / "_ledger"
    covered = _covered(ledger, parts)
    for unit, target in todo:
        where = str(unit.file.relative_to(shared_root))
        temporary = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        try:
            query = _query(con, unit, config.batch.features)
            first = _scored_before(con, query, covered.get(where, [])) \
                if unit.slice is None else 0
            scored = _score(con, query, model, tensor, first, unit, temporary)
        except (duckdb.Error, pa.ArrowException, data.DataError, ServingError) as exc:
            temporary.unlink(missing_ok=True)  # this file (or slice) fails, not the rest
            reason = str(getattr(exc, "message", None) or exc).splitlines()[0]
            _set_aside(rejected, target, unit.describe(shared_root), reason)
            summary.rejected[unit.describe(shared_root)] = reason
            continue
        if unit.slice is None:
            _note(ledger, target, where, scored.rows, scored.digest)  # before the part
        with temporary.open("rb") as handle:
            os.fsync(handle.fileno())
        os.rename(temporary, target)  # whole, or not there at all
        summary.written += 1
        summary.rows += scored.rows - first
    return summary


def main(config: JobConfig, options: JobOptions, code_dir: Path) -> int:
    try:
        summary = run(config, options.shared_root, code_dir, options.completion_index,
                      options.batch_workers, options.scheduled_date())
    except (ValueError, data.DataError, ArtifactError) as exc:
        print(f"batch {config.model.name}: {exc}", file=sys.stderr)
        return 1
    print(orjson.dumps(dataclasses.asdict(summary)).decode())
    for source, reason in sorted(summary.rejected.items()):
        print(f"batch {config.model.name}: {source}: {reason} (set aside)", file=sys.stderr)
    return 1 if summary.rejected else 0


def _query(con: duckdb.DuckDBPyConnection, unit: Unit, features: list[str]) -> str:
    """The unit's feature columns as DOUBLE, in the file's row order; DataError when a
    column is missing."""
    table = data.source([unit.file], row_numbers=unit.slice is not None)
    kinds = data.types(con, table)
    missing = [c for c in features if c not in kinds]
    if missing:
        raise data.DataError(f"no column {', '.join(map(repr, missing))} (it has "
                             f"{', '.join(k for k in kinds if k != 'file_row_number')})")
    where = "" if unit.slice is None else \
        f" WHERE file_row_number >= {unit.start} AND file_row_number < {unit.stop}"
    return f"SELECT {data.select(features, kinds)} FROM {table}{where}"


def _chunks(con: duckdb.DuckDBPyConnection, query: str) -> Iterator[np.ndarray]:
    """The query's rows as float64 matrices of at most CHUNK_ROWS rows (NULL as NaN); a
    DataError at the first that holds what is not a finite number."""
    for batch in con.sql(query).to_arrow_reader(CHUNK_ROWS):
        if not batch.num_rows:
            continue
        matrix = np.column_stack([column.to_numpy(zero_copy_only=False)
                                  for column in batch.columns]).astype(np.float64, copy=False)
        if not np.isfinite(matrix).all():
            raise data.DataError("a missing value, NaN or infinity among the features")
        yield matrix


@dataclasses.dataclass
class Scored:
    rows: int  # the unit's rows, scored now or before
    digest: str  # of all its rows' features (the ledger's)


def _score(con: duckdb.DuckDBPyConnection, query: str, model: Model, tensor: str,
           first: int, unit: Unit, temporary: Path) -> Scored:
    """Score the unit's rows from `first` on into `temporary`, a row group per chunk."""
    digest = hashlib.sha256()
    rows = 0
    writer: pq.ParquetWriter | None = None
    source = pa.scalar(unit.file.name)
    try:
        for matrix in _chunks(con, query):
            digest.update(np.ascontiguousarray(matrix).tobytes())
            skip = min(max(first - rows, 0), len(matrix))
            numbers = np.arange(unit.start + rows + skip, unit.start + rows + len(matrix))
            rows += len(matrix)
            if skip == len(matrix):
                continue
            outputs = model.infer({tensor: matrix[skip:]}, None)
            columns = {"source": pa.repeat(source, len(numbers)), "row": pa.array(numbers)}
            for name, values in outputs.items():
                values = np.asarray(values)
                if values.ndim == 1 and len(values) == len(numbers):
                    columns[f"out_{name}"] = pa.array(values)
            table = pa.table(columns)
            if writer is None:
                writer = pq.ParquetWriter(temporary, table.schema)
            writer.write_table(table.cast(writer.schema), row_group_size=CHUNK_ROWS)
    finally:
        if writer is not None:
            writer.close()
    if not rows:
        raise data.DataError("no rows")
    if writer is None:  # nothing new: an empty part still records the file as done
        pq.write_table(pa.table({"source": pa.array([], pa.string()),
                                 "row": pa.array([], pa.int64())}), temporary)
    return Scored(rows, digest.hexdigest())


def _set_aside(folder: Path, target: Path, source: str, reason: str) -> None:
    """Record why an input file was not scored (whole, or not at all)."""
    folder.mkdir(exist_ok=True)
    record = folder / target.with_suffix(".json").name
    temporary = record.with_name(f".{record.name}.{os.getpid()}.tmp")
    temporary.write_bytes(orjson.dumps({"source": source, "reason": reason}))
    os.rename(temporary, record)


def _covered(ledger: Path, parts: set[str]) -> dict[str, list[tuple[int, str]]]:
    """(rows, digest) of each input file's scored prefixes, by the file's path: the ledger
    entries of parts that were renamed into place (read once a run)."""
    found: dict[str, list[tuple[int, str]]] = {}
    for entry in ledger.glob("part-*.json") if ledger.is_dir() else ():
        if entry.with_suffix(".parquet").name not in parts:
            continue  # its part was never renamed into place: it commits nothing
        try:
            noted = orjson.loads(entry.read_bytes())
        except (OSError, orjson.JSONDecodeError):
            continue
        if isinstance(noted.get("rows"), int) and isinstance(noted.get("source"), str):
            found.setdefault(noted["source"], []).append((noted["rows"], str(noted.get("sha256"))))
    return found


def _scored_before(con: duckdb.DuckDBPyConnection, query: str,
                   covered: list[tuple[int, str]]) -> int:
    """How many first rows of this file a part already holds, on any date: rows that grew
    onto an unchanged file are all that is left to score (0 for a new or rewritten file).
    Read once more, chunk by chunk, only for a file the ledger knows."""
    if not covered:
        return 0
    wanted = {rows: digest for rows, digest in covered}
    matched = 0
    digest = hashlib.sha256()
    seen = 0
    for matrix in _chunks(con, query):
        for rows in sorted(r for r in wanted if seen < r <= seen + len(matrix)):
            prefix = digest.copy()
            prefix.update(np.ascontiguousarray(matrix[:rows - seen]).tobytes())
            if prefix.hexdigest() == wanted[rows]:
                matched = rows
        digest.update(np.ascontiguousarray(matrix).tobytes())
        seen += len(matrix)
    return matched


def _note(ledger: Path, target: Path, source: str, rows: int, digest: str) -> None:
    """Record which rows of its file a part covers (all of them, up to its last)."""
    ledger.mkdir(exist_ok=True)
    entry = ledger / target.with_suffix(".json").name
    temporary = entry.with_name(f".{entry.name}.{os.getpid()}.tmp")
    temporary.write_bytes(orjson.dumps({"source": source, "rows": rows, "sha256": digest}))
    os.rename(temporary, entry)
