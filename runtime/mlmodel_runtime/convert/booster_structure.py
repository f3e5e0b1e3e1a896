"""Check the trees of XGBoost and LightGBM boosters before anything predicts with them.

What `structure.py` does for scikit-learn's trees, for the boosters: their libraries
load a model file without bounds-checking the node indices in it, and predict then
follows them. Measured here: an XGBoost JSON model whose first node's left child is
100000 loads, and its first `predict_proba` dies of a segmentation fault (a read
out of bounds, which could as well have returned process memory into the parity
report); half a LightGBM text model loads, and the next call into it aborts the
process. So, before the library sees the model or before anything predicts:

- XGBoost (from the loaded booster's own JSON): a tree booster (gbtree or dart; a
  linear booster has no trees to convert); per tree, node arrays of the declared
  length, a node is a leaf on both sides or has two children after itself and
  inside the tree, split features inside the model's feature count; categorical
  splits' segments inside the category array; no vector leaves (multi-target
  trees, which the converter does not handle).
- LightGBM (from the model text, before LightGBM parses it): the header's tree
  sizes tile the tree section exactly, each block the tree it should be; per tree,
  split arrays of num_leaves - 1 entries and leaf values of num_leaves, children
  after their parent (internal) or naming an existing leaf, split features inside
  max_feature_idx, categorical thresholds naming an existing category range whose
  words exist; no linear trees (the converter does not handle them).

A violation raises IntegrityError (exit 4); a booster kind the converter cannot
handle, UnsupportedModelError (exit 6).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from mlmodel_runtime.convert.errors import IntegrityError, UnsupportedModelError

_TREE_BOOSTERS = ("gbtree", "dart")


def _corrupt(library: str, problem: str) -> IntegrityError:
    return IntegrityError(
        f"the {library} model is inconsistent: {problem} (a corrupt or crafted file)"
    )


def _check_children(
    library: str, tree: int, left: Any, right: Any, n_inner: int, n_nodes: int
) -> None:
    """Inner node i's children are inner nodes after it (< n_inner), or leaves."""
    index = np.arange(len(left))
    for side, child in (("left", left), ("right", right)):
        inner = child >= 0
        bad = inner & ((child <= index) | (child >= n_inner))
        if bad.any():
            at = int(np.argmax(bad))
            raise _corrupt(
                library, f"tree {tree} node {at} has {side} child {int(child[at])} of {n_nodes}"
            )


# ----------------------------------------------------------------------------- XGBoost


def check_xgboost(booster: Any) -> None:
    """A loaded xgboost.Booster (or a wrapper's), judged from its own JSON."""
    try:
        model = json.loads(bytes(booster.save_raw("json")))
        learner = model["learner"]
        n_features = int(learner["learner_model_param"]["num_feature"])
        booster_kind = learner["gradient_booster"]["name"]
    except (KeyError, TypeError, ValueError) as exc:
        raise _corrupt("XGBoost", f"its JSON lacks {exc}") from exc
    if booster_kind not in _TREE_BOOSTERS:
        raise UnsupportedModelError(
            f"the XGBoost model is a {booster_kind} booster; only tree boosters "
            "(gbtree, dart) are converted (docs/models.md)"
        )
    gradient = learner["gradient_booster"]
    trees = (gradient["gbtree"] if booster_kind == "dart" else gradient)["model"]["trees"]
    for number, tree in enumerate(trees):
        _check_xgboost_tree(number, tree, n_features)


def _check_xgboost_tree(number: int, tree: Mapping[str, Any], n_features: int) -> None:
    param = tree.get("tree_param") or {}
    if int(param.get("size_leaf_vector", 1) or 1) > 1:
        raise UnsupportedModelError(
            "the XGBoost model has vector leaves (multi_strategy=multi_output_tree); "
            "its converter handles one output per tree"
        )
    n = int(param.get("num_nodes", -1))
    arrays = {k: np.asarray(tree.get(k, ()), dtype=np.int64) for k in
              ("left_children", "right_children", "split_indices")}  # fmt: skip
    if n <= 0 or any(len(a) != n for a in arrays.values()):
        sizes = {k: len(a) for k, a in arrays.items()}
        raise _corrupt("XGBoost", f"tree {number} declares {n} nodes, its arrays hold {sizes}")
    left, right = arrays["left_children"], arrays["right_children"]
    leaf = left == -1
    if not np.array_equal(leaf, right == -1):
        raise _corrupt("XGBoost", f"tree {number} has a node with one child")
    # Children are node indices here: any node after the parent, inside the tree.
    _check_children("XGBoost", number, np.where(leaf, -1, left), np.where(leaf, -1, right), n, n)
    feature = arrays["split_indices"]
    bad = ~leaf & ((feature < 0) | (feature >= n_features))
    if bad.any():
        at = int(np.argmax(bad))
        raise _corrupt(
            "XGBoost", f"tree {number} node {at} splits on feature {feature[at]} of {n_features}"
        )
    _check_xgboost_categories(number, tree)


def _check_xgboost_categories(number: int, tree: Mapping[str, Any]) -> None:
    nodes = np.asarray(tree.get("categories_nodes", ()), dtype=np.int64)
    if not len(nodes):
        return
    segments = np.asarray(tree.get("categories_segments", ()), dtype=np.int64)
    sizes = np.asarray(tree.get("categories_sizes", ()), dtype=np.int64)
    categories = len(tree.get("categories", ()))
    n = int((tree.get("tree_param") or {}).get("num_nodes", 0))
    if len(segments) != len(nodes) or len(sizes) != len(nodes):
        raise _corrupt("XGBoost", f"tree {number}'s categorical splits have mismatched arrays")
    if ((nodes < 0) | (nodes >= n) | (segments < 0) | (sizes < 0)).any() or (
        segments + sizes > categories
    ).any():
        raise _corrupt("XGBoost", f"tree {number}'s categorical splits point outside its arrays")


# ---------------------------------------------------------------------------- LightGBM

LIGHTGBM_BOOSTER = ("lightgbm.basic", "Booster")


def check_skops_schema(schema: Any) -> None:
    """The LightGBM boosters a skops file holds, checked in its schema.json before
    skops hands their model text to LightGBM (which parses it while loading)."""
    stack = [schema]
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            stack.extend(node)
            continue
        if not isinstance(node, dict):
            continue
        if (node.get("__module__"), node.get("__class__")) == LIGHTGBM_BOOSTER:
            _check_skops_booster(node)
        stack.extend(v for v in node.values() if isinstance(v, dict | list))


def _check_skops_booster(node: Mapping[str, Any]) -> None:
    state = (node.get("content") or {}).get("content") or {}
    handle = state.get("_handle", state.get("handle")) if isinstance(state, dict) else None
    if handle is None or handle.get("__loader__") == "NoneNode":
        return  # an unfitted booster holds no model
    try:
        text = json.loads(handle["content"]) if handle.get("is_json") else handle["content"]
    except (KeyError, TypeError, ValueError) as exc:
        raise _corrupt("LightGBM", "a booster's model text is unreadable") from exc
    if not isinstance(text, str):
        raise _corrupt("LightGBM", "a booster's model is not text")
    check_lightgbm_text(text)


def check_lightgbm_text(text: str) -> None:
    """A LightGBM text model (`Booster.save_model`, `model_to_string`), before parsing."""
    head, found, _ = text.partition("\nTree=")
    if not text.startswith("tree\n") or not found:
        raise _corrupt("LightGBM", "it has no trees")
    header = _fields(head)
    try:
        max_feature = int(header["max_feature_idx"])
        sizes = [int(v) for v in header["tree_sizes"].split()]
    except (KeyError, ValueError) as exc:
        raise _corrupt("LightGBM", f"its header lacks a valid {exc}") from exc
    start = len(head) + 1
    end = text.find("\nend of trees", start)
    if end < 0:
        raise _corrupt("LightGBM", "'end of trees' is missing (truncated?)")
    if start + sum(sizes) != end + 1 or any(s <= 0 for s in sizes):
        raise _corrupt("LightGBM", "the header's tree sizes do not tile its trees")
    position = start
    for number, size in enumerate(sizes):
        block = text[position : position + size]
        if not block.startswith(f"Tree={number}\n"):
            raise _corrupt("LightGBM", f"tree {number} is not where the header puts it")
        _check_lightgbm_tree(number, _fields(block), max_feature)
        position += size


def _fields(block: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in block.splitlines() if "=" in line)


def _ints(tree: Mapping[str, str], key: str, count: int, number: int) -> Any:
    try:
        values = np.asarray([int(v) for v in tree.get(key, "").split()], dtype=np.int64)
    except ValueError as exc:
        raise _corrupt("LightGBM", f"tree {number}'s {key} is not integers") from exc
    if len(values) != count:
        raise _corrupt("LightGBM", f"tree {number} has {len(values)} {key}, expected {count}")
    return values


def _count(tree: Mapping[str, str], key: str) -> int:
    values: Sequence[str] = tree.get(key, "").split()
    return len(values)


def _check_lightgbm_tree(number: int, tree: Mapping[str, str], max_feature: int) -> None:
    try:
        leaves = int(tree["num_leaves"])
        n_cat = int(tree.get("num_cat", "0"))
    except (KeyError, ValueError) as exc:
        raise _corrupt("LightGBM", f"tree {number} lacks a valid {exc}") from exc
    if tree.get("is_linear", "0") != "0":
        raise UnsupportedModelError(
            "the LightGBM model has linear trees (linear_tree=true); its converter "
            "handles constant leaves only"
        )
    if leaves < 1 or n_cat < 0 or _count(tree, "leaf_value") != leaves:
        raise _corrupt("LightGBM", f"tree {number} has {leaves} leaves and mismatched values")
    inner = leaves - 1
    if inner == 0:
        return
    left = _ints(tree, "left_child", inner, number)
    right = _ints(tree, "right_child", inner, number)
    _check_children("LightGBM", number, left, right, inner, inner + leaves)
    for side, child in (("left", left), ("right", right)):
        leaf = ~child[child < 0]  # a leaf is stored as ~index
        if (leaf >= leaves).any():
            raise _corrupt("LightGBM", f"tree {number} has a {side} leaf beyond its {leaves}")
    feature = _ints(tree, "split_feature", inner, number)
    if ((feature < 0) | (feature > max_feature)).any():
        raise _corrupt("LightGBM", f"tree {number} splits on a feature beyond {max_feature}")
    if _count(tree, "threshold") != inner:
        raise _corrupt("LightGBM", f"tree {number}'s thresholds do not match its splits")
    decision = _ints(tree, "decision_type", inner, number)
    categorical = (decision & 1).astype(bool)
    if not categorical.any():
        return
    boundaries = _ints(tree, "cat_boundaries", n_cat + 1, number)
    words = _count(tree, "cat_threshold")
    try:
        ranges = np.asarray([float(v) for v in tree["threshold"].split()])[categorical]
    except (KeyError, ValueError) as exc:
        raise _corrupt("LightGBM", f"tree {number}'s thresholds are not numbers") from exc
    if (
        (ranges < 0).any()
        or (ranges >= n_cat).any()
        or (np.diff(boundaries) < 0).any()
        or boundaries[0] != 0
        or boundaries[-1] != words
    ):
        raise _corrupt("LightGBM", f"tree {number}'s categorical splits point outside its arrays")
