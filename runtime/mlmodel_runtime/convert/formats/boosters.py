"""`--format xgboost` and `--format lightgbm`: native booster files.

`xgb.Booster.save_model("model.json")` (or `.ubj`) and
`lgb.Booster.save_model("model.txt")` write data, not code: each library
reads them back with its own parser, so these formats need no trust flags
(like ONNX, unlike pickle), after `booster_structure.py` has checked the trees
they would follow. The booster's objective decides its task; a
booster trained for ranking, survival or another objective that is neither
classification nor regression is refused as unsupported. Once loaded, a
booster is a scikit-learn estimator (`families.py`), converted and proven
like any other (`formats/estimator.py`).

Classes are what the booster was trained on: 0..k-1. A model that maps them
to names does so in its own code, which a booster file does not carry; save
the scikit-learn wrapper with skops to keep string labels.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from mlmodel_runtime.convert.errors import IntegrityError, UnsupportedModelError
from mlmodel_runtime.convert.formats import Format, LoadOptions, Log
from mlmodel_runtime.convert.formats.estimator import (
    EstimatorModel,
    library_errors,
    open_estimator,
)

_XGB_JSON = b'{"learner'
# UBJSON: an object whose first key's length is an int64.
_UBJSON_OBJECT = b"{L\x00\x00\x00\x00\x00\x00"
_LIGHTGBM_TEXT = b"tree\nversion="


def _refuse_objective(library: str, objective: str) -> UnsupportedModelError:
    return UnsupportedModelError(
        f"the {library} booster's objective is {objective!r}: only classification and "
        "regression boosters are converted (docs/models.md)"
    )


class XGBoostFormat(Format):
    name = "xgboost"
    doc = "an XGBoost Booster saved with save_model (.json or .ubj); read by XGBoost's own parser"
    file_kind = "XGBoost model"

    def recognises(self, head: bytes) -> bool:
        # Eight bytes tell: a shorter file is not a model of any format.
        return len(head) >= len(_UBJSON_OBJECT) and (
            _XGB_JSON.startswith(head) or head.startswith(_UBJSON_OBJECT)
        )

    def load(self, path: Path, options: LoadOptions, log: Log) -> EstimatorModel:
        model = open_estimator(lambda: _read_xgboost(path), options, log)
        return dataclasses.replace(model, estimator="xgboost.core.Booster")


def _read_xgboost(path: Path) -> Any:
    from mlmodel_runtime.convert import booster_structure, gcpause

    with gcpause.while_importing():
        import xgboost

    with library_errors("load the XGBoost model"):
        booster = xgboost.Booster(model_file=str(path))
        objective = json.loads(booster.save_config())["learner"]["objective"]["name"]
    if objective.startswith(("binary:", "multi:")):
        wrapper: Any = xgboost.XGBClassifier()
    elif objective.startswith("reg:"):
        wrapper = xgboost.XGBRegressor()
    else:
        raise _refuse_objective("XGBoost", objective)
    with library_errors("load the XGBoost model"):
        wrapper.load_model(str(path))
    booster_structure.check_xgboost(wrapper.get_booster())
    return wrapper


class LightGBMFormat(Format):
    name = "lightgbm"
    doc = "a LightGBM Booster saved with save_model (text); read by LightGBM's own parser"
    file_kind = "LightGBM model"

    def recognises(self, head: bytes) -> bool:
        return len(head) >= 8 and _LIGHTGBM_TEXT.startswith(head)

    def load(self, path: Path, options: LoadOptions, log: Log) -> EstimatorModel:
        model = open_estimator(lambda: _read_lightgbm(path), options, log)
        return dataclasses.replace(model, estimator="lightgbm.basic.Booster")


def _read_lightgbm(path: Path) -> Any:
    from mlmodel_runtime.convert import booster_estimators, booster_structure, gcpause

    with gcpause.while_importing():
        import lightgbm

    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise IntegrityError("not a LightGBM text model: it is not UTF-8 text") from exc
    # LightGBM parses without bounds checks: a bad file must not reach it.
    booster_structure.check_lightgbm_text(text)
    with library_errors("load the LightGBM model"):
        booster = lightgbm.Booster(model_str=text)
        objective = booster_estimators.lightgbm_objective(booster)
    if objective in booster_estimators.LIGHTGBM_CLASSIFICATION:
        return booster_estimators.LightGBMBoosterClassifier(booster)
    if objective in booster_estimators.LIGHTGBM_REGRESSION:
        return booster_estimators.LightGBMBoosterRegressor(booster)
    raise _refuse_objective("LightGBM", objective)
