"""Log compaction speed: 1,000,000 prediction records across 20 models, side by side with a
bare engine read of the same files (the floor: what reading the JSON costs at least).

    python benchmarks/compact.py [--records 1000000] [--rounds 3]

Each round hard-links the same closed log files into a fresh shared volume, then runs
`python -m modelops_compactor` (as the CronJob does) and, in another process,
DuckDB's read_json of the same files into a table. Prints seconds, records/s, peak
RSS and the ratio. If pyarrow is importable, its JSON reader is timed too.
Targets (issue 4): under 20 s, under 1 GB peak RSS, within 3x the bare read.

Then scale-out (issue 27): 10,000,000 records over 10 models (`--scale-records`), compacted
by one worker and by two (an Indexed Job's pods: `JOB_COMPLETION_INDEX`,
`MODELOPS_COMPACTOR_WORKERS`, started together), each on a fresh copy: the wall time to the
last worker's end, the speed-up, and each worker's peak RSS.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "build" / "bench-compact"  # not /tmp: file creation there is much slower
MODELS = 20
FILES_PER_MODEL = 5

BARE_DUCKDB = """
import sys, duckdb
files = sys.argv[1:]
with duckdb.connect() as con:
    con.execute("CREATE TABLE t AS SELECT * FROM read_json(?, format = 'newline_delimited')",
                [files])
    print(con.execute("SELECT count(*) FROM t").fetchone()[0])
"""
BARE_PYARROW = """
import sys, pyarrow.json
print(sum(pyarrow.json.read_json(f).num_rows for f in sys.argv[1:]))
"""


def synthesize(logs: Path, records: int, models: int = MODELS) -> list[Path]:
    """Closed log files as model servers write them: one tensor of 4-12 features in, a class out."""
    rng = random.Random(1)
    per_file = records // (models * FILES_PER_MODEL)
    files = []
    for m in range(models):
        name, features = f"model-{m:02d}", 4 + m % 9
        folder = logs / f"{name}-server" / "2026-11-18"
        folder.mkdir(parents=True, exist_ok=True)
        for f in range(FILES_PER_MODEL):
            lines = []
            for i in range(per_file):
                data = [round(rng.gauss(0, 1), 4) for _ in range(features)]
                lines.append(orjson.dumps({
                    "id": f"{m}-{f}-{i}", "model": name, "version": "v2" if i % 10 == 0 else "v1",
                    "dataset": name, "ts": 1795000000.0 + i * 0.05,
                    "inputs": [{"name": "input-0", "datatype": "FP64", "shape": [1, features],
                                "data": data}],
                    "outputs": [{"name": "predict", "datatype": "INT64", "shape": [1],
                                 "data": [i % 3]}],
                    "latency_ms": round(rng.uniform(0.3, 2.0), 3), "status": 200}))
            path = folder / f"host-1-{f:06d}.jsonl"
            path.write_bytes(b"\n".join(lines) + b"\n")
            files.append(path)
    return files


def timed(command: list[str], env: dict | None = None) -> tuple[float, float, str]:
    """Wall seconds, peak RSS in MB and stdout of a child process."""
    started = time.perf_counter()
    proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - started
    out, err = proc.stdout.read().decode(), proc.stderr.read().decode()
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"{command[:3]} failed: {err}")
    return elapsed, usage.ru_maxrss / 1024, out


def workers(shared: Path, count: int) -> tuple[float, list[dict]]:
    """`count` compactor workers started together, as an Indexed Job's pods: the wall time
    to the last one's end, and each one's summary with its peak RSS in MB."""
    started = time.perf_counter()
    procs = [subprocess.Popen(
        [sys.executable, "-m", "modelops_compactor"],
        env={**os.environ, "MODELOPS_SHARED_ROOT": str(shared),
             "MODELOPS_COMPACTOR_CONFIG": str(shared / "none.yaml"),
             "JOB_COMPLETION_INDEX": str(i), "MODELOPS_COMPACTOR_WORKERS": str(count)},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE) for i in range(count)]
    results = []
    for proc in procs:
        _, status, usage = os.wait4(proc.pid, 0)
        if os.waitstatus_to_exitcode(status) != 0:
            sys.exit(f"worker failed: {proc.stderr.read().decode()}")
        results.append({**orjson.loads(proc.stdout.read()), "rss": usage.ru_maxrss / 1024})
    return time.perf_counter() - started, results


def scale_out(records: int) -> None:
    """One worker, then two, over the same logs of 10 models."""
    source = WORK / "scale" / "logs"
    started = time.perf_counter()
    files = synthesize(source, records, models=10)
    size = sum(f.stat().st_size for f in files)
    print(f"\nscale-out: {records:,} records in {len(files)} files ({size / 2**20:.0f} MiB) "
          f"across 10 models, written in {time.perf_counter() - started:.1f} s")
    seconds = {}
    for count in (1, 2):
        shared = WORK / f"scale-{count}"
        shutil.copytree(source, shared / "logs", copy_function=os.link)
        seconds[count], results = workers(shared, count)
        rows = sum(r["rows"] for r in results)
        if rows != records:
            sys.exit(f"{count} worker(s) wrote {rows} rows for {records} records")
        shares = ", ".join(f"{r['files']} files, peak {r['rss']:.0f} MB" for r in results)
        print(f"  {count} worker(s): {seconds[count]:7.1f} s  {records / seconds[count]:10,.0f} "
              f"records/s  ({shares})")
        shutil.rmtree(shared)
    print(f"  two workers / one: {seconds[1] / seconds[2]:.2f}x faster (2 vCPUs here)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--scale-records", type=int, default=10_000_000)
    parser.add_argument("--only-scale", action="store_true")
    args = parser.parse_args()
    if args.only_scale:
        shutil.rmtree(WORK, ignore_errors=True)
        scale_out(args.scale_records)
        shutil.rmtree(WORK, ignore_errors=True)
        return

    shutil.rmtree(WORK, ignore_errors=True)
    source = WORK / "source" / "logs"
    started = time.perf_counter()
    files = synthesize(source, args.records)
    size = sum(f.stat().st_size for f in files)
    print(f"{args.records:,} records in {len(files)} files ({size / 2**20:.0f} MiB) across "
          f"{MODELS} models, written in {time.perf_counter() - started:.1f} s")
    try:
        import pyarrow  # noqa: F401
        engines = [("duckdb read_json", BARE_DUCKDB), ("pyarrow read_json", BARE_PYARROW)]
    except ImportError:
        engines = [("duckdb read_json", BARE_DUCKDB)]
        print("(pyarrow not installed here: its bare read is skipped)")

    results: dict[str, list[tuple[float, float]]] = {"compaction": []}
    for round_ in range(args.rounds):
        shared = WORK / f"round-{round_}"
        shutil.copytree(source, shared / "logs", copy_function=os.link)  # same bytes, no copy
        env = {**os.environ, "MODELOPS_SHARED_ROOT": str(shared),
               "MODELOPS_COMPACTOR_CONFIG": str(shared / "none.yaml")}
        seconds, rss, out = timed([sys.executable, "-m", "modelops_compactor"], env)
        summary = orjson.loads(out)
        if summary["records"] != args.records or summary["rows"] != args.records:
            sys.exit(f"compaction wrote {summary['rows']} rows for {args.records} records")
        results["compaction"].append((seconds, rss))
        for label, script in engines:
            seconds, rss, out = timed([sys.executable, "-c", script, *map(str, files)])
            if int(out) != args.records:
                sys.exit(f"{label} read {out} records")
            results.setdefault(label, []).append((seconds, rss))
        shutil.rmtree(shared)

    print(f"\n{'':24}{'median s':>10}{'records/s':>12}{'peak RSS MB':>13}")
    medians = {}
    for label, runs in results.items():
        seconds = statistics.median(s for s, _ in runs)
        medians[label] = seconds
        print(f"{label:24}{seconds:10.2f}{args.records / seconds:12,.0f}"
              f"{max(r for _, r in runs):13.0f}")
    floor = medians["duckdb read_json"]
    print(f"\ncompaction / bare duckdb read: {medians['compaction'] / floor:.2f}x (target <= 3x)")
    if "pyarrow read_json" in medians:
        print(f"compaction / bare pyarrow read: "
              f"{medians['compaction'] / medians['pyarrow read_json']:.2f}x")
    print("per round: " + ", ".join(f"{s:.2f}" for s, _ in results["compaction"]) + " s")
    scale_out(args.scale_records)
    shutil.rmtree(WORK, ignore_errors=True)


if __name__ == "__main__":
    main()
