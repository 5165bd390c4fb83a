"""`modelops propose`: the newest trained artifact becomes a canary version in model.yaml.

The spec is edited with a round trip that keeps what its author wrote (specedit): one
version appended to `spec.versions`, and its canary weight taken from the version with the
most traffic. What it writes comes from files a training job wrote on the shared volume,
so each value is checked for its form (a sha256, a path under the run's folder, finite
numbers) before the YAML emitter writes it as data: a tampered run cannot write YAML of
its own into the spec.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import orjson
from ruamel.yaml.comments import CommentedMap

from modelops.generate.contract import heaviest
from modelops.push import PushError, upload
from modelops.repo import Repo
from modelops.spec import ModelSpec
from modelops.specedit import EditError, RoundTrip
from modelops_jobs.training import newest_trained
from modelops_runtime import volume
from modelops_runtime.runtimes import file_sha256


class ProposeError(Exception):
    pass


def propose(repo: Repo, name: str, shared: Path, to_store: bool = False) -> tuple[str, int]:
    """Add the newest trained version to models/<name>/model.yaml; (its name, its weight).
    With `to_store`, its artifact is pushed to the object store and the spec points there
    (the retrain loop without the shared volume)."""
    entry = repo.models.get(name)
    if entry is None:
        raise ProposeError(f"no model named {name!r}")
    spec = entry.obj.spec
    assert isinstance(spec, ModelSpec)
    if any(o and o.versions is not None for o in spec.environments.values()):
        raise ProposeError("an environment overrides versions; add the version by hand")
    trained = newest_trained(shared / volume.artifacts(name))
    if trained is None and spec.training is None:
        raise ProposeError(f"model {name!r} declares no training (spec.training), so nothing "
                           f"trains it here; for a file trained elsewhere, use `modelops push "
                           f"{name} --version <vN> FILE`")
    if trained is None:
        raise ProposeError(f"nothing trained under {shared / volume.artifacts(name)} "
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
            rf"{re.escape(volume.artifacts(name))}/{trained.name}/[A-Za-z0-9._-]+", artifact):
        raise ProposeError(f"{trained}/lineage.json: artifact.path is not a file of "
                           f"{volume.artifacts(name)}/{trained.name}/")
    pinned = shared / artifact
    if not pinned.is_file() or file_sha256(pinned) != digest:
        raise ProposeError(f"{artifact} was {'changed' if pinned.is_file() else 'deleted'} "
                           f"since it was trained (lineage.json pins sha256 {digest[:12]}...); "
                           f"train again")
    if not isinstance(holdout, dict) or not isinstance(serving, dict) or (
            "version" in serving and not re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?",
                                                      str(serving["version"]))):
        raise ProposeError(f"{trained}/metrics.json is not what a training run writes")
    uri = f"pvc://{artifact}"
    if to_store:
        try:
            uri, _ = upload(repo, name, pinned, digest)
        except PushError as exc:
            raise ProposeError(str(exc)) from None
    weight = spec.training.canaryWeight if spec.training else 10
    donor = heaviest(spec)
    donor_weight = next(v.weight for v in spec.versions if v.name == donor)
    if donor_weight <= weight:
        raise ProposeError(f"{donor} has {donor_weight}% of the traffic, not more than the "
                           f"canary's {weight}%; shift weights by hand")

    spec_file = RoundTrip(repo.root / entry.file)
    try:
        versions = spec_file.versions()
    except EditError as exc:
        raise ProposeError(str(exc)) from None
    metrics_map = CommentedMap([("holdout", _flow(holdout))])
    if "version" in serving:
        metrics_map["servingVersion"] = str(serving["version"])
        metrics_map["serving"] = _flow(serving)
    versions.append(CommentedMap([
        ("name", trained.name), ("artifact", uri), ("sha256", digest),
        ("weight", weight), ("metrics", metrics_map),
        ("lineage", f"pvc://{volume.artifacts(name)}/{trained.name}/lineage.json")]))
    donor_item = next(v for v in versions if v["name"] == donor)
    if "weight" in donor_item:
        donor_item["weight"] = donor_weight - weight
    else:
        donor_item.insert(list(donor_item).index("name") + 1, "weight", donor_weight - weight)
    spec_file.save()
    return trained.name, weight


def _flow(scores: dict[str, Any]) -> CommentedMap:
    """Scores as a YAML flow mapping: finite numbers only."""
    kept = CommentedMap((k, v) for k, v in sorted(scores.items())
                        if isinstance(v, (int, float)) and not isinstance(v, bool)
                        and math.isfinite(v))
    kept.fa.set_flow_style()
    return kept
