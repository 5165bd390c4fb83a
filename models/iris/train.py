"""How iris is trained: `modelops train iris` locally, the iris-train CronJob in the cluster.

Called with the feature matrix (the columns of spec.training.features), the labels,
spec.training.parameters and the seed; returns the fitted estimator, which the sklearn
runtime then serves.
"""

from sklearn.tree import DecisionTreeClassifier


def train(features, labels, parameters, seed):
    model = DecisionTreeClassifier(max_depth=parameters.get("max_depth", 3), random_state=seed)
    return model.fit(features, labels)
