"""`modelops new`: a commented spec (and for `python` a class) that a data scientist fills in."""

from __future__ import annotations

import hashlib
import math
import re
import shutil
from pathlib import Path

import yaml

from modelops.spec import NAME

SPEC = """\
# yaml-language-server: $schema=../../schemas/model.schema.json
# Reference: docs/spec.md. Check with `modelops validate`, try with `modelops test {name}`.
apiVersion: modelops/v1
kind: Model
metadata:
  # The name must match the folder; the team becomes the modelops/team label.
  name: {name}
  team: {team}
  description: "{description}"
spec:
  runtime: {runtime}{image}
  versions:                    # one or more; unversioned traffic is split by weight
    - name: v1
{artifact}      weight: 100              # all versions' weights sum to 100
{placement}  concurrency: 16              # requests served at once; more get 503 + Retry-After
  logging:
    enabled: false             # true: log requests and responses to the shared volume
    sampleRate: 1.0            # fraction of requests logged
{tensors}{example}"""

DEDICATED = """\
  placement: dedicated         # its own servers; or {shared: <pool>} to join a pool
  resources:                   # per replica
    cpu: 250m
    memory: 512Mi
  autoscaling:                 # HPA bounds per version; capacity is checked at maxReplicas
    minReplicas: 1             # 2 or more adds a PodDisruptionBudget
    maxReplicas: 3
    targetCPUUtilization: 70
"""

TENSORS_DECLARED = """\
  # The tensors the model takes and gives (-1: any size). The server lists them at
  # GET /v2/models/{name} and refuses a request that does not fit before predict().
  inputs:
    - {{name: input-0, datatype: FP64, shape: [-1, 3]}}
  outputs:
    - {{name: output-0, datatype: FP64, shape: [-1]}}
"""

TENSORS_REPORTED = """\
  # No inputs/outputs to declare: the runtime reads the tensors from the artifact, lists
  # them at GET /v2/models/{name} and checks every request against them.
"""

EXAMPLE_PYTHON = """\
  example:                     # `modelops test` sends this and expects this back
    request:
      inputs:
        - name: input-0
          datatype: FP64
          shape: [2, 3]
          data: [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    response:
      outputs:
        - name: output-0
          datatype: FP64
          shape: [2]
          data: [2.0, 5.0]
"""

EXAMPLE_MADE = """\
  # What `modelops test` sends and expects back. `modelops new` made it from the artifact:
  # zeros in, and what the artifact answered. Replace it with a real row and its answer.
  example:
    request:
      inputs:
{inputs}    response:
      outputs:
{outputs}"""

EXAMPLE_TODO = """\
  # example:                   # add one so `modelops test` can check the model
  #   request:
  #     inputs:
  #       - {name: input-0, datatype: FP64, shape: [1, 4], data: [5.1, 3.5, 1.4, 0.2]}
  #   response:
  #     outputs:
  #       - {name: predict, datatype: INT64, shape: [1], data: [0]}
"""

MODEL_PY = '''\
"""{description}

The server calls load() once, then predict() for every request; see
modelops_runtime.model.Model for metadata(), routes() and on_dataset_change().
"""

import numpy as np

from modelops_runtime.model import Model


class {cls}(Model):
    def load(self) -> None:
        # self.artifact_path is the version's artifact, already checked against its
        # sha256 (None when model.yaml gives none). For a scikit-learn file, say:
        #     import joblib
        #     self.estimator = joblib.load(self.artifact_path)
        self.scale = 1.0

    def predict(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        # One answer row per input row, each from its own row alone: the server stacks
        # concurrent requests into one call (README: adaptive batching). If a row's answer
        # depends on the others, set `batching: {{enabled: false}}` in model.yaml.
        rows = inputs["input-0"].astype(np.float64)
        return {{"output-0": rows.mean(axis=1) * self.scale}}

    # To train it with `modelops train {name}` (spec.training in model.yaml), return what
    # load() reads back from self.artifact_path (it is saved with joblib):
    #
    # @classmethod
    # def train(cls, features, labels, parameters, seed):
    #     ...
'''

EXTENSIONS = {"sklearn": ".joblib", "onnx": ".onnx", "python": None}
"""Runtimes whose server loads an artifact file, and its file name's ending (None: the
given file's own). A `custom` image brings its own."""


class ScaffoldError(Exception):
    pass


def _zeros(datatype: str, count: int) -> list:
    return [""] * count if datatype == "BYTES" else [False] * count if datatype == "BOOL" \
        else [0.0 if datatype.startswith(("FP", "BF")) else 0] * count


def _flow(tensor: dict) -> str:
    """One tensor as a YAML flow mapping, on one line."""
    return "        - " + yaml.safe_dump(tensor, default_flow_style=True, sort_keys=False,
                                         width=2**31)


def example_from(runtime: str, artifact: Path) -> str:
    """An example for the spec: one row of zeros of the tensors the artifact declares, and
    what the artifact answers to it, so `modelops test` passes on the scaffold as made."""
    from modelops_runtime.runtimes import RUNTIMES
    from modelops_runtime.tensors import from_values, to_values

    model = RUNTIMES[runtime]("scaffold", "v1", artifact, {})
    model.declared = {"inputs": [], "outputs": []}
    try:
        model.load()
        inputs = {}
        for tensor in model.metadata()["inputs"]:
            shape = [1 if size < 0 else size for size in tensor["shape"]]
            values = _zeros(tensor["datatype"], math.prod(shape))
            inputs[tensor["name"]] = (tensor["datatype"], shape, values)
        arrays = {name: from_values(name, *header) for name, header in inputs.items()}
        outputs = model.infer(arrays, None)
    except Exception as exc:  # the user's file: say why it does not serve
        raise ScaffoldError(f"{artifact} does not load as a {runtime} model: "
                            f"{type(exc).__name__}: {exc}") from None
    request = "".join(_flow({"name": name, "datatype": datatype, "shape": shape, "data": values})
                      for name, (datatype, shape, values) in inputs.items())
    response = ""
    for name, array in outputs.items():
        tensor = to_values(name, array)
        response += _flow({**tensor, "data": array.ravel().tolist()
                           if tensor["datatype"] != "BYTES" else tensor["data"]})
    return EXAMPLE_MADE.format(inputs=request, outputs=response)


def create(root: Path, name: str, runtime: str, team: str, pool: str | None,
           artifact: Path | None, shared_root: Path) -> list[Path]:
    """Write models/<name>/ (never over an existing one); return the files written."""
    if not re.match(NAME, name):
        raise ScaffoldError(f"{name!r} is not a valid model name: lowercase letters, digits and "
                            "'-', starting with a letter, at most 40 characters")
    folder = root / "models" / name
    if folder.exists():
        raise ScaffoldError(f"{folder.relative_to(root)} already exists; not overwriting it")
    if pool and not (root / "models" / pool / "pool.yaml").is_file():
        raise ScaffoldError(f"pool {pool!r} does not exist (no models/{pool}/pool.yaml)")
    if artifact and runtime not in EXTENSIONS:
        raise ScaffoldError(f"--artifact is for {', '.join(EXTENSIONS)} models; a {runtime} "
                            "image brings its own files")
    if artifact and not artifact.is_file():
        raise ScaffoldError(f"artifact {artifact} does not exist")

    example = example_from(runtime, artifact) if artifact and runtime in ("sklearn", "onnx") \
        else EXAMPLE_TODO
    description = f"{name}: what it predicts, from what."
    artifact_lines = ""
    if runtime in EXTENSIONS and (artifact or EXTENSIONS[runtime]):
        ending = EXTENSIONS[runtime] or "".join(artifact.suffixes)  # type: ignore[union-attr]
        rel = f"artifacts/{name}/v1/model{ending}"
        digest = hashlib.sha256(artifact.read_bytes()).hexdigest() if artifact \
            else "replace with the sha256sum of the artifact"
        artifact_lines = ("      # The artifact (pvc:// on the shared volume; s3:// after "
                          "`modelops push`) and its\n      # sha256, which the server "
                          "checks.\n"
                          f"      artifact: pvc://{rel}\n      sha256: {digest}\n")
        if artifact:  # also onto the local volume, so `modelops test` and `serve` find it
            (shared_root / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(artifact, shared_root / rel)
    placement = f"  placement:                   # served by a pool's shared server\n" \
        f"    shared: {pool}\n" if pool else DEDICATED
    text = SPEC.format(
        name=name, team=team, description=description, runtime=runtime,
        image="\n  # Your image, which implements the v2 HTTP contract, pinned (never latest)."
              f"\n  image: ghcr.io/your-org/{name}:0.1.0"
        if runtime == "custom" else "",
        artifact=artifact_lines, placement=placement,
        tensors=TENSORS_DECLARED.format(name=name) if runtime == "python" else
        TENSORS_REPORTED.format(name=name) if runtime in EXTENSIONS else "",
        example=EXAMPLE_PYTHON if runtime == "python" else example)
    folder.mkdir(parents=True)
    written = [folder / "model.yaml"]
    written[0].write_text(text)
    if runtime == "python":
        cls = "".join(part.capitalize() for part in name.split("-"))
        (folder / "model.py").write_text(MODEL_PY.format(description=description, cls=cls,
                                                         name=name))
        written.append(folder / "model.py")
    return written
