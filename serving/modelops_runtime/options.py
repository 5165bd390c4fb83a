"""The server's options: every knob typed, with a default; MODELOPS_* environment variables
override them."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from modelops_runtime import volume

MIN_TOKEN = 16


def strong_enough(token: SecretStr | None, where: str) -> SecretStr | None:
    """Refuse a token that is set but empty or short: it must never mean "no auth"."""
    if token is not None and len(token.get_secret_value().strip()) < MIN_TOKEN:
        raise ValueError(f"{where} is set but has fewer than {MIN_TOKEN} characters; an "
                         f"empty or short token is refused rather than turning "
                         f"authentication off (unset it to serve without auth)")
    return token


def token_from_file(token: SecretStr | None, path: Path | None) -> SecretStr | None:
    """The token of MODELOPS_AUTH_TOKEN_FILE, when that is set (it wins over the variable)."""
    if path is None:
        return token
    try:
        text = path.read_text().strip()
    except OSError as exc:
        raise ValueError(f"MODELOPS_AUTH_TOKEN_FILE: cannot read {path}: {exc.strerror}") \
            from None
    return strong_enough(SecretStr(text), f"MODELOPS_AUTH_TOKEN_FILE ({path})")


class ServerOptions(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MODELOPS_")

    config: Path = Path("/etc/modelops/server.yaml")
    """The server.yaml the generator wrote (mounted from a ConfigMap)."""
    shared_root: Path = Path(volume.MOUNT)
    """Where the shared volume is mounted: artifacts/, datasets/, logs/."""
    host: str = "0.0.0.0"
    port: int = 8080
    grpc_port: int = Field(default=8081, ge=0, le=65535)
    """The Open Inference Protocol over gRPC; 0 turns it off."""
    auth_token: SecretStr | None = None
    """If set, every request but health and metrics needs `Authorization: Bearer <token>`.
    Set but empty or shorter than MIN_TOKEN characters, the server refuses to start:
    an empty Secret must never mean "no auth"."""
    auth_token_file: Path | None = None
    """A file holding the token (the Secret mounted read-only, as the generated manifests
    do); read at start, checked like auth_token."""
    max_body_bytes: int = Field(default=8 * 1024 * 1024, ge=1024)
    """Larger request bodies get 413."""
    max_header_bytes: int = Field(default=64 * 1024, ge=1024)
    """Larger request headers (all of them together) get 431."""
    header_timeout_seconds: float = Field(default=10.0, gt=0)
    """A client that has not sent its whole request headers by then gets 408."""
    body_timeout_seconds: float = Field(default=30.0, gt=0)
    """A client that has not sent its whole body by then gets 408."""
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
    broker_url: SecretStr | None = None
    """amqp://user:password@host:port/vhost of the RabbitMQ broker: set, the models whose
    spec enables `async` take requests from their queues, and infer routes accept
    `Prefer: respond-async`."""
    broker_url_file: Path | None = None
    """A file holding the broker URL (a Secret mounted read-only); it wins over broker_url."""
    broker_credentials: Path | None = None
    """A folder with the files `username` and `password` (the Secret the Messaging Topology
    Operator makes for a User, mounted read-only): they become the broker URL's user."""
    broker_declares: bool = True
    """Declare the queues and the results exchange on the broker. Off in the cluster, where
    the Topology Operator makes them and the server's broker user may not."""

    @field_validator("auth_token")
    @classmethod
    def _strong_enough(cls, token: SecretStr | None) -> SecretStr | None:
        return strong_enough(token, "MODELOPS_AUTH_TOKEN")

    @model_validator(mode="after")
    def _token_from_file(self) -> ServerOptions:
        self.auth_token = token_from_file(self.auth_token, self.auth_token_file)
        return self

    @model_validator(mode="after")
    def _broker_from_file(self) -> ServerOptions:
        if self.broker_url_file is not None:
            try:
                self.broker_url = SecretStr(self.broker_url_file.read_text().strip())
            except OSError as exc:
                raise ValueError(f"MODELOPS_BROKER_URL_FILE: cannot read "
                                 f"{self.broker_url_file}: {exc.strerror}") from None
        if self.broker_credentials is not None and self.broker_url is not None:
            self.broker_url = SecretStr(with_user(self.broker_url.get_secret_value(),
                                                  self.broker_credentials))
        return self

    @property
    def logs(self) -> Path:
        return self.log_dir or self.shared_root / volume.LOGS


def with_user(url: str, credentials: Path) -> str:
    """`url` with the user and password of a credentials folder, quoted (a generated
    password may hold any character)."""
    try:
        user, password = ((credentials / key).read_text().strip()
                          for key in ("username", "password"))
    except OSError as exc:
        raise ValueError(f"MODELOPS_BROKER_CREDENTIALS: cannot read {exc.filename}: "
                         f"{exc.strerror}") from None
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    netloc = f"{quote(user, safe='')}:{quote(password, safe='')}@{host}"
    return urlunsplit(parts._replace(netloc=netloc))
