"""Platform settings (platform/settings.yaml): what every generated overlay shares."""

from __future__ import annotations

from pydantic import Field

from modelops.spec import IMAGE, LABEL_VALUE, Strict


class EnvironmentSettings(Strict):
    namespace: str = Field(pattern=LABEL_VALUE)
    """Namespace the environment's models run in."""
    gateway: str = Field(default="models", pattern=LABEL_VALUE)
    """The Gateway (Gateway API) that model routes attach to."""
    gatewayNamespace: str = Field(default="modelops-gateway", pattern=LABEL_VALUE)
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

    def dashboard_url(self, model: str) -> str | None:
        if not self.grafanaUrl:
            return None
        return (f"{self.grafanaUrl}/d/modelops-models/modelops-models?"
                f"var-namespace={self.namespace}&var-model={model}")


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
