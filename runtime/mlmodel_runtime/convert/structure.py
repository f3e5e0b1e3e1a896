"""Check the numbers inside trusted helper objects that compiled code indexes with.

Called by `formats/skops.py` after skops has built the estimator and before anything
predicts with it. skops can only check *types*: a `sklearn.tree._tree.Tree`
whose child or feature indices point outside its arrays loads fine, and its
first `predict` then reads memory out of bounds (skops's own documentation
warns about this for Tree and TreePredictor). The parity check runs the
original model, and its predictions are reported, so such reads could carry
process memory into the report. The same holds for the neighbors indexes
(KDTree, BallTree) and the weights of their distance metrics, and for the
arrays libsvm is handed by SVC, SVR and their kin.

Checked, for every such object anywhere in the model:
- Tree: at least one node; a node is a leaf on both sides or has two children
  whose indices are larger than its own (scikit-learn writes parents first,
  which also rules out cycles) and below the node count; split features lie
  below the tree's feature count, which equals the owning estimator's
  `n_features_in_`; inside an ensemble, each tree is fitted on exactly the
  columns the ensemble hands it.
- TreePredictor (HistGradientBoosting): the same for its node array, plus
  categorical splits that name a categorical feature and an existing bitset.
- KDTree/BallTree: sample indices, node ranges and the implicit binary-heap
  layout stay inside the data; node bounds and sample weights have matching
  shapes; weighted metrics have one weight per feature.
- libsvm models (SVC, NuSVC, SVR, NuSVR, OneClassSVM): support vectors have
  the estimator's feature count, and the per-class counts, dual coefficients,
  intercepts, probability parameters and support indices match them.
- Text vectorizers must read the strings they are given, not files or
  handles named by them (`input="content"`).
- XGBoost boosters that a wrapper holds: `booster_structure.py`'s checks (the
  LightGBM ones ran on the skops schema, before LightGBM parsed the model).

Integrity problems raise IntegrityError (exit 4), the vectorizer setting
UnsafeFormatError (exit 5).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from mlmodel_runtime.convert import booster_structure
from mlmodel_runtime.convert.errors import IntegrityError, UnsafeFormatError

MAX_OBJECTS = 2_000_000
_LEAF = -1
_WEIGHTED_METRICS = ("SEuclideanDistance", "MinkowskiDistance", "MahalanobisDistance")


def _corrupt(what: str, problem: str) -> IntegrityError:
    return IntegrityError(
        f"the model's {what} is inconsistent: {problem} (a corrupt or crafted file)"
    )


def _children(obj: Any) -> Iterator[Any]:
    if isinstance(obj, dict):
        yield from obj.values()
    elif isinstance(obj, list | tuple | set | frozenset):
        yield from obj
    elif isinstance(obj, np.ndarray):
        if obj.dtype == object:
            yield from obj.flat
    elif hasattr(obj, "__dict__") and not isinstance(obj, type):
        yield from vars(obj).values()


def _flatten(value: Any) -> Iterator[Any]:
    """The items of nested lists, tuples and object arrays (estimators_, _predictors)."""
    if isinstance(value, list | tuple):
        for item in value:
            yield from _flatten(item)
    elif isinstance(value, np.ndarray) and value.dtype == object:
        for item in value.flat:
            yield from _flatten(item)
    else:
        yield value


def _objects(root: Any) -> Iterator[Any]:
    """Every object reachable from `root` through containers and instance attributes."""
    seen: set[int] = set()
    stack = [root]
    while stack:
        obj = stack.pop()
        if obj is None or isinstance(obj, str | bytes | int | float | bool | np.generic):
            continue
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        if len(seen) > MAX_OBJECTS:
            raise IntegrityError(f"the model holds more than {MAX_OBJECTS} objects")
        yield obj
        stack.extend(_children(obj))


def _check_nodes(
    what: str, left: Any, right: Any, feature: Any, is_leaf: Any, n_features: int
) -> None:
    """Children after their parent and inside the array; split features inside the row."""
    n = len(left)
    if n == 0:
        raise _corrupt(what, "it has no nodes")
    index = np.arange(n)
    inner = ~is_leaf
    for side, child in (("left", left), ("right", right)):
        bad = inner & ((child <= index) | (child >= n))
        if bad.any():
            at = int(np.argmax(bad))
            raise _corrupt(what, f"node {at} has {side} child {int(child[at])} (nodes: {n})")
    bad = inner & ((feature < 0) | (feature >= n_features))
    if bad.any():
        at = int(np.argmax(bad))
        raise _corrupt(what, f"node {at} splits on feature {int(feature[at])} of {n_features}")


def check_tree(tree: Any, n_features: int | None = None) -> None:
    """A sklearn.tree._tree.Tree; `n_features` is its owner's n_features_in_ when known."""
    left = np.asarray(tree.children_left)
    right = np.asarray(tree.children_right)
    leaf = left == _LEAF
    if not np.array_equal(leaf, right == _LEAF):
        raise _corrupt("tree", "a node has one child")
    if n_features is not None and int(tree.n_features) != n_features:
        raise _corrupt(
            "tree", f"it splits {tree.n_features} features, its estimator has {n_features}"
        )
    _check_nodes("tree", left, right, np.asarray(tree.feature), leaf, int(tree.n_features))


def _check_hgb(estimator: Any) -> None:
    n_features = int(estimator.n_features_in_)
    categorical = getattr(getattr(estimator, "_bin_mapper", None), "is_categorical_", None)
    categorical = np.zeros(n_features, bool) if categorical is None else np.asarray(categorical)
    if categorical.shape != (n_features,):
        raise _corrupt("histogram gradient boosting", "its categorical mask has the wrong size")
    for predictor in _flatten(estimator._predictors):
        nodes = predictor.nodes
        leaf = nodes["is_leaf"].astype(bool)
        what = "histogram gradient boosting tree"
        _check_nodes(what, nodes["left"], nodes["right"], nodes["feature_idx"], leaf, n_features)
        split_cat = ~leaf & nodes["is_categorical"].astype(bool)
        features = nodes["feature_idx"][split_cat]
        if split_cat.any() and (
            not categorical[features].all()
            or (nodes["bitset_idx"][split_cat] >= len(predictor.raw_left_cat_bitsets)).any()
        ):
            raise _corrupt(what, "a categorical split names a missing bitset or feature")


def _check_metric(metric: Any, n_features: int | None) -> None:
    name = type(metric).__name__
    if not name.startswith(_WEIGHTED_METRICS):
        return
    _, vec, mat = metric.__getstate__()[:3]
    if n_features is None:
        raise _corrupt("distance metric", f"a weighted {name} outside a neighbors index")
    if name.startswith("MahalanobisDistance"):
        ok = np.shape(mat) == (n_features, n_features)
    elif name.startswith("MinkowskiDistance"):
        ok = np.shape(vec) in ((0,), (n_features,))
    else:
        ok = np.shape(vec) == (n_features,)
    if not ok:
        raise _corrupt("distance metric", f"{name} has weights for another number of features")


def check_binary_tree(index: Any, n_features: int | None = None) -> None:
    """A KDTree or BallTree from its pickled state (what compiled queries index with)."""
    state = index.__getstate__()
    data, idx_array, node_data, node_bounds = (np.asarray(a) for a in state[:4])
    n_levels, n_nodes, metric, weights = state[5], state[6], state[11], state[12]
    what = type(index).__name__
    if data.ndim != 2 or idx_array.shape != (data.shape[0],):
        raise _corrupt(what, "its index array does not match its data")
    n, d = data.shape
    if n_features is not None and d != n_features:
        raise _corrupt(what, f"it indexes {d} features, its estimator has {n_features}")
    if n and (idx_array.min() < 0 or idx_array.max() >= n):
        raise _corrupt(what, "a sample index points outside the data")
    if n_nodes != len(node_data) or n_nodes != 2**n_levels - 1:
        raise _corrupt(what, "its node count does not match its levels")
    start, end = node_data["idx_start"], node_data["idx_end"]
    if ((start < 0) | (start > end) | (end > n)).any():
        raise _corrupt(what, "a node's sample range points outside the data")
    inner = np.flatnonzero(node_data["is_leaf"] == 0)
    if inner.size and 2 * int(inner.max()) + 2 >= n_nodes:
        raise _corrupt(what, "an inner node's children are outside the node array")
    if node_bounds.ndim != 3 or node_bounds.shape[1:] != (n_nodes, d):
        raise _corrupt(what, "its node bounds do not match its nodes")
    if weights is not None and np.shape(weights) != (n,):
        raise _corrupt(what, "its sample weights do not match its data")
    _check_metric(metric, d)


def check_estimator(estimator: Any) -> None:
    """Raise unless every index-carrying object in the model is consistent (see above)."""
    from sklearn.metrics import DistanceMetric
    from sklearn.neighbors import BallTree, KDTree
    from sklearn.tree._tree import Tree

    checked: set[int] = set()
    for obj in _objects(estimator):
        attrs = vars(obj) if hasattr(obj, "__dict__") and not isinstance(obj, type) else {}
        width = attrs.get("n_features_in_")
        width = int(width) if isinstance(width, int | np.integer) else None
        tree = attrs.get("tree_")
        if isinstance(tree, Tree):
            check_tree(tree, width)
            checked.add(id(tree))
        index = attrs.get("_tree")
        if isinstance(index, KDTree | BallTree):
            check_binary_tree(index, width)
            checked.add(id(index))
        if "_predictors" in attrs and width is not None:
            _check_hgb(obj)
        if "estimators_" in attrs and width is not None:
            _check_ensemble(obj, width)
        if "_dual_coef_" in attrs and "support_vectors_" in attrs:
            _check_libsvm(obj, attrs, width)
        if isinstance(obj, Tree) and id(obj) not in checked:
            check_tree(obj)
        elif isinstance(obj, KDTree | BallTree) and id(obj) not in checked:
            check_binary_tree(obj)
        elif isinstance(obj, DistanceMetric):
            # The walk does not enter neighbors indexes (compiled types without
            # attributes), so this metric is not the one check_binary_tree saw.
            _check_metric(obj, None)
        if (type(obj).__module__, type(obj).__name__) == ("xgboost.core", "Booster"):
            booster_structure.check_xgboost(obj)
        vectorizer = type(obj).__module__.startswith("sklearn.feature_extraction.text")
        if vectorizer and attrs.get("input", "content") != "content":
            raise UnsafeFormatError(
                f"the model's {type(obj).__name__} reads files or handles named by its "
                f"inputs (input={attrs.get('input')!r}); only input='content' is converted"
            )


def _check_ensemble(ensemble: Any, width: int) -> None:
    """Each tree of an ensemble is fitted on the columns the ensemble gives it."""
    members = list(_flatten(ensemble.estimators_))
    subsets = getattr(ensemble, "estimators_features_", None)
    for i, member in enumerate(members):
        if not hasattr(member, "tree_"):
            continue
        expected = len(subsets[i]) if subsets is not None and i < len(subsets) else width
        if getattr(member, "n_features_in_", None) != expected:
            raise _corrupt(
                f"{type(ensemble).__name__}",
                f"member {i} expects {getattr(member, 'n_features_in_', None)} features, "
                f"it is given {expected}",
            )


def _check_libsvm(model: Any, attrs: dict[str, Any], width: int | None) -> None:
    """The arrays a fitted libsvm model passes to libsvm, which trusts their sizes."""
    what = "support vector machine"
    vectors_shape = np.shape(attrs["support_vectors_"])
    fit_shape = tuple(attrs.get("shape_fit_", ()))
    if len(vectors_shape) != 2 or len(fit_shape) != 2 or vectors_shape[1] != fit_shape[1]:
        raise _corrupt(what, "its support vectors do not match the data it was fitted on")
    if width is not None and fit_shape[1] != width:
        raise _corrupt(what, f"it was fitted on {fit_shape[1]} features, it expects {width}")
    n_vectors = vectors_shape[0]
    support = np.asarray(attrs.get("support_", ()))
    if support.shape != (n_vectors,) or (
        n_vectors and not 0 <= support.min() <= support.max() < fit_shape[0]
    ):
        raise _corrupt(what, "its support indices do not match its support vectors")
    classifier = getattr(type(model), "_impl", None) in ("c_svc", "nu_svc")
    n_support = np.asarray(attrs.get("_n_support", ()))
    n_class = len(n_support) if classifier else 2
    if classifier and (n_class < 2 or int(n_support.sum()) != n_vectors or (n_support < 0).any()):
        raise _corrupt(what, "its per-class support counts do not add up to its support vectors")
    pairs = n_class * (n_class - 1) // 2
    if np.shape(attrs["_dual_coef_"]) != (n_class - 1, n_vectors):
        raise _corrupt(what, "its dual coefficients do not match its support vectors")
    if np.shape(attrs.get("_intercept_", ())) != (pairs,):
        raise _corrupt(what, "its intercepts do not match its classes")
    for name in ("_probA", "_probB"):
        if np.shape(attrs.get(name, ())) not in ((0,), (pairs,)):
            raise _corrupt(what, "its probability parameters do not match its classes")
