"""The model folders' lines of .github/CODEOWNERS, from each spec's metadata.team: the
team that owns a model reviews every change to it. Lines outside the generated block are
the repository's own and are kept; the block comes last, so its lines win (in CODEOWNERS
the last matching pattern does)."""

from __future__ import annotations

from pathlib import Path

from modelops.repo import Repo

PATH = ".github/CODEOWNERS"
BEGIN = "# BEGIN modelops generate: one line per model folder, from metadata.team"
END = "# END modelops generate"


def text(root: Path, repo: Repo) -> str:
    """The whole file as it should be: its own lines, then the generated block."""
    try:
        current = (root / PATH).read_text()
    except FileNotFoundError:
        current = ""
    kept, inside = [], False
    for line in current.splitlines():
        if line.strip() == BEGIN:
            inside = True
        elif line.strip() == END:
            inside = False
        elif not inside:
            kept.append(line)
    while kept and not kept[-1].strip():
        kept.pop()
    owner = repo.settings.codeOwners if repo.settings else "@{team}"
    entries = sorted({**repo.models, **repo.pools}.items())
    width = max((len(f"/models/{name}/") for name, _ in entries), default=0) + 2
    block = [BEGIN] + [f"/models/{name}/".ljust(width) + owner.format(team=entry.team)
                       for name, entry in entries] + [END]
    return "\n".join(kept + ([""] if kept else []) + block) + "\n"
