"""The server's options: every knob typed, with a default; MODELOPS_* environment variables override."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class ServerOptions(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MODELOPS_")

    config: Path = Path("/etc/modelops/server.yaml")
    """The server.yaml the generator wrote (mounted from a ConfigMap)."""
    shared_root: Path = Path("/mnt/shared")
    """Where the shared volume is mounted: artifacts/, datasets/, logs/."""
    host: str = "0.0.0.0"
    port: int = 8080
    auth_token: SecretStr | None = None
    """If set, every request but health and metrics needs `Authorization: Bearer <token>`."""
    max_body_bytes: int = Field(default=8 * 1024 * 1024, ge=1024)
    """Larger request bodies get 413."""
    log_dir: Path | None = None
    """Prediction logs; defaults to <shared_root>/logs."""
    log_rotate_bytes: int = Field(default=64 * 1024 * 1024, ge=1024)
    log_rotate_seconds: float = Field(default=300.0, gt=0)
    log_queue_size: int = Field(default=10_000, ge=1)
    """Records waiting to be written; past this they are dropped (and counted), never block."""
    drain_seconds: float = Field(default=25.0, ge=0)
    """How long in-flight requests may take to finish after SIGTERM."""
    dataset_poll_seconds: float = Field(default=10.0, gt=0)
    """How often datasets on the shared volume are checked for changes."""

    @property
    def logs(self) -> Path:
        return self.log_dir or self.shared_root / "logs"
