"""The shared volume's layout, named once: where every pod mounts it and what its folders
hold. The server, the jobs, the compactor, the generator and the CLI all read it here.

  artifacts/<model>/<version>/<file>           what versions load (pinned by sha256)
  datasets/<dataset>/model=<model>/...         compacted logs, batch outputs, training data
  logs/<server>/<date>/*.jsonl                 prediction logs, before compaction
  results/<model>/<request id>.*               asynchronous requests: accepted, then answered
"""

from __future__ import annotations

MOUNT = "/mnt/shared"
"""Where every pod mounts the volume."""
ARTIFACTS = "artifacts"
DATASETS = "datasets"
LOGS = "logs"
RESULTS = "results"


def artifacts(model: str) -> str:
    """A model's folder of versions."""
    return f"{ARTIFACTS}/{model}"


def dataset(name: str) -> str:
    return f"{DATASETS}/{name}"


def model_dataset(name: str, model: str) -> str:
    """The part of a dataset one model's records or scores go to."""
    return f"{DATASETS}/{name}/model={model}"
