"""How long does `modelops plan` take on a big repository with one changed model?

Synthesises a git repository of N models (default 500; the generate benchmark's
specs), commits it, changes one model's replica bounds, and times `modelops plan`
against the commit, next to `modelops generate` alone on the same tree.

Usage: python benchmarks/plan.py [N]
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import generate as synth  # noqa: E402  (the same synthetic specs)

REPO = Path(__file__).resolve().parent.parent


def timed(*args: str, cwd: Path) -> float:
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "modelops", *args], cwd=cwd,
                          capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"modelops {' '.join(args)} failed:\n{proc.stderr}")
    return time.perf_counter() - start


def main(n: int) -> None:
    (REPO / "build").mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(dir=REPO / "build") as tmp:
        root = Path(tmp)
        synth.synthesise(root, n)
        generate_s = timed("generate", cwd=root)
        git = ["git", "-c", "user.name=bench", "-c", "user.email=bench@example.com"]
        subprocess.run(git + ["init", "-q", "-b", "main"], cwd=root, check=True)
        subprocess.run(git + ["add", "-A"], cwd=root, check=True)
        subprocess.run(git + ["commit", "-qm", "base"], cwd=root, check=True)
        spec = root / "models/model-00000/model.yaml"
        spec.write_text(spec.read_text().replace("maxReplicas: 3", "maxReplicas: 5"))
        plan_s = timed("plan", "--base", "main", cwd=root)
    print(f"{n} models, 1 changed: plan {plan_s:.2f} s (target < 10 s); "
          f"generate alone {generate_s:.2f} s; plan / generate = {plan_s / generate_s:.2f}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 500)
