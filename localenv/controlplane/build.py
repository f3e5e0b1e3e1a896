"""Build the control-plane binaries from Go modules once, and cache them by version.

The Go module in `go/` pins k8s.io/kubernetes (kube-apiserver,
kube-controller-manager, kube-scheduler, kubectl), etcd's server module and
kwok. Binaries land in `~/.cache/mlmodel-operator/controlplane/<key>/`, where the
key hashes go.mod, go.sum and this recipe, so a version bump rebuilds and an
unchanged tree never does. Called by the pytest fixture and by `make cluster-up`.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from localenv import sandbox

GO_MODULE = Path(__file__).resolve().parent / "go"
# go.mod still names its module .../tests/controlplane, where it used to live: nothing
# imports that name, and editing go.mod changes the cache key, which makes every
# checkout that still has the old go.mod rebuild and evict the other's binaries.
KUBERNETES_VERSION = "v1.36.3"
KWOK_VERSION = "v0.8.0"
RECIPE = "7"  # bump when the build command below changes

_K8S_PACKAGES = {
    "kube-apiserver": "k8s.io/kubernetes/cmd/kube-apiserver",
    "kube-controller-manager": "k8s.io/kubernetes/cmd/kube-controller-manager",
    "kube-scheduler": "k8s.io/kubernetes/cmd/kube-scheduler",
    "kubectl": "k8s.io/kubernetes/cmd/kubectl",
    # Services' ClusterIPs inside the network sandbox (nftables mode).
    "kube-proxy": "k8s.io/kubernetes/cmd/kube-proxy",
    # The real node's kubelet (localenv/realnode.py), over containerd.
    "kubelet": "k8s.io/kubernetes/cmd/kubelet",
}
_OTHER_PACKAGES = {
    "etcd": "./cmd/etcd",
    "kwok": "sigs.k8s.io/kwok/cmd/kwok",
}
BINARIES = (*_K8S_PACKAGES, *_OTHER_PACKAGES)

# kwok ships its stage definitions as YAML in its module; these make fake nodes
# Ready and pods Running with an IP from their node's podCIDR.
_KWOK_STAGES = (
    "kustomize/stage/node/fast/node-initialize.yaml",
    "kustomize/stage/node/heartbeat-with-lease/node-heartbeat-with-lease.yaml",
    "kustomize/stage/pod/fast/pod-ready.yaml",
    "kustomize/stage/pod/fast/pod-complete.yaml",
    "kustomize/stage/pod/fast/pod-delete.yaml",
    # Chosen by a pod label: its init container fails with the message in an
    # annotation, as a kubelet reports a failed `mlmodel-runtime convert`.
    "kustomize/stage/pod/chaos/pod-init-container-running-failed.yaml",
)
# The upstream stage writes the message unquoted; a JSON report would become YAML.
_STAGE_FIXES = (("message: {{ $failureMessage }}", "message: {{ $failureMessage | Quote }}"),)
KWOK_STAGES_FILE = "kwok-stages.yaml"

# The traffic routers' real CRDs, from the modules their projects publish.
GATEWAY_API_MODULE = "sigs.k8s.io/gateway-api@v1.6.3"
ISTIO_API_MODULE = "istio.io/api@v1.32.0"
# Traefik waits for GRPCRoute and BackendTLSPolicy informers too: the standard channel.
_GATEWAY_API_CRDS = (
    "gatewayclasses",
    "gateways",
    "httproutes",
    "grpcroutes",
    "referencegrants",
    "backendtlspolicies",
)
CRD_DIR = "crds"


class BuildError(RuntimeError):
    """The binaries cannot be built; the message says what is missing and how to get it."""


@dataclass(frozen=True)
class Binaries:
    directory: Path

    def path(self, name: str) -> Path:
        return self.directory / name

    @property
    def kwok_stages(self) -> Path:
        return self.directory / KWOK_STAGES_FILE

    @property
    def gateway_api_crds(self) -> Path:
        """A directory of the Gateway API's standard CRDs (HTTPRoute and friends)."""
        return self.directory / CRD_DIR / "gateway-api"

    @property
    def istio_virtualservice_crd(self) -> Path:
        return self.directory / CRD_DIR / "istio-virtualservice.yaml"


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "mlmodel-operator" / "controlplane"


def cache_key() -> str:
    digest = hashlib.sha256(RECIPE.encode())
    for name in ("go.mod", "go.sum", "cmd/etcd/main.go"):
        digest.update((GO_MODULE / name).read_bytes())
    return f"k8s-{KUBERNETES_VERSION}-{digest.hexdigest()[:12]}"


def _required_go_version() -> tuple[int, int]:
    match = re.search(r"^go (\d+)\.(\d+)", (GO_MODULE / "go.mod").read_text(), re.MULTILINE)
    if match is None:
        raise BuildError(f"{GO_MODULE / 'go.mod'} has no go directive")
    return int(match.group(1)), int(match.group(2))


def _check_go() -> str:
    go = shutil.which("go")
    need = "{}.{}".format(*_required_go_version())
    if go is None:
        raise BuildError(
            f"Go {need} or newer is needed to build the test control plane "
            "(kube-apiserver, etcd, kwok ...), and `go` is not on PATH. "
            "Install Go (https://go.dev/doc/install) and run the command again."
        )
    version = subprocess.run(
        [go, "env", "GOVERSION"], capture_output=True, text=True, check=False
    ).stdout.strip()
    match = re.match(r"go(\d+)\.(\d+)", version)
    if match and (int(match.group(1)), int(match.group(2))) < _required_go_version():
        raise BuildError(
            f"Go {need} or newer is needed to build the test control plane; "
            f"`go` on PATH is {version}. Install a newer Go, or set GOTOOLCHAIN=go{need}.0 "
            "so that the go command fetches it from the module proxy."
        )
    return go


def _ldflags() -> str:
    major, minor = KUBERNETES_VERSION.lstrip("v").split(".")[:2]
    version_pkg = "k8s.io/component-base/version"
    return " ".join(
        [
            "-s",
            "-w",
            f"-X {version_pkg}.gitVersion={KUBERNETES_VERSION}",
            f"-X {version_pkg}.gitMajor={major}",
            f"-X {version_pkg}.gitMinor={minor}",
            f"-X {version_pkg}.gitTreeState=clean",
        ]
    )


def _module_dir(go: str, module: str) -> Path:
    out = subprocess.run(
        [go, "list", "-m", "-f", "{{.Dir}}", module],
        cwd=GO_MODULE,
        capture_output=True,
        text=True,
        check=True,
    )
    return Path(out.stdout.strip())


def _download(go: str, module: str) -> Path:
    out = subprocess.run(
        [go, "mod", "download", "-json", module],
        cwd=GO_MODULE,
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode != 0:
        raise BuildError(f"downloading {module} failed: {out.stdout}{out.stderr}")
    return Path(json.loads(out.stdout)["Dir"])


def _copy_router_crds(go: str, target: Path) -> None:
    gateway = _download(go, GATEWAY_API_MODULE) / "config" / "crd" / "standard"
    (target / CRD_DIR / "gateway-api").mkdir(parents=True)
    for name in _GATEWAY_API_CRDS:
        source = gateway / f"gateway.networking.k8s.io_{name}.yaml"
        shutil.copyfile(source, target / CRD_DIR / "gateway-api" / source.name)
    istio = _download(go, ISTIO_API_MODULE) / "kubernetes" / "customresourcedefinitions.gen.yaml"
    documents = istio.read_text().split("\n---\n")
    [virtual_service] = [d for d in documents if "name: virtualservices.networking.istio.io" in d]
    (target / CRD_DIR / "istio-virtualservice.yaml").write_text(virtual_service.strip() + "\n")


def _build_into(go: str, target: Path, log: Path) -> None:
    env = {**os.environ, "GOFLAGS": "-mod=readonly -buildvcs=false"}
    command = [
        go,
        "build",
        "-trimpath",
        "-ldflags",
        _ldflags(),
        "-o",
        f"{target}{os.sep}",
        *_K8S_PACKAGES.values(),
        *_OTHER_PACKAGES.values(),
    ]
    with log.open("w") as handle:
        result = subprocess.run(
            command, cwd=GO_MODULE, env=env, stdout=handle, stderr=subprocess.STDOUT, check=False
        )
    if result.returncode != 0:
        tail = "\n".join(log.read_text().splitlines()[-30:])
        raise BuildError(
            f"building the control plane failed (exit {result.returncode}); "
            f"full log in {log}. Last lines:\n{tail}"
        )
    kwok_dir = _module_dir(go, "sigs.k8s.io/kwok")
    stages = "\n---\n".join((kwok_dir / stage).read_text() for stage in _KWOK_STAGES)
    for old, new in _STAGE_FIXES:
        stages = stages.replace(old, new)
    (target / KWOK_STAGES_FILE).write_text(stages)
    _copy_router_crds(go, target)


def ensure_binaries(*, quiet: bool = False) -> Binaries:
    """Return the cached binaries, building them first when this version has none."""
    root = cache_root()
    final = root / cache_key()
    binaries = Binaries(final)
    if (
        all(binaries.path(n).exists() for n in BINARIES)
        and binaries.istio_virtualservice_crd.exists()
    ):
        return binaries
    if sandbox.inside():
        raise BuildError(
            f"the control-plane binaries {cache_key()} are not built, and the network "
            "sandbox cannot reach the Go module proxy: build them first, outside it "
            "(`make controlplane`)"
        )
    go = _check_go()
    root.mkdir(parents=True, exist_ok=True)
    with (root / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another process may be building the same key
        if final.exists():
            return binaries
        if not quiet:
            print(
                f"building the control plane ({KUBERNETES_VERSION}, etcd, kwok {KWOK_VERSION}) "
                f"into {final}; the first build takes several minutes ...",
                file=sys.stderr,
                flush=True,
            )
        started = time.monotonic()
        staging = Path(tempfile.mkdtemp(dir=root, prefix=".build-"))
        try:
            _build_into(go, staging, root / "build.log")
            staging.rename(final)
            for stale in root.glob("k8s-*"):  # older versions' binaries: ~0.5 GB each
                if stale != final:
                    shutil.rmtree(stale, ignore_errors=True)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        if not quiet:
            print(
                f"built the control plane in {time.monotonic() - started:.0f} s",
                file=sys.stderr,
                flush=True,
            )
    return binaries


if __name__ == "__main__":
    try:
        print(ensure_binaries().directory)
    except BuildError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(1)
