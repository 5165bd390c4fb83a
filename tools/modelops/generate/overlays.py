"""Every overlay directory of a repository, as work not yet done: the one composition
path that `generate`, `generate --check`, `plan` and the tests all build from."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

from modelops.generate import argocd, models, platform
from modelops.repo import Repo
from modelops.specfile import SpecFile

Files = dict[str, Any]  # relative path -> data to write as YAML (or str for copied code)
Unit = tuple[Callable[[], Files], str]
"""Makes one overlay directory's files, and names what they are generated from."""

EVERY_SPEC = "models/*/model.yaml"


def units(repo: Repo) -> list[Unit]:
    """Every overlay directory, not yet made: each is independent of the others, so a
    caller can make them one at a time (and let each one's data go) or share them out."""
    assert repo.settings is not None
    environments = list(repo.settings.environments)
    out: list[Unit] = []
    members: dict[str, list[SpecFile]] = {name: [] for name in repo.pools}
    for _, spec_file in sorted(repo.models.items()):
        placement = spec_file.obj.spec.placement
        if placement == "dedicated":
            out += [(partial(models.dedicated, repo, spec_file, env), spec_file.file)
                    for env in environments]
        else:
            members[placement.shared].append(spec_file)
    for name, pool in sorted(repo.pools.items()):
        out += [(partial(models.pooled, repo, pool, members[name], env), pool.file)
                for env in environments]
    for env in environments:
        out += [(partial(platform.catalog, repo, env), EVERY_SPEC),
                (partial(platform.log_compactor, repo, env), EVERY_SPEC),
                (partial(platform.message_broker, repo, env), EVERY_SPEC),
                (partial(platform.front_door, repo, env), EVERY_SPEC),
                (partial(platform.namespace, repo, env), platform.SOURCE),
                (partial(platform.gateway, repo, env), platform.SOURCE),
                (partial(platform.environment, repo, env), platform.SOURCE)]
    out += [(partial(argocd.cluster, repo), argocd.SOURCE),
            (partial(platform.monitoring, repo), "platform/settings.yaml")]
    return out

