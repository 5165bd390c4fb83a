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
    assert got == [f"models/a/model.yaml:18:13: spec.batch.output: batch.output {output!r} is "
                   f"{claim}; a batch job writes a dataset of its own"], got


def test_a_pool_members_cronjob_and_a_dedicated_models_cannot_share_a_name(tiny):
    """`<pool>-<model>-batch` of a pool member is also `<model>-batch` of a dedicated model
    named `<pool>-<model>`: the second CronJob would replace the first in the namespace."""
    from broken_specs import POOL
    from conftest import SHA

    from modelops.repo import load

    member = SCORER.format(name="b", sha=SHA, output="b-scored").replace(
        "  logging:", "  placement: {shared: shared}\n  logging:")
    tiny.write("models/shared/pool.yaml", POOL.replace("spec: {}\n", "spec:\n  resources: {}\n"))
    tiny.write("models/b/model.yaml", member)
    tiny.write("models/shared-b/model.yaml",
               SCORER.format(name="shared-b", sha=SHA, output="c-scored"))
    got = [d.human() for d in sorted(set(load(tiny.root).diagnostics))]
    assert any("the model 'shared-b' would make the" in line and "'shared-b-" in line
               and "which the model 'b' (models/b/model.yaml) already makes" in line
               for line in got), got


def test_two_batch_jobs_cannot_write_one_dataset(tiny):
    from conftest import SHA

    from modelops.repo import load

    tiny.write("models/a/model.yaml", SCORER.format(name="a", sha=SHA, output="scores"))
    tiny.write("models/b/model.yaml", SCORER.format(name="b", sha=SHA, output="scores"))
    got = [d.human() for d in sorted(set(load(tiny.root).diagnostics))]
    assert got == ["models/b/model.yaml:18:13: spec.batch.output: batch.output 'scores' is "
                   "written by the batch job of 'a'; a batch job writes a dataset of its own"]


TRAINING = V1 + """\
  datasets:
    - {name: history, path: datasets/history}
    - {name: to-score, path: datasets/to-score}
  training:
    function: train.py:train
    inputs:
      - dataset: history
    features: [a, b]
    gate: {metric: accuracy, threshold: 0.9}
  batch:
    input: to-score
    output: scored
"""


def edited(old: str, new: str) -> dict[str, str]:
    assert old in TRAINING
    return {"models/m/model.yaml": HEAD + TRAINING.replace(old, new, 1),
            "models/m/train.py": "def train(features, labels, parameters, seed):\n    pass\n"}


# (what the user wrote, files, the field the located error names, words in it)
BLOCKS = [
    ("a NaN threshold", edited("threshold: 0.9", "threshold: .nan"),
     "spec.training.gate.threshold", "finite number"),
    ("an infinite threshold", edited("threshold: 0.9", "threshold: .inf"),
     "spec.training.gate.threshold", "finite number"),
    ("a negative tolerance", edited("threshold: 0.9", "tolerance: -1"),
     "spec.training.gate.tolerance", "greater than or equal to 0"),
    ("a gate with neither threshold nor tolerance", edited(", threshold: 0.9", ""),
     "spec.training.gate", "set a threshold"),
    ("an unknown gate metric", edited("metric: accuracy", "metric: vibes"),
     "spec.training.gate.metric", "accuracy"),
    ("a dataset listed twice", edited("      - dataset: history\n",
                                      "      - dataset: history\n      - dataset: history\n"),
     "spec.training", "dataset 'history' is listed twice"),
    ("a feature listed twice", edited("features: [a, b]", "features: [a, b, a]"),
     "spec.training", "feature 'a' is listed twice"),
    ("the label among the features", edited("features: [a, b]", "features: [a, label]"),
     "spec.training", "the label 'label' is also a feature"),
    ("no features", edited("features: [a, b]", "features: []"),
     "spec.training.features", "at least 1"),
    ("no inputs", edited("    inputs:\n      - dataset: history\n", "    inputs: []\n"),
     "spec.training.inputs", "at least 1"),
    ("an input that is no dataset", edited("      - dataset: history", "      - dataset: nope"),
     "spec.training.inputs[0].dataset", "neither one of datasets"),
    ("an empty label", edited("      - dataset: history", "      - {dataset: history, label: ''}"),
     "spec.training.inputs[0].label", "at least 1"),
    ("a holdout of nothing", edited("features: [a, b]", "features: [a, b]\n    holdout: 0"),
     "spec.training.holdout", "greater than or equal to 0.05"),
    ("a holdout of most rows", edited("features: [a, b]", "features: [a, b]\n    holdout: 0.9"),
     "spec.training.holdout", "less than or equal to 0.5"),
    ("a negative seed", edited("features: [a, b]", "features: [a, b]\n    seed: -1"),
     "spec.training.seed", "greater than or equal to 0"),
    ("a canary that takes all traffic",
     edited("features: [a, b]", "features: [a, b]\n    canaryWeight: 100"),
     "spec.training.canaryWeight", "less than or equal to 50"),
    ("a training file outside the model's folder",
     edited("function: train.py:train", "function: ../../etc/x.py:train"),
     "spec.training.function", "expected text matching"),
    ("no rows required", edited("features: [a, b]", "features: [a, b]\n    checks: {minRows: 0}"),
     "spec.training.checks.minRows", "greater than or equal to 1"),
    ("a missing share past 1",
     edited("features: [a, b]", "features: [a, b]\n    checks: {maxMissingShare: 1.5}"),
     "spec.training.checks.maxMissingShare", "less than or equal to 1"),
    ("a drift bound of 0", edited("features: [a, b]", "features: [a, b]\n    checks: {maxDrift: 0}"),
     "spec.training.checks.maxDrift", "greater than 0"),
    ("a training pod of no CPU",
     edited("features: [a, b]", "features: [a, b]\n    resources: {cpu: '0'}"),
     "spec.training.resources.cpu", "a quantity must be more than 0"),
    ("a training pod of negative memory",
     edited("features: [a, b]", "features: [a, b]\n    resources: {memory: -1Gi}"),
     "spec.training.resources.memory", "not a Kubernetes quantity"),
    ("a schedule that is a number", edited("features: [a, b]", "features: [a, b]\n    schedule: 5"),
     "spec.training.schedule", "string"),
    ("batch from a dataset it does not declare", edited("input: to-score", "input: nope"),
     "spec.batch.input", "is not one of datasets"),
    ("batch into a path", edited("output: scored", "output: ../../etc"),
     "spec.batch.output", "expected text matching"),
    ("batch into its own training data", edited("output: scored", "output: history"),
     "spec.batch.output", "a dataset 'm' reads"),
    ("batch into its own prediction logs", edited("output: scored", "output: m"),
     "spec.batch.output", "the prediction logs of 'm'"),
    ("batch with an unknown version", edited("output: scored", "output: scored\n    version: v9"),
     "spec.batch.version", "is not one of the versions"),
    ("no batch workers", edited("output: scored", "output: scored\n    parallelism: 0"),
     "spec.batch.parallelism", "greater than or equal to 1"),
    ("more batch workers than allowed", edited("output: scored", "output: scored\n    parallelism: 33"),
     "spec.batch.parallelism", "less than or equal to 32"),
    ("a batch pod of no memory", edited("output: scored", "output: scored\n    resources: {memory: '0'}"),
     "spec.batch.resources.memory", "a quantity must be more than 0"),
    ("an unknown key in batch", edited("output: scored", "output: scored\n    outptu: x"),
     "spec.batch.outptu", "unknown field"),
    ("an unknown key in training", edited("features: [a, b]", "features: [a, b]\n    feature: [c]"),
     "spec.training.feature", "unknown field"),
    ("a training function that is not a name", edited("train.py:train", "train.py:1st"),
     "spec.training.function", "expected text matching"),
    ("a training file that is not there", edited("train.py:train", "other.py:train"),
     "spec.training.function", "which does not exist"),
]


@pytest.mark.parametrize("what, files, field, words", BLOCKS, ids=[b[0] for b in BLOCKS])
def test_a_dangerous_training_or_batch_block_is_refused_where_it_is_written(
        tiny, what, files, field, words):
    from modelops.repo import load

    for rel, text in files.items():
        tiny.write(rel, text)
    got = [d.human() for d in sorted(set(load(tiny.root).diagnostics))]
    assert any(line.startswith("models/m/model.yaml:") and f": {field}: " in line
               and words in line for line in got), got


def test_the_tables_hold_sixty_hostile_blocks(capsys):
    refused = len(CRON) + len(OUTPUTS) + len(BLOCKS) + 2  # + the name clash and two writers
    with capsys.disabled():
        print(f"\nhostile training and batch blocks: {refused} refused, each located")
    assert refused >= 60
