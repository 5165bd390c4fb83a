"""A training run: read the inputs, check them, train on all but a holdout, score the new
model and the serving version on that holdout through the very runtime that serves them,
and only when the checks and the gate pass, publish

    artifacts/<model>/<version>/model.<joblib|onnx>  the artifact
    artifacts/<model>/<version>/metrics.json         holdout scores, and the serving version's
    artifacts/<model>/<version>/lineage.json         data files and hashes, code, parameters
    artifacts/<model>/<version>/training-data.npz    what it learnt from (for the drift check)

in one rename. The same data, code, parameters and seed give the same artifact bytes.
"""

from __future__ import annotations

import dataclasses
import fcntl
import hashlib
import importlib.metadata
import io
import os
import platform
import re
import shutil
import sys
import tempfile
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import joblib
import numpy as np
import orjson

from modelops_compactor.drift import psi
from modelops_compactor.logtables import quote
from modelops_jobs import data
from modelops_jobs.config import LOWER_IS_BETTER, JobConfig, JobOptions, TrainingConfig
from modelops_runtime import volume
from modelops_runtime.config import ModelConfig, VersionConfig
from modelops_runtime.registry import build_model, model_class
from modelops_runtime.runtimes import file_sha256, import_file

LIBRARIES = ("numpy", "scikit-learn", "joblib", "duckdb", "onnx", "onnxruntime", "skl2onnx")


class TrainingFailed(Exception):
    """A data check or the quality gate stopped the run; nothing was published."""


@dataclasses.dataclass
class Trained:
    version: str
    artifact: str  # path on the shared volume
    sha256: str
    metrics: dict[str, Any]
    lineage: dict[str, Any]


@dataclasses.dataclass
class Inputs:
    features: np.ndarray
    labels: np.ndarray
    files: list[dict[str, Any]]


def read_inputs(training: TrainingConfig, shared_root: Path) -> Inputs:
    """Every input dataset's features and label, in a stable row order; the data checks
    that need no model run here."""
    checks = training.checks
    parts_x: list[np.ndarray[Any, Any]] = []
    parts_y: list[np.ndarray[Any, Any]] = []
    files: list[dict[str, Any]] = []
    with duckdb.connect() as con:
        for source in training.inputs:
            try:
                paths = data.files(shared_root / source.path, shared_root / volume.DATASETS)
            except data.DataError as exc:
                if source.optional:
                    files.append({"dataset": source.dataset, "path": source.path, "files": []})
                    continue
                raise TrainingFailed(f"data check: dataset {source.dataset}: {exc}") from None
            try:
                table = data.source(paths)
                kinds = data.types(con, table)
            except (duckdb.Error, data.DataError) as exc:  # damaged or mixed files
                raise TrainingFailed(f"data check: dataset {source.dataset}: "
                                     f"{str(exc).splitlines()[0]}") from None
            have = list(kinds)
            wanted = [*training.features, source.label, *checks.requiredColumns]
            missing = [c for c in dict.fromkeys(wanted) if c not in have]
            if missing:
                raise TrainingFailed(
                    f"data check: dataset {source.dataset} has no column "
                    f"{', '.join(repr(c) for c in missing)} (it has {', '.join(have)})")
            try:
                fetched = con.execute(
                    f"SELECT {data.select(training.features, kinds)}, "
                    f"{quote(source.label)} AS __label "
                    f"FROM {table} WHERE {quote(source.label)} IS NOT NULL ORDER BY ALL"
                ).fetchnumpy()
            except duckdb.Error as exc:  # e.g. text in a feature column
                raise TrainingFailed(f"data check: dataset {source.dataset}: "
                                     f"{str(exc).splitlines()[0]}") from None
            parts_x.append(data.matrix(fetched, training.features))
            parts_y.append(np.asarray(fetched["__label"]))
            files.append({"dataset": source.dataset, "path": source.path, "label": source.label,
                          "files": [{"path": str(p.relative_to(shared_root)),
                                     "sha256": file_sha256(p), "bytes": p.stat().st_size}
                                    for p in paths]})
    if not parts_x:
        raise TrainingFailed("data check: no input dataset has any file yet")
    features, labels = np.concatenate(parts_x), np.concatenate(parts_y)
    if len(labels) < checks.minRows:
        raise TrainingFailed(f"data check: {len(labels)} rows with a label, fewer than "
                             f"minRows ({checks.minRows})")
    missing_share = np.isnan(features).mean(axis=0)
    for name, share in zip(training.features, missing_share, strict=True):
        if share > checks.maxMissingShare:
            raise TrainingFailed(f"data check: column {name!r} is {share:.1%} missing, more "
                                 f"than maxMissingShare ({checks.maxMissingShare:.1%})")
    return Inputs(features, labels, files)


def _drift_check(training: TrainingConfig, features: np.ndarray[Any, Any],
                 previous: Path | None) -> dict[str, Any]:
    """PSI of each feature against the newest trained version's data."""
    if previous is None:
        return {}
    with np.load(previous) as saved:
        before = saved["features"]
    if before.shape[1] != features.shape[1]:
        return {}
    drift = {name: round(psi(before[:, j], features[:, j]), 6)
             for j, name in enumerate(training.features)}
    limit = training.checks.maxDrift
    worst = max(drift, key=lambda n: drift[n]) if drift else None
    if limit is not None and worst is not None and drift[worst] > limit:
        raise TrainingFailed(f"data check: feature {worst!r} drifted (PSI {drift[worst]:.3f}) "
                             f"past maxDrift ({limit}) since the last training set "
                             f"({previous.parent.name})")
    return drift


def _user_function(config: JobConfig, code_dir: Path) -> tuple[Callable[..., Any], Path]:
    """The code that trains: train.py's function, or the python model class's train()."""
    training = config.training
    assert training is not None
    if training.function is None:
        code = code_dir / (config.model.code or "")
        try:
            return model_class(config.model, code_dir).train, code
        except Exception as exc:
            raise _their_fault(code, exc) from None
    file, name = training.function.split(":")
    code = code_dir / file
    if not code.is_file():
        raise TrainingFailed(f"cannot import {code}")
    try:
        module = import_file(code)
    except Exception as exc:  # e.g. it imports a package the image lacks
        raise _their_fault(code, exc) from None
    function = getattr(module, name, None)
    if not callable(function):
        raise TrainingFailed(f"{code} has no function {name}()")
    return function, code


def _their_fault(code: Path, exc: Exception) -> TrainingFailed:
    """The user's code failed: where in it, without our frames around it."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == str(code)]
    where = f" at line {frames[-1].lineno}" if frames else ""
    return TrainingFailed(f"{code.name}{where}: {type(exc).__name__}: {exc}")


def _serialize(runtime: str, trained: Any) -> tuple[bytes, str]:
    if runtime == "onnx":
        raw = trained if isinstance(trained, bytes) else trained.SerializeToString()
        return raw, "model.onnx"
    buffer = io.BytesIO()
    joblib.dump(trained, buffer, protocol=5)
    return buffer.getvalue(), "model.joblib"


def predict(config: ModelConfig, version: VersionConfig, shared_root: Path, code_dir: Path,
            features: np.ndarray) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """The version's first output for these rows, as the server computes it, and the
    outputs it declares (its contract with clients)."""
    model = build_model(model_class(config, code_dir), config, version, shared_root)
    model.load()
    outputs = model.infer({data.input_tensor(model): features}, None)
    declared = model.metadata().get("outputs", [])
    wanted = model.default_outputs() or [o["name"] for o in declared] or list(outputs)
    return np.asarray(outputs[wanted[0]]).reshape(len(features), -1)[:, 0], declared


def split(features: np.ndarray, labels: np.ndarray, share: float,
          seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(holdout rows, training rows): a seeded shuffle cut at `share`, with every copy of a
    row put on the side of its first copy in the shuffle, so that a row listed twice is
    never both learnt and scored. (Rows that are all distinct split as a plain shuffle.)"""
    count = len(labels)
    order = np.random.default_rng(seed).permutation(count)
    rank = np.empty(count, dtype=np.int64)
    rank[order] = np.arange(count)
    keys = [hashlib.blake2b(row.tobytes() + repr(label).encode(), digest_size=8).digest()
            for row, label in zip(np.ascontiguousarray(features), labels.tolist(),
                                  strict=True)]
    first: dict[bytes, int] = {}
    for index, key in enumerate(keys):
        first[key] = min(first.get(key, count), int(rank[index]))
    cut = max(1, int(round(count * share)))
    held = np.array([first[key] < cut for key in keys], dtype=bool)
    return np.flatnonzero(held), np.flatnonzero(~held)


def _same_contract(new: list[dict[str, Any]], serving: list[dict[str, Any]],
                   version: str) -> None:
    """A new version must answer as the serving one does: the same outputs, datatypes and
    shapes (clients and the routes' weights treat the versions as one model)."""
    def described(outputs: list[dict[str, Any]]) -> str:
        return ", ".join(f"{o['name']} {o['datatype']} {list(o['shape'])}" for o in outputs)

    if described(new) != described(serving):
        raise TrainingFailed(f"the new version answers {described(new) or 'nothing declared'}"
                             f", the serving version {version} {described(serving)}: a new "
                             f"version must keep the outputs (text labels where the serving "
                             f"version has numbers?)")


def scores(labels: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    from sklearn import metrics

    if labels.dtype.kind in "iub" or labels.dtype.kind in "OSU":
        labels, predicted = labels.astype(str), predicted.astype(labels.dtype).astype(str)
        return {"accuracy": round(float(metrics.accuracy_score(labels, predicted)), 6),
                "f1_macro": round(float(metrics.f1_score(labels, predicted, average="macro")), 6)}
    return {"r2": round(float(metrics.r2_score(labels, predicted)), 6),
            "mae": round(float(metrics.mean_absolute_error(labels, predicted)), 6),
            "rmse": round(float(np.sqrt(metrics.mean_squared_error(labels, predicted))), 6)}


def next_version(config: ModelConfig, artifacts: Path) -> str:
    taken = [v.name for v in config.versions] + \
        ([p.name for p in artifacts.iterdir()] if artifacts.is_dir() else [])
    numbers = [int(m.group(1)) for n in taken if (m := re.fullmatch(r"v(\d+)", n))]
    return f"v{max(numbers, default=0) + 1}"


def newest_trained(artifacts: Path) -> Path | None:
    """The newest published training run's folder (the highest vN with a lineage)."""
    runs = [p for p in artifacts.glob("v*/lineage.json") if re.fullmatch(r"v\d+", p.parent.name)]
    return max(runs, key=lambda p: int(p.parent.name[1:])).parent if runs else None


def _gate(config: JobConfig, new: dict[str, Any], serving: dict[str, Any] | None) -> None:
    gate = config.training.gate if config.training else None
    if gate is None:
        return
    if gate.metric not in new:
        raise TrainingFailed(f"quality gate: metric {gate.metric} does not apply to this "
                             f"model's labels (it scored {', '.join(new)})")
    score, lower = new[gate.metric], gate.metric in LOWER_IS_BETTER
    if gate.threshold is not None and (score > gate.threshold if lower else score < gate.threshold):
        raise TrainingFailed(f"quality gate: {gate.metric} {score:.4f} on the holdout is "
                             f"{'above' if lower else 'below'} the threshold {gate.threshold}")
    if gate.tolerance is not None and serving and gate.metric in serving:
        base = serving[gate.metric]
        worse = score - base if lower else base - score
        if worse > gate.tolerance:
            raise TrainingFailed(f"quality gate: {gate.metric} {score:.4f} is {worse:.4f} worse "
                                 f"than the serving version {serving['version']} ({base:.4f}), "
                                 f"past the tolerance {gate.tolerance}")


def _libraries() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            pass
    return found


def train(config: JobConfig, shared_root: Path, code_dir: Path) -> Trained:
    """Check, train, score, gate, publish; TrainingFailed (and nothing written) otherwise.
    One run of a model at a time: a second waits for the first, then trains after it."""
    if config.training is None:
        raise TrainingFailed(f"model {config.model.name} declares no training")
    artifacts = shared_root / volume.artifacts(config.model.name)
    artifacts.mkdir(parents=True, exist_ok=True)
    with open(artifacts / ".training.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # held until published; released if it dies
        for stale in artifacts.glob(".staging-*"):  # what a killed run left: nobody's now
            shutil.rmtree(stale, ignore_errors=True)
        return _train(config, config.training, shared_root, code_dir, artifacts)


def _train(config: JobConfig, training: TrainingConfig, shared_root: Path, code_dir: Path,
           artifacts: Path) -> Trained:
    inputs = read_inputs(training, shared_root)
    previous = newest_trained(artifacts)
    drift = _drift_check(training, inputs.features,
                         previous / "training-data.npz" if previous else None)

    held, kept = split(inputs.features, inputs.labels, training.holdout, training.seed)
    function, code = _user_function(config, code_dir)
    try:
        fitted = function(inputs.features[kept], inputs.labels[kept],
                          dict(training.parameters), training.seed)
    except Exception as exc:
        raise _their_fault(code, exc) from None
    raw, filename = _serialize(config.model.runtime, fitted)
    digest = hashlib.sha256(raw).hexdigest()
    version = next_version(config.model, artifacts)

    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=artifacts))
    staging.chmod(0o755)  # mkdtemp's 0700 would keep the servers' other users out
    try:
        (staging / filename).write_bytes(raw)
        candidate = VersionConfig(name=version, artifact=f"file://{staging / filename}",
                                  sha256=digest)
        held_x, held_y = inputs.features[held], inputs.labels[held]
        try:
            predicted, contract = predict(config.model, candidate, shared_root, code_dir,
                                          held_x)
            new = scores(held_y, predicted)
        except Exception as exc:  # what the function returned is not a model this runtime serves
            raise TrainingFailed(f"the trained model does not serve: {type(exc).__name__}: "
                                 f"{exc} (does the training function return the fitted "
                                 f"model?)") from None
        serving: dict[str, Any] | None = None
        chosen = [v for v in config.model.versions if v.name == training.serving]
        if chosen:
            try:
                answered, serving_contract = predict(config.model, chosen[0], shared_root,
                                                     code_dir, held_x)
            except Exception as exc:  # no artifact yet: the gate's threshold still applies
                serving = {"version": chosen[0].name, "error": f"{type(exc).__name__}: {exc}"}
            else:
                _same_contract(contract, serving_contract, chosen[0].name)
                serving = {"version": chosen[0].name, **scores(held_y, answered)}
        _gate(config, new, serving)
        metrics = {"holdout": {"rows": int(len(held)), **new}, "trainRows": int(len(kept)),
                   "serving": serving, "drift": drift}
        rel = f"{volume.artifacts(config.model.name)}/{version}"
        lineage = {
            "model": config.model.name, "version": version,
            "artifact": {"path": f"{rel}/{filename}", "sha256": digest},
            "inputs": inputs.files, "features": training.features,
            "code": {"file": code.name, "sha256": file_sha256(code) if code.is_file() else None,
                     "function": training.function or "train (the model class's)"},
            "parameters": training.parameters, "seed": training.seed,
            "holdout": training.holdout, "libraries": _libraries(),
            "previous": previous.name if previous else None}
        np.savez_compressed(staging / "training-data.npz", features=inputs.features[kept])
        for name, body in (("metrics.json", metrics), ("lineage.json", lineage)):
            (staging / name).write_bytes(orjson.dumps(body, option=orjson.OPT_INDENT_2 |
                                                       orjson.OPT_SORT_KEYS))
        for path in staging.iterdir():
            with path.open("rb") as handle:
                os.fsync(handle.fileno())
        os.rename(staging, artifacts / version)  # published whole, or not at all
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return Trained(version, f"{rel}/{filename}", digest, metrics, lineage)


def main(config: JobConfig, options: JobOptions, code_dir: Path) -> int:
    try:
        trained = train(config, options.shared_root, code_dir)
    except TrainingFailed as exc:
        print(f"training {config.model.name}: stopped: {exc}", file=sys.stderr)
        return 1
    print(orjson.dumps({"version": trained.version, "artifact": trained.artifact,
                        "sha256": trained.sha256, "metrics": trained.metrics}).decode())
    return 0
