"""`python -m modelops_jobs train|batch`: what the CronJobs run (job.yaml from
MODELOPS_JOB_CONFIG, the shared volume at MODELOPS_SHARED_ROOT)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from pydantic import ValidationError


def main() -> None:
    from modelops_jobs import batch, training
    from modelops_jobs.config import JobConfig

    kinds = {"train": training.main, "batch": batch.main}
    if len(sys.argv) != 2 or sys.argv[1] not in kinds:
        sys.exit("usage: python -m modelops_jobs train|batch")
    path = Path(os.environ.get("MODELOPS_JOB_CONFIG", "/etc/modelops/job.yaml"))
    try:
        config = JobConfig.read(path)
    except (OSError, ValidationError, ValueError) as exc:
        sys.exit(f"modelops job: cannot start: {exc}")
    shared = Path(os.environ.get("MODELOPS_SHARED_ROOT", "/mnt/shared"))
    sys.exit(kinds[sys.argv[1]](config, shared, path.parent))


if __name__ == "__main__":
    main()
