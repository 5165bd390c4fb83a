"""Build the example models' artifacts from data sets that ship with scikit-learn.

`python -m modelops.examples [SHARED_ROOT]` (run by `make demo`) writes them under
SHARED_ROOT/artifacts/ (and a reference data set under datasets/), the local stand-in for
the shared volume. Training is
deterministic (fixed seeds, single thread, tree models whose thresholds are
exact midpoints), so the files match the sha256 the specs pin; a test checks it.
"""

from __future__ import annotations

import hashlib
import io
import sys
from collections.abc import Callable
from pathlib import Path

import joblib
import numpy as np
from sklearn import datasets
from sklearn.ensemble import RandomForestClassifier
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

DEFAULT_ROOT = Path("var/volume")


def _joblib(model: object) -> bytes:
    buffer = io.BytesIO()
    joblib.dump(model, buffer, protocol=5)
    return buffer.getvalue()


def _iris_v1() -> bytes:
    x, y = datasets.load_iris(return_X_y=True)
    return _joblib(DecisionTreeClassifier(max_depth=3, random_state=0).fit(x, y))


def _iris_v2() -> bytes:
    x, y = datasets.load_iris(return_X_y=True)
    return _joblib(RandomForestClassifier(n_estimators=20, max_depth=4, random_state=0,
                                          n_jobs=1).fit(x, y))


def _wine() -> bytes:
    x, y = datasets.load_wine(return_X_y=True)
    return _joblib(RandomForestClassifier(n_estimators=20, max_depth=5, random_state=0,
                                          n_jobs=1).fit(x, y))


def _diabetes() -> bytes:
    x, y = datasets.load_diabetes(return_X_y=True)
    return _joblib(DecisionTreeRegressor(max_depth=4, random_state=0).fit(x, y))


def _cancer() -> bytes:
    x, y = datasets.load_breast_cancer(return_X_y=True)
    return _joblib(DecisionTreeClassifier(max_depth=4, random_state=0).fit(x, y))


def _digits() -> bytes:
    """ONNX, the format a GPU runtime (onnxruntime-gpu, Triton) loads."""
    from skl2onnx import to_onnx

    x, y = datasets.load_digits(return_X_y=True)
    x = x.astype(np.float32)
    model = DecisionTreeClassifier(max_depth=8, random_state=0).fit(x, y)
    return to_onnx(model, x[:1], options={"zipmap": False}, target_opset=17).SerializeToString()


# path on the shared volume -> builder
ARTIFACTS: dict[str, Callable[[], bytes]] = {
    "artifacts/iris/v1/model.joblib": _iris_v1,
    "artifacts/iris/v2/model.joblib": _iris_v2,
    "artifacts/wine/v1/model.joblib": _wine,
    "artifacts/diabetes/v1/model.joblib": _diabetes,
    "artifacts/cancer-screen/v1/model.joblib": _cancer,
    "artifacts/digits/v1/model.onnx": _digits,
}


def _iris_reference() -> bytes:
    """The training set: features named as the log compactor names the logged inputs
    (so iris's prediction logs get a drift summary against them, and both train it),
    and the label."""
    x, y = datasets.load_iris(return_X_y=True)
    buffer = io.StringIO()
    np.savetxt(buffer, np.column_stack([x, y]), fmt=["%.1f"] * x.shape[1] + ["%d"],
               delimiter=",", comments="",
               header=",".join([*(f"in_input-0_{j}" for j in range(x.shape[1])), "label"]))
    return buffer.getvalue().encode()


def _iris_to_score(day: int) -> Callable[[], bytes]:
    """Rows for the nightly batch job: iris-like measurements, a file per day."""
    def make() -> bytes:
        x, _ = datasets.load_iris(return_X_y=True)
        rows = np.random.default_rng(day).permutation(x)[:100]
        buffer = io.StringIO()
        np.savetxt(buffer, rows, fmt="%.1f", delimiter=",", comments="",
                   header=",".join(f"in_input-0_{j}" for j in range(x.shape[1])))
        return buffer.getvalue().encode()
    return make


DATASETS: dict[str, Callable[[], bytes]] = {
    "datasets/iris-training/train.csv": _iris_reference,
    **{f"datasets/iris-to-score/day-{d}.csv": _iris_to_score(d) for d in (1, 2, 3)},
}


def make(root: Path = DEFAULT_ROOT) -> dict[str, str]:
    """Write every artifact and example dataset (only if its bytes changed); return
    path -> sha256 of the artifacts."""
    digests = {}
    for rel, make in (ARTIFACTS | DATASETS).items():
        data = make()
        target = root / rel
        if not target.is_file() or target.read_bytes() != data:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        if rel in ARTIFACTS:
            digests[rel] = hashlib.sha256(data).hexdigest()
    return digests


if __name__ == "__main__":
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_ROOT
    for path, digest in make(out).items():
        print(f"{digest}  {out / path}")
