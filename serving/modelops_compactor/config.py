"""compactor.yaml: which models' prediction logs feed which dataset (the generator writes
it per environment), and the compactor's own knobs."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from modelops_runtime import volume
from modelops_runtime.configfile import ConfigFile, Strict


class CompactedModel(Strict):
    model: str
    dataset: str  # the dataset its prediction logs feed
    reference: str | None = None  # path on the shared volume the drift is measured against


class CompactorConfig(ConfigFile):
    """compactor.yaml: the models whose logs the compactor turns into datasets.

    Records of a model not listed are compacted all the same (nothing is dropped),
    without a drift summary.
    """

    apiVersion: Literal["modelops/v1"] = "modelops/v1"
    kind: Literal["CompactorConfig"] = "CompactorConfig"
    models: list[CompactedModel] = Field(default_factory=list)

    def references(self) -> dict[tuple[str, str], str]:
        """(dataset, model) -> reference path."""
        return {(m.dataset, m.model): m.reference for m in self.models if m.reference}


class CompactorOptions(BaseSettings):
    """The log compactor's knobs (the CronJob sets them; `modelops logs compact` too)."""

    model_config = SettingsConfigDict(env_prefix="MODELOPS_")

    shared_root: Path = Path(volume.MOUNT)
    """Logs are read from <shared_root>/logs, datasets written to <shared_root>/datasets."""
    compactor_config: Path = Path("/etc/modelops/compactor.yaml")
    batch_bytes: int = Field(default=256 * 1024 * 1024, ge=1)
    """Closed log files are compacted in batches of about this many bytes, one commit each."""
    memory_limit: str = "512MB"
    """DuckDB's memory limit; past it, it spills to its temporary directory."""
    workers: int = Field(default=1, ge=1, le=256, validation_alias="MODELOPS_COMPACTOR_WORKERS")
    """How many workers share the logs (the Indexed Job's completions)."""
    completion_index: int = Field(default=0, ge=0, validation_alias="JOB_COMPLETION_INDEX")
    """This worker's index, which an Indexed Job sets."""
