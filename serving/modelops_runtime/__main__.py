"""`python -m modelops_runtime` (the image's entry point): serve the config in MODELOPS_CONFIG.

Models start loading before the web framework is imported, so the two overlap.
The garbage collector is off from the first import until both are done: startup
makes only long-lived objects (modules, classes, models), and collecting them over
and over cost a tenth of the time to ready (benchmarks/serve.py).
"""

import gc

gc.disable()

import sys  # noqa: E402
import threading  # noqa: E402

from pydantic import ValidationError  # noqa: E402

from modelops_runtime.config import ServerConfig  # noqa: E402
from modelops_runtime.options import ServerOptions  # noqa: E402
from modelops_runtime.registry import Registry  # noqa: E402


def _collect_after(registry: Registry, imported: threading.Event) -> None:
    registry.wait_loaded()
    imported.wait()
    gc.freeze()  # startup's objects live as long as the process: out of every later collection
    gc.enable()


def main() -> None:
    try:
        options = ServerOptions()
        config = ServerConfig.read(options.config)
    except (OSError, ValidationError, ValueError) as exc:
        sys.exit(f"modelops server: cannot start: {exc}")
    registry = Registry(config, options.shared_root, options.config.parent)
    registry.start_loading()
    imported = threading.Event()
    threading.Thread(target=_collect_after, args=(registry, imported), name="gc-after-startup",
                     daemon=True).start()
    from modelops_runtime.server import run  # Starlette and uvicorn import while models load

    imported.set()
    run(config, options, options.config.parent, registry)


if __name__ == "__main__":
    main()
