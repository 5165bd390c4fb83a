"""Training and batch blocks that would break a sync, as a table: each is refused by
`modelops validate` at its line and column, with the reason, and never with a traceback.
The cron cases are schedules the CronJob controller (robfig/cron's standard parser)
refuses, or reads differently from what the author meant."""

from __future__ import annotations

import pytest
from broken_specs import HEAD, V1

BATCH = V1 + ("  datasets:\n    - {name: to-score, path: datasets/to-score}\n"
              "  batch:\n    input: to-score\n    output: scored\n    features: [a, b]\n")


def batch(schedule: str) -> dict[str, str]:
    return {"models/m/model.yaml": HEAD + BATCH + f"    schedule: {schedule!r}\n"}


WHERE = "models/m/model.yaml:18:15: spec.batch.schedule: "
FIELDS = "each field is a number, a range (a-b), a step (*/n) or a list of them"
# (what the user wrote, the schedule, the error after WHERE)
CRON = [
    ("minute 61", "61 * * * *", f"bad minute: {FIELDS}"),
    ("hour 24", "0 24 * * *", f"bad hour: {FIELDS}"),
    ("day 32", "0 0 32 * *", f"bad day-of-month: {FIELDS}"),
    ("month 13", "0 0 1 13 *", f"bad month: {FIELDS}"),
    ("day-of-week 7 (robfig's range is 0-6)", "0 0 * * 7",
     "day-of-week runs from 0 to 6 (Sunday is 0)"),
    ("a step of 0", "*/0 * * * *", f"bad minute: {FIELDS}"),
    ("a backwards range", "5-1 * * * *", f"bad minute: {FIELDS}"),
    ("an empty list item", "1,,2 * * * *", f"bad minute: {FIELDS}"),
    ("a negative minute", "-1 * * * *", f"bad minute: {FIELDS}"),
    ("a letter for a minute", "a * * * *", f"bad minute: {FIELDS}"),
    ("Quartz's last day (L)", "0 0 L * *", "the CronJob controller does not understand L, W or #"),
    ("Quartz's nth weekday (#)", "0 0 * * 1#2", "the CronJob controller does not understand L, W or #"),
    ("Quartz's nearest weekday (W)", "0 0 15W * *", "the CronJob controller does not understand L, W or #"),
    ("six fields (seconds)", "0 0 3 * * *", "expected 5 fields"),
    ("four fields", "0 3 * *", "expected 5 fields"),
    ("a time zone prefix", "TZ=UTC 0 3 * * *", "a time zone in the schedule is refused"),
    ("@reboot", "@reboot", "unknown descriptor '@reboot'"),
    ("@every with no unit", "@every 5", "unknown descriptor '@every'"),
    ("a date that never comes", "0 0 31 2 *", f"bad day-of-month: {FIELDS}"),
    ("an empty schedule", "", "expected 5 fields"),
]
ACCEPTED = ["0 3 * * 0", "30 2 * * *", "*/15 * * * *", "0 0 ? * MON-FRI", "0 0 1 JAN,JUL *",
            "@daily", "@every 1h30m", "0 0 * * 6"]


@pytest.mark.parametrize("what, value, error", CRON, ids=[c[0] for c in CRON])
def test_a_schedule_the_controller_would_refuse_is_refused_where_it_is_written(
        tiny, what, value, error):
    from modelops.repo import load

    for rel, text in batch(value).items():
        tiny.write(rel, text)
    got = [d.human() for d in sorted(set(load(tiny.root).diagnostics))]
    assert len(got) == 1 and got[0].startswith(WHERE + error), got


@pytest.mark.parametrize("value", ACCEPTED)
def test_schedules_the_controller_takes_are_accepted(tiny, value):
    from modelops.repo import load

    for rel, text in batch(value).items():
        tiny.write(rel, text)
    assert load(tiny.root).diagnostics == []


SCORER = """\
apiVersion: modelops/v1
kind: Model
metadata:
  name: {name}
  team: ds
spec:
  runtime: sklearn
  versions:
    - name: v1
      artifact: pvc://artifacts/{name}/v1/model.joblib
      sha256: {sha}
  logging: {{enabled: true, dataset: {name}-logs}}
  datasets:
    - {{name: to-score, path: datasets/{name}-in}}
    - {{name: reference, path: datasets/{name}-training}}
  batch:
    input: to-score
    output: {output}
    features: [a, b]
"""
OUTPUTS = [
    ("its own prediction logs", "a-logs", "the prediction logs of 'a'"),
    ("another model's prediction logs", "b-logs", "the prediction logs of 'b'"),
    ("another model's training data", "b-training", "a dataset 'b' reads"),
    ("its own input", "a-in", "a dataset 'a' reads"),
    ("what another batch job writes", "b-scored", "written by the batch job of 'b'"),
]


@pytest.mark.parametrize("what, output, claim", OUTPUTS, ids=[o[0] for o in OUTPUTS])
def test_a_batch_job_writes_only_a_dataset_of_its_own(tiny, what, output, claim):
    """A batch job that could write into another model's data broke its training; now no
    spec may point one there, and its pod mounts only its own part of its dataset."""
    from conftest import SHA

    from modelops.repo import load

    tiny.write("models/a/model.yaml", SCORER.format(name="a", sha=SHA, output=output))
    tiny.write("models/b/model.yaml", SCORER.format(name="b", sha=SHA, output="b-scored"))
    got = [d.human() for d in sorted(set(load(tiny.root).diagnostics))]
    assert got == [f"models/a/model.yaml:19:13: spec.batch.output: batch.output {output!r} is "
                   f"{claim}; a batch job writes a dataset of its own"], got
