"""catalog.yaml: what the catalog page lists (the generator writes it per environment),
and the catalog server's own knobs."""

from __future__ import annotations

from pathlib import Path

from pydantic import SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from modelops_runtime.configfile import ConfigFile, Strict


class CatalogVersion(Strict):
    name: str
    weight: int
    readyUrl: str  # the serving version's v2 readiness endpoint
    metrics: dict[str, float] | None = None  # a trained version's holdout scores
    lineage: str | None = None  # where its training run's lineage.json is
    metricsUrl: str | None = None  # an async version's server's /metrics: its queue depth


class CatalogModel(Strict):
    name: str
    team: str
    description: str
    runtime: str
    placement: str
    minReplicas: int
    maxReplicas: int
    versions: list[CatalogVersion]
    docsUrl: str | None = None
    dashboardUrl: str | None = None
    queue: str | None = None
    """Its asynchronous requests' limits, when it takes them (spec: async)."""
    drift: str | None = None
    """Where on the shared volume the compactor writes this model's drift summaries
    (datasets/<dataset>/model=<name>), when its logs have a reference to drift against."""


class UnusedCheck(Strict):
    """Where the catalog asks which models served no request lately (settings:
    unusedModels)."""

    prometheusUrl: str
    namespace: str
    afterDays: int


class CatalogConfig(ConfigFile):
    """catalog.yaml: what the catalog page lists (the generator writes it per environment)."""

    apiVersion: str = "modelops/v1"
    kind: str = "Catalog"
    environment: str
    models: list[CatalogModel]
    unused: UnusedCheck | None = None


class CatalogOptions(BaseSettings):
    """The catalog server's knobs (MODELOPS_* environment variables)."""

    model_config = SettingsConfigDict(env_prefix="MODELOPS_")

    catalog: Path = Path("/etc/modelops/catalog.yaml")
    """The catalog's data (written by `modelops generate`)."""
    host: str = "0.0.0.0"
    port: int = 8080
    shared_root: Path | None = None
    """The shared volume (its datasets/ mounted read-only), for the drift charts."""
    auth_token: SecretStr | None = None
    """The model servers' bearer token (the same Secret), sent with every readiness check."""
    auth_token_file: Path | None = None
    """A file holding it (the Secret mounted read-only)."""

    @model_validator(mode="after")
    def _token(self) -> CatalogOptions:
        from modelops_runtime.options import strong_enough, token_from_file

        self.auth_token = token_from_file(strong_enough(self.auth_token, "MODELOPS_AUTH_TOKEN"),
                                          self.auth_token_file)
        return self
