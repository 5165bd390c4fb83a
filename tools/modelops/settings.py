"""Platform settings (platform/settings.yaml): what every generated overlay shares."""

from __future__ import annotations

from pydantic import Field, model_validator

from modelops.spec import IMAGE, LABEL_VALUE, Strict


class EnvironmentSettings(Strict):
    namespace: str = Field(pattern=LABEL_VALUE)
    """Namespace the environment's models run in."""
    gateway: str = Field(default="models", pattern=LABEL_VALUE)
    """The Gateway (Gateway API) that model routes attach to."""
    gatewayNamespace: str = Field(default="modelops-gateway", pattern=LABEL_VALUE)
    gatewayClass: str | None = Field(default=None, pattern=LABEL_VALUE)
    """GatewayClass of your Gateway API implementation: the Gateway is generated with it
    (overlays/<env>/gateway/). Unset: the Gateway is managed elsewhere."""
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

    def docs_url(self, model: str) -> str | None:
        """A model's API docs, served by its server under its own path on the gateway."""
        return f"{self.publicUrl}/v2/models/{model}/docs" if self.publicUrl else None

    def dashboard_url(self, model: str | None) -> str | None:
        """The models dashboard, narrowed to one model when given."""
        if not self.grafanaUrl:
            return None
        return (f"{self.grafanaUrl}/d/modelops-models/modelops-models?"
                f"var-namespace={self.namespace}" + (f"&var-model={model}" if model else ""))


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
    environments: dict[str, EnvironmentSettings]

    @model_validator(mode="after")
    def _one_gateway_each(self) -> "Settings":
        owners: dict[tuple[str, str], str] = {}
        for env, settings in self.environments.items():
            key = (settings.gatewayNamespace, settings.gateway)
            if settings.gatewayClass and key in owners:
                raise ValueError(f"environments {owners[key]} and {env} both generate the "
                                 f"Gateway {key[0]}/{key[1]}: give each its own gateway name")
            owners.setdefault(key, env)
        return self
