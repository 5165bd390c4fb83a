"""Batch scoring: a dataset through one version of a model, with the runtime and predict()
that serve it, into

    datasets/<output>/model=<m>/version=<v>/date=<d>/part-<input digest>.parquet

one output file per input file, written whole under a temporary name and renamed, and
skipped when a part of the same input (path and bytes) exists under any date: a re-run
adds nothing, whatever its date, and a run killed anywhere loses nothing (the next one
does what is left). An input file that grew (its earlier rows unchanged) is scored from
its first new row: `_ledger/` records, for each part, the rows of its file it covers and
their digest, written before the part's rename, which commits both. Worker `index` of
`count` takes every count-th input file, which is how an Indexed Job spreads the files over
its pods.

An input file that cannot be scored (no rows, text among numbers, infinity, damaged) is
set aside with its reason in `_rejected/<part>.json` beside the parts, and the others are
scored: one bad file never stops the rest, and the run exits non-zero so it is noticed.
The same bytes are not tried again; a corrected file (new bytes) is.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import os
import re
import sys
from pathlib import Path

import duckdb
import numpy as np
import orjson

from modelops_jobs import data
from modelops_jobs.config import JobConfig, JobOptions
from modelops_runtime import volume
from modelops_runtime.errors import ServingError
from modelops_runtime.registry import build_model, model_class
from modelops_runtime.runtimes import ArtifactError, file_sha256


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


def part_name(input_file: Path, shared_root: Path) -> str:
    """Named after the input file's path and bytes: the same input, the same part."""
    digest = hashlib.sha256(str(input_file.relative_to(shared_root)).encode())
    digest.update(file_sha256(input_file).encode())
    return f"part-{digest.hexdigest()[:20]}.parquet"


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
    mine = inputs[index::count]
    summary = BatchSummary(files=len(mine))
    out = output_dir(config, shared_root, date)
    out.mkdir(parents=True, exist_ok=True)
    todo = [(f, out / part_name(f, shared_root)) for f in mine]
    for _, target in todo:  # a killed run's half-written parts: only this worker writes them
        for leftover in out.parent.glob(f"date=*/.{target.name}.*.tmp"):
            leftover.unlink(missing_ok=True)
    rejected = out / "_rejected"
    parts = {p.name for p in out.parent.glob("date=*/part-*.parquet")}
    done = parts | {p.with_suffix(".parquet").name
                    for p in out.parent.glob("date=*/_rejected/part-*.json")}
    todo = [(f, target) for f, target in todo if target.name not in done]  # on any date
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
    with duckdb.connect() as con:
        con.execute("SET threads = 1")  # workers scale out, as the server's replicas do
        ledger = out.parent / "_ledger"
        covered = _covered(ledger, parts)
        for source, target in todo:
            where = str(source.relative_to(shared_root))
            try:
                features = _features(con, source, batch.features)
                first = _scored_before(covered.get(where, []), features)
                outputs = model.infer({tensor: features[first:]}, None) \
                    if first < len(features) else {}
            except (duckdb.Error, data.DataError, ServingError) as exc:  # this file, not the rest
                reason = str(getattr(exc, "message", None) or exc).splitlines()[0]
                _set_aside(rejected, target, where, reason)
                summary.rejected[where] = reason
                continue
            _note(ledger, target, where, features)  # before the part: it commits both
            columns = {"row": np.arange(first, len(features))}
            for name, values in outputs.items():
                values = np.asarray(values)
                if values.ndim == 1 and len(values) == len(features) - first:
                    columns[f"out_{name}"] = values
            con.register("scored", columns)  # the file name as a constant: no string array
            temporary = target.with_name(f".{target.name}.{os.getpid()}.tmp")
            quoted = str(temporary).replace("'", "''")  # COPY takes no parameter for its path
            con.execute(f"COPY (SELECT ? AS source, * FROM scored) TO '{quoted}' "
                        "(FORMAT parquet)", [source.name])
            con.unregister("scored")
            with temporary.open("rb") as handle:
                os.fsync(handle.fileno())
            os.rename(temporary, target)  # whole, or not there at all
            summary.written += 1
            summary.rows += len(features) - first
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


def _features(con: duckdb.DuckDBPyConnection, source: Path,
              features: list[str]) -> np.ndarray:
    """The file's feature matrix; DataError when it has no rows, misses a column, or
    holds what is not a finite number."""
    table = data.source([source])
    kinds = data.types(con, table)
    missing = [c for c in features if c not in kinds]
    if missing:
        raise data.DataError(f"no column {', '.join(map(repr, missing))} (it has "
                             f"{', '.join(kinds)})")
    fetched = con.execute(f"SELECT {data.select(features, kinds)} FROM {table}").fetchnumpy()
    matrix = data.matrix(fetched, features)
    if not len(matrix):
        raise data.DataError("no rows")
    if not np.isfinite(matrix).all():
        raise data.DataError("a missing value, NaN or infinity among the features")
    return matrix


def _set_aside(folder: Path, target: Path, source: str, reason: str) -> None:
    """Record why an input file was not scored (whole, or not at all)."""
    folder.mkdir(exist_ok=True)
    record = folder / target.with_suffix(".json").name
    temporary = record.with_name(f".{record.name}.{os.getpid()}.tmp")
    temporary.write_bytes(orjson.dumps({"source": source, "reason": reason}))
    os.rename(temporary, record)


def _digest(features: np.ndarray, rows: int) -> str:
    return hashlib.sha256(np.ascontiguousarray(features[:rows]).tobytes()).hexdigest()


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


def _scored_before(covered: list[tuple[int, str]], features: np.ndarray) -> int:
    """How many first rows of this file a part already holds, on any date: rows that grew
    onto an unchanged file are all that is left to score (0 for a new or rewritten file)."""
    for rows, digest in sorted(covered, reverse=True):
        if rows <= len(features) and digest == _digest(features, rows):
            return rows
    return 0


def _note(ledger: Path, target: Path, source: str, features: np.ndarray) -> None:
    """Record which rows of its file a part covers (all of them, up to its last)."""
    ledger.mkdir(exist_ok=True)
    entry = ledger / target.with_suffix(".json").name
    temporary = entry.with_name(f".{entry.name}.{os.getpid()}.tmp")
    temporary.write_bytes(orjson.dumps({"source": source, "rows": len(features),
                                        "sha256": _digest(features, len(features))}))
    os.rename(temporary, entry)
