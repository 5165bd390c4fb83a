"""Breast-mass screening: a scikit-learn tree wrapped in a class with its own endpoint.

The server calls `load()` once, then `predict()` per request; `routes()` adds
GET /v2/models/cancer-screen/explain next to the standard v2 endpoints.
"""

import os

import joblib
import numpy as np

from modelops_runtime.model import Model


class CancerScreen(Model):
    def load(self) -> None:
        self.estimator = joblib.load(self.artifact_path)
        self.threshold = float(os.environ.get("DECISION_THRESHOLD", "0.5"))

    def predict(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        features = inputs["features"].astype(np.float64)
        malignant = 1.0 - self.estimator.predict_proba(features)[:, 1]  # class 1 is benign
        labels = np.where(malignant >= self.threshold, "malignant", "benign").astype(object)
        return {"malignant_probability": malignant, "label": labels}

    def routes(self):
        async def explain() -> dict:
            """The five features that weigh most in the decision tree."""
            importances = self.estimator.feature_importances_
            top = np.argsort(importances)[::-1][:5]
            return {"top_features": [{"index": int(i), "importance": float(importances[i])}
                                     for i in top]}

        return [("GET", "/explain", explain)]
