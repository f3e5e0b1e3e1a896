"""A native LightGBM booster as a scikit-learn estimator.

LightGBM has no public way to put a Booster loaded from its text file into an
`LGBMClassifier`, so `--format lightgbm` wraps it in one of these: they give
onnxmltools' converter what it reads (`booster_`, `classes_`,
`boosting_type`), skl2onnx's parser the mixin it checks for, and parity what
it calls (`predict`, `predict_proba`). Registered with skl2onnx by
`families.py`; never in a model file.
"""

from __future__ import annotations

from typing import Any, Final

import numpy as np
from sklearn.base import ClassifierMixin, RegressorMixin

# LightGBM objectives by task, as `Booster.dump_model()["objective"]` starts.
LIGHTGBM_CLASSIFICATION: Final = ("binary", "multiclass", "multiclassova")
LIGHTGBM_REGRESSION: Final = (
    "regression", "regression_l1", "huber", "fair", "poisson", "quantile", "mape", "gamma",
    "tweedie",
)  # fmt: skip


def lightgbm_objective(booster: Any) -> str:
    """The objective's name ("binary", "multiclass", "regression", ...)."""
    return str(booster.dump_model(num_iteration=1).get("objective", "")).split(" ")[0]


class _LightGBMBooster:
    """What both adapters share: the booster, its feature count, and the
    attributes onnxmltools' converter reads."""

    _estimator_type: str
    boosting_type = "gbdt"

    def __init__(self, booster: Any) -> None:
        self.booster_ = booster
        self.n_features_in_ = int(booster.num_feature())
        self.objective_ = lightgbm_objective(booster)
        # A random forest averages its trees instead of adding them up.
        header = booster.model_to_string(num_iteration=1).split("\nTree=", 1)[0]
        if "\naverage_output\n" in header:
            self.boosting_type = "rf"

    def _raw(self, x: Any) -> Any:
        return np.asarray(self.booster_.predict(np.asarray(x, dtype=np.float64)))

    def __sklearn_tags__(self) -> Any:
        from sklearn.utils import ClassifierTags, RegressorTags, Tags, TargetTags

        classifier = self._estimator_type == "classifier"
        return Tags(
            estimator_type=self._estimator_type,
            target_tags=TargetTags(required=True),
            classifier_tags=ClassifierTags() if classifier else None,
            regressor_tags=None if classifier else RegressorTags(),
        )


class LightGBMBoosterClassifier(_LightGBMBooster, ClassifierMixin):  # type: ignore[misc]
    """A native LightGBM classification booster; classes are 0..k-1 as it was trained."""

    _estimator_type = "classifier"

    def __init__(self, booster: Any) -> None:
        super().__init__(booster)
        classes = int(booster.dump_model(num_iteration=1).get("num_class", 1))
        self.classes_ = np.arange(2 if classes == 1 else classes)

    def predict_proba(self, x: Any) -> Any:
        raw = self._raw(x)
        if raw.ndim == 1:  # binary: the probability of class 1
            return np.column_stack([1.0 - raw, raw])
        return raw

    def predict(self, x: Any) -> Any:
        return self.classes_[np.argmax(self.predict_proba(x), axis=1)]


class LightGBMBoosterRegressor(_LightGBMBooster, RegressorMixin):  # type: ignore[misc]
    """A native LightGBM regression booster."""

    _estimator_type = "regressor"

    def predict(self, x: Any) -> Any:
        return self._raw(x)
