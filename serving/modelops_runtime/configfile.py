"""The base of every config the generator writes and a deployable reads (server.yaml,
job.yaml, compactor.yaml, catalog.yaml): strict, so that a generator and a reader that
disagree fail at start rather than ignore a field, and read from YAML one way."""

from __future__ import annotations

from pathlib import Path
from typing import Self

import yaml
from pydantic import BaseModel, ConfigDict


class Strict(BaseModel):
    """An unknown key is an error, and so is a NaN or an infinity (a quality gate whose
    threshold is NaN would pass any model). Attribute docstrings describe the fields (the
    spec embeds some of these classes, and its JSON Schema shows them)."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True,
                              allow_inf_nan=False)


class ConfigFile(Strict):
    """A whole config file."""

    @classmethod
    def read(cls, path: Path) -> Self:
        return cls.model_validate(yaml.load(path.read_bytes(), Loader=yaml.CSafeLoader))
