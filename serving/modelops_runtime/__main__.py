"""`python -m modelops_runtime` (the image's entry point): serve the config in MODELOPS_CONFIG."""

import sys

from pydantic import ValidationError

from modelops_runtime.config import ServerConfig
from modelops_runtime.server import run
from modelops_runtime.settings import Settings


def main() -> None:
    try:
        settings = Settings()
        config = ServerConfig.read(settings.config)
    except (OSError, ValidationError, ValueError) as exc:
        sys.exit(f"modelops server: cannot start: {exc}")
    run(config, settings, settings.config.parent)


if __name__ == "__main__":
    main()
