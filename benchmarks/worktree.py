"""The repository at another git ref, for a benchmark's side-by-side baseline."""

from __future__ import annotations

import compileall
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def checkout(ref: str) -> Path:
    """The repository at `ref`, as a git worktree under build/ (made once), its server's
    bytecode compiled as the image's install does."""
    sha = subprocess.run(["git", "rev-parse", ref], cwd=REPO, capture_output=True, text=True,
                         check=True).stdout.strip()
    tree = REPO / "build" / f"baseline-{sha[:12]}"
    if not tree.exists():
        subprocess.run(["git", "worktree", "add", "--detach", str(tree), sha], cwd=REPO,
                       check=True, capture_output=True)
    compileall.compile_dir(tree / "serving", quiet=1)
    return tree
