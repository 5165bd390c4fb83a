"""The model catalog: a page listing every model and its live readiness (a Deployment)."""
