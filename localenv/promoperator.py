"""The Prometheus Operator's CRDs (PodMonitor, ServiceMonitor), from its Go module, for
the tests that dry-run examples/monitoring/ (tests/cluster/test_monitoring_examples.py).

`crd_paths()` runs `go mod download -json` of the pinned module version: the Go module
proxy, cached in GOMODCACHE, so only the first call downloads (a 4 MB zip). The network
sandbox cannot reach the proxy: there it reads the cache only, and says to run
`python -m localenv.promoperator` outside it first when the module is not there.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from localenv import sandbox

MODULE = "github.com/prometheus-operator/prometheus-operator"
VERSION = "v0.85.0"
CRD_DIR = "example/prometheus-operator-crd"
CRDS = {
    "PodMonitor": "monitoring.coreos.com_podmonitors.yaml",
    "ServiceMonitor": "monitoring.coreos.com_servicemonitors.yaml",
}


class PromOperatorError(RuntimeError):
    """The module could not be had; the message says why and what to do."""


def module_dir() -> Path:
    """The unpacked module in GOMODCACHE, downloaded first when it is not there."""
    go = shutil.which("go")
    if go is None:
        raise PromOperatorError("Go is needed for the Prometheus Operator's CRDs; install it")
    env = {**os.environ, "GOFLAGS": "-mod=mod"}
    if sandbox.inside():
        env["GOPROXY"] = "off"  # fail at once on a cache miss rather than time out
    with tempfile.TemporaryDirectory(prefix="promoperator-") as empty:  # outside any go.mod
        result = subprocess.run(
            [go, "mod", "download", "-json", f"{MODULE}@{VERSION}"],
            cwd=empty,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
    found = json.loads(result.stdout) if result.stdout.strip() else {}
    if result.returncode != 0 or "Dir" not in found:
        hint = (
            " (the network sandbox reads the module cache only: run "
            "`python -m localenv.promoperator` outside it first)"
            if sandbox.inside()
            else ""
        )
        raise PromOperatorError(
            f"go mod download {MODULE}@{VERSION} failed{hint}: "
            f"{found.get('Error') or result.stderr.strip()}"
        )
    return Path(found["Dir"])


def crd_paths() -> dict[str, Path]:
    """The CRD file of each kind in CRDS, by kind."""
    root = module_dir() / CRD_DIR
    return {kind: root / name for kind, name in CRDS.items()}


if __name__ == "__main__":
    for kind, path in crd_paths().items():
        print(f"{kind}: {path}", file=sys.stdout)
