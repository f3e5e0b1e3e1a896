"""Build the local environment's other programs from Go modules once, cached by their inputs.

Each program has a wrapper module here (`<name>/go.mod`, `go.sum`, and a `tools.go`
importing its main package), so their dependency graphs never meet: Traefik, Prometheus
and CoreDNS each pin their own versions of client-go and friends. One program is our own:
`healthcheck/` is a main package (`main.go`) that runs the GitOps health checks of
docs/gitops.md with gopher-lua and cel-go, as Argo CD and Flux do. A binary lands in
`~/.cache/mlmodel-operator/components/<name>-<version>-<key>/`, where the key hashes the
wrapper module (its Go sources, for our own) and this recipe: a version bump rebuilds, an
unchanged tree never does.
Called by the local environment before it starts them, by `localenv.helm` for the chart's
tests, and by `python -m localenv.components.build [NAME...]`.

Versions are the newest that build here from the module proxy (see the team's notes):
Traefik v3.7 needs modules the proxy refuses; v3.6.12 builds.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from localenv import sandbox

HERE = Path(__file__).resolve().parent
RECIPE = "1"  # bump when the build command below changes


@dataclass(frozen=True)
class Component:
    name: str
    version: str
    package: str  # the main package, as tools.go imports it
    version_flag: str = ""  # -X path.Var: where the program keeps its version
    # More programs of the same module, binary name -> main package.
    extra: tuple[tuple[str, str], ...] = ()
    binary: str = ""  # the file name of `package`'s program, when not `name`
    tags: str = ""  # go build -tags
    cgo: bool = False  # runc's seccomp support is cgo (libseccomp-dev)
    own: bool = False  # `package` is the wrapper module itself: its *.go, no tools.go
    # Files the component's modules ship, kept beside its programs: (file name, module
    # path, path inside that module), e.g. Traefik's CRDs.
    files: tuple[tuple[str, str, str], ...] = ()

    @property
    def module(self) -> Path:
        return HERE / self.name

    @property
    def programs(self) -> tuple[tuple[str, str], ...]:
        return ((self.binary or self.name, self.package), *self.extra)

    def ldflags(self) -> str:
        flags = ["-s", "-w"]
        if self.version_flag:
            flags.append(f"-X {self.version_flag}={self.version}")
        return " ".join(flags)


COMPONENTS = {
    c.name: c
    for c in (
        Component(
            "traefik",
            "v3.6.12",
            "github.com/traefik/traefik/v3/cmd/traefik",
            "github.com/traefik/traefik/v3/pkg/version.Version",
            # Its own CRDs (IngressRoute, TraefikService, ...) for the kubernetesCRD
            # provider, which the traefik router's objects need.
            files=(
                (
                    "traefik-crds.yaml",
                    "github.com/traefik/traefik/v3",
                    "docs/content/reference/dynamic-configuration/kubernetes-crd-definition-v1.yml",
                ),
            ),
        ),
        Component(
            "prometheus",
            "v0.316.0",
            "github.com/prometheus/prometheus/cmd/prometheus",
            "github.com/prometheus/common/version.Version",
        ),
        Component("coredns", "v1.15.0", "github.com/coredns/coredns"),
        # The real node (localenv/realnode.py): containerd 2.x (a 1.36 kubelet needs it;
        # Debian's is 1.6), runc with seccomp, and the CNI plugins a kind node has.
        Component(
            "containerd",
            "v2.4.2",
            "github.com/containerd/containerd/v2/cmd/containerd",
            "github.com/containerd/containerd/v2/version.Version",
            extra=(
                ("ctr", "github.com/containerd/containerd/v2/cmd/ctr"),
                (
                    "containerd-shim-runc-v2",
                    "github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2",
                ),
            ),
            tags="no_btrfs",
        ),
        Component(
            "runc",
            "v1.5.3",
            "github.com/opencontainers/runc",
            "main.version",
            tags="seccomp",
            cgo=True,
        ),
        Component(
            "cni",
            "v1.10.0",
            "github.com/containernetworking/plugins/plugins/main/bridge",
            binary="bridge",
            extra=(
                ("host-local", "github.com/containernetworking/plugins/plugins/ipam/host-local"),
                ("loopback", "github.com/containernetworking/plugins/plugins/main/loopback"),
                ("portmap", "github.com/containernetworking/plugins/plugins/meta/portmap"),
            ),
        ),
        # The resource metrics API (metrics.k8s.io) the HorizontalPodAutoscaler of an
        # autoscaled MLModel reads CPU use from: scraped from the real node's kubelet
        # (localenv/metricsserver.py, tests/realpods/test_autoscaling_real.py).
        Component(
            "metrics-server",
            "v0.8.0",
            "sigs.k8s.io/metrics-server/cmd/metrics-server",
            "k8s.io/client-go/pkg/version.gitVersion",
        ),
        # The chart's tests (charts/mlmodel-operator, tests/cluster/test_helm.py): lint,
        # template, install, upgrade and uninstall against the local control plane.
        Component(
            "helm",
            "v4.3.1",
            "helm.sh/helm/v4/cmd/helm",
            "helm.sh/helm/v4/internal/version.version",
        ),
        # The GitOps health checks of docs/gitops.md, run as Argo CD (gopher-lua) and Flux
        # (cel-go) run them (tests/cluster/test_gitops_health.py). Our own program: its
        # sources are in the key, so the version only names it.
        Component(
            "healthcheck",
            "v1",
            "github.com/mlops-dev/mlmodel-operator/localenv/components/healthcheck",
            own=True,
        ),
    )
}


class BuildError(RuntimeError):
    """A program cannot be built; the message says why and where the log is."""


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "mlmodel-operator" / "components"


def cache_key(component: Component) -> str:
    digest = hashlib.sha256(RECIPE.encode())
    if component.extra or component.tags or component.cgo or component.binary:
        # Only where used, so that the keys (and binaries) of plain components stay.
        digest.update(repr((component.programs, component.tags, component.cgo)).encode())
    if component.files:
        digest.update(repr(component.files).encode())
    sources: tuple[str, ...] = ("go.mod", "go.sum", "tools.go")
    if component.own:
        sources = ("go.mod", "go.sum", *sorted(p.name for p in component.module.glob("*.go")))
    for name in sources:
        digest.update((component.module / name).read_bytes())
    return f"{component.name}-{component.version}-{digest.hexdigest()[:12]}"


def _build(go: str, component: Component, target: Path, log: Path) -> None:
    env = {
        **os.environ,
        "GOFLAGS": "-mod=readonly -buildvcs=false",
        "CGO_ENABLED": "1" if component.cgo else "0",
    }
    with log.open("w") as handle:
        for binary, package in component.programs:
            command = [go, "build", "-trimpath", "-ldflags", component.ldflags()]
            if component.tags:
                command += ["-tags", component.tags]
            command += ["-o", str(target / binary), package]
            handle.write(f"$ {' '.join(command)}\n")
            handle.flush()
            result = subprocess.run(
                command,
                cwd=component.module,
                env=env,
                stdout=handle,
                stderr=subprocess.STDOUT,
                check=False,
            )
            if result.returncode != 0:
                break
    if result.returncode == 0:
        _copy_files(go, component, target, env)
    if result.returncode != 0:
        tail = "\n".join(log.read_text().splitlines()[-30:])
        hint = ""
        if component.cgo and "seccomp" in tail:
            hint = "\n(runc needs libseccomp-dev: apt-get install libseccomp-dev)"
        raise BuildError(
            f"building {component.name} {component.version} failed (exit {result.returncode}); "
            f"full log in {log}. Last lines:\n{tail}{hint}"
        )


def _copy_files(go: str, component: Component, target: Path, env: dict[str, str]) -> None:
    """The component's `files`, from its modules as the build resolved them."""
    for file_name, module, inner in component.files:
        listed = subprocess.run(
            [go, "list", "-m", "-json", module],
            cwd=component.module,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        if listed.returncode != 0:
            raise BuildError(f"locating {module} for {component.name}: {listed.stderr}")
        shutil.copyfile(Path(json.loads(listed.stdout)["Dir"]) / inner, target / file_name)


def file_of(name: str, file_name: str) -> Path:
    """A file that component `name` keeps beside its programs (built first if needed)."""
    return ensure(name).parent / file_name


def ensure(name: str, *, quiet: bool = False) -> Path:
    """The path of the built program `name`, building it first when its inputs are new."""
    component = COMPONENTS[name]
    root = cache_root()
    final = root / cache_key(component)
    binary = final / component.programs[0][0]
    if binary.exists():
        return binary
    if sandbox.inside():
        raise BuildError(
            f"{name} {component.version} is not built, and the network sandbox cannot reach "
            "the Go module proxy: build it first, outside it (`make components`)"
        )
    go = shutil.which("go")
    if go is None:
        raise BuildError(
            f"Go is needed to build {name} for the local environment; install it "
            "(https://go.dev/doc/install) and run the command again"
        )
    root.mkdir(parents=True, exist_ok=True)
    with (root / f".{name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another process may be building it
        if binary.exists():
            return binary
        if not quiet:
            print(
                f"building {name} {component.version} into {final}; the first build takes "
                "minutes ...",
                file=sys.stderr,
                flush=True,
            )
        started = time.monotonic()
        staging = Path(tempfile.mkdtemp(dir=root, prefix=f".build-{name}-"))
        try:
            _build(go, component, staging, root / f"{name}.build.log")
            staging.rename(final)
            for stale in root.glob(f"{name}-*"):  # older versions: hundreds of MB each
                if stale != final:
                    shutil.rmtree(stale, ignore_errors=True)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        if not quiet:
            print(
                f"built {name} in {time.monotonic() - started:.0f} s", file=sys.stderr, flush=True
            )
    return binary


def main(argv: list[str]) -> int:
    names = argv or list(COMPONENTS)
    unknown = [n for n in names if n not in COMPONENTS]
    if unknown:
        print(f"unknown component(s) {unknown}; known: {list(COMPONENTS)}", file=sys.stderr)
        return 2
    try:
        for name in names:
            print(ensure(name))
    except BuildError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
