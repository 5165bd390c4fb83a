"""How fast is `validate + generate` compared with merely parsing the same YAML?

Synthesises N valid specs (two thirds dedicated, one third in pools of ten; two
versions in a 90/10 split; production overrides) in a temp directory, then, each
in a fresh process so peak RSS is its own:
  parse     yaml.load of every spec with PyYAML's C loader (the floor)
  cold      modelops load + validate + build + write of every overlay (empty tree)
  warm      the same again on the generated tree (nothing to write: the usual CI run)
  files     a bare loop creating a copy of the generated files (the disk's floor for
            cold: on this machine it alone swings between 0.4 and 6 s for 14k files)
Both generate runs use the second core (a forked child takes half the overlays);
peak RSS is the larger of the process and its child.

Each is run ROUNDS times, interleaved, and the median is printed; the disk is
synced before every run so that writeback of earlier files is not billed to it.

With --baseline REF, the generate runs are also made with the code at a git ref (a worktree
under build/), in the same rounds, and the ratios printed: the check that a change kept
the speed.

Usage: python benchmarks/generate.py [--baseline REF] [N ...]   (default: 1000 5000)
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from worktree import checkout

REPO = Path(__file__).resolve().parent.parent
SHA = "ab12" * 16
ROUNDS = 3

MODEL = """\
apiVersion: modelops/v1
kind: Model
metadata:
  name: {name}
  team: team-{team}
  description: Synthetic model number {i} for the generator benchmark.
spec:
  runtime: sklearn
  versions:
    - name: v1
      artifact: pvc://artifacts/{name}/v1/model.joblib
      sha256: {sha}
      weight: 90
    - name: v2
      artifact: pvc://artifacts/{name}/v2/model.joblib
      sha256: {sha}
      weight: 10
{placement}
  logging:
    enabled: true
    sampleRate: 0.5
  environments:
    production:
      logging:
        sampleRate: 0.1
"""
DEDICATED = """\
  placement: dedicated
  resources:
    cpu: 250m
    memory: 256Mi
  autoscaling:
    minReplicas: 1
    maxReplicas: 3
  env:  # a pool's members take their pool's
    - name: FEATURE_FLAG
      value: 'on'"""
POOL = """\
apiVersion: modelops/v1
kind: Pool
metadata:
  name: {name}
  team: platform
spec:
  resources:
    cpu: "1"
    memory: 2Gi
  autoscaling:
    minReplicas: 2
    maxReplicas: 6
  environments:
    staging:
      autoscaling:
        minReplicas: 1
"""


def synthesise(root: Path, n: int) -> None:
    shutil.copytree(REPO / "base", root / "base")
    (root / "platform").mkdir()
    shutil.copy(REPO / "platform/settings.yaml", root / "platform")
    (root / "platform/capacity.yaml").write_text(
        "apiVersion: modelops/v1\nkind: CapacityBudget\nenvironments:\n"
        "  staging: {cpu: '100000', memory: 100000Ti}\n"
        "  production: {cpu: '100000', memory: 100000Ti}\n")
    for i in range(n):
        name = f"model-{i:05d}"
        if i % 3 == 2:
            pool = f"pool-{i // 30:04d}"
            placement = f"  placement:\n    shared: {pool}"
            if not (root / "models" / pool).exists():
                (root / "models" / pool).mkdir(parents=True)
                (root / "models" / pool / "pool.yaml").write_text(POOL.format(name=pool))
        else:
            placement = DEDICATED
        (root / "models" / name).mkdir(parents=True)
        (root / "models" / name / "model.yaml").write_text(
            MODEL.format(name=name, team=i % 7, i=i, sha=SHA, placement=placement))


def run(mode: str, root: str) -> dict:
    """One measurement, in this (fresh) process."""
    if mode == "files":
        texts = {}
        for top, _, names in os.walk(Path(root, "overlays")):
            for name in names:
                texts[os.path.join(top, name)] = Path(top, name).read_bytes()
    start = time.perf_counter()
    if mode == "files":
        for path, data in texts.items():
            copy = path.replace(root, os.path.join(root, "copy"), 1)
            os.makedirs(os.path.dirname(copy), exist_ok=True)
            with open(copy, "wb") as handle:
                handle.write(data)
        files = len(texts)
    elif mode == "parse":
        import yaml

        for path in sorted(Path(root, "models").rglob("*.yaml")):
            yaml.load(path.read_bytes(), Loader=yaml.CSafeLoader)
        files = 0
    else:  # what `modelops generate` does: GC paused, a forked child sharing the work
        from modelops.gcpause import paused
        from modelops.generate import files as generated
        from modelops.repo import load

        @paused
        def generate() -> int:
            repo = load(Path(root))
            assert repo.ok, repo.diagnostics[:5]
            return generated.sync(Path(root), repo, write=True, parallel=True)[1]

        files = generate()
    seconds = time.perf_counter() - start
    rss_mb = max(resource.getrusage(who).ru_maxrss
                 for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)) / 1024
    return {"seconds": seconds, "rss_mb": rss_mb, "files": files}


def measure(mode: str, root: Path, source: Path = REPO) -> dict:
    """One run in a fresh process, with the code of the checkout at `source`."""
    os.sync()
    env = {**os.environ, "PYTHONPATH": f"{source / 'tools'}:{source / 'serving'}"}
    out = subprocess.run([sys.executable, __file__, "--one", mode, str(root)],
                         capture_output=True, text=True, env=env)
    if out.returncode:
        sys.exit(f"{mode} failed:\n{out.stderr}")
    return json.loads(out.stdout)


def against_baseline(sizes: list[int], ref: str) -> None:
    """Cold and warm generate, this checkout vs `ref`, interleaved in the same rounds."""
    tree = checkout(ref)
    print(f"this checkout vs {ref} ({tree.name}), medians of {ROUNDS} interleaved rounds:")
    for n in sizes:
        (REPO / "build").mkdir(exist_ok=True)
        with tempfile.TemporaryDirectory(dir=REPO / "build") as tmp:
            root = Path(tmp)
            synthesise(root, n)
            runs: dict[str, list[float]] = {k: [] for k in ("cold", "warm", "cold@base",
                                                            "warm@base")}
            for _ in range(ROUNDS):
                for source, suffix in ((REPO, ""), (tree, "@base")):
                    shutil.rmtree(root / "overlays", ignore_errors=True)
                    runs["cold" + suffix].append(measure("generate", root, source)["seconds"])
                    runs["warm" + suffix].append(measure("generate", root, source)["seconds"])
        median = {k: statistics.median(v) for k, v in runs.items()}
        for kind in ("cold", "warm"):
            ratios = sorted(a / b for a, b in zip(runs[kind], runs[kind + "@base"],
                                                  strict=True))
            print(f"{n:>6} specs {kind}: {median[kind]:.2f} s vs {median[kind + '@base']:.2f} s"
                  f" = {statistics.median(ratios):.2f}x the baseline's time (rounds "
                  f"{ratios[0]:.2f}-{ratios[-1]:.2f}; target: within 10%, <= 1.10)")


def main(sizes: list[int]) -> None:
    results = {}
    print(f"{'specs':>6} {'parse s':>8} {'cold s':>7} {'specs/s':>8} {'ratio':>6} "
          f"{'files s':>8} {'warm s':>7} {'ratio':>6} {'files':>7} {'peak RSS MB':>12}")
    for n in sizes:
        # In the checkout's build/ (gitignored): a working tree is where the generator
        # writes, and this machine's /tmp is ~8x slower per file created.
        (REPO / "build").mkdir(exist_ok=True)
        with tempfile.TemporaryDirectory(dir=REPO / "build") as tmp:
            root = Path(tmp)
            synthesise(root, n)
            runs: dict[str, list[dict]] = {"parse": [], "cold": [], "warm": [], "files": []}
            for _ in range(ROUNDS):
                shutil.rmtree(root / "overlays", ignore_errors=True)
                runs["parse"].append(measure("parse", root))
                runs["cold"].append(measure("generate", root))
                runs["warm"].append(measure("generate", root))
                runs["files"].append(measure("files", root))
                shutil.rmtree(root / "copy")
        parse, full, warm, floor = (
            {"seconds": statistics.median(r["seconds"] for r in rs),
             "rss_mb": max(r["rss_mb"] for r in rs), "files": rs[0]["files"]}
            for rs in runs.values())
        results[n] = full["seconds"], warm["seconds"]
        print(f"{n:>6} {parse['seconds']:>8.2f} {full['seconds']:>7.2f} "
              f"{n / full['seconds']:>8.0f} {full['seconds'] / parse['seconds']:>5.1f}x "
              f"{floor['seconds']:>8.2f} {warm['seconds']:>7.2f} "
              f"{warm['seconds'] / parse['seconds']:>5.1f}x "
              f"{full['files']:>7} {max(full['rss_mb'], warm['rss_mb']):>12.0f}")
    if 1000 in results and 5000 in results:
        print(f"5000 specs take {results[5000][0] / results[1000][0]:.2f}x the time of 1000 "
              f"cold, {results[5000][1] / results[1000][1]:.2f}x warm")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--one"]:
        print(json.dumps(run(sys.argv[2], sys.argv[3])))
    elif sys.argv[1:2] == ["--baseline"]:
        against_baseline([int(a) for a in sys.argv[3:]] or [1000, 5000], sys.argv[2])
    else:
        main([int(a) for a in sys.argv[1:]] or [1000, 5000])
