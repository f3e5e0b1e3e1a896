"""A real node inside the network sandbox: a kubelet over containerd, runc and CNI.

Where the pod runner (`localenv.podrunner`) plays the kubelet with processes of this
venv, this runs the real thing: the kubelet built from the control plane's Kubernetes
module, containerd 2.x, runc (with seccomp) and the CNI plugins bridge, host-local and
loopback, all built from Go modules (`localenv/components/`), with images imported from
OCI archives (`localenv.images`) because no registry can be reached.

The node `real-0` registers with a client certificate for `system:node:real-0`, takes
pod addresses from 10.244.2.0/24 on the sandbox's bridge (the runner's are 10.244.1.0/24),
and is tainted `mlops.dev/real=true:NoSchedule`, so only pods that tolerate it land there.

What this machine needs (found by a first probe, `../shared/research/sandbox.md`):
- cgroup v1: `failCgroupV1: false`, the cgroupfs driver;
- no CAP_SYS_RESOURCE even for root: containerd's `restrict_oom_score_adj`;
- the kubelet writes host-wide kernel settings unless they already hold: inside the
  sandbox's private mount namespace, files with the values it wants are bind-mounted over
  those `/proc/sys` entries, and `protectKernelDefaults: true` makes it fail rather than
  write. Nothing here changes the host's kernel settings;
- every state directory is under the node's directory; the cgroups it leaves in the
  host's shared cgroup v1 tree are removed by `stop()`.

Not yet: `kubectl logs`/`exec`: the kubelet's API accepts clients with a certificate of
the cluster's CA (metrics-server), but the API server has no kubelet client certificate.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from localenv.components.build import ensure as ensure_component
from localenv.controlplane.cluster import ControlPlane, write_kubeconfig
from localenv.controlplane.pki import issue_client
from localenv.images import PAUSE_SOURCE, Image, build_archive, static_program
from localenv.processes import stop_group
from localenv.sandbox import BRIDGE, GATEWAY_IP, POD_NETWORK, require_inside

NODE_NAME = "real-0"
POD_CIDR = "10.244.2.0/24"
POD_RANGE = ("10.244.2.2", "10.244.2.254")
TAINT = {"key": "mlops.dev/real", "value": "true", "effect": "NoSchedule"}
PAUSE_IMAGE = "localenv.test/pause:1"
START_TIMEOUT_S = 90.0
# Room for the deepest socket under it (kubelet/pod-resources/<10 digits>, 107 bytes).
MAX_DIRECTORY_BYTES = 60
# What the kubelet would otherwise write host-wide (kubelet's setupKernelTunables).
KERNEL_DEFAULTS = {
    "vm/overcommit_memory": "1",
    "vm/panic_on_oom": "0",
    "kernel/panic": "10",
    "kernel/panic_on_oops": "1",
    "kernel/keys/root_maxkeys": "1000000",
    "kernel/keys/root_maxbytes": "25000000",
}
CGROUP_ROOT = Path("/sys/fs/cgroup")
# The node's pods go under a cgroup of their own in every hierarchy (the kubelet's
# cgroupRoot), so that stop() removes only what this node made, never the cgroups of
# a machine that is itself a Kubernetes node.
CGROUP_PARENT = f"mlmodel-localenv-{os.getpid()}"


# PodNodeSelector and PodTolerationRestriction (admission plugins the control plane
# enables) read these namespace annotations and add them to every pod created there.
NODE_SELECTOR_ANNOTATION = "scheduler.alpha.kubernetes.io/node-selector"
TOLERATIONS_ANNOTATION = "scheduler.alpha.kubernetes.io/defaultTolerations"


def pin_namespace(plane: ControlPlane, namespace: str) -> None:
    """Send every pod later created in `namespace` to this node, whatever its manifest.

    So shipped manifests and examples run on real containers unchanged: the taint keeps
    the other tests' pods off the node, and this lets one namespace's pods on.
    """
    plane.kubectl("create", "namespace", namespace, check=False)
    toleration = [{**TAINT, "operator": "Equal"}]
    plane.kubectl(
        "annotate",
        "--overwrite",
        "namespace",
        namespace,
        f"{NODE_SELECTOR_ANNOTATION}=mlops.dev/real=true",
        f"{TOLERATIONS_ANNOTATION}={json.dumps(toleration)}",
    )


class RealNodeError(RuntimeError):
    """The node could not start; the message has the component's log tail."""


def _tail(path: Path, lines: int = 30) -> str:
    if not path.exists():
        return "(no log)"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


@dataclass
class RealNode:
    """`RealNode(directory).start(plane)` ... `.stop()`."""

    directory: Path
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        """Unix sockets (containerd's, the kubelet's pod-resources and plugin sockets)
        live under the node's directory and a socket path has at most 107 bytes: a long
        directory (a test's temporary one can be) is replaced by a short one under /tmp,
        named after it, and the long path becomes a symlink to it, so its logs are still
        found where they were asked for."""
        if len(str(self.directory.resolve()).encode()) <= MAX_DIRECTORY_BYTES:
            return
        asked = self.directory
        name = hashlib.sha256(str(asked.resolve()).encode()).hexdigest()[:12]
        self.directory = Path("/tmp") / f"mlmodel-realnode-{name}"
        self.directory.mkdir(parents=True, exist_ok=True)
        asked.parent.mkdir(parents=True, exist_ok=True)
        if not asked.is_symlink():
            asked.symlink_to(self.directory, target_is_directory=True)

    @property
    def socket(self) -> Path:
        return self.directory / "containerd" / "containerd.sock"

    def log(self, name: str) -> Path:
        return self.directory / "logs" / f"{name}.log"

    # --- start ---------------------------------------------------------------------------

    def start(self, plane: ControlPlane) -> RealNode:
        require_inside("a real node")
        binaries = {
            "containerd": ensure_component("containerd"),
            "runc": ensure_component("runc"),
            "cni": ensure_component("cni"),
        }
        for sub in ("logs", "containerd/root", "containerd/state", "cni/conf", "cni/data"):
            (self.directory / sub).mkdir(parents=True, exist_ok=True)
        self._protect_kernel_defaults()
        self._write_cni_config()
        self._start_containerd(binaries["containerd"], binaries["runc"], binaries["cni"].parent)
        self.import_image(self._pause_image())
        self._start_kubelet(plane)
        self._wait_ready(plane)
        return self

    def _protect_kernel_defaults(self) -> None:
        """Bind-mount the values the kubelet wants over /proc/sys (this mount namespace
        only), so it finds them set and never writes the host's."""
        tunables = self.directory / "sysctl"
        tunables.mkdir(exist_ok=True)
        for name, value in KERNEL_DEFAULTS.items():
            target = Path("/proc/sys") / name
            if not target.exists() or target.read_text().strip() == value:
                continue
            source = tunables / name.replace("/", ".")
            source.write_text(value + "\n")
            subprocess.run(["mount", "--bind", str(source), str(target)], check=True)

    def _write_cni_config(self) -> None:
        start, end = POD_RANGE
        config = {
            "cniVersion": "1.0.0",
            "name": "localenv",
            "plugins": [
                {
                    "type": "bridge",
                    "bridge": BRIDGE,
                    "isGateway": False,  # the bridge has its address already
                    "ipMasq": False,  # no iptables on this machine
                    "ipam": {
                        "type": "host-local",
                        "dataDir": str(self.directory / "cni" / "data"),
                        "ranges": [
                            [
                                {
                                    "subnet": POD_NETWORK,
                                    "rangeStart": start,
                                    "rangeEnd": end,
                                    "gateway": GATEWAY_IP,
                                }
                            ]
                        ],
                        "routes": [{"dst": "0.0.0.0/0"}],
                    },
                },
            ],
        }
        (self.directory / "cni" / "conf" / "10-localenv.conflist").write_text(json.dumps(config))

    def _containerd_config(self, runc: Path, cni_bin: Path) -> str:
        root, state = (
            self.directory / "containerd" / "root",
            self.directory / "containerd" / "state",
        )
        return f"""version = 3
root = "{root}"
state = "{state}"

[grpc]
  address = "{self.socket}"

[plugins."io.containerd.cri.v1.images"]
  snapshotter = "overlayfs"
  [plugins."io.containerd.cri.v1.images".pinned_images]
    sandbox = "{PAUSE_IMAGE}"

[plugins."io.containerd.cri.v1.runtime"]
  restrict_oom_score_adj = true
  [plugins."io.containerd.cri.v1.runtime".cni]
    bin_dirs = ["{cni_bin}"]
    conf_dir = "{self.directory / "cni" / "conf"}"
  [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc]
    runtime_type = "io.containerd.runc.v2"
    [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc.options]
      BinaryName = "{runc}"
      SystemdCgroup = false

[plugins."io.containerd.grpc.v1.cri"]
  netns_mounts_under_state_dir = true
"""

    def _spawn(self, name: str, command: list[str], env: dict[str, str] | None = None) -> None:
        with self.log(name).open("ab") as handle:
            self.processes[name] = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=handle,
                stderr=subprocess.STDOUT,
                env={**os.environ, **(env or {})},
                start_new_session=True,
            )

    def _start_containerd(self, binary: Path, runc: Path, cni_bin: Path) -> None:
        config = self.directory / "containerd" / "config.toml"
        config.write_text(self._containerd_config(runc, cni_bin))
        # containerd finds its shim (containerd-shim-runc-v2, built beside it) on PATH.
        path = f"{binary.parent}{os.pathsep}{os.environ.get('PATH', '')}"
        self._spawn("containerd", [str(binary), "--config", str(config)], env={"PATH": path})
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self.socket.exists():
            self._check("containerd")
            if time.monotonic() > deadline:
                raise RealNodeError(f"containerd did not listen:\n{_tail(self.log('containerd'))}")
            time.sleep(0.1)

    def ctr(self, *args: str) -> str:
        ctr = ensure_component("containerd").parent / "ctr"
        result = subprocess.run(
            [str(ctr), "--address", str(self.socket), "-n", "k8s.io", *args],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise RealNodeError(f"ctr {' '.join(args)}: {result.stderr.strip()}")
        return result.stdout

    def import_image(self, archive: Path) -> None:
        """Make an OCI archive's image available to pods (`imagePullPolicy: Never`)."""
        self.ctr("images", "import", "--no-unpack=false", str(archive))

    def _pause_image(self) -> Path:
        programs = self.directory / "programs"
        pause = static_program("pause", PAUSE_SOURCE, programs)
        image = Image(PAUSE_IMAGE, {"pause": pause}, ("/pause",))
        return build_archive(image, self.directory / "images" / "pause.tar")

    def _start_kubelet(self, plane: ControlPlane) -> None:
        for hierarchy in self._hierarchies():  # the kubelet requires its root to exist
            (hierarchy / CGROUP_PARENT).mkdir(exist_ok=True)
        pki = self.directory / "pki"
        client = issue_client(
            plane.pki.ca, pki, "kubelet", f"system:node:{NODE_NAME}", "system:nodes"
        )
        kubeconfig = self.directory / "kubelet.kubeconfig"
        write_kubeconfig(
            kubeconfig, server=plane.server, ca=plane.pki.ca.cert, user="kubelet", client=client
        )
        resolv = self.directory / "resolv.conf"
        resolv.write_text(Path("/etc/resolv.conf").read_text())
        config: dict[str, Any] = {
            "apiVersion": "kubelet.config.k8s.io/v1beta1",
            "kind": "KubeletConfiguration",
            "failCgroupV1": False,
            "cgroupDriver": "cgroupfs",
            "cgroupRoot": f"/{CGROUP_PARENT}",
            "containerRuntimeEndpoint": f"unix://{self.socket}",
            "address": GATEWAY_IP,
            "port": 10250,
            "readOnlyPort": 0,
            "healthzBindAddress": "127.0.0.1",
            "healthzPort": 10248,
            # Clients with a certificate of the cluster's CA (metrics-server reading
            # /metrics/resource, localenv.metricsserver); anonymous access off. Its port
            # exists only in the sandbox, where only this environment's components run.
            "authentication": {
                "anonymous": {"enabled": False},
                "webhook": {"enabled": False},
                "x509": {"clientCAFile": str(plane.pki.ca.cert)},
            },
            "authorization": {"mode": "AlwaysAllow"},
            "clusterDomain": "cluster.local",
            "clusterDNS": ["10.96.0.10"],
            "resolvConf": str(resolv),
            "podCIDR": POD_CIDR,
            "protectKernelDefaults": True,
            "failSwapOn": False,
            "podLogsDir": str(self.directory / "pod-logs"),
            "evictionHard": {
                "memory.available": "100Mi",
                "nodefs.available": "1%",
                "imagefs.available": "1%",
            },
            "imageGCHighThresholdPercent": 100,
            "registerWithTaints": [TAINT],
            "serializeImagePulls": False,
            "staticPodPath": "",
            "localStorageCapacityIsolation": False,
        }
        path = self.directory / "kubelet.yaml"
        path.write_text(yaml.safe_dump(config))
        self._spawn(
            "kubelet",
            [
                str(plane.binaries.directory / "kubelet"),
                f"--config={path}",
                f"--kubeconfig={kubeconfig}",
                f"--root-dir={self.directory / 'kubelet'}",
                f"--hostname-override={NODE_NAME}",
                f"--node-ip={GATEWAY_IP}",
                "--node-labels=mlops.dev/real=true",
                "--v=1",
            ],
        )

    def _wait_ready(self, plane: ControlPlane) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        jsonpath = "jsonpath={.status.conditions[?(@.type=='Ready')].status}"
        while time.monotonic() < deadline:
            self.check()
            found = plane.kubectl("get", "node", NODE_NAME, "-o", jsonpath, check=False)
            if found.returncode == 0 and found.stdout.strip() == "True":
                return
            time.sleep(0.5)
        raise RealNodeError(f"node {NODE_NAME} not Ready:\n{self.log_tails()}")

    def check(self) -> None:
        """Raise if containerd or the kubelet exited."""
        self._check("containerd")
        self._check("kubelet")

    def _check(self, name: str) -> None:
        process = self.processes.get(name)
        if process is not None and process.poll() is not None:
            raise RealNodeError(f"{name} exited {process.returncode}:\n{_tail(self.log(name))}")

    # --- stop ----------------------------------------------------------------------------

    def stop(self) -> None:
        """The kubelet, then containerd and every shim and container it started, then the
        cgroups they left in the host's tree."""
        for name in ("kubelet", "containerd"):
            process = self.processes.pop(name, None)
            if process is not None:
                stop_group(process)
        # The shims daemonize (a session of their own, reparented to init): found by
        # their program and this node's containerd socket (another node, e.g. `make
        # demo` run by a test, may have shims of its own), as the containers are by
        # their cgroups.
        shim = ensure_component("containerd").parent / "containerd-shim-runc-v2"
        ours = f"\0-address\0{self.socket}\0".encode()
        for entry in Path("/proc").iterdir():
            with contextlib.suppress(OSError, ValueError):
                if (
                    entry.name.isdigit()
                    and Path(os.readlink(entry / "exe")) == shim
                    and ours in (entry / "cmdline").read_bytes()
                ):
                    os.kill(int(entry.name), signal.SIGKILL)
        for cgroup in self._cgroups():
            with contextlib.suppress(OSError):
                for pid in (cgroup / "cgroup.procs").read_text().split():
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(int(pid), signal.SIGKILL)
        time.sleep(0.2)
        for cgroup in sorted(self._cgroups(), key=lambda p: len(p.parts), reverse=True):
            with contextlib.suppress(OSError):
                cgroup.rmdir()

    def container_rss(self, container_id: str) -> int:
        """The anonymous memory of a running container (`total_rss` of its memory
        cgroup), in bytes: what a process's own data takes, without the page cache the
        kernel drops before it kills for memory. `container_id` as a pod's status has it
        (`containerd://...`). Raises LookupError when no cgroup of this node has it."""
        cid = container_id.split("://", 1)[-1]
        root = CGROUP_ROOT / "memory" / CGROUP_PARENT
        for stat in root.rglob(f"{cid}/memory.stat"):
            for line in stat.read_text().splitlines():
                key, _, value = line.partition(" ")
                if key == "total_rss":
                    return int(value)
        raise LookupError(f"no memory cgroup of container {cid} under {root}")

    @staticmethod
    def _hierarchies() -> list[Path]:
        """The mounted cgroup v1 hierarchies (cpu, memory, pids, ...)."""
        if not CGROUP_ROOT.exists():
            return []
        return [h for h in CGROUP_ROOT.iterdir() if h.is_dir() and (h / "cgroup.procs").exists()]

    @classmethod
    def _cgroups(cls) -> list[Path]:
        """This node's cgroups (under CGROUP_PARENT) in every hierarchy."""
        found: list[Path] = []
        for hierarchy in cls._hierarchies():
            root = hierarchy / CGROUP_PARENT
            if root.is_dir():
                found += [root, *(p for p in root.rglob("*") if p.is_dir())]
        return found

    def log_tails(self, lines: int = 30) -> str:
        return "\n".join(
            f"----- {name} -----\n{_tail(self.log(name), lines)}"
            for name in ("containerd", "kubelet")
        )

    def container_log_tails(self, namespace: str, lines: int = 20) -> str:
        """The newest log of every container of the namespace's pods, read from the
        kubelet's `podLogsDir`: what a failed test shows of the pods it waited for
        (`kubectl logs` would need the kubelet's serving port)."""
        parts = []
        for pod in sorted((self.directory / "pod-logs").glob(f"{namespace}_*")):
            for container in sorted(p for p in pod.iterdir() if p.is_dir()):
                logs = sorted(container.glob("*.log"), key=lambda p: p.stat().st_mtime)
                if logs:
                    parts.append(f"----- {pod.name}/{container.name} -----\n")
                    parts.append(_tail(logs[-1], lines) + "\n")
        return "".join(parts) or f"(no container logs in {namespace})"
