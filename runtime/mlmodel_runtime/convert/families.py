"""Model families beyond scikit-learn: XGBoost and LightGBM, the one registry of them.

skl2onnx converts what it has a converter for; onnxmltools has the converters for
the boosting libraries, and registering them with skl2onnx lets one conversion
path handle a booster alone, inside a Pipeline, or after a ColumnTransformer,
with the same schema inference and the same parity proof as any scikit-learn
estimator. A family is one entry in `FAMILIES`: its library, its scikit-learn
wrappers and the onnxmltools converter, and the types a fitted wrapper holds
(trusted by `skops_trust.py`: the boosters rebuild themselves from their own
model bytes with their C++ loaders, the same ones that read their native
files).

Native booster files (`xgb.Booster.save_model`, `lgb.Booster.save_model`) are
the formats `xgboost` and `lightgbm` (`formats/boosters.py`): they load into a
wrapper, so from then on they are estimators like the rest (a native LightGBM
booster into one of `booster_estimators.py`'s, registered here too).

The libraries are optional: a runtime without one lacks its family (a model
that needs it is refused as unsupported), and nothing here imports them: a
family is registered once a model that holds its estimators has loaded it.
"""

from __future__ import annotations

import importlib
import sys
from dataclasses import dataclass
from typing import Final


@dataclass(frozen=True)
class Family:
    name: str  # the library, as users pip-install and import it
    wrappers: tuple[tuple[str, str, str], ...]  # (module, class, "classifier"|"regressor")
    converter: tuple[str, str]  # (module, function) of the onnxmltools operator converter
    # Types a fitted wrapper saved with skops holds beyond the wrapper itself.
    held_types: tuple[tuple[str, tuple[str, ...]], ...]


_ADAPTERS: Final = "mlmodel_runtime.convert.booster_estimators"  # native LightGBM files

FAMILIES: Final[tuple[Family, ...]] = (
    Family(
        name="xgboost",
        wrappers=(
            ("xgboost.sklearn", "XGBClassifier", "classifier"),
            ("xgboost.sklearn", "XGBRegressor", "regressor"),
            ("xgboost.sklearn", "XGBRFClassifier", "classifier"),
            ("xgboost.sklearn", "XGBRFRegressor", "regressor"),
        ),
        converter=(
            "onnxmltools.convert.xgboost.operator_converters.XGBoost",
            "convert_xgboost",
        ),
        held_types=(("xgboost.core", ("Booster",)),),
    ),
    Family(
        name="lightgbm",
        wrappers=(
            ("lightgbm.sklearn", "LGBMClassifier", "classifier"),
            ("lightgbm.sklearn", "LGBMRegressor", "regressor"),
            (_ADAPTERS, "LightGBMBoosterClassifier", "classifier"),
            (_ADAPTERS, "LightGBMBoosterRegressor", "regressor"),
        ),
        converter=(
            "onnxmltools.convert.lightgbm.operator_converters.LightGbm",
            "convert_lightgbm",
        ),
        held_types=(("lightgbm.basic", ("Booster",)), ("collections", ("OrderedDict",))),
    ),
)


def available(family: Family) -> bool:
    """Whether this runtime has the library and onnxmltools' converter for it."""
    try:
        importlib.import_module(family.name)
        importlib.import_module(family.converter[0])
    except ImportError:
        return False
    return True


def trusted_type_names() -> frozenset[str]:
    """The names skops gives the types it may build for the families: the public
    wrappers and the types they hold (our own booster adapters are never in a
    file). Names, not imports: judging a scikit-learn file must not import
    XGBoost and LightGBM."""
    names: set[str] = set()
    for family in FAMILIES:
        public = [(m, c) for m, c, _ in family.wrappers if m.startswith(family.name)]
        names.update(f"{module}.{cls}" for module, cls in public)
        names.update(f"{module}.{cls}" for module, classes in family.held_types for cls in classes)
    return frozenset(names)


_registered: set[str] = set()


def register_converters() -> tuple[str, ...]:
    """Register with skl2onnx the wrappers of every family whose library this process
    has loaded, once each; the names of the families registered so far. A model that
    holds a family's estimator loaded its library while it was read, so a plain
    scikit-learn model's conversion imports neither XGBoost nor LightGBM (about 0.1-0.2
    s of every init container's start, measured here)."""
    from skl2onnx import update_registered_converter
    from skl2onnx.common.shape_calculator import (
        calculate_linear_classifier_output_shapes,
        calculate_linear_regressor_output_shapes,
    )

    from mlmodel_runtime.convert import gcpause

    for family in FAMILIES:
        if family.name in _registered or family.name not in sys.modules:
            continue
        if not available(family):
            continue
        with gcpause.while_importing():
            converter_module = importlib.import_module(family.converter[0])
        converter = getattr(converter_module, family.converter[1])
        for module, cls_name, kind in family.wrappers:
            cls = getattr(importlib.import_module(module), cls_name)
            if kind == "classifier":
                update_registered_converter(
                    cls,
                    f"{family.name}_{cls_name}",
                    calculate_linear_classifier_output_shapes,
                    converter,
                    options={"nocl": [True, False], "zipmap": [True, False, "columns"]},
                )
            else:
                update_registered_converter(
                    cls,
                    f"{family.name}_{cls_name}",
                    calculate_linear_regressor_output_shapes,
                    converter,
                )
        _registered.add(family.name)
    return tuple(sorted(_registered))
