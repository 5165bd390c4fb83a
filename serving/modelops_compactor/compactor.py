"""The log compactor: closed prediction-log files into Parquet datasets, exactly once.

On the shared volume:
  logs/<server>/<date>/*.jsonl                 closed log files (the input; `.open` skipped)
  logs/_compactor/runs/<run>.json              each run's record: files consumed, parts written
  logs/_compactor/staging/<run>/...            a run's parts before they are published
  logs/_compactor/rejected/<server>/<date>/    records that could not be typed, each with its
                                               reason (<file>.rejected.jsonl; screen.py)
  datasets/<dataset>/model=<m>/version=<v>/date=<d>/part-<run>-<i>.parquet
  datasets/<dataset>/model=<m>/version=<v>/date=<d>/_drift.json

Workers (an Indexed Job's pods) share the work by file: worker `index` of `count` takes
the closed files whose path hashes to it, so a day with ten times the logs takes ten times
the workers, not ten times as long. Each keeps its runs, staging and lock apart (worker 0
in `_compactor/` itself, where a single compactor keeps them; worker i in
`_compactor/worker-<i>/`), and at start finishes the committed runs of any other state
whose lock is free: a worker of a larger Job that is not running now, or one that died.
Two workers may write parts into one dataset partition at once (parts are named by run);
its drift summary is recomputed under the partition's lock after each publish, so the last
one counts every part.

A run takes a batch of closed files, writes its parts to staging, syncs them, then
writes its record: that rename is the commit. Only then are the parts moved into
the datasets, the consumed logs deleted, the drift summaries updated, and the run
marked done. A crash before the commit leaves the logs where they were, so the
batch is simply redone (its staging is dropped); a crash after it is finished by
the next start from the record. A run is marked done only once its logs are gone,
so no file is ever read twice and none is lost.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import secrets
import shutil
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import orjson

from modelops_compactor import drift, logtables, screen
from modelops_compactor.config import CompactorConfig, CompactorOptions
from modelops_runtime import volume
from modelops_runtime.predlog import recover
from modelops_runtime.records import CLOSED_SUFFIX, OPEN_SUFFIX

STATE = "_compactor"


def _crash_point(name: str) -> None:
    """Fault injection for the crash tests: die here when told to (never set in production)."""
    if os.environ.get("MODELOPS_COMPACTOR_CRASH_AT") == name:
        os._exit(137)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_atomic(path: Path, data: bytes) -> None:
    temporary = path.with_name(path.name + ".tmp")
    with open(temporary, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)
    _fsync_dir(path.parent)


@dataclass
class Summary:
    runs: int = 0
    recovered: int = 0
    files: int = 0
    records: int = 0
    rows: int = 0
    partitions: set[str] = field(default_factory=set)
    drift: dict[str, dict[str, Any]] = field(default_factory=dict)
    reopened: int = 0  # .open files of crashed servers, recovered
    rejected: dict[str, str] = field(default_factory=dict)  # log file -> why

    def as_dict(self) -> dict[str, Any]:
        return {"runs": self.runs, "recovered": self.recovered, "reopened": self.reopened,
                "files": self.files,
                "records": self.records, "rows": self.rows,
                "partitions": sorted(self.partitions), "drift": self.drift,
                "rejected": self.rejected}


def worker_state(logs: Path, index: int) -> Path:
    """Where worker `index` keeps its runs, staging and lock."""
    return logs / STATE if index == 0 else logs / STATE / f"worker-{index}"


def owner(name: str, count: int) -> int:
    """The worker that compacts a log file (its path under logs/): by a hash of the path,
    the same on every pod."""
    digest = hashlib.sha256(name.encode()).digest()
    return int.from_bytes(digest[:8], "big") % count


class Compactor:
    def __init__(self, shared_root: Path, config: CompactorConfig,
                 batch_bytes: int = 256 * 1024 * 1024, memory_limit: str = "512MB",
                 index: int = 0, count: int = 1):
        if not 0 <= index < count:
            raise ValueError(f"worker index {index} is outside 0..{count - 1}")
        self.root = shared_root
        self.logs = shared_root / volume.LOGS
        self.datasets = shared_root / volume.DATASETS
        self.shared_state = self.logs / STATE  # rejected/ is there, for every worker
        self.state = worker_state(self.logs, index)
        self.index, self.count = index, count
        self.references = config.references()
        self.batch_bytes = batch_bytes
        self.memory_limit = memory_limit
        self.summary = Summary()

    # -- the whole job ----------------------------------------------------------------

    def run(self) -> Summary:
        for folder in (self.state / "runs", self.state / "staging", self.datasets):
            folder.mkdir(parents=True, exist_ok=True)
        with _locked(self.state) as held, self._connection() as con:
            if not held:
                raise RuntimeError(f"another compaction holds {self.state / 'lock'}")
            self.con = con
            self.loaded_references: dict[str, drift.Reference] = {}
            self._recover(self.state)
            self._adopt()
            # servers that died holding a file
            self.summary.reopened = recover(self.logs, self._mine)
            while batch := self._next_batch():
                self._compact(batch)
            self._remove_empty_days()
        return self.summary

    def _mine(self, path: Path) -> bool:
        """A closed log file (or the `.open` one it becomes) this worker compacts."""
        name = str(path.relative_to(self.logs))
        if name.endswith(OPEN_SUFFIX):
            name = name.removesuffix(OPEN_SUFFIX) + CLOSED_SUFFIX
        return self.count == 1 or owner(name, self.count) == self.index

    def _adopt(self) -> None:
        """Finish the committed runs of every other worker's state that no worker holds
        now (a larger Job's worker that is not running, or one that died). The files of
        a held state's committed runs are its worker's to finish: never taken here."""
        self.claimed: set[Path] = set()
        others = [self.shared_state, *self.shared_state.glob("worker-*")]
        for state in others:
            if state == self.state or not (state / "runs").is_dir():
                continue
            with _locked(state) as held:
                if held:
                    self._recover(state)
                    continue
                for path in (state / "runs").glob("*.json"):
                    with contextlib.suppress(OSError, orjson.JSONDecodeError):
                        record = orjson.loads(path.read_bytes())
                        if record["status"] == "committed":
                            self.claimed |= {self.logs / name for name in record["files"]}

    def _remove_empty_days(self) -> None:
        """Drop emptied log folders of past days (never today's: a server may be opening
        a file in it). Another worker may be doing the same: what it removed is gone."""
        yesterday = time.strftime("%Y-%m-%d", time.gmtime(time.time() - 86400))
        for folder in self.logs.glob("[!_]*/*"):
            with contextlib.suppress(OSError):
                if folder.is_dir() and folder.name < yesterday and not any(folder.iterdir()):
                    folder.rmdir()

    @contextmanager
    def _connection(self) -> Iterator[duckdb.DuckDBPyConnection]:
        scratch = self.state / "scratch"
        con = duckdb.connect(config={"memory_limit": self.memory_limit,
                                     "temp_directory": str(scratch),
                                     "preserve_insertion_order": False})
        try:
            yield con
        finally:
            con.close()
            shutil.rmtree(scratch, ignore_errors=True)

    # -- one batch --------------------------------------------------------------------

    def _next_batch(self) -> list[Path]:
        """This worker's closed files, oldest first, up to about batch_bytes (at least
        one file)."""
        batch: list[Path] = []
        size = 0
        for path in sorted(self.logs.glob(f"[!_]*/*/*{CLOSED_SUFFIX}")):
            if not self._mine(path) or path in self.claimed:
                continue
            length = path.stat().st_size
            if batch and size + length > self.batch_bytes:
                break
            batch.append(path)
            size += length
        return batch

    def _compact(self, files: list[Path]) -> None:
        run = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + secrets.token_hex(4)
        staging = self.state / "staging" / run
        staging.mkdir()
        readable = self._screen(files, staging)
        files = list(readable)
        pending = _groups([(path, chunk) for path, source in readable.items()
                           for chunk in _chunks(source, staging / "chunks", LOAD_BYTES)])
        records = expected = rows = attempts = 0
        while pending:
            group = pending.pop(0)
            attempts += 1
            try:
                counted, instances, written = self._load_and_copy(
                    [chunk for _, chunk in group], staging, f"{run}-{attempts}")
            except duckdb.Error as exc:  # memory, or a record no screen foresaw
                for leftover in staging.rglob(f"part-{run}-{attempts}-*"):
                    leftover.unlink()  # what the failed COPY left
                if len(group) > 1:  # fewer files at once, then fewer lines,
                    pending[:0] = [group[:len(group) // 2], group[len(group) // 2:]]
                elif halves := _halves(group[0][1]):
                    pending[:0] = [[(group[0][0], half)] for half in halves]
                else:  # until the record that fails is alone: it alone is set aside
                    self._reject_record(*group[0], exc)
                continue
            records, expected, rows = records + counted, expected + instances, rows + written
        if rows != expected:
            raise RuntimeError(f"wrote {rows} rows for {expected} instances; nothing committed")
        parts = sorted(str(p.relative_to(staging)) for p in staging.rglob("*.parquet"))
        for part in parts:
            with open(staging / part, "rb") as handle:
                os.fsync(handle.fileno())
        _crash_point("staged")
        record = {"run": run, "status": "committed",
                  "files": [str(f.relative_to(self.logs)) for f in files],
                  "parts": parts, "records": records, "rows": rows}
        _write_atomic(self.state / "runs" / f"{run}.json", orjson.dumps(record))  # the commit
        _crash_point("committed")
        self._publish(record)
        self.summary.runs += 1
        self.summary.files += len(files)
        self.summary.records += records
        self.summary.rows += rows

    def _screen(self, files: list[Path], staging: Path) -> dict[Path, Path]:
        """Each log file -> the file to read for it: itself, or its lines that the SQL can
        type. The others are kept in rejected/ with their reasons (rewritten whole if the
        batch is redone, so never twice)."""
        readable = {}
        for path in files:
            name = str(path.relative_to(self.logs))
            readable[path], rejected = screen.screen(path, staging / "screened" / name)
            if rejected:
                target = self.shared_state / "rejected" / (name + ".rejected.jsonl")
                target.parent.mkdir(parents=True, exist_ok=True)
                _write_atomic(target, b"".join(rejected))
                first = orjson.loads(rejected[0])["reason"]
                self.summary.rejected[name] = f"{len(rejected)} record(s), e.g. line " \
                    f"{orjson.loads(rejected[0])['line']}: {first}"
        return readable

    def _load_and_copy(self, chunks: list[Path], staging: Path,
                       name: str) -> tuple[int, int, int]:
        """(records, instances, rows written) of files loaded at once, parts in staging."""
        con = self.con
        con.execute(logtables.load_sql(), [[str(chunk) for chunk in chunks]])
        try:
            records, expected = _row(con, logtables.ROWS_SQL)
            layouts: dict[str, list[tuple[Any, ...]]] = {}
            for row in con.execute(logtables.LAYOUTS_SQL).fetchall():
                layouts.setdefault(row[1], []).append(row)
            rows = 0
            for dataset, members in layouts.items():
                select = logtables.plan_dataset(members)
                rows += _row(con, logtables.copy_sql(select, str(staging / dataset), name))[0]
        finally:
            con.execute("DROP TABLE IF EXISTS records")
        return records, expected, rows

    def _reject_record(self, path: Path, chunk: Path, exc: duckdb.Error) -> None:
        """A record DuckDB cannot compact even alone: kept in rejected/ with the reason,
        beside the records the screen set aside; the rest of its file is compacted."""
        name = str(path.relative_to(self.logs))
        target = self.shared_state / "rejected" / (name + ".rejected.jsonl")
        target.parent.mkdir(parents=True, exist_ok=True)
        reason = f"could not be compacted: {str(exc).splitlines()[0]}"
        line = chunk.read_bytes().strip()
        with open(target, "ab") as out:  # after the screen's own, which it wrote whole
            out.write(orjson.dumps({"line": None, "reason": reason,
                                    "record": line.decode("utf-8", "replace")}) + b"\n")
        self.summary.rejected.setdefault(name, f"1 record or more: {reason}")

    # -- after the commit (also how a crashed run is finished) ---------------------------

    def _publish(self, record: dict[str, Any], state: Path | None = None) -> None:
        state = state or self.state
        run = record["run"]
        staging = state / "staging" / run
        touched = set()
        for part in record["parts"]:
            source, target = staging / part, self.datasets / part
            if source.exists():  # not yet moved before a crash
                target.parent.mkdir(parents=True, exist_ok=True)
                os.replace(source, target)
                _fsync_dir(target.parent)
                _crash_point("moved-one")
            touched.add(str(Path(part).parent))
        for name in record["files"]:
            (self.logs / name).unlink(missing_ok=True)
            _crash_point("deleted-one")
        for partition in sorted(touched):
            self._update_drift(partition)
        self.summary.partitions |= touched
        record["status"] = "done"
        _write_atomic(state / "runs" / f"{run}.json", orjson.dumps(record))
        shutil.rmtree(staging, ignore_errors=True)

    def _recover(self, state: Path) -> None:
        """Finish the runs of `state` that committed; drop the staging of runs that never
        did."""
        for path in sorted((state / "runs").glob("*.json")):
            record = orjson.loads(path.read_bytes())
            if record["status"] == "committed":
                self._publish(record, state)
                self.summary.recovered += 1
        for staging in (state / "staging").iterdir() if (state / "staging").is_dir() else ():
            shutil.rmtree(staging)  # now only uncommitted or done
        for leftover in (state / "runs").glob("*.tmp"):
            leftover.unlink()

    def _update_drift(self, partition: str) -> None:
        dataset, model = partition.split("/")[:2]  # <dataset>/model=<m>/version=<v>/date=<d>
        reference = self.references.get((dataset, model.removeprefix("model=")))
        if not reference:
            return
        if reference not in self.loaded_references:
            self.loaded_references[reference] = drift.Reference(self.con, self.root / reference,
                                                                reference)
        with open(self.datasets / partition / "_drift.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # another worker's publish: one after the other
            report = drift.summarize(self.con, self.datasets / partition,
                                     self.loaded_references[reference])
            _write_atomic(self.datasets / partition / "_drift.json", orjson.dumps(
                report, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS))
        self.summary.drift[partition] = report


def main() -> None:
    """`python -m modelops_compactor`: what the CronJob runs."""
    from pydantic import ValidationError

    try:
        options = CompactorOptions()
        config = (CompactorConfig.read(options.compactor_config)
                  if options.compactor_config.exists() else CompactorConfig())
    except (OSError, ValidationError, ValueError) as exc:
        sys.exit(f"log compactor: cannot start: {exc}")
    started = time.perf_counter()
    try:
        summary = Compactor(options.shared_root, config, options.batch_bytes,
                            options.memory_limit, options.completion_index,
                            options.workers).run()
    except Exception as exc:  # the Job fails (and alerts); logs stay for the next run
        sys.exit(f"log compactor: {type(exc).__name__}: {exc}")
    result = summary.as_dict() | {"seconds": round(time.perf_counter() - started, 3)}
    sys.stdout.write(orjson.dumps(result).decode() + "\n")
    if summary.rejected:  # fail the Job so the alert fires; the records wait in rejected/
        sys.exit(f"log compactor: records that could not be typed were set aside in "
                 f"{STATE}/rejected: " + "; ".join(f"{k}: {v}" for k, v in
                                                   sorted(summary.rejected.items())))


@contextmanager
def _locked(state: Path) -> Iterator[bool]:
    """Hold a worker state's lock if it is free: True, or False when another holds it."""
    state.mkdir(parents=True, exist_ok=True)
    with open(state / "lock", "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True


def _row(con: duckdb.DuckDBPyConnection, sql: str) -> tuple[Any, ...]:
    """The one row of an aggregate (or a COPY's count): there always is one."""
    row = con.execute(sql).fetchone()
    if row is None:
        raise RuntimeError(f"DuckDB returned no row for {sql[:80]!r}")
    return row


LOAD_BYTES = 16 * 1024 * 1024
"""JSON that DuckDB loads at once: it holds several times that while it types the tensors,
so this bounds the memory of a run whatever the batch holds."""


def _chunks(source: Path, folder: Path, limit: int) -> list[Path]:
    """The file itself when it is small, else its lines in files of about `limit` bytes."""
    if source.stat().st_size <= limit:
        return [source]
    folder.mkdir(parents=True, exist_ok=True)
    out: list[Path] = []
    lines: list[bytes] = []
    size = 0
    for line in source.read_bytes().splitlines(keepends=True):
        if lines and size + len(line) > limit:
            out.append(_write_chunk(folder, lines))
            lines, size = [], 0
        lines.append(line)
        size += len(line)
    if lines:
        out.append(_write_chunk(folder, lines))
    return out


def _groups(chunks: list[tuple[Path, Path]]) -> list[list[tuple[Path, Path]]]:
    """Chunks in loads of about LOAD_BYTES each (many small log files load together)."""
    groups: list[list[tuple[Path, Path]]] = []
    size = LOAD_BYTES
    for pair in chunks:
        length = pair[1].stat().st_size
        if size + length > LOAD_BYTES:
            groups.append([])
            size = 0
        groups[-1].append(pair)
        size += length
    return groups


def _halves(chunk: Path) -> list[Path]:
    """The chunk's lines in two files, or none when it holds one line."""
    lines = [line for line in chunk.read_bytes().splitlines(keepends=True) if line.strip()]
    if len(lines) < 2:
        return []
    middle = len(lines) // 2
    return [_write_chunk(chunk.parent, lines[:middle]), _write_chunk(chunk.parent, lines[middle:])]


def _write_chunk(folder: Path, lines: list[bytes]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"chunk-{secrets.token_hex(6)}.jsonl"
    path.write_bytes(b"".join(line if line.endswith(b"\n") else line + b"\n" for line in lines))
    return path
