"""Runtimes plug in by name. Heavy imports happen in load(), so a server pays only for
the runtimes it actually serves (and starts faster)."""

from __future__ import annotations

import hashlib
import importlib.util
import inspect
import sys
import warnings
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from modelops_runtime.errors import InvalidRequest
from modelops_runtime.model import Model
from modelops_runtime.tensors import datatype_of


class ArtifactError(Exception):
    """The artifact is missing or is not the file the spec pinned."""


def file_sha256(path: Path) -> str:
    """A file's sha256, read in blocks (artifacts and datasets can be large)."""
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def verify(path: Path | None, sha256: str | None) -> None:
    if path is None:
        return
    if not path.is_file():
        raise ArtifactError(f"artifact {path} does not exist")
    if sha256 and (found := file_sha256(path)) != sha256:
        raise ArtifactError(f"artifact {path} has sha256 {found}, but the spec pins {sha256}")


def _single_input(model: Model, inputs: dict[str, np.ndarray]) -> np.ndarray:
    if len(inputs) != 1:
        raise InvalidRequest(f"model {model.name!r} takes one input tensor, got {len(inputs)}")
    (name, array), = inputs.items()
    if array.ndim != 2:
        raise InvalidRequest(f"input {name!r}: expected a 2-D tensor [rows, features], "
                             f"got shape {list(array.shape)}")
    if array.dtype == object or array.dtype == np.bool_:
        raise InvalidRequest(f"input {name!r}: expected numbers, got {datatype_of(array)}")
    return array


_FP32_MAX = float(np.finfo(np.float32).max)


class SklearnModel(Model):
    """A joblib-saved scikit-learn estimator: outputs `predict`, and `predict_proba` on request."""

    def load(self) -> None:
        import joblib

        self.estimator = joblib.load(self.artifact_path)
        self.features = getattr(self.estimator, "n_features_in_", -1)
        self.classifier = hasattr(self.estimator, "predict_proba")
        self.datatype = "FP32" if self._computes_in_fp32() else "FP64"

    def _computes_in_fp32(self) -> bool:
        """scikit-learn's trees compute in float32 and raise on a value past its range.
        Such a model declares FP32 inputs, so the server refuses that value with a 400
        before `predict` (and converts FP64 requests, which lose nothing a tree keeps)."""
        if self.features < 1:
            return False
        try:
            with warnings.catch_warnings(), np.errstate(all="ignore"):
                warnings.simplefilter("ignore")  # the cast to float32 warns of overflow
                self.estimator.predict(np.full((1, self.features), _FP32_MAX * 2))
        except ValueError:
            return True
        except Exception:  # noqa: BLE001  # it fails for another reason; its requests will say
            return False
        return False

    def _rows(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        array = _single_input(self, inputs)
        if self.features >= 0 and array.shape[1] != self.features:
            raise InvalidRequest(f"input {next(iter(inputs))!r}: expected {self.features} "
                                 f"features per row, got {array.shape[1]}")
        return array

    def predict(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return self.infer(inputs, ["predict", "predict_proba"] if self.classifier else None)

    def infer(self, inputs: dict[str, np.ndarray],
              wanted: list[str] | None) -> dict[str, np.ndarray]:
        """Computes only what was asked for: predict_proba costs as much as predict."""
        array = self._rows(inputs)
        out = {}
        for name in wanted or ["predict"]:
            if name == "predict" or (name == "predict_proba" and self.classifier):
                out[name] = getattr(self.estimator, name)(array)
            else:
                raise InvalidRequest(f"model {self.name!r} has no output {name!r}; it has "
                                     f"predict{', predict_proba' if self.classifier else ''}")
        return out

    def default_outputs(self) -> list[str]:
        return ["predict"]

    def metadata(self) -> dict[str, list[dict[str, Any]]]:
        # A classifier answers with its classes, whatever their type (text labels: BYTES).
        answers = datatype_of(np.asarray(self.estimator.classes_)) \
            if self.classifier and hasattr(self.estimator, "classes_") else "FP64"
        outputs = [{"name": "predict", "datatype": answers, "shape": [-1]}]
        if self.classifier:
            classes = len(getattr(self.estimator, "classes_", []))
            outputs.append({"name": "predict_proba", "datatype": "FP64", "shape": [-1, classes]})
        return {"inputs": [{"name": "input-0", "datatype": self.datatype,
                            "shape": [-1, self.features]}],
                "outputs": outputs}


_ONNX_TYPES = {"tensor(float)": "FP32", "tensor(double)": "FP64", "tensor(int64)": "INT64",
               "tensor(int32)": "INT32", "tensor(int8)": "INT8", "tensor(uint8)": "UINT8",
               "tensor(bool)": "BOOL", "tensor(string)": "BYTES", "tensor(float16)": "FP16",
               "tensor(int16)": "INT16", "tensor(uint16)": "UINT16", "tensor(uint32)": "UINT32",
               "tensor(uint64)": "UINT64"}


class OnnxModel(Model):
    """An ONNX graph run by onnxruntime (the GPU provider when the image and node have one)."""

    def load(self) -> None:
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = 1  # replicas scale out; threads would fight over cores
        providers = [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider")
                     if p in onnxruntime.get_available_providers()]
        self.session = onnxruntime.InferenceSession(str(self.artifact_path), options,
                                                    providers=providers)
        self.inputs = {i.name: i for i in self.session.get_inputs()}
        self.outputs = [o.name for o in self.session.get_outputs()]

    def predict(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        feed = {}
        for name, spec in self.inputs.items():
            if name not in inputs:
                raise InvalidRequest(f"model {self.name!r} needs input {name!r}")
            expected = _ONNX_TYPES.get(spec.type)
            array = inputs[name]
            if expected and expected != datatype_of(array):
                raise InvalidRequest(f"input {name!r}: expected datatype {expected}, "
                                     f"got {datatype_of(array)}")
            feed[name] = array
        unknown = set(inputs) - set(self.inputs)
        if unknown:
            raise InvalidRequest(f"model {self.name!r} has no input {sorted(unknown)[0]!r}")
        try:
            results = self.session.run(None, feed)
        except Exception as exc:  # onnxruntime reports shape mismatches as generic errors
            raise InvalidRequest(f"model {self.name!r} rejected the input: "
                                 f"{str(exc).splitlines()[0][:300]}") from None
        return dict(zip(self.outputs, results, strict=True))

    def metadata(self) -> dict[str, list[dict[str, Any]]]:
        def describe(items: list[Any]) -> list[dict[str, Any]]:
            return [{"name": i.name, "datatype": _ONNX_TYPES.get(i.type, "BYTES"),
                     "shape": [d if isinstance(d, int) else -1 for d in i.shape]} for i in items]

        return {"inputs": describe(self.session.get_inputs()),
                "outputs": describe(self.session.get_outputs())}


def import_file(code: Path) -> ModuleType:
    """A user's Python file (model.py, a training file) as a module of its own."""
    module_name = f"modelops_user_{code.stem.replace('-', '_')}_{abs(hash(str(code)))}"
    spec = importlib.util.spec_from_file_location(module_name, code)
    if spec is None or spec.loader is None:
        raise ArtifactError(f"cannot import {code}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module


def load_class(code: Path) -> type[Model]:
    """The Model subclass defined in a user's model.py."""
    module = import_file(code)
    module_name = module.__name__
    classes = [c for _, c in inspect.getmembers(module, inspect.isclass)
               if issubclass(c, Model) and c is not Model and c.__module__ == module_name]
    if len(classes) != 1:
        raise ArtifactError(f"{code} must define exactly one subclass of "
                            f"modelops_runtime.model.Model, found {len(classes)}")
    return classes[0]


RUNTIMES: dict[str, type[Model]] = {"sklearn": SklearnModel, "onnx": OnnxModel}
