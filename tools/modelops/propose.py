"""`modelops propose`: the newest trained artifact becomes a canary version in model.yaml.

The spec is edited as text (comments and layout kept): one version appended to
`spec.versions`, and its canary weight taken from the version with the most traffic.
What it writes comes from files a training job wrote on the shared volume, so each value
is checked for its form (a sha256, a path under the run's folder, finite numbers) and each
metric name quoted unless plain: a tampered run cannot write YAML of its own into the spec.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import orjson
import yaml

from modelops.generate.contract import heaviest
from modelops.repo import Repo
from modelops.spec import ModelSpec
from modelops_jobs.training import newest_trained


class ProposeError(Exception):
    pass


def _versions_node(text: str) -> yaml.SequenceNode:
    root = yaml.compose(text, Loader=yaml.CSafeLoader)
    spec = next(v for k, v in root.value if k.value == "spec")
    return next(v for k, v in spec.value if k.value == "versions")


def _field(item: yaml.MappingNode, key: str) -> yaml.Node | None:
    return next((v for k, v in item.value if k.value == key), None)


def _offset(lines: list[str], mark: yaml.Mark) -> int:
    return sum(len(line) for line in lines[:mark.line]) + mark.column


def propose(repo: Repo, name: str, shared: Path) -> tuple[str, int]:
    """Add the newest trained version to models/<name>/model.yaml; (its name, its weight)."""
    entry = repo.models.get(name)
    if entry is None:
        raise ProposeError(f"no model named {name!r}")
    spec = entry.obj.spec
    assert isinstance(spec, ModelSpec)
    if any(o and o.versions is not None for o in spec.environments.values()):
        raise ProposeError("an environment overrides versions; add the version by hand")
    trained = newest_trained(shared / "artifacts" / name)
    if trained is None:
        raise ProposeError(f"nothing trained under {shared / 'artifacts' / name} "
                           f"(run `modelops train {name}`)")
    if trained.name in {v.name for v in spec.versions}:
        raise ProposeError(f"{trained.name}, the newest trained version, is already in the "
                           "spec; train again for a new one")
    try:
        metrics = orjson.loads((trained / "metrics.json").read_bytes())
        lineage = orjson.loads((trained / "lineage.json").read_bytes())
        artifact, digest = lineage["artifact"]["path"], lineage["artifact"]["sha256"]
        holdout = metrics["holdout"]
    except (OSError, orjson.JSONDecodeError, KeyError, TypeError) as exc:
        raise ProposeError(f"{trained} is not a complete training run ({exc}); train again") \
            from None
    serving = metrics.get("serving") or {}
    if not isinstance(digest, str) or not re.fullmatch(r"[0-9a-f]{64}", digest):
        raise ProposeError(f"{trained}/lineage.json: artifact.sha256 is not a sha256")
    if not isinstance(artifact, str) or not re.fullmatch(
            rf"artifacts/{re.escape(name)}/{trained.name}/[A-Za-z0-9._-]+", artifact):
        raise ProposeError(f"{trained}/lineage.json: artifact.path is not a file of "
                           f"artifacts/{name}/{trained.name}/")
    if not isinstance(holdout, dict) or not isinstance(serving, dict) or (
            "version" in serving and not re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?",
                                                      str(serving["version"]))):
        raise ProposeError(f"{trained}/metrics.json is not what a training run writes")
    weight = spec.training.canaryWeight if spec.training else 10
    donor = heaviest(spec)
    donor_weight = next(v.weight for v in spec.versions if v.name == donor)
    if donor_weight <= weight:
        raise ProposeError(f"{donor} has {donor_weight}% of the traffic, not more than the "
                           f"canary's {weight}%; shift weights by hand")

    path = repo.root / entry.file
    text = path.read_text()
    text += "" if text.endswith("\n") else "\n"
    lines = text.splitlines(keepends=True)
    node = _versions_node(text)
    if node.flow_style or any(i.flow_style for i in node.value):
        raise ProposeError("spec.versions is written in flow style ([...] or {...}); write it "
                           "as a block list, or add the version by hand")
    items = node.value
    last = items[-1]
    indent = " " * last.start_mark.column
    dash = " " * (last.start_mark.column - 2)
    new = (f"{dash}- name: {trained.name}\n"
           f"{indent}artifact: pvc://{artifact}\n"
           f"{indent}sha256: {digest}\n"
           f"{indent}weight: {weight}\n"
           f"{indent}metrics:\n"
           f"{indent}  holdout: {_flow(holdout)}\n"
           + (f"{indent}  servingVersion: {serving['version']}\n"
              f"{indent}  serving: {_flow(serving)}\n" if "version" in serving else "")
           + f"{indent}lineage: pvc://artifacts/{name}/{trained.name}/lineage.json\n")
    end_line = _last_scalar(last).end_mark.line + 1
    donor_item = next(i for i in items if _field(i, "name").value == donor)
    edits = [(_offset(lines, _line_start(end_line)), _offset(lines, _line_start(end_line)), new)]
    weight_node = _field(donor_item, "weight")
    if weight_node is not None:
        edits.append((_offset(lines, weight_node.start_mark), _offset(lines, weight_node.end_mark),
                      str(donor_weight - weight)))
    else:
        name_node = _field(donor_item, "name")
        at = _offset(lines, _line_start(name_node.end_mark.line + 1))
        edits.append((at, at, f"{indent}weight: {donor_weight - weight}\n"))
    for start, end, replacement in sorted(edits, reverse=True):
        text = text[:start] + replacement + text[end:]
    path.write_text(text)
    return trained.name, weight


def _last_scalar(node: yaml.Node) -> yaml.Node:
    """The node that ends an item (a block's own end mark lies on the next key's line)."""
    while isinstance(node, (yaml.MappingNode, yaml.SequenceNode)) and node.value and \
            node.flow_style is not True:
        node = node.value[-1][1] if isinstance(node, yaml.MappingNode) else node.value[-1]
    return node


def _line_start(line: int) -> yaml.Mark:
    return yaml.Mark("", 0, line, 0, None, None)


def _flow(scores: dict) -> str:
    """Scores as a YAML flow mapping: finite numbers only, names quoted unless plain."""
    return "{" + ", ".join(
        f"{k if re.fullmatch(r'[A-Za-z_][A-Za-z0-9_.-]*', k) else orjson.dumps(k).decode()}: {v}"
        for k, v in sorted(scores.items())
        if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)) + "}"
