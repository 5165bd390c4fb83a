"""From a fresh clone to the first model `ready`: how long a newcomer waits for `make demo`.

Clones this repository (its committed HEAD) into a temp directory and runs `make demo`
there with an empty package cache (uv's, pip's), timing the set-up (`make setup`) and
the first line of `modelops serve` that says a model is ready. Then the same with pip
installing pyproject.toml's ranges the way set-up did before the lock (`pip install -e
'.[dev]'`), as the baseline in the same run, and the ratio. The demo is stopped by its
process group.

Usage: python benchmarks/first_ready.py [--no-baseline]
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
LIMIT = 900  # seconds; the run stops itself past this


def _clone(into: Path) -> Path:
    subprocess.run(["git", "clone", "--quiet", str(REPO), str(into)], check=True)
    return into


def _demo(root: Path, env: dict[str, str]) -> tuple[float, float]:
    """(seconds to the end of set-up, seconds to the first `ready`), from the start."""
    start = time.monotonic()
    proc = subprocess.Popen(["make", "demo"], cwd=root, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    setup = None
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            now = time.monotonic() - start
            if setup is None and "modelops.examples" in line:
                setup = now
            if line.lstrip().startswith("ready "):  # "  ready   iris (v1, v2)"
                return setup or now, now
            if now > LIMIT:
                break
        raise RuntimeError(f"no model became ready (exit {proc.poll()})")
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(60)


def _pip_makefile(root: Path) -> None:
    """The set-up as it was before the lock: pip resolving pyproject.toml's ranges."""
    text = (root / "Makefile").read_text()
    start = text.index("$(STAMP): pyproject.toml requirements.lock")
    end = text.index("\trm -f $(VENV)/.installed-*", start)
    (root / "Makefile").write_text(
        text[:start] + "$(STAMP): pyproject.toml\n"
        "\ttest -x $(BIN)/python || $(PYTHON) -m venv $(VENV)\n"
        "\t$(BIN)/python -m pip install --quiet -e '.[dev]'\n"
        "\t$(BIN)/python -m compileall -q tools serving >/dev/null\n" + text[end:])


def main() -> None:
    baseline = "--no-baseline" not in sys.argv
    with tempfile.TemporaryDirectory(prefix="first-ready-") as tmp:
        cold = {**os.environ, "UV_CACHE_DIR": f"{tmp}/uv-cache",
                "PIP_CACHE_DIR": f"{tmp}/pip-cache", "PIP_NO_CACHE_DIR": "1"}
        setup, ready = _demo(_clone(Path(tmp) / "lock"), cold)
        print(f"uv + requirements.lock: set-up {setup:6.1f} s, first ready {ready:6.1f} s")
        if baseline:
            root = _clone(Path(tmp) / "pip")
            _pip_makefile(root)
            old_setup, old_ready = _demo(root, cold)
            print(f"pip + pyproject ranges: set-up {old_setup:6.1f} s, first ready "
                  f"{old_ready:6.1f} s")
            print(f"ratio (lock / pip): set-up {setup / old_setup:.2f}x, first ready "
                  f"{ready / old_ready:.2f}x")


if __name__ == "__main__":
    main()
