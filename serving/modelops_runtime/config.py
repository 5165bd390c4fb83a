"""server.yaml: what the generator tells a server to serve (the generator-server contract).

`modelops generate` writes it from the specs with these very classes, and the
server reads it with them, so the two cannot disagree.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class VersionConfig(_Strict):
    name: str
    artifact: str | None = None  # pvc://<path on the shared volume> or file:///<path>
    sha256: str | None = None
    weight: int = 100


class LoggingConfig(_Strict):
    enabled: bool = False
    sampleRate: float = 1.0
    dataset: str


class DatasetConfig(_Strict):
    name: str
    path: str  # relative to the shared volume


class ModelConfig(_Strict):
    name: str
    runtime: Literal["sklearn", "onnx", "python", "custom"]
    concurrency: int = 16
    versions: list[VersionConfig] = Field(min_length=1)
    logging: LoggingConfig
    datasets: list[DatasetConfig] = Field(default_factory=list)
    code: str | None = None  # the python model's file, relative to the config file


class ServerConfig(_Strict):
    apiVersion: Literal["modelops/v1"] = "modelops/v1"
    kind: Literal["ServerConfig"] = "ServerConfig"
    server: str
    placement: Literal["dedicated", "shared", "local"]
    models: list[ModelConfig]

    @classmethod
    def read(cls, path: Path) -> "ServerConfig":
        return cls.model_validate(yaml.load(path.read_bytes(), Loader=yaml.CSafeLoader))


class CompactedModel(_Strict):
    model: str
    dataset: str  # the dataset its prediction logs feed
    reference: str | None = None  # path on the shared volume the drift is measured against


class CompactorConfig(_Strict):
    """compactor.yaml: the models whose logs the compactor turns into datasets.

    Records of a model not listed are compacted all the same (nothing is dropped),
    without a drift summary.
    """

    apiVersion: Literal["modelops/v1"] = "modelops/v1"
    kind: Literal["CompactorConfig"] = "CompactorConfig"
    models: list[CompactedModel] = Field(default_factory=list)

    @classmethod
    def read(cls, path: Path) -> "CompactorConfig":
        return cls.model_validate(yaml.load(path.read_bytes(), Loader=yaml.CSafeLoader))

    def references(self) -> dict[tuple[str, str], str]:
        """(dataset, model) -> reference path."""
        return {(m.dataset, m.model): m.reference for m in self.models if m.reference}


class CatalogVersion(_Strict):
    name: str
    weight: int
    readyUrl: str  # the serving version's v2 readiness endpoint


class CatalogModel(_Strict):
    name: str
    team: str
    description: str
    runtime: str
    placement: str
    minReplicas: int
    maxReplicas: int
    versions: list[CatalogVersion]
    docsUrl: str | None = None
    dashboardUrl: str | None = None


class CatalogConfig(_Strict):
    """catalog.yaml: what the catalog page lists (the generator writes it per environment)."""

    apiVersion: str = "modelops/v1"
    kind: str = "Catalog"
    environment: str
    models: list[CatalogModel]
