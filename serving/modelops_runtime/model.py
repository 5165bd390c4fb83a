"""The interface every runtime implements: a small class with a lifecycle.

`load()` makes it ready, `predict()` is the hot path, `metadata()` describes its
tensors, `routes()` adds endpoints under /v2/models/<name>/, and
`on_dataset_change()` lets it react when a dataset on the shared volume changes.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from modelops_runtime.errors import InvalidRequest


class Model:
    declared: dict[str, list[dict[str, Any]]] = {"inputs": [], "outputs": []}
    """The tensors the spec declares or its example shows (set by the server)."""

    def __init__(self, name: str, version: str, artifact_path: Path | None,
                 datasets: dict[str, Path] | None = None):
        self.name = name
        self.version = version
        self.artifact_path = artifact_path
        self.datasets = datasets or {}

    def load(self) -> None:
        """Read the artifact; raise to report why the model cannot serve."""

    def predict(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Named input tensors in, named output tensors out."""
        raise NotImplementedError

    def infer(self, inputs: dict[str, np.ndarray],
              wanted: list[str] | None) -> dict[str, np.ndarray]:
        """What the server calls: predict, then keep the outputs the client asked for
        (or the defaults). A runtime may override it to compute only those."""
        outputs = self.predict(inputs)
        names = wanted or self.default_outputs()
        if names is None:
            return outputs
        missing = [n for n in names if n not in outputs]
        if missing:
            raise InvalidRequest(f"model {self.name!r} has no output {missing[0]!r}; it has "
                                 f"{', '.join(sorted(outputs))}")
        return {n: outputs[n] for n in names}

    def metadata(self) -> dict[str, list[dict[str, Any]]]:
        """{"inputs": [...], "outputs": [...]} tensor descriptions (name, datatype, shape,
        -1 for any size): what the server checks every request against before `predict`.
        Override it to declare them in code; by default they are the spec's."""
        return self.declared

    def default_outputs(self) -> list[str] | None:
        """Outputs returned when a request names none (None: all that predict returns)."""
        return None

    def routes(self) -> list[tuple[str, str, Callable[..., Any]]]:
        """Extra endpoints as (method, path, handler), mounted under /v2/models/<name>."""
        return []

    @classmethod
    def train(cls, features: np.ndarray, labels: np.ndarray, parameters: dict[str, Any],
              seed: int) -> Any:
        """Fit on these rows (features: float64, one column per spec `training.features`)
        and return what load() reads back from self.artifact_path: it is saved with
        joblib. Use `seed` for every random choice, so the same data trains the same
        bytes."""
        raise NotImplementedError(f"{cls.__name__} has no train()")

    def on_dataset_change(self, name: str, path: Path) -> None:
        """Called when a file of a dataset this model reads changes on the shared volume."""
