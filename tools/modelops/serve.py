"""`modelops serve`: every spec (or the ones named) in one local process, same server as production."""

from __future__ import annotations

from pathlib import Path

from modelops.manifests import server_model
from modelops.repo import Repo
from modelops_runtime.config import ServerConfig


def local_config(repo: Repo, names: list[str] | None = None) -> ServerConfig:
    """All versions of the chosen models, unversioned traffic split by their weights."""
    models = []
    for name, entry in sorted(repo.models.items()):
        if names and name not in names:
            continue
        spec = entry.envs["staging"]
        if spec.runtime == "custom":
            continue  # its own image implements the protocol; nothing to load here
        code = str((repo.root / "models" / name / "model.py").resolve()) \
            if spec.runtime == "python" else None
        models.append(server_model(entry, spec, sorted(spec.versions, key=lambda v: v.name), code))
    return ServerConfig(server="local", placement="local", models=models)


def selection(repo_root: Path, targets: list[Path]) -> list[str] | None:
    """Model names from SPEC_OR_DIR arguments (None: every model)."""
    if not targets:
        return None
    names = []
    for target in targets:
        target = target.resolve()
        folder = target.parent if target.is_file() else target
        if (folder / "model.yaml").is_file():
            names.append(folder.name)
        else:
            names += [p.parent.name for p in sorted(folder.glob("*/model.yaml"))]
    return names
