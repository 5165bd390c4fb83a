"""job.yaml: how a model is trained and how it scores datasets in batch (the generator
writes it from the spec; `modelops train | batch` build the same one locally).

The spec's `training.checks` and `training.gate` are these very classes, so what a data
scientist writes is what the job reads.
"""

from __future__ import annotations

import datetime
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from modelops_runtime import volume
from modelops_runtime.config import ModelConfig
from modelops_runtime.configfile import ConfigFile, Strict

Metric = Literal["accuracy", "f1_macro", "r2", "mae", "rmse"]
LOWER_IS_BETTER = ("mae", "rmse")


def score_line(scores: dict[str, Any]) -> str:
    """Holdout scores as people read them, in the CLI, the plan and the catalog:
    `accuracy 0.97, f1_macro 0.96` (the row count left out)."""
    return ", ".join(f"{k} {v:g}" for k, v in sorted(scores.items())
                     if k != "rows" and isinstance(v, (int, float)))


class DataChecks(Strict):
    """What the training data must satisfy before anything is trained."""

    requiredColumns: list[str] = Field(default_factory=list)
    """Columns every input dataset must have (the features and label always are)."""
    minRows: int = Field(default=10, ge=1)
    """Fewest rows, all inputs together, after rows with a missing label are dropped."""
    maxMissingShare: float = Field(default=0.0, ge=0.0, le=1.0)
    """Largest share of missing values allowed in any feature column."""
    maxDrift: float | None = Field(default=None, gt=0.0)
    """Largest PSI of any feature against the data the newest trained version learnt
    from (unset: not checked)."""


class QualityGate(Strict):
    """What the trained model must score on the holdout before it becomes a version."""

    metric: Metric
    """accuracy or f1_macro (classifiers), r2, mae or rmse (regressors)."""
    threshold: float | None = None
    """The score it must reach (at least, or at most for mae and rmse)."""
    tolerance: float | None = Field(default=None, ge=0.0)
    """How far it may fall behind the serving version on the same holdout (unset: no
    comparison)."""

    @model_validator(mode="after")
    def _something(self) -> QualityGate:
        if self.threshold is None and self.tolerance is None:
            raise ValueError("set a threshold, a tolerance against the serving version, or both")
        return self


class TrainingInputConfig(Strict):
    dataset: str
    path: str  # relative to the shared volume
    label: str  # the column holding the label in this dataset
    optional: bool = False  # missing or empty: no rows, not an error


class TrainingConfig(Strict):
    function: str | None = None  # "train.py:train"; None: the python model class's train()
    inputs: list[TrainingInputConfig] = Field(min_length=1)
    features: list[str] = Field(min_length=1)
    parameters: dict[str, Any] = Field(default_factory=dict)
    seed: int = 0
    holdout: float = 0.2
    checks: DataChecks = Field(default_factory=DataChecks)
    gate: QualityGate | None = None
    serving: str | None = None  # the version the gate compares with (the heaviest)


class BatchConfig(Strict):
    input: str  # a dataset's path on the shared volume
    output: str  # the dataset written: datasets/<output>/model=<m>/version=<v>/date=<d>/
    version: str
    features: list[str] = Field(min_length=1)


class JobConfig(ConfigFile):
    apiVersion: Literal["modelops/v1"] = "modelops/v1"
    kind: Literal["JobConfig"] = "JobConfig"
    model: ModelConfig
    training: TrainingConfig | None = None
    batch: BatchConfig | None = None


class JobOptions(BaseSettings):
    """A job's knobs, from the environment its CronJob sets (MODELOPS_*)."""

    model_config = SettingsConfigDict(env_prefix="MODELOPS_")

    job_config: Path = Path("/etc/modelops/job.yaml")
    """The job.yaml the generator wrote (mounted from a ConfigMap)."""
    shared_root: Path = Path(volume.MOUNT)
    batch_workers: int = Field(default=1, ge=1)
    """How many workers share a batch (the Indexed Job's completions)."""
    completion_index: int = Field(default=0, ge=0, validation_alias="JOB_COMPLETION_INDEX")
    """This worker's index, which an Indexed Job sets."""
    job_name: str | None = None
    """The Job's name (its pods' `job-name` label). A CronJob names each Job after the
    minute it was scheduled for, which dates a batch run: a pod retried after midnight
    writes into the same date as its first try."""

    def scheduled_date(self) -> str | None:
        """The date the CronJob scheduled this run for (None: a Job made by hand)."""
        found = re.fullmatch(r".+-(\d{7,10})", self.job_name or "")
        if not found:
            return None
        minute = datetime.datetime.fromtimestamp(int(found[1]) * 60, datetime.UTC)
        return minute.date().isoformat()
