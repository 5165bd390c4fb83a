"""The modelops model server: Open Inference Protocol v2 over HTTP for one model or a pool."""

__version__ = "0.1.0"
