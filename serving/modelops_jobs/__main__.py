"""`python -m modelops_jobs train|batch`: what the CronJobs run (job.yaml from
MODELOPS_JOB_CONFIG, the shared volume at MODELOPS_SHARED_ROOT: config.JobOptions)."""

from __future__ import annotations

import sys

from pydantic import ValidationError


def main() -> None:
    from modelops_jobs import batch, training
    from modelops_jobs.config import JobConfig, JobOptions

    kinds = {"train": training.main, "batch": batch.main}
    if len(sys.argv) != 2 or sys.argv[1] not in kinds:
        sys.exit("usage: python -m modelops_jobs train|batch")
    try:
        options = JobOptions()
        config = JobConfig.read(options.job_config)
    except (OSError, ValidationError, ValueError) as exc:
        sys.exit(f"modelops job: cannot start: {exc}")
    sys.exit(kinds[sys.argv[1]](config, options, options.job_config.parent))


if __name__ == "__main__":
    main()
