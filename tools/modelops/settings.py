"""Platform settings (platform/settings.yaml): what every generated overlay shares."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlsplit

from pydantic import Field, model_validator

from modelops.spec import IMAGE, LABEL_VALUE, Quantity, Strict


class GatewayProxies(Strict):
    """Where the Gateway implementation's proxies run: the only pods the model servers take
    traffic from. Envoy Gateway: namespace `envoy-gateway-system`, podLabels
    `{app.kubernetes.io/managed-by: envoy-gateway}`; Istio and most cloud gateways: the
    Gateway's own namespace (the default) with `{gateway.networking.k8s.io/gateway-name:
    <gateway>}`; NGINX Gateway Fabric: namespace `nginx-gateway`."""

    namespace: str | None = Field(default=None, pattern=LABEL_VALUE)
    """Namespace of the proxy pods; default: the Gateway's namespace (`gatewayNamespace`)."""
    podLabels: dict[str, str] = Field(default_factory=dict)
    """Labels of the proxy pods; empty: every pod of that namespace."""


class ObjectStore(Strict):
    """An S3-compatible object store (AWS S3, MinIO, Ceph, R2, SeaweedFS) for `s3://`
    artifacts: `modelops push` uploads there, servers and jobs fetch from there."""

    bucket: str = Field(pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
    """The bucket `modelops push` uploads to."""
    prefix: str = Field(default="artifacts", pattern=r"^[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*$")
    """Keys are `<prefix>/<model>/<sha256><ending>`: derived from the content, so a re-push
    is a no-op and nothing is ever overwritten."""
    endpoint: str | None = Field(default=None, pattern=r"^https?://[^\s/]+/?$")
    """The store's URL, e.g. `https://minio.example.com`; unset: AWS S3."""
    region: str = Field(default="us-east-1", pattern=r"^[a-z0-9-]+$")
    """The store's region (most S3-compatible stores accept any)."""
    credentialsSecret: str | None = Field(default=None, pattern=LABEL_VALUE)
    """A Secret in the environment's namespace, made outside git, with keys `access-key-id`
    and `secret-access-key`, mounted as files into the servers and jobs of models with an
    `s3://` artifact. Unset: the pods' workload identity (IRSA on EKS; see the README)."""
    cacheSize: str = Field(default="4Gi", pattern=r"^[0-9]+(Mi|Gi)$")
    """Size limit of each pod's cache of fetched artifacts (an emptyDir)."""


class Broker(Strict):
    """The environment's RabbitMQ (a RabbitmqCluster of the Cluster Operator), generated
    only where a model takes asynchronous requests; its queues, users and permissions are
    the Messaging Topology Operator's objects in each model's overlay."""

    replicas: int = Field(default=1, ge=1, le=9)
    """Broker nodes. Quorum queues keep a request while a majority of nodes is up: 3 (or
    5) survive the loss of one (or two); 1 survives none."""
    image: str = Field(default="rabbitmq:4.2.6-management", pattern=IMAGE)
    """RabbitMQ's image, pinned (the Cluster Operator release's default)."""
    cpu: Quantity = "500m"
    """CPU request (and limit) of each node."""
    memory: Quantity = "1Gi"
    """Memory request (and limit) of each node; RabbitMQ stops taking messages at 40%."""
    storage: Quantity = "10Gi"
    """Each node's persistent volume: the queues' logs."""
    storageClass: str | None = Field(default=None, pattern=LABEL_VALUE)
    """StorageClass of those volumes; unset: the cluster's default."""
    operatorNamespace: str = Field(default="rabbitmq-system", pattern=LABEL_VALUE)
    """Where the Cluster and Messaging Topology Operators run: the Topology Operator
    reaches each node's management API (port 15672) from there."""


class FrontDoor(Strict):
    """The always-on server of the models that sleep (autoscaling.minReplicas 0): it takes
    their requests, HTTP and gRPC, while they are at zero replicas and hands them to their
    queues; generated only where such a model is."""

    minReplicas: int = Field(default=2, ge=1, le=100)
    """Fewest replicas: 2 or more keep it answering through a node's drain."""
    maxReplicas: int = Field(default=4, ge=1, le=100)
    """Most replicas (its HPA scales on CPU); capacity is checked at this bound."""
    cpu: Quantity = "250m"
    """CPU request of each replica (the limit is the same)."""
    memory: Quantity = "256Mi"
    """Memory request of each replica (the limit is the same)."""
    kedaNamespace: str = Field(default="keda", pattern=LABEL_VALUE)
    """Where KEDA's operator runs: it reads the queue counts from the broker's management
    API (port 15672) from there."""

    @model_validator(mode="after")
    def _bounds(self) -> FrontDoor:
        if self.minReplicas > self.maxReplicas:
            raise ValueError(f"minReplicas ({self.minReplicas}) is above maxReplicas "
                             f"({self.maxReplicas})")
        return self


class LogCompactor(Strict):
    """The CronJob that turns prediction logs into datasets (base/log-compactor)."""

    workers: int = Field(default=1, ge=1, le=64)
    """Pods of each run (an Indexed Job), sharing the closed log files by a hash of their
    paths: a day with more logs takes more workers, not a longer run. Each counts in the
    capacity budget."""


class EnvironmentSettings(Strict):
    namespace: str = Field(pattern=LABEL_VALUE)
    """Namespace the environment's models run in."""
    gateway: str = Field(default="models", pattern=LABEL_VALUE)
    """The Gateway (Gateway API) that model routes attach to."""
    gatewayNamespace: str = Field(default="modelops-gateway", pattern=LABEL_VALUE)
    """Namespace of that Gateway (created by the platform Application when the Gateway is
    generated)."""
    gatewayClass: str | None = Field(default=None, pattern=LABEL_VALUE)
    """GatewayClass of your Gateway API implementation: the Gateway is generated with it
    (overlays/<env>/gateway/). Unset: the Gateway is managed elsewhere."""
    gatewayProxies: GatewayProxies = Field(default_factory=GatewayProxies)
    """Which pods may send traffic to the model servers (a NetworkPolicy)."""
    authSecret: str | None = Field(default=None, pattern=LABEL_VALUE)
    """A Secret in the environment's namespace, made outside git (External Secrets, Sealed
    Secrets, kubectl), whose key `token` (16 characters or more) every model server then
    requires as a bearer token, and the catalog sends. Unset: no token is required."""
    storageClass: str = Field(default="standard-rwx", pattern=LABEL_VALUE)
    """StorageClass of the shared ReadWriteMany volume."""
    storageSize: str = "100Gi"
    """Size of the shared volume (artifacts, datasets, prediction logs)."""
    monitoringNamespace: str = Field(default="monitoring", pattern=LABEL_VALUE)
    """Where Prometheus runs; it may scrape the model servers' /metrics."""
    publicUrl: str | None = Field(default=None, pattern=r"^https?://[^\s]+[^/]$")
    """Where the gateway serves this environment (links from the catalog)."""
    grafanaUrl: str | None = Field(default=None, pattern=r"^https?://[^\s]+[^/]$")
    """Grafana, for links to each model's dashboard."""
    objectStore: ObjectStore | None = None
    """Where `s3://` artifacts live; unset: no model of this environment may use one."""
    broker: Broker = Field(default_factory=Broker)
    """The RabbitMQ of models with `async` (README: asynchronous inference)."""
    frontDoor: FrontDoor = Field(default_factory=FrontDoor)
    """The server that holds requests for models that sleep (README: models that sleep)."""
    logCompactor: LogCompactor = Field(default_factory=LogCompactor)
    """How the prediction logs are compacted into datasets."""

    @property
    def host(self) -> str | None:
        """The public URL's host name; each model's gRPC host is `<model>.<host>`."""
        return urlsplit(self.publicUrl).hostname if self.publicUrl else None

    def grpc_host(self, model: str) -> str | None:
        return f"{model}.{self.host}" if self.host else None

    def docs_url(self, model: str) -> str | None:
        """A model's API docs, served by its server under its own path on the gateway."""
        return f"{self.publicUrl}/v2/models/{model}/docs" if self.publicUrl else None

    def catalog_url(self) -> str | None:
        return f"{self.publicUrl}/catalog" if self.publicUrl else None

    def dashboard_url(self, model: str | None) -> str | None:
        """The models dashboard, narrowed to one model when given."""
        if not self.grafanaUrl:
            return None
        return (f"{self.grafanaUrl}/d/modelops-models/modelops-models?"
                f"var-namespace={self.namespace}" + (f"&var-model={model}" if model else ""))


class UnusedModels(Strict):
    """Models that served no request for a while, listed by `modelops plan` and the catalog
    as candidates for removal (README: models that sleep)."""

    afterDays: int = Field(default=30, ge=1, le=365)
    """No request for this many days (and deployed at least as long) makes a model unused."""
    prometheusUrl: str | None = Field(default=None, pattern=r"^https?://[^\s]+[^/]$")
    """Prometheus's HTTP API as the catalog reaches it inside the cluster (e.g.
    http://prometheus-operated.monitoring.svc:9090); unset: the catalog lists none.
    `modelops plan` reads the one given by --prometheus or MODELOPS_PROMETHEUS_URL."""


class Settings(Strict):
    """platform/settings.yaml."""

    repoURL: str = Field(pattern=r"^(https://|git@)[^\s]+$")
    """This repository, as Argo CD clones it."""
    revision: str = "main"
    """The branch Argo CD follows."""
    apiVersion: str = "modelops/v1"
    kind: str = "Settings"
    serverImage: str = Field(pattern=IMAGE)
    """The model-server image (serving/Dockerfile), pinned by tag or digest."""
    kubernetesVersion: str = Field(pattern=r"^1\.[0-9]+$")
    """Kubernetes minor version that rendered manifests are validated against, e.g. "1.34"."""
    environments: dict[Annotated[str, Field(pattern=LABEL_VALUE)], EnvironmentSettings] = Field(
        min_length=1)
    """Every environment, declared once here: specs override fields per environment by
    these names, and each gets its namespace, Gateway, platform and model Applications.
    The first is the one `modelops serve` and `modelops test` run locally."""
    prerequisites: list[str] = Field(default_factory=lambda: [
        "gateway.networking.k8s.io/v1", "monitoring.coreos.com/v1", "metrics.k8s.io/v1beta1"])
    """API versions the cluster must serve before the bootstrap: the Gateway API's standard
    channel and the Prometheus Operator's CRDs, and the resource metrics API (metrics-server),
    without which every HPA reads FailedGetResourceMetric and Argo CD calls it Degraded."""
    monitoringLabels: dict[str, str] = Field(
        default_factory=lambda: {"release": "kube-prometheus-stack"})
    """Labels the Prometheus Operator selects ServiceMonitors and PrometheusRules by (the
    kube-prometheus-stack chart's default is `release: <its release name>`)."""

    codeOwners: str = Field(default="@modelops/{team}",
                            pattern=r"^@[A-Za-z0-9_.-]+(/[A-Za-z0-9_.{}-]+)?$")
    """Who owns a model's folder in .github/CODEOWNERS (generated): `{team}` stands for
    the spec's metadata.team, e.g. `@your-org/{team}` for GitHub teams."""

    unusedModels: UnusedModels = Field(default_factory=UnusedModels)
    """When a model counts as unused, and where its requests are counted."""

    maxRemovedShare: float = Field(default=0.25, ge=0, le=1)
    """The largest share of models and pools one change may remove (more than one at
    once); `modelops validate` refuses more unless run with `--allow-removals`, so that a
    mistake is caught in review (in the cluster a removed model keeps serving until its
    Application is deleted)."""

    @property
    def local_environment(self) -> str:
        """The environment whose specs run locally (`modelops serve`, `modelops test`)."""
        return next(iter(self.environments))

    @model_validator(mode="after")
    def _one_gateway_each(self) -> Settings:
        owners: dict[tuple[str, str], str] = {}
        for env, settings in self.environments.items():
            key = (settings.gatewayNamespace, settings.gateway)
            if settings.gatewayClass and key in owners:
                raise ValueError(f"environments {owners[key]} and {env} both generate the "
                                 f"Gateway {key[0]}/{key[1]}: give each its own gateway name")
            owners.setdefault(key, env)
        return self
