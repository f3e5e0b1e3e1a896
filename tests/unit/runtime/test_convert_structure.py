"""Indices inside trusted helper objects are checked before anything predicts with them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from mlmodel_runtime.convert.errors import IntegrityError, UnsafeFormatError
from mlmodel_runtime.convert.structure import check_estimator

pytestmark = pytest.mark.unit


def _data() -> tuple[Any, Any]:
    from sklearn.datasets import load_diabetes

    x, y = load_diabetes(return_X_y=True)
    return x[:200], y[:200]


def _tree_model() -> Any:
    from sklearn.tree import DecisionTreeRegressor

    return DecisionTreeRegressor(max_depth=3, random_state=0).fit(*_data())


def _with_nodes(model: Any, change: Callable[[Any], None], n_features: int | None = None) -> Any:
    """`model` with its tree rebuilt from altered node records (as a crafted file would)."""
    from sklearn.tree._tree import Tree

    tree = model.tree_
    state = tree.__getstate__()
    nodes = state["nodes"].copy()
    change(nodes)
    n_features_arg, n_classes, n_outputs = tree.__reduce__()[1]
    crafted = Tree(n_features if n_features is not None else n_features_arg, n_classes, n_outputs)
    crafted.__setstate__({**state, "nodes": nodes})
    model.tree_ = crafted
    return model


def test_fitted_models_pass() -> None:
    from sklearn.ensemble import (
        BaggingRegressor,
        GradientBoostingRegressor,
        HistGradientBoostingRegressor,
        RandomForestRegressor,
    )
    from sklearn.neighbors import KNeighborsRegressor

    x, y = _data()
    for model in (
        _tree_model(),
        RandomForestRegressor(n_estimators=3, random_state=0).fit(x, y),
        GradientBoostingRegressor(n_estimators=3, random_state=0).fit(x, y),
        BaggingRegressor(n_estimators=3, max_features=4, random_state=0).fit(x, y),
        HistGradientBoostingRegressor(max_iter=3).fit(x, y),
        KNeighborsRegressor(algorithm="kd_tree").fit(x, y),
        KNeighborsRegressor(algorithm="ball_tree", metric="minkowski", p=3).fit(x, y),
    ):
        check_estimator(model)


def _set(field: str, index: int, value: int) -> Callable[[Any], None]:
    def change(nodes: Any) -> None:
        nodes[field][index] = value

    return change


@pytest.mark.parametrize(("change", "problem"), [
    (_set("left_child", 0, 1_000_000), "node 0 has left child 1000000"),
    (_set("right_child", 0, -5), "node 0 has right child -5"),
    (_set("left_child", 0, -1), "a node has one child"),
    (_set("right_child", 1, 0), "node 1 has right child 0"),  # a cycle back to the root
    (_set("feature", 0, 10), "splits on feature 10 of 10"),
    (_set("feature", 0, -3), "splits on feature -3"),
])  # fmt: skip
def test_a_tree_with_indices_outside_its_arrays_is_refused(
    change: Callable[[Any], None], problem: str
) -> None:
    with pytest.raises(IntegrityError, match=problem):
        check_estimator(_with_nodes(_tree_model(), change))


def test_a_tree_that_splits_more_features_than_its_estimator_sees_is_refused() -> None:
    model = _with_nodes(_tree_model(), _set("feature", 0, 50), n_features=100)
    with pytest.raises(IntegrityError, match="100 features, its estimator has 10"):
        check_estimator(model)


def test_forest_members_must_see_the_forests_columns() -> None:
    from sklearn.ensemble import RandomForestRegressor

    forest = RandomForestRegressor(n_estimators=2, random_state=0).fit(*_data())
    member = forest.estimators_[1]
    member.n_features_in_ = 100  # the forest skips the member's own input check
    member.tree_ = _with_nodes(member, _set("feature", 0, 50), n_features=100).tree_
    with pytest.raises(IntegrityError, match="member 1 expects 100 features"):
        check_estimator(forest)


def test_a_neighbors_index_pointing_outside_its_data_is_refused() -> None:
    from sklearn.neighbors import KDTree, KNeighborsRegressor

    model = KNeighborsRegressor(algorithm="kd_tree").fit(*_data())
    state = list(model._tree.__getstate__())
    state[1] = state[1].copy()
    state[1][3] = 10**9
    crafted = KDTree.__new__(KDTree)
    crafted.__setstate__(tuple(state))
    model._tree = crafted
    with pytest.raises(IntegrityError, match="sample index points outside"):
        check_estimator(model)


def test_a_weighted_metric_with_the_wrong_number_of_weights_is_refused() -> None:
    from sklearn.neighbors import BallTree

    x, _ = _data()
    index = BallTree(x, metric="seuclidean", V=np.ones(x.shape[1]))
    state = list(index.__getstate__())
    metric = state[11]
    p, _vec, mat = metric.__getstate__()
    metric.__setstate__((p, np.ones(2), mat))
    crafted = BallTree.__new__(BallTree)
    crafted.__setstate__(tuple(state))
    with pytest.raises(IntegrityError, match="weights for another number of features"):
        check_estimator({"index": crafted})


def test_histogram_boosting_nodes_are_checked() -> None:
    from sklearn.ensemble import HistGradientBoostingRegressor

    model = HistGradientBoostingRegressor(max_iter=2).fit(*_data())
    model._predictors[1][0].nodes["feature_idx"][0] = 99
    with pytest.raises(IntegrityError, match="splits on feature 99 of 10"):
        check_estimator(model)


def test_a_text_vectorizer_that_opens_files_is_refused() -> None:
    from sklearn.feature_extraction.text import CountVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    model = make_pipeline(CountVectorizer(), LogisticRegression())
    model.fit(["alpha beta", "beta gamma", "gamma alpha", "alpha"], [0, 1, 1, 0])
    check_estimator(model)
    model.steps[0][1].input = "filename"
    with pytest.raises(UnsafeFormatError, match="input='filename'"):
        check_estimator(model)


def _svc() -> Any:
    from sklearn.svm import SVC

    x, _ = _data()
    return SVC(probability=True, random_state=0).fit(x, (x[:, 0] > 0).astype(int) + (x[:, 1] > 0))


@pytest.mark.parametrize(("attribute", "cut", "problem"), [
    ("_dual_coef_", np.s_[:, :5], "dual coefficients"),
    ("_intercept_", np.s_[:1], "intercepts"),
    ("_probA", np.s_[:2], "probability parameters"),
    ("_n_support", np.s_[:2], "per-class support counts"),
    ("support_vectors_", np.s_[:, :3], "support vectors do not match"),
])  # fmt: skip
def test_libsvm_arrays_must_agree_in_size(attribute: str, cut: Any, problem: str) -> None:
    from sklearn.svm import SVR, OneClassSVM

    x, y = _data()
    for fitted in (_svc(), SVR().fit(x, y), OneClassSVM().fit(x)):
        check_estimator(fitted)
    model = _svc()
    setattr(model, attribute, getattr(model, attribute)[cut])
    with pytest.raises(IntegrityError, match=problem):
        check_estimator(model)
