"""`modelops serve`: every spec (or the ones named) in one local process, with the same
server as production."""

from __future__ import annotations

from pathlib import Path

from modelops.generate.contract import server_model
from modelops.repo import Repo
from modelops.sleep import Sleeper
from modelops.spec import ModelSpec, PoolSpec
from modelops_runtime.config import RelayConfig, ServerConfig


def local_config(repo: Repo, names: list[str] | None = None,
                 scale_to_zero: bool = False) -> ServerConfig:
    """All versions of the chosen models, unversioned traffic split by their weights. With
    `scale_to_zero`, the models whose spec lets them sleep are relayed, not loaded."""
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
        model = server_model(spec_file, spec, versions, code)
        if scale_to_zero and sleeps(spec):
            assert spec.autoscaling is not None
            model = model.model_copy(update={"relay": RelayConfig(
                wakeSeconds=spec.autoscaling.wakeSeconds)})
        models.append(model)
    return ServerConfig(server="local", placement="local", models=models)


def sleeps(spec: ModelSpec | PoolSpec) -> bool:
    return isinstance(spec, ModelSpec) and spec.autoscaling is not None and \
        spec.autoscaling.sleeps


def sleepers(repo: Repo, config: ServerConfig) -> list[Sleeper]:
    """The relayed models of a local config, as their runners serve them."""
    assert repo.settings is not None
    env = repo.settings.local_environment
    out = []
    for model in config.models:
        if model.relay is not None:
            spec = repo.models[model.name].envs[env]
            assert isinstance(spec, ModelSpec) and spec.autoscaling is not None
            out.append(Sleeper(model.model_copy(update={"relay": None}), spec.autoscaling))
    return out


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
