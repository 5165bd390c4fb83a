"""`modelops serve`: every spec (or the ones named) in one local process, with the same
server as production."""

from __future__ import annotations

from pathlib import Path

from modelops.generate.contract import server_model
from modelops.repo import Repo
from modelops_runtime.config import ServerConfig


def local_config(repo: Repo, names: list[str] | None = None) -> ServerConfig:
    """All versions of the chosen models, unversioned traffic split by their weights."""
    assert repo.settings is not None
    env = repo.settings.local_environment
    models = []
    for name, spec_file in sorted(repo.models.items()):
        if names and name not in names:
            continue
        spec = spec_file.envs[env]
        if spec.runtime == "custom":
            continue  # its own image implements the protocol; nothing to load here
        code = str((repo.root / "models" / name / "model.py").resolve()) \
            if spec.runtime == "python" else None
        versions = sorted(spec.versions, key=lambda v: v.name)
        models.append(server_model(spec_file, spec, versions, code))
    return ServerConfig(server="local", placement="local", models=models)


class SelectionError(ValueError):
    pass


def selection(repo: Repo, targets: list[str]) -> list[str] | None:
    """Model names from MODEL, SPEC or DIR arguments (None: every model)."""
    if not targets:
        return None
    names = []
    for target in targets:
        path = Path(target).resolve()
        folder = path.parent if path.is_file() else path
        if target in repo.models:
            found = [target]
        elif (folder / "model.yaml").is_file():
            found = [folder.name]
        else:
            found = [p.parent.name for p in sorted(folder.glob("*/model.yaml"))]
        found = [n for n in found if n in repo.models]
        if not found:
            raise SelectionError(f"{target!r} is not a model, a spec or a folder of specs; "
                                 f"models: {', '.join(sorted(repo.models))}")
        names += found
    return names
