"""The model spec, v1: pydantic models are the single source of truth.

`schemas/*.schema.json` is exported from these classes, and the README's field
reference is read from the same descriptions.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    field_validator,
    model_validator,
)

from modelops import quantity, schedule
from modelops_jobs.config import DataChecks, QualityGate
from modelops_runtime.config import AsyncConfig, BatchingConfig, OnDemandConfig, Runtime
from modelops_runtime.tensors import DTYPES

API_VERSION = "modelops/v1"

# Model names become Service names (DNS-1035: start with a letter) with "-<version>"
# appended, so they are kept short enough for the 63-character limit.
NAME = r"^[a-z]([-a-z0-9]{0,38}[a-z0-9])?$"
VERSION = r"^[a-z0-9]([-a-z0-9]{0,18}[a-z0-9])?$"
LABEL_VALUE = r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"
ENV_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"
SHA256 = r"^[0-9a-f]{64}$"
# pvc://<path on the shared volume>, s3://<bucket>/<key> in an object store, or
# file:///<absolute path inside the image>. Bucket names as S3 allows them.
ARTIFACT = (r"^(pvc://[A-Za-z0-9._/-]+|s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]/[A-Za-z0-9._/-]+"
            r"|file:///[A-Za-z0-9._/-]+)$")
IMAGE = r"^[a-z0-9.:/_-]+(:[A-Za-z0-9._-]+)?(@sha256:[0-9a-f]{64})?$"


RESERVED_ENV = ("MODELOPS_", "LD_", "PYTHON")
"""Prefixes of environment variables a spec may not set: the server's own knobs (its auth
token among them), the dynamic loader's (LD_PRELOAD runs code) and Python's."""


def confined(path: str, under: str | None) -> str:
    """A relative path that stays where it says: in its `under` folder of the shared
    volume (None: any folder, for a path inside the image)."""
    parts = path.split("/")
    if path.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise ValueError(f"{path!r} must be a plain relative path: no '..', '.', empty or "
                         f"leading '/' segments")
    if under is not None and (parts[0] != under or len(parts) < 2):
        raise ValueError(f"{path!r} must be inside {under}/ on the shared volume")
    return path


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True,
                              allow_inf_nan=False)


def _quantity(value: Any) -> str:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise ValueError("expected a quantity such as '500m' or '1Gi'")
    if quantity.parse(value) <= 0:
        raise ValueError(f"{value!r} is no amount: a quantity must be more than 0")
    return value


Quantity = Annotated[str, BeforeValidator(_quantity),
                     Field(examples=["500m", "2", "512Mi", "1Gi"])]
"""A Kubernetes quantity ('500m', '2', '512Mi'); a bare number is taken as its string."""
OptionalQuantity = Annotated[Quantity | None,
                             BeforeValidator(lambda v: v if v is None else _quantity(v))]


class Metadata(Strict):
    name: str = Field(pattern=NAME)
    """Unique name (DNS-1035 label, at most 40 characters): the directory name under models/."""
    team: str = Field(pattern=LABEL_VALUE)
    """Owning team; becomes the `modelops/team` label and the Argo CD project grouping."""
    description: str = Field(default="", max_length=500)
    """One or two sentences shown in the catalog and the Argo CD dashboard."""


class TrainedMetrics(Strict):
    holdout: dict[str, float]
    """This version's scores on its training run's holdout."""
    servingVersion: str | None = None
    """The version that was serving when it was trained."""
    serving: dict[str, float] = Field(default_factory=dict)
    """That version's scores on the same holdout."""


class Version(Strict):
    name: str = Field(pattern=VERSION)
    """Version name, e.g. `v1`; becomes the `modelops/version` label."""
    artifact: str | None = Field(default=None, json_schema_extra={"pattern": ARTIFACT})
    """`pvc://<path>` on the shared volume, `s3://<bucket>/<key>` in the object store of
    `platform/settings.yaml` (`modelops push` puts it there), or `file:///<path>` baked
    into the image."""
    sha256: str | None = Field(default=None, pattern=SHA256)
    """Hex digest of the artifact; the server refuses to load a file that does not match."""
    weight: int = Field(default=100, ge=0, le=100)
    """Share of unversioned traffic, in percent; the weights of all versions sum to 100."""
    metrics: TrainedMetrics | None = None
    """A trained version's holdout scores, next to the serving version's on the same rows
    (`modelops propose` copies them from its metrics.json); shown in the plan and catalog."""
    lineage: str | None = Field(default=None, pattern=r"^pvc://[A-Za-z0-9._/-]+$")
    """`pvc://` path of the training run's lineage.json: data files and hashes, code,
    parameters, libraries and seed."""

    @field_validator("artifact")
    @classmethod
    def _inside_its_folder(cls, artifact: str | None) -> str | None:
        if artifact and not re.match(ARTIFACT, artifact):
            raise ValueError(f"expected pvc://<path on the shared volume>, s3://<bucket>/<key> "
                             f"or file:///<path in the image>, got {artifact!r}")
        if artifact and artifact.startswith("pvc://"):
            confined(artifact.removeprefix("pvc://"), "artifacts")
        elif artifact and artifact.startswith("s3://"):
            confined(artifact.removeprefix("s3://"), None)
        elif artifact:
            confined(artifact.removeprefix("file:///"), None)
        return artifact

    @model_validator(mode="after")
    def _digest_goes_with_artifact(self) -> Version:
        if self.artifact and not self.sha256:
            raise ValueError("an artifact needs its sha256 so the server can verify it")
        if self.sha256 and not self.artifact:
            raise ValueError("sha256 is set but there is no artifact to verify")
        return self


class SharedPlacement(Strict):
    shared: str = Field(pattern=NAME)
    """Name of the Pool (a `kind: Pool` spec) whose server process hosts this model."""


def _placement_tag(value: Any) -> str | None:
    if value == "dedicated":
        return "dedicated"
    if isinstance(value, (dict, SharedPlacement)):
        return "shared"
    return None


Placement = Annotated[
    Annotated[Literal["dedicated"], Tag("dedicated")] | Annotated[SharedPlacement, Tag("shared")],
    Discriminator(_placement_tag, custom_error_type="placement",
                  custom_error_message="expected 'dedicated' or a mapping {shared: <pool name>}"),
]


_SYSTEM_TAINTS = ("node-role.kubernetes.io/", "node.kubernetes.io/",
                  "node.cloudprovider.kubernetes.io/")


class Toleration(Strict):
    """A Kubernetes toleration for a node taint: of GPU nodes, never of every node or of
    the control plane and node conditions (that would evade capacity and placement)."""

    key: str | None = None
    operator: Literal["Exists", "Equal"] = "Equal"
    value: str | None = None
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None

    @model_validator(mode="after")
    def _not_everything(self) -> Toleration:
        if not self.key:
            raise ValueError("a toleration needs a key: without one it tolerates every taint "
                             "of every node")
        if self.key.startswith(_SYSTEM_TAINTS):
            raise ValueError(f"tolerating {self.key!r} would schedule onto the control plane "
                             f"or failing nodes; tolerate only your GPU nodes' taints")
        return self


class Gpu(Strict):
    count: int = Field(ge=1, le=16)
    """Whole GPUs per replica."""
    resource: str = Field(default="nvidia.com/gpu",
                          pattern=r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?\.)+[a-z]{2,}/"
                                  r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
    """Extended resource name that the device plugin advertises: domain-qualified
    (`nvidia.com/gpu`, `amd.com/gpu`), never `cpu` or `memory`."""
    nodeSelector: dict[str, str] = Field(default_factory=dict)
    """Node labels that a GPU node must carry."""

    @field_validator("resource")
    @classmethod
    def _extended(cls, resource: str) -> str:
        if resource.split("/")[0].endswith("kubernetes.io"):
            raise ValueError(f"{resource!r} is not an extended resource (kubernetes.io "
                             f"names are Kubernetes' own)")
        return resource

    @field_validator("nodeSelector")
    @classmethod
    def _not_the_control_plane(cls, selector: dict[str, str]) -> dict[str, str]:
        for key in selector:
            if key.startswith("node-role.kubernetes.io/"):
                raise ValueError(f"node selector {key!r} would place models on the control "
                                 f"plane; select your GPU nodes' labels")
        return selector
    tolerations: list[Toleration] = Field(default_factory=list)
    """Taints of GPU nodes that this model tolerates."""


class Limits(Strict):
    cpu: OptionalQuantity = None
    memory: OptionalQuantity = None


class Resources(Strict):
    cpu: Quantity = "500m"
    """CPU request per replica (cores)."""
    memory: Quantity = "512Mi"
    """Memory request per replica."""
    limits: Limits = Field(default_factory=Limits)
    """Limits; each defaults to its request (guaranteed QoS)."""
    gpu: Gpu | None = None
    """Optional GPUs, with the node selector and tolerations that reach GPU nodes."""

    @model_validator(mode="after")
    def _limits_cover_requests(self) -> Resources:
        for kind in ("cpu", "memory"):
            limit = getattr(self.limits, kind)
            if limit is not None and quantity.parse(limit) < quantity.parse(getattr(self, kind)):
                raise ValueError(f"limits.{kind} ({limit}) is below the {kind} request "
                                 f"({getattr(self, kind)})")
        return self


class Autoscaling(Strict):
    minReplicas: int = Field(default=1, ge=0, le=100)
    """Fewest replicas (per version of a dedicated model); 2 or more adds a PodDisruptionBudget.
    0: the model sleeps when idle and wakes on demand (needs `async`: its queue is what
    wakes it; KEDA scales it instead of an HPA)."""
    maxReplicas: int = Field(default=3, ge=1, le=100)
    """Most replicas (per version); capacity is checked at this bound."""
    targetCPUUtilization: int = Field(default=70, ge=1, le=100)
    """Average CPU utilisation (percent of the request) the HPA aims for."""
    targetMemoryUtilization: int | None = Field(default=None, ge=1, le=100)
    """Optional average memory utilisation target (percent of the request)."""
    scaleDownStabilizationSeconds: int = Field(default=300, ge=0, le=3600)
    """How long the HPA waits before removing replicas."""
    idleSeconds: int = Field(default=300, ge=1, le=86_400)
    """With minReplicas 0: asleep after this long with nothing queued or running (KEDA's
    cooldownPeriod)."""
    activationQueueDepth: int = Field(default=0, ge=0, le=1_000_000)
    """With minReplicas 0: it wakes when more requests than this wait or run (KEDA's
    activationValue)."""
    targetQueueDepth: int = Field(default=5, ge=1, le=1_000_000)
    """With minReplicas 0: requests waiting or running per replica that KEDA aims for."""
    wakeSeconds: int = Field(default=30, ge=1, le=600)
    """With minReplicas 0: how long a synchronous request waits for the model to wake and
    answer before it gets 503 with Retry-After."""

    @property
    def sleeps(self) -> bool:
        return self.minReplicas == 0

    @model_validator(mode="after")
    def _bounds(self) -> Autoscaling:
        if self.minReplicas > self.maxReplicas:
            raise ValueError(f"minReplicas ({self.minReplicas}) is above maxReplicas "
                             f"({self.maxReplicas})")
        return self


class Logging(Strict):
    enabled: bool = False
    """Append every sampled request and response to the prediction log on the shared volume."""
    sampleRate: float = Field(default=1.0, ge=0.0, le=1.0)
    """Fraction of requests logged."""
    dataset: str | None = Field(default=None, pattern=NAME)
    """Dataset the compacted logs feed; defaults to the model's name."""
    reference: str | None = Field(default=None, pattern=NAME)
    """One of `datasets`: the compactor writes a drift summary (PSI per input feature)
    of each day's logs against it."""


class Dataset(Strict):
    name: str = Field(pattern=NAME)
    path: str = Field(pattern=r"^[A-Za-z0-9._/-]+$")
    """Path on the shared volume, relative to its root and inside `datasets/`
    (e.g. `datasets/iris`)."""

    _inside = field_validator("path")(lambda v: confined(v, "datasets"))


class SecretKeyRef(Strict):
    name: str = Field(pattern=LABEL_VALUE)
    key: str = Field(pattern=r"^[-._a-zA-Z0-9]+$")


class ValueFrom(Strict):
    secretKeyRef: SecretKeyRef


class EnvVar(Strict):
    name: str = Field(pattern=ENV_NAME)
    value: str | None = None
    valueFrom: ValueFrom | None = None

    @field_validator("name")
    @classmethod
    def _not_reserved(cls, name: str) -> str:
        if name.upper().startswith(RESERVED_ENV):
            raise ValueError(f"the name {name} is reserved: names starting with "
                             f"{', '.join(RESERVED_ENV)} belong to the server, the dynamic "
                             f"loader and Python")
        return name

    @model_validator(mode="after")
    def _one_source(self) -> EnvVar:
        if (self.value is None) == (self.valueFrom is None):
            raise ValueError("set exactly one of value or valueFrom.secretKeyRef")
        return self


Datatype = Literal[tuple(DTYPES)]  # type: ignore[valid-type]  # the server's list, one home


class TensorDecl(Strict):
    """A tensor a model takes or gives: what `GET /v2/models/<m>` lists and the server
    checks every request against."""

    name: str = Field(min_length=1, max_length=128)
    datatype: Datatype
    shape: list[Annotated[int, Field(ge=-1)]] = Field(max_length=32)
    """Sizes per dimension; -1 for any (the first is usually the batch)."""


class Tensor(Strict):
    """An Open Inference Protocol v2 tensor: data in row-major order."""

    name: str
    datatype: Datatype
    shape: list[int]
    data: list[Any]
    parameters: dict[str, Any] | None = None


class InferRequest(Strict):
    id: str | None = None
    inputs: list[Tensor] = Field(min_length=1)
    outputs: list[dict[str, Any]] | None = None
    parameters: dict[str, Any] | None = None


class InferResponse(Strict):
    outputs: list[Tensor] = Field(min_length=1)


class Example(Strict):
    request: InferRequest
    """An Open Inference Protocol v2 infer request body."""
    response: InferResponse | None = None
    """The outputs expected back; checked by `modelops test`."""
    tolerance: float = Field(default=1e-6, ge=0)
    """Absolute tolerance for floating-point outputs."""
    maxLoadSeconds: float | None = Field(default=None, gt=0)
    """`modelops test` fails if loading a version takes longer."""
    maxMemory: OptionalQuantity = None
    """`modelops test` fails if loading the model grows the process by more than this."""


class ModelOverrides(Strict):
    """Fields an environment may replace; mappings merge key by key, lists are replaced."""

    versions: list[Version] | None = None
    resources: dict[str, Any] | None = None
    autoscaling: dict[str, Any] | None = None
    logging: dict[str, Any] | None = None
    concurrency: int | None = Field(default=None, ge=1, le=1024)
    env: list[EnvVar] | None = None
    async_: dict[str, Any] | None = Field(default=None, alias="async")
    batching: dict[str, Any] | None = None


class PoolOverrides(Strict):
    resources: dict[str, Any] | None = None
    autoscaling: dict[str, Any] | None = None


Schedule = Annotated[str, AfterValidator(schedule.check),
                     Field(examples=["0 3 * * 0", "30 2 * * *", "@daily"])]
"""A CronJob schedule, as the CronJob controller reads it (schedule.py)."""
COLUMN = Annotated[str, Field(min_length=1, max_length=128)]


class JobResources(Strict):
    cpu: Quantity = "1"
    """CPU request (and limit) of the job's pod."""
    memory: Quantity = "1Gi"
    """Memory request (and limit) of the job's pod."""


class TrainingInput(Strict):
    dataset: str = Field(pattern=NAME)
    """One of `datasets`, or the dataset this model's prediction logs feed."""
    label: COLUMN | None = None
    """The column holding the label in this dataset (default: `training.label`); for
    prediction logs, `out_<output>` is what the serving model answered."""
    optional: bool = False
    """A dataset that may not exist yet (a new model's prediction logs): no rows then,
    instead of a failed data check."""


class Training(Strict):
    """How the model is trained: `modelops train` locally, a CronJob in the cluster."""

    function: str | None = Field(default=None,
                                 pattern=r"^[A-Za-z0-9_-]+\.py:[A-Za-z_][A-Za-z0-9_]*$")
    """`<file>.py:<function>` beside model.yaml, called as function(features, labels,
    parameters, seed) and returning the fitted model (sklearn: the estimator; onnx: the
    serialized graph). Unset for `python`: the model class's `train()`."""
    inputs: list[TrainingInput] = Field(min_length=1, max_length=10)
    """The datasets it learns from, all rows together."""
    features: list[COLUMN] = Field(min_length=1, max_length=4096)
    """The feature columns, in the order of the model's input tensor (the compactor names
    logged inputs `in_<tensor>_<i>`)."""
    label: COLUMN = "label"
    """The label column, unless an input names its own."""
    parameters: dict[str, Any] = Field(default_factory=dict)
    """Passed to the function as they are (hyperparameters)."""
    seed: int = Field(default=0, ge=0, le=2**32 - 1)
    """Seed of the holdout split and of the function: the same data trains the same bytes."""
    holdout: float = Field(default=0.2, ge=0.05, le=0.5)
    """Share of rows kept out of training and scored, for the new and the serving version."""
    checks: DataChecks = Field(default_factory=DataChecks)
    """Checks of the data before anything is trained."""
    gate: QualityGate | None = None
    """The score the new model must reach on the holdout before it becomes a version."""
    schedule: Schedule | None = None
    """Cron schedule of the training CronJob (unset: suspended, run on demand with
    `kubectl create job --from=cronjob/<model>-train`)."""
    resources: JobResources = Field(default_factory=JobResources)
    """The training pod's requests and limits (counted against the capacity budget at
    peak)."""
    canaryWeight: int = Field(default=10, ge=1, le=50)
    """The traffic share `modelops propose` gives a new version."""

    @model_validator(mode="after")
    def _no_row_or_column_twice(self) -> Training:
        """A dataset listed twice puts each of its rows on both sides of the holdout; a
        feature twice, or the label among the features, lets the model read the answer."""
        for what, names in (("dataset", [i.dataset for i in self.inputs]),
                            ("feature", self.features)):
            twice = sorted({n for n in names if names.count(n) > 1})
            if twice:
                raise ValueError(f"{what} {twice[0]!r} is listed twice")
        labels = {i.label or self.label for i in self.inputs}
        if leaked := sorted(labels & set(self.features)):
            raise ValueError(f"the label {leaked[0]!r} is also a feature")
        return self


class Batch(Strict):
    """Batch scoring of a dataset: `modelops batch` locally, an Indexed Job in the cluster."""

    input: str = Field(pattern=NAME)
    """One of `datasets`: every Parquet or CSV file in it is scored."""
    output: str = Field(pattern=NAME)
    """The dataset written, under datasets/<output>/model=<m>/version=<v>/date=<d>/."""
    features: list[COLUMN] | None = None
    """Input columns in the order of the model's input tensor (default: training.features)."""
    version: str | None = Field(default=None, pattern=VERSION)
    """The version that scores (default: the one with the most traffic)."""
    schedule: Schedule | None = None
    """Cron schedule of the batch CronJob (unset: suspended, run on demand)."""
    parallelism: int = Field(default=1, ge=1, le=32)
    """Workers (pods of the Indexed Job); each scores every n-th input file."""
    resources: JobResources = Field(default_factory=JobResources)
    """Each worker pod's requests and limits (all of them count against the capacity
    budget at peak)."""


EnvironmentName = Annotated[str, Field(pattern=LABEL_VALUE)]
"""An environment of platform/settings.yaml (checked against it when the repo loads)."""


class ModelSpec(Strict):
    runtime: Runtime
    """`sklearn` (joblib file), `onnx`, `python` (class in model.py beside this file), or
    `custom` (your own image that implements the same HTTP contract)."""
    image: str | None = Field(default=None, pattern=IMAGE)
    """Only for `custom`: the image, pinned by tag or digest (never `latest`)."""
    versions: list[Version] = Field(min_length=1, max_length=10)
    """One to ten versions; unversioned requests are split between them by weight."""
    placement: Placement = "dedicated"
    """`dedicated` (its own Deployments) or `{shared: <pool>}` (served by a pool)."""
    resources: Resources | None = None
    """Per replica, dedicated models only (a pool sets its own)."""
    autoscaling: Autoscaling | None = None
    """HPA bounds, dedicated models only (a pool sets its own)."""
    concurrency: int = Field(default=16, ge=1, le=1024)
    """Most requests this model serves at once; more get 503 with Retry-After."""
    async_: AsyncConfig | None = Field(default=None, alias="async")
    """Asynchronous requests through a queue (RabbitMQ); absent: synchronous only."""
    batching: BatchingConfig = Field(default_factory=BatchingConfig)
    """Concurrent requests predicted in one call (on by default; set `enabled: false` for a
    python model whose answer for a row depends on the other rows)."""
    logging: Logging = Field(default_factory=Logging)
    """Prediction logging to the shared volume, compacted into datasets."""
    datasets: list[Dataset] = Field(default_factory=list)
    """Datasets on the shared volume this model reads (mounted read-only)."""
    env: list[EnvVar] = Field(default_factory=list)
    """Environment variables; secrets only through valueFrom.secretKeyRef."""
    example: Example | None = None
    """A request and the response it must give; `modelops test` checks it."""
    inputs: list[TensorDecl] | None = None
    """The input tensors of a `python` or `custom` model (scikit-learn and ONNX models
    report theirs). Unset: the example request's, with any batch size."""
    outputs: list[TensorDecl] | None = None
    """Its output tensors. Unset: the example response's, with any batch size."""
    training: Training | None = None
    """How it is trained (a CronJob beside it, and `modelops train`)."""
    batch: Batch | None = None
    """How it scores a dataset in batch (a CronJob of Indexed Jobs, and `modelops batch`)."""
    environments: dict[EnvironmentName, ModelOverrides | None] = Field(default_factory=dict)
    """Per-environment overrides merged over the fields above, by the environment names
    of platform/settings.yaml."""

    @field_validator("image")
    @classmethod
    def _pinned(cls, image: str | None) -> str | None:
        if image and (image.endswith(":latest") or
                      (":" not in image.rsplit("/", 1)[-1] and "@" not in image)):
            raise ValueError("must be pinned by a tag other than latest, or by digest")
        return image

    @model_validator(mode="after")
    def _image_only_for_custom(self) -> ModelSpec:
        if self.runtime == "custom" and not self.image:
            raise ValueError("runtime 'custom' needs an image")
        if self.runtime != "custom" and self.image:
            raise ValueError(f"image is only for runtime 'custom'; runtime {self.runtime!r} "
                             "runs in the modelops server image")
        return self

    @model_validator(mode="after")
    def _async_fits(self) -> ModelSpec:
        if self.async_ and self.runtime == "custom":
            raise ValueError("async runs in the modelops server image; a custom image would "
                             "have to consume the queue itself")
        return self

    @model_validator(mode="after")
    def _jobs_run_in_our_image(self) -> ModelSpec:
        if (self.training or self.batch) and self.runtime == "custom":
            raise ValueError("training and batch run in the modelops image; a custom image "
                             "runs its own jobs")
        if self.training and self.runtime != "python" and not self.training.function:
            raise ValueError(f"training.function is needed for runtime {self.runtime!r} "
                             "(a python model trains with its class's train())")
        return self


class PoolSpec(Strict):
    resources: Resources = Field(default_factory=Resources)
    """Per replica of the pool's server, shared by all its models. With `onDemand`, the
    members loaded at once are kept under its memory request."""
    env: list[EnvVar] = Field(default_factory=list)
    """Environment variables of the pool's one process, which every member's code sees
    (a member may not set its own: it would reach the others)."""
    autoscaling: Autoscaling = Field(default_factory=Autoscaling)
    """HPA bounds of the pool's server (at least 1: its members sleep one by one, see
    `onDemand`)."""
    onDemand: OnDemandConfig | None = None
    """Members load on their first request (a pool of many models, one per customer) and
    make room for one another, least recently used first; unset: all load at start."""
    environments: dict[EnvironmentName, PoolOverrides | None] = Field(default_factory=dict)
    """Per-environment overrides of resources and autoscaling."""

    @field_validator("autoscaling")
    @classmethod
    def _awake(cls, autoscaling: Autoscaling) -> Autoscaling:
        if autoscaling.sleeps:
            raise ValueError("a pool keeps at least one replica (minReplicas 1 or more): "
                             "its members sleep one by one instead (`onDemand`: each loads "
                             "on its first request and unloads when idle)")
        return autoscaling


# Documents are named apart from the server's `Model`, the class that serves one.
class ModelDocument(Strict):
    """A model: the one file a data scientist writes (models/<name>/model.yaml)."""

    model_config = ConfigDict(title="Model")

    apiVersion: Literal["modelops/v1"]
    kind: Literal["Model"]
    metadata: Metadata
    """Name, owning team and description."""
    spec: ModelSpec
    """What to serve and how."""


class PoolDocument(Strict):
    """A shared server that hosts several models in one process (models/<name>/pool.yaml)."""

    model_config = ConfigDict(title="Pool")

    apiVersion: Literal["modelops/v1"]
    kind: Literal["Pool"]
    metadata: Metadata
    """Name, owning team and description."""
    spec: PoolSpec
    """The shared server's resources and autoscaling."""


KINDS: dict[str, type[ModelDocument] | type[PoolDocument]] = {"Model": ModelDocument,
                                                              "Pool": PoolDocument}
