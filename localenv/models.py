"""The iris models of the e2e tests and the demo, trained here and saved with skops.

- `train_good`: two good classifiers (a random forest and a gradient-boosted one) that
  predict the true class of every sample row;
- `train_shuffled`: a well-formed classifier trained on shuffled labels. It answers
  every request, quickly, but wrongly; only its predictions give it away.
- `train_swapped`: a classifier trained with classes 1 and 2 swapped. Under traffic
  balanced across them its answers have the true class frequencies, so prediction
  divergence sees nothing; only labelled rows give it away (the quality gate).
- `holdout`: the iris rows with their true classes, as an evaluation set.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Rows of iris (one per class, twice): the body of every inference request.
IRIS_ROWS = (0, 50, 100, 25, 75, 125)


def infer_body(rows: list[list[float]]) -> dict[str, Any]:
    """An Open Inference Protocol v2 request with the rows, asking for the label."""
    return {
        "inputs": [
            {
                "name": "input",
                "datatype": "FP32",
                "shape": [len(rows), len(rows[0])],
                "data": rows,
            }
        ],
        "outputs": [{"name": "label"}],
    }


def sample_rows() -> tuple[list[list[float]], list[int]]:
    """The IRIS_ROWS features and their true classes."""
    from sklearn.datasets import load_iris

    features, target = load_iris(return_X_y=True)
    rows = [[float(v) for v in features[i]] for i in IRIS_ROWS]
    return rows, [int(target[i]) for i in IRIS_ROWS]


def train_good(directory: Path) -> dict[str, Path]:
    """iris-v1.skops (random forest) and iris-v2.skops (gradient boosting)."""
    import skops.io
    from sklearn.datasets import load_iris
    from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier

    features, target = load_iris(return_X_y=True)
    models = {
        "v1": RandomForestClassifier(n_estimators=20, random_state=0),
        "v2": GradientBoostingClassifier(n_estimators=20, random_state=0),
    }
    paths = {}
    for version, estimator in models.items():
        estimator.fit(features, target)
        predicted = [int(p) for p in estimator.predict(features[list(IRIS_ROWS)])]
        if predicted != [int(target[i]) for i in IRIS_ROWS]:
            raise AssertionError(f"the {version} model misclassifies a sample row: {predicted}")
        paths[version] = directory / f"iris-{version}.skops"
        skops.io.dump(estimator, paths[version])
    return paths


def jensen_shannon(p: list[float], q: list[float]) -> float:
    """Jensen-Shannon divergence (base 2) of two distributions, in [0, 1]."""

    def kl(a: list[float], m: list[float]) -> float:
        return sum(x * math.log2(x / y) for x, y in zip(a, m, strict=True) if x > 0)

    mix = [(x + y) / 2 for x, y in zip(p, q, strict=True)]
    return (kl(p, mix) + kl(q, mix)) / 2


@dataclass(frozen=True)
class ShuffledModel:
    path: Path
    labels: list[int]  # what it predicts for the sample rows
    divergence: float  # JSD of its class frequencies on the sample rows vs the true ones


def train_shuffled(directory: Path, *, min_divergence: float = 0.2) -> ShuffledModel:
    """A classifier trained on shuffled labels whose predictions on the sample rows have
    class frequencies far from the true ones (JSD >= min_divergence): the first such
    seed, so the outcome is the same on every run and not luck."""
    import numpy as np
    import skops.io
    from sklearn.datasets import load_iris
    from sklearn.ensemble import RandomForestClassifier

    features, target = load_iris(return_X_y=True)
    true_labels = [int(target[i]) for i in IRIS_ROWS]
    truth = [Counter(true_labels)[c] / len(true_labels) for c in range(3)]
    for seed in range(100):
        labels = np.random.default_rng(seed).permutation(target)
        estimator = RandomForestClassifier(n_estimators=20, random_state=0).fit(features, labels)
        predicted = [int(p) for p in estimator.predict(features[list(IRIS_ROWS)])]
        counts = Counter(predicted)
        divergence = jensen_shannon(truth, [counts[c] / len(predicted) for c in range(3)])
        if divergence >= min_divergence:
            path = directory / "iris-shuffled.skops"
            skops.io.dump(estimator, path)
            return ShuffledModel(path=path, labels=predicted, divergence=divergence)
    raise AssertionError(
        f"no seed in 0..99 gives a shuffled model with JSD >= {min_divergence} on the rows"
    )


def train_swapped(directory: Path) -> Path:
    """iris-swapped.skops: a random forest fitted with classes 1 and 2 swapped."""
    import numpy as np
    import skops.io
    from sklearn.datasets import load_iris
    from sklearn.ensemble import RandomForestClassifier

    features, target = load_iris(return_X_y=True)
    swapped = np.where(target == 1, 2, np.where(target == 2, 1, target))
    estimator = RandomForestClassifier(n_estimators=20, random_state=0).fit(features, swapped)
    path = directory / "iris-swapped.skops"
    skops.io.dump(estimator, path)
    return path


def holdout(directory: Path) -> tuple[Path, str]:
    """iris-holdout.npz (every iris row and its true class, as
    `mlmodel_runtime.reference.make_evaluation_set` writes it) and its sha256."""
    from sklearn.datasets import load_iris

    from mlmodel_runtime.reference import make_evaluation_set

    features, target = load_iris(return_X_y=True)
    made = make_evaluation_set(features, target, directory / "iris-holdout.npz")
    return made.path, made.sha256
