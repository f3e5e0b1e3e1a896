"""Train the example models and save them in skops format.

    python examples/train.py OUTDIR

writes OUTDIR/iris-v1.skops (a random forest classifier), OUTDIR/iris-v2.skops
(a gradient-boosted one), OUTDIR/iris-v3.skops (a deliberately bad one, trained on
labels where versicolor was merged into virginica, for the quickstart's rollback),
OUTDIR/diabetes.skops (a regression pipeline), OUTDIR/iris-lightgbm.txt (a LightGBM
booster in its own text format, `spec.model.format: lightgbm`) and prints their
sha256 digests for `spec.model.sha256`. Upload them where your
MLModels point (an S3 bucket, an HTTP server, a volume).
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import lightgbm
import numpy as np
import skops.io as sio
from sklearn.datasets import load_diabetes, load_iris
from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier
from sklearn.linear_model import Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler


def main() -> int:
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "models")
    out.mkdir(parents=True, exist_ok=True)
    iris_x, iris_y = load_iris(return_X_y=True)
    diabetes_x, diabetes_y = load_diabetes(return_X_y=True)
    models = {
        "iris-v1.skops": RandomForestClassifier(n_estimators=50, random_state=0),
        "iris-v2.skops": GradientBoostingClassifier(random_state=0),
        "iris-v3.skops": RandomForestClassifier(n_estimators=50, random_state=0),
        "diabetes.skops": make_pipeline(StandardScaler(), Ridge(alpha=1.0)),
    }
    for name, model in models.items():
        x, y = (diabetes_x, diabetes_y) if name.startswith("diabetes") else (iris_x, iris_y)
        if name == "iris-v3.skops":
            # A bug a real pipeline could ship (a labelling step that merged versicolor
            # into virginica): it serves without an error, and only the predictions,
            # which never say versicolor, show it is wrong.
            y = np.where(y == 1, 2, y)
        model.fit(x, y)
        path = out / name
        sio.dump(model, path)
        print(f"{hashlib.sha256(path.read_bytes()).hexdigest()}  {path}")
    # A booster trained with LightGBM's own API and saved with its own save_model.
    params = {"objective": "multiclass", "num_class": 3, "num_leaves": 8, "verbose": -1,
              "num_threads": 1, "seed": 0}  # fmt: skip
    booster = lightgbm.train(params, lightgbm.Dataset(iris_x, label=iris_y), num_boost_round=30)
    path = out / "iris-lightgbm.txt"
    booster.save_model(str(path))
    print(f"{hashlib.sha256(path.read_bytes()).hexdigest()}  {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
