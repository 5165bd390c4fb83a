"""One valid spec file as the tools pass it around: where it is, its YAML with positions,
the parsed spec, and the spec resolved for every environment."""

from __future__ import annotations

import dataclasses

from modelops.spec import ModelDocument, ModelSpec, PoolDocument, PoolSpec
from modelops.yamlload import Document


@dataclasses.dataclass
class SpecFile:
    """One valid spec file, with its spec resolved for every environment."""

    file: str  # relative to the repo root, e.g. models/iris/model.yaml
    doc: Document
    obj: ModelDocument | PoolDocument
    envs: dict[str, ModelSpec | PoolSpec]

    @property
    def name(self) -> str:
        return self.obj.metadata.name

    @property
    def team(self) -> str:
        return self.obj.metadata.team
