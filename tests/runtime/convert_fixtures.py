"""Shared helpers for the `mlmodel-runtime fetch` and `convert` tests: the estimator
matrix, model files (good and hostile), running the CLI (as a process or
in-process), local HTTP servers.

The matrix is also the source of docs/models.md (see gen_models_doc.py): an
estimator is listed as supported only because a test converts it and proves
parity, and as unsupported only because a test sees it refused with exit 6.
"""

from __future__ import annotations

import contextlib
import http.server
import io
import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-m", "mlmodel_runtime.cli", "convert"]
FETCH_CLI = [sys.executable, "-m", "mlmodel_runtime.cli", "fetch"]


# --------------------------------------------------------------------------- data


def iris() -> tuple[Any, Any]:
    from sklearn.datasets import load_iris

    x, y = load_iris(return_X_y=True)
    return x, y


def diabetes() -> tuple[Any, Any]:
    from sklearn.datasets import load_diabetes

    x, y = load_diabetes(return_X_y=True)
    return x, y


def customers(rows: int = 300, seed: int = 7) -> tuple[pd.DataFrame, Any]:
    """A DataFrame with numeric and string columns and a binary target."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "age": rng.integers(18, 80, rows).astype(float),
            "income": rng.normal(40.0, 12.0, rows),
            "city": rng.choice(["paris", "lyon", "nice"], rows),
            "plan": rng.choice(["free", "pro"], rows),
        }
    )
    churn = (frame["plan"] == "free") & (frame["income"] < 42) | (frame["city"] == "nice")
    return frame, churn.astype(int).to_numpy()


# ------------------------------------------------------------------------- matrix


@dataclass(frozen=True)
class MatrixCase:
    id: str
    estimator: str  # dotted name as users write it; docs/models.md lists these
    task: str  # "classification" | "regression"
    build: Callable[[], Any]  # returns the fitted model
    supported: bool = True
    note: str = ""


def _iris_fit(model: Any) -> Any:
    x, y = iris()
    return model.fit(x, y)


def _diabetes_fit(model: Any) -> Any:
    x, y = diabetes()
    return model.fit(x, y)


def _column_transformer() -> Any:
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    frame, y = customers()
    pre = ColumnTransformer(
        [
            ("num", StandardScaler(), ["age", "income"]),
            ("cat", OneHotEncoder(handle_unknown="ignore"), ["city", "plan"]),
        ]
    )
    return Pipeline([("pre", pre), ("clf", LogisticRegression(max_iter=500))]).fit(frame, y)


def _dataframe_regressor() -> Any:
    from sklearn.datasets import load_diabetes
    from sklearn.ensemble import RandomForestRegressor

    data = load_diabetes(as_frame=True)
    model = RandomForestRegressor(n_estimators=10, max_depth=6, random_state=0)
    return model.fit(data.data, data.target)


def _string_labels() -> Any:
    from sklearn.linear_model import LogisticRegression

    x, y = iris()
    names = np.array(["setosa", "versicolor", "virginica"])[y]
    return LogisticRegression(max_iter=500).fit(x, names)


def _binary() -> Any:
    from sklearn.datasets import make_classification
    from sklearn.linear_model import LogisticRegression

    x, y = make_classification(n_samples=200, n_features=6, random_state=0)
    return LogisticRegression(max_iter=500).fit(x, y)


def _m(module: str, name: str, **kwargs: Any) -> Any:
    import importlib

    return getattr(importlib.import_module(module), name)(**kwargs)


def _pipeline_classifier() -> Any:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return _iris_fit(make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)))


def _pipeline_regressor() -> Any:
    from sklearn.decomposition import PCA
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import MinMaxScaler
    from sklearn.svm import SVR

    return _diabetes_fit(make_pipeline(MinMaxScaler(), PCA(n_components=5), SVR(C=10.0)))


def _boosted_column_transformer(family: str) -> Any:
    """ColumnTransformer (scaled numbers, one-hot strings) + a boosted classifier."""
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    frame, y = customers()
    pre = ColumnTransformer(
        [
            ("num", StandardScaler(), ["age", "income"]),
            ("cat", OneHotEncoder(handle_unknown="ignore", sparse_output=False), ["city", "plan"]),
        ]
    )
    return Pipeline([("pre", pre), ("clf", _booster(family, "classifier"))]).fit(frame, y)


def _booster(family: str, kind: str, **kwargs: Any) -> Any:
    """A small XGBoost or LightGBM scikit-learn wrapper, single-threaded and seeded."""
    if family == "xgboost":
        name = "XGBClassifier" if kind == "classifier" else "XGBRegressor"
        return _m("xgboost", name, n_estimators=20, max_depth=3, n_jobs=1, random_state=0,
                  **kwargs)  # fmt: skip
    name = "LGBMClassifier" if kind == "classifier" else "LGBMRegressor"
    return _m("lightgbm", name, n_estimators=20, num_leaves=8, n_jobs=1, random_state=0,
              verbose=-1, **kwargs)  # fmt: skip


def _boosted_pipeline(family: str) -> Any:
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return _diabetes_fit(make_pipeline(StandardScaler(), _booster(family, "regressor")))


def _boosted_binary(family: str) -> Any:
    from sklearn.datasets import make_classification

    x, y = make_classification(n_samples=200, n_features=6, random_state=0)
    return _booster(family, "classifier").fit(x, y)


MATRIX: tuple[MatrixCase, ...] = (
    MatrixCase("linear_regression", "sklearn.linear_model.LinearRegression", "regression",
               lambda: _diabetes_fit(_m("sklearn.linear_model", "LinearRegression"))),
    MatrixCase("ridge", "sklearn.linear_model.Ridge", "regression",
               lambda: _diabetes_fit(_m("sklearn.linear_model", "Ridge"))),
    MatrixCase("logistic_regression", "sklearn.linear_model.LogisticRegression", "classification",
               lambda: _iris_fit(_m("sklearn.linear_model", "LogisticRegression", max_iter=500))),
    MatrixCase("logistic_regression_binary", "sklearn.linear_model.LogisticRegression",
               "classification", _binary, note="binary"),
    MatrixCase("logistic_regression_string_labels", "sklearn.linear_model.LogisticRegression",
               "classification", _string_labels, note="string class labels"),
    MatrixCase("linear_svc", "sklearn.svm.LinearSVC", "classification",
               lambda: _iris_fit(_m("sklearn.svm", "LinearSVC")),
               note="labels only: no predict_proba to compare"),
    MatrixCase("svc", "sklearn.svm.SVC", "classification",
               lambda: _iris_fit(_m("sklearn.svm", "SVC", probability=True, random_state=0)),
               note="probability=True"),
    MatrixCase("svc_labels_only", "sklearn.svm.SVC", "classification",
               lambda: _iris_fit(_m("sklearn.svm", "SVC")),
               note="probability=False: no predict_proba"),
    MatrixCase("ridge_classifier", "sklearn.linear_model.RidgeClassifier", "classification",
               lambda: _iris_fit(_m("sklearn.linear_model", "RidgeClassifier")),
               note="no predict_proba"),
    MatrixCase("sgd_classifier", "sklearn.linear_model.SGDClassifier", "classification",
               lambda: _iris_fit(_m("sklearn.linear_model", "SGDClassifier", random_state=0)),
               note="hinge loss: no predict_proba"),
    MatrixCase("perceptron", "sklearn.linear_model.Perceptron", "classification",
               lambda: _iris_fit(_m("sklearn.linear_model", "Perceptron", random_state=0)),
               note="no predict_proba"),
    MatrixCase("nearest_centroid", "sklearn.neighbors.NearestCentroid", "classification",
               lambda: _iris_fit(_m("sklearn.neighbors", "NearestCentroid")),
               supported=False, note="skl2onnx has no converter for it"),
    MatrixCase("svr", "sklearn.svm.SVR", "regression",
               lambda: _diabetes_fit(_m("sklearn.svm", "SVR", C=10.0))),
    MatrixCase("decision_tree_classifier", "sklearn.tree.DecisionTreeClassifier",
               "classification",
               lambda: _iris_fit(_m("sklearn.tree", "DecisionTreeClassifier", random_state=0))),
    MatrixCase("decision_tree_regressor", "sklearn.tree.DecisionTreeRegressor", "regression",
               lambda: _diabetes_fit(_m("sklearn.tree", "DecisionTreeRegressor", max_depth=6,
                                        random_state=0))),
    MatrixCase("random_forest_classifier", "sklearn.ensemble.RandomForestClassifier",
               "classification",
               lambda: _iris_fit(_m("sklearn.ensemble", "RandomForestClassifier",
                                    n_estimators=20, random_state=0))),
    MatrixCase("random_forest_regressor", "sklearn.ensemble.RandomForestRegressor", "regression",
               lambda: _diabetes_fit(_m("sklearn.ensemble", "RandomForestRegressor",
                                        n_estimators=20, max_depth=6, random_state=0))),
    MatrixCase("gradient_boosting_classifier", "sklearn.ensemble.GradientBoostingClassifier",
               "classification",
               lambda: _iris_fit(_m("sklearn.ensemble", "GradientBoostingClassifier",
                                    n_estimators=20, random_state=0))),
    MatrixCase("gradient_boosting_regressor", "sklearn.ensemble.GradientBoostingRegressor",
               "regression",
               lambda: _diabetes_fit(_m("sklearn.ensemble", "GradientBoostingRegressor",
                                        n_estimators=30, random_state=0))),
    MatrixCase("hist_gradient_boosting_classifier",
               "sklearn.ensemble.HistGradientBoostingClassifier", "classification",
               lambda: _iris_fit(_m("sklearn.ensemble", "HistGradientBoostingClassifier",
                                    max_iter=10, random_state=0)),
               supported=False, note="skl2onnx 1.20 fails on scikit-learn 1.9's trees"),
    MatrixCase("hist_gradient_boosting_regressor",
               "sklearn.ensemble.HistGradientBoostingRegressor", "regression",
               lambda: _diabetes_fit(_m("sklearn.ensemble", "HistGradientBoostingRegressor",
                                        max_iter=10, random_state=0)),
               supported=False, note="skl2onnx 1.20 fails on scikit-learn 1.9's trees"),
    MatrixCase("knn_classifier", "sklearn.neighbors.KNeighborsClassifier", "classification",
               lambda: _iris_fit(_m("sklearn.neighbors", "KNeighborsClassifier"))),
    MatrixCase("knn_regressor", "sklearn.neighbors.KNeighborsRegressor", "regression",
               lambda: _diabetes_fit(_m("sklearn.neighbors", "KNeighborsRegressor"))),
    MatrixCase("gaussian_nb", "sklearn.naive_bayes.GaussianNB", "classification",
               lambda: _iris_fit(_m("sklearn.naive_bayes", "GaussianNB"))),
    MatrixCase("mlp_classifier", "sklearn.neural_network.MLPClassifier", "classification",
               lambda: _iris_fit(_m("sklearn.neural_network", "MLPClassifier",
                                    hidden_layer_sizes=(16,), max_iter=300, random_state=0))),
    MatrixCase("mlp_regressor", "sklearn.neural_network.MLPRegressor", "regression",
               lambda: _diabetes_fit(_m("sklearn.neural_network", "MLPRegressor",
                                        hidden_layer_sizes=(16,), max_iter=300,
                                        random_state=0))),
    MatrixCase("pipeline_scaler_logistic", "sklearn.pipeline.Pipeline", "classification",
               _pipeline_classifier, note="StandardScaler + LogisticRegression"),
    MatrixCase("pipeline_minmax_pca_svr", "sklearn.pipeline.Pipeline", "regression",
               _pipeline_regressor, note="MinMaxScaler + PCA + SVR"),
    MatrixCase("column_transformer", "sklearn.pipeline.Pipeline", "classification",
               _column_transformer,
               note="ColumnTransformer(StandardScaler, OneHotEncoder on strings) + "
                    "LogisticRegression, fitted on a DataFrame"),
    MatrixCase("dataframe_random_forest", "sklearn.ensemble.RandomForestRegressor",
               "regression", _dataframe_regressor,
               note="fitted on a DataFrame: one input per column"),
    MatrixCase("xgboost_classifier", "xgboost.sklearn.XGBClassifier", "classification",
               lambda: _iris_fit(_booster("xgboost", "classifier"))),
    MatrixCase("xgboost_binary", "xgboost.sklearn.XGBClassifier", "classification",
               lambda: _boosted_binary("xgboost"), note="binary"),
    MatrixCase("xgboost_regressor", "xgboost.sklearn.XGBRegressor", "regression",
               lambda: _diabetes_fit(_booster("xgboost", "regressor"))),
    MatrixCase("xgboost_pipeline", "sklearn.pipeline.Pipeline", "regression",
               lambda: _boosted_pipeline("xgboost"), note="StandardScaler + XGBRegressor"),
    MatrixCase("xgboost_column_transformer", "sklearn.pipeline.Pipeline", "classification",
               lambda: _boosted_column_transformer("xgboost"),
               note="ColumnTransformer(StandardScaler, OneHotEncoder on strings) + "
                    "XGBClassifier, fitted on a DataFrame"),
    MatrixCase("lightgbm_classifier", "lightgbm.sklearn.LGBMClassifier", "classification",
               lambda: _iris_fit(_booster("lightgbm", "classifier"))),
    MatrixCase("lightgbm_binary", "lightgbm.sklearn.LGBMClassifier", "classification",
               lambda: _boosted_binary("lightgbm"), note="binary"),
    MatrixCase("lightgbm_regressor", "lightgbm.sklearn.LGBMRegressor", "regression",
               lambda: _diabetes_fit(_booster("lightgbm", "regressor"))),
    MatrixCase("lightgbm_pipeline", "sklearn.pipeline.Pipeline", "regression",
               lambda: _boosted_pipeline("lightgbm"), note="StandardScaler + LGBMRegressor"),
    MatrixCase("lightgbm_column_transformer", "sklearn.pipeline.Pipeline", "classification",
               lambda: _boosted_column_transformer("lightgbm"),
               note="ColumnTransformer(StandardScaler, OneHotEncoder on strings) + "
                    "LGBMClassifier, fitted on a DataFrame"),
)  # fmt: skip


# ----------------------------------------------------------- native booster files


@dataclass(frozen=True)
class NativeCase:
    """A booster trained with its library's own API and saved with its save_model."""

    id: str
    format: str  # "xgboost" | "lightgbm"
    task: str
    objective: str
    suffix: str  # the file name's ending, which picks XGBoost's JSON or UBJSON
    supported: bool = True
    note: str = ""

    def write(self, path: Path) -> tuple[Path, Any, Any]:
        """The saved file, the booster, and rows of the data it was trained on."""
        x, y = iris() if self.task == "classification" else diabetes()
        if self.objective.startswith("binary"):
            y = (y == 2).astype(int)
        ranking = "rank" in self.objective
        if ranking:
            y = (y > np.median(y)).astype(int)
        target = path.with_suffix(self.suffix)
        data: Any
        booster: Any
        if self.format == "xgboost":
            import xgboost

            params: dict[str, Any] = {"objective": self.objective, "max_depth": 3, "nthread": 1}
            if self.objective.startswith("multi:"):
                params["num_class"] = 3
            data = xgboost.DMatrix(x, label=y)
            if ranking:
                data.set_group([len(y)])
            booster = xgboost.train(params, data, num_boost_round=15)
        else:
            import lightgbm

            params = {"objective": self.objective, "num_leaves": 8, "verbose": -1,
                      "num_threads": 1, "seed": 0}  # fmt: skip
            if self.objective == "multiclass":
                params["num_class"] = 3
            data = lightgbm.Dataset(x, label=y)
            if ranking:
                data.set_group([len(y)])
            booster = lightgbm.train(params, data, num_boost_round=15)
        booster.save_model(str(target))
        return target, booster, x


NATIVE_MATRIX: tuple[NativeCase, ...] = (
    NativeCase("xgboost_native_multiclass", "xgboost", "classification", "multi:softprob",
               ".json"),
    NativeCase("xgboost_native_binary", "xgboost", "classification", "binary:logistic", ".ubj",
               note="UBJSON"),
    NativeCase("xgboost_native_regression", "xgboost", "regression", "reg:squarederror",
               ".json"),
    NativeCase("xgboost_native_ranking", "xgboost", "other", "rank:pairwise", ".json",
               supported=False, note="ranking: neither a classifier nor a regressor"),
    NativeCase("lightgbm_native_multiclass", "lightgbm", "classification", "multiclass",
               ".txt"),
    NativeCase("lightgbm_native_binary", "lightgbm", "classification", "binary", ".txt"),
    NativeCase("lightgbm_native_regression", "lightgbm", "regression", "regression", ".txt"),
    NativeCase("lightgbm_native_ranking", "lightgbm", "other", "lambdarank", ".txt",
               supported=False, note="ranking: neither a classifier nor a regressor"),
)  # fmt: skip


# ---------------------------------------------------------------------- model files


def dump_skops(model: Any, path: Path) -> Path:
    import skops.io

    skops.io.dump(model, path)
    return path


def dump_joblib(model: Any, path: Path) -> Path:
    import joblib

    joblib.dump(model, path)
    return path


def sha256_of(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


# ------------------------------------------------------------- hostile model files


def edit_skops(source: Path, target: Path, edit: Callable[[dict[str, Any]], None]) -> Path:
    """Copy a skops archive, changing its schema.json with `edit` (as an attacker would)."""
    import zipfile

    with zipfile.ZipFile(source) as archive:
        members = {info.filename: archive.read(info) for info in archive.infolist()}
    schema = json.loads(members["schema.json"])
    edit(schema)
    members["schema.json"] = json.dumps(schema).encode()
    with zipfile.ZipFile(target, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return target


def _json_node(value: Any) -> dict[str, Any]:
    return {"__class__": type(value).__name__, "__module__": "builtins",
            "__loader__": "JsonNode", "content": json.dumps(value), "is_json": True}  # fmt: skip


def constructor_node(module: str, name: str, *args: Any) -> dict[str, Any]:
    """A skops node that makes skops call `module.name(*args)` while loading."""
    return {
        "__class__": name, "__module__": module, "__loader__": "ConstructorFromReduceNode",
        "content": {"__class__": "tuple", "__module__": "builtins", "__loader__": "TupleNode",
                    "content": [_json_node(a) for a in args]},
    }  # fmt: skip


def memmap_coefficients(model_file: Path, target: Path, secret: Path) -> Path:
    """The linear model in `model_file` with `coef_ = numpy.memmap(secret, "uint8", "r")`."""

    def edit(schema: dict[str, Any]) -> None:
        attrs = schema["content"]["content"]
        attrs["coef_"] = constructor_node("numpy", "memmap", str(secret), "uint8", "r")

    return edit_skops(model_file, target, edit)


def zip_bomb(target: Path, *, unpacked: int, member: str = "bomb.npy") -> Path:
    """A skops-like archive whose member of `unpacked` zero bytes deflates to ~1/1000 of it.

    Written by streaming, so building it costs CPU for the compression but
    memory for one chunk only.
    """
    import zipfile

    chunk = bytes(1 << 20)
    schema = {"__class__": "ndarray", "__module__": "numpy", "__loader__": "NdArrayNode",
              "type": "numpy", "file": member, "protocol": 2,
              "_skops_version": "0.16.0"}  # fmt: skip
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("schema.json", json.dumps(schema))
        with archive.open(member, "w", force_zip64=True) as handle:
            written = 0
            while written < unpacked:
                part = chunk[: min(len(chunk), unpacked - written)]
                handle.write(part)
                written += len(part)
    return target


def onnx_with_external_data(target: Path, location: str, *, where: str = "initializer") -> Path:
    """A small valid-looking ONNX model whose uint8 tensor `w` lives in the file `location`.

    `where`: "initializer", "constant" (a Constant node's value) or "subgraph"
    (an initializer of an If node's branch).
    """
    from onnx import TensorProto, helper

    weights = TensorProto(name="w", data_type=TensorProto.UINT8, dims=[16])
    weights.data_location = TensorProto.EXTERNAL
    entry = weights.external_data.add()
    entry.key, entry.value = "location", location
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [16])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [16])
    cast = helper.make_node("Cast", ["w"], ["wf"], to=TensorProto.FLOAT)
    add = helper.make_node("Add", ["x", "wf"], ["y"])
    if where == "initializer":
        graph = helper.make_graph([cast, add], "g", [x], [y], initializer=[weights])
    elif where == "constant":
        constant = helper.make_node("Constant", [], ["w"], value=weights)
        graph = helper.make_graph([constant, cast, add], "g", [x], [y])
    else:
        wf = helper.make_tensor_value_info("wf", TensorProto.FLOAT, [16])
        branch = helper.make_graph([cast], "branch", [], [wf], initializer=[weights])
        cond = helper.make_tensor("cond", TensorProto.BOOL, [], [True])
        pick = helper.make_node("If", ["cond"], ["wf"], then_branch=branch, else_branch=branch)
        graph = helper.make_graph([pick, add], "g", [x], [y], initializer=[cond])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    target.write_bytes(model.SerializeToString())
    return target


# ------------------------------------------------------------------------ the CLI


@dataclass(frozen=True)
class Result:
    code: int
    report: dict[str, Any]
    stdout: str
    stderr: str


def _env(extra: dict[str, str] | None) -> dict[str, str]:
    env = dict(os.environ)
    env.update(extra or {})
    return env


def _result(code: int, stdout: str, stderr: str) -> Result:
    lines = stdout.splitlines()
    assert len(lines) == 1, f"stdout must be one report line, got {stdout!r}\n{stderr}"
    return Result(code, json.loads(lines[0]), stdout, stderr)


def run_cli(
    args: Sequence[str],
    *,
    env: dict[str, str] | None = None,
    timeout: float = 120,
    cwd: Path | None = None,
    command: Sequence[str] = CLI,
) -> Result:
    """`mlmodel-runtime convert ARGS` as a real process, as the init container runs it."""
    proc = subprocess.run(
        [*command, *args],
        capture_output=True,
        text=True,
        env=_env(env),
        timeout=timeout,
        check=False,
        cwd=cwd,
    )
    return _result(proc.returncode, proc.stdout, proc.stderr)


def run_fetch(args: Sequence[str], **kwargs: Any) -> Result:
    """`mlmodel-runtime fetch ARGS` as a real process."""
    return run_cli(args, command=FETCH_CLI, **kwargs)


def run_cli_measured(args: Sequence[str], tmp: Path) -> tuple[Result, int]:
    """`mlmodel-runtime convert ARGS` and the peak resident memory of that process, in bytes."""
    out, err = tmp / "measured.stdout", tmp / "measured.stderr"
    with out.open("wb") as stdout, err.open("wb") as stderr:
        proc = subprocess.Popen([*CLI, *args], stdout=stdout, stderr=stderr, env=_env(None))
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        except BaseException:
            proc.kill()
            raise
        proc.returncode = os.waitstatus_to_exitcode(status)
    result = _result(proc.returncode, out.read_text(), err.read_text())
    return result, usage.ru_maxrss * 1024  # kilobytes on Linux


def run_in_process(args: Sequence[str]) -> Result:
    """The same CLI entry point without process start-up (for the large matrix)."""
    from mlmodel_runtime.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["convert", *args])
    lines = out.getvalue().splitlines()
    assert len(lines) == 1, f"stdout must be one report line, got {out.getvalue()!r}"
    return Result(code, json.loads(lines[0]), out.getvalue(), err.getvalue())


# -------------------------------------------------------------------- HTTP server


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass(frozen=True)
class Seen:
    """One request a test server received."""

    path: str
    headers: dict[str, str]


Route = Callable[[Seen], tuple[int, dict[str, str], bytes]]


@contextlib.contextmanager
def http_routes(routes: dict[str, Route]) -> Iterator[tuple[str, list[Seen]]]:
    """A server on 127.0.0.1 answering GETs by path (query ignored); records every request."""
    seen: list[Seen] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            request = Seen(self.path, {k.lower(): v for k, v in self.headers.items()})
            seen.append(request)
            route = routes.get(self.path.split("?", 1)[0])
            status, headers, body = route(request) if route else (404, {}, b"no such path")
            self.send_response(status)
            for name, value in {"Content-Length": str(len(body)), **headers}.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            del format, args  # keep test output quiet

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@contextlib.contextmanager
def http_server(directory: Path, *, status: int | None = None) -> Iterator[str]:
    """Serve `directory` on 127.0.0.1; with `status`, answer every GET/HEAD with it."""

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, directory=str(directory), **kwargs)

        def send_head(self) -> Any:
            if status is not None:
                self.send_error(status)
                return None
            return super().send_head()

        def log_message(self, format: str, *args: Any) -> None:
            del format, args  # keep test output quiet

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


# ----------------------------------------------------------------------- S3 (moto)


@dataclass(frozen=True)
class S3:
    endpoint: str
    env: dict[str, str]  # what a mounted credentials Secret would provide

    def client(self) -> Any:
        import boto3  # type: ignore[import-untyped]

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=self.env["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=self.env["AWS_SECRET_ACCESS_KEY"],
            region_name=self.env["AWS_DEFAULT_REGION"],
        )


@contextlib.contextmanager
def moto_s3(tmp: Path) -> Iterator[S3]:
    """An S3-compatible server on 127.0.0.1 (moto in server mode) and fake credentials."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    env = {
        "AWS_ACCESS_KEY_ID": "testing-key",
        "AWS_SECRET_ACCESS_KEY": "testing-secret",
        "AWS_DEFAULT_REGION": "us-east-1",
        # Never reach for real credentials or the instance metadata service.
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_CONFIG_FILE": str(tmp / "no-aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp / "no-aws-credentials"),
    }
    try:
        yield S3(endpoint=f"http://127.0.0.1:{port}", env=env)
    finally:
        server.stop()
