"""modelops: one YAML file per model -> checked, generated, deployable Kustomize overlays."""

__version__ = "0.1.0"
