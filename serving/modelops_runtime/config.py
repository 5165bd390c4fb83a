"""server.yaml: what the generator tells a server to serve (the generator-server contract).

`modelops generate` writes it from the specs with these very classes, and the
server reads it with them, so the two cannot disagree.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field


Runtime = Literal["sklearn", "onnx", "python", "custom"]
"""Every runtime a model may name: the one list (the spec, the CLI and the server read it).
This server serves all but `custom`, whose own image implements the same protocol."""
RUNTIMES: tuple[str, ...] = Runtime.__args__
LOADS_ARTIFACT = ("sklearn", "onnx")
"""Runtimes that cannot serve without an artifact file."""


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


class TensorConfig(_Strict):
    name: str
    datatype: str
    shape: list[int]  # -1: any size


class ModelConfig(_Strict):
    name: str
    runtime: Runtime
    concurrency: int = 16
    versions: list[VersionConfig] = Field(min_length=1)
    logging: LoggingConfig
    datasets: list[DatasetConfig] = Field(default_factory=list)
    code: str | None = None  # the python model's file, relative to the config file
    inputs: list[TensorConfig] = Field(default_factory=list)
    """The tensors the spec declares (or its example shows), for a model whose runtime
    cannot tell them itself."""
    outputs: list[TensorConfig] = Field(default_factory=list)


class ServerConfig(_Strict):
    apiVersion: Literal["modelops/v1"] = "modelops/v1"
    kind: Literal["ServerConfig"] = "ServerConfig"
    server: str
    placement: Literal["dedicated", "shared", "local"]
    models: list[ModelConfig]

    @classmethod
    def read(cls, path: Path) -> "ServerConfig":
        return cls.model_validate(yaml.load(path.read_bytes(), Loader=yaml.CSafeLoader))
