"""`python -m modelops_runtime` (the image's entry point): serve the config in MODELOPS_CONFIG.

Models start loading before the web framework is imported, so the two overlap.
"""

import sys

from pydantic import ValidationError

from modelops_runtime.config import ServerConfig
from modelops_runtime.registry import Registry
from modelops_runtime.settings import Settings


def main() -> None:
    try:
        settings = Settings()
        config = ServerConfig.read(settings.config)
    except (OSError, ValidationError, ValueError) as exc:
        sys.exit(f"modelops server: cannot start: {exc}")
    registry = Registry(config, settings.shared_root, settings.config.parent)
    registry.start_loading()
    from modelops_runtime.server import run  # FastAPI and uvicorn import while models load

    run(config, settings, settings.config.parent, registry)


if __name__ == "__main__":
    main()
