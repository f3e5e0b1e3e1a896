"""The network sandbox: everything the local environment starts runs in a network
namespace of its own, with no interface to the outside and no default route.

Inside, pods may have ordinary cluster addresses (10.244.0.0/16), Services their
ClusterIPs (10.96.0.0/16) and a gateway its own address, because those addresses exist
nowhere else: a packet to any address outside the sandbox fails in `connect()` with
"network unreachable" before it is sent, so a misconfigured component cannot reach the
machine's network, let alone leave it. Processes on the host keep talking to loopback
only; nothing here changes the host's network or kernel settings (forwarding is set in
the sandbox's own namespace; named pod namespaces live on a private tmpfs).

    python -m localenv.sandbox -- COMMAND...   runs COMMAND inside a new sandbox,
    also when called from inside one (e.g. `make demo` run by a test)

A sandbox holds one local environment. Two control planes in one would share
kube-proxy's nftables table and the cluster DNS address: the later one's `kubernetes`
Service rule (10.96.0.1:443) replaces the earlier one's and stays after it stops, so the
earlier cluster's pods reach a dead API server (seen 2026-12-01: `make demo` run by
tests/e2e/test_demo.py in the test session's sandbox cut the real node's pods off).
The control plane refuses to start where another one's DNS answers.

What a sandbox holds once set up (`setup`):

- loopback, up (the control plane listens there, as before);
- the bridge `mlbr0` with 10.244.0.1/16: the pods' network, their default gateway, and
  the address host-side components (gateway, DNS, the API server's advertise address)
  use to be reachable from pods; and a route for the Service network over it (a
  ClusterIP must be routable before kube-proxy's rules rewrite it);
- IPv4 forwarding on, in this namespace only (pods reach ClusterIPs through it);
- a private tmpfs on /run/netns for the pods' named network namespaces;
- /etc/resolv.conf replaced (in this mount namespace only) by one naming the cluster's
  DNS Service, so `<service>.<namespace>` resolves for every process inside.

Root is needed for the namespaces; as a normal user, an unprivileged user namespace
gives the same where the kernel allows it (`unshare --user --map-root-user`). Anything
else is a clear error naming what is missing.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

ENV_FLAG = "MLMODEL_SANDBOX"  # "1" inside a sandbox set up by this module
ENV_PID = "MLMODEL_SANDBOX_PID"  # a process inside, for `exec_prefix`
ENV_USERNS = "MLMODEL_SANDBOX_USERNS"  # "1" when a user namespace was needed
BRIDGE = "mlbr0"
GATEWAY_IP = "10.244.0.1"  # the bridge's address: the pods' default gateway
POD_NETWORK = "10.244.0.0/16"
SERVICE_NETWORK = "10.96.0.0/16"
KUBERNETES_SERVICE_IP = "10.96.0.1"  # the `kubernetes` Service: the first of the range
DNS_IP = "10.96.0.10"  # the cluster DNS Service (CoreDNS behind it)
NETNS_DIR = Path("/run/netns")
# Each tool the sandbox and what runs in it need, with the Debian package that has it
# (kube-proxy's nftables mode runs `nft`).
REQUIRED = {
    "unshare": "util-linux",
    "nsenter": "util-linux",
    "mount": "mount",
    "ip": "iproute2",
    "nft": "nftables",
}


class SandboxError(RuntimeError):
    """The sandbox cannot be made on this machine; the message says why and what to do."""


def inside() -> bool:
    """Whether this process runs in a sandbox set up by this module."""
    return os.environ.get(ENV_FLAG) == "1"


def require_inside(what: str) -> None:
    if not inside():
        raise SandboxError(
            f"{what} uses pod and Service addresses, which exist only inside the network "
            "sandbox: run it as `python -m localenv.sandbox -- ...` (make test and make "
            "demo do)"
        )


def _missing_tools() -> list[str]:
    return [tool for tool in REQUIRED if shutil.which(tool) is None]


def _unshare_command(command: Sequence[str]) -> list[str]:
    missing = _missing_tools()
    if missing:
        raise SandboxError(
            f"the network sandbox needs {', '.join(missing)} (Debian: apt-get install "
            f"{' '.join(sorted({REQUIRED[tool] for tool in missing}))})"
        )
    base = [
        "unshare",
        "--net",
        "--mount",
        "--propagation",
        "private",
        "--fork",
        "--kill-child",
    ]
    if os.geteuid() != 0:
        base[1:1] = ["--user", "--map-root-user"]
    setup = [sys.executable, "-m", "localenv.sandbox", "--setup", "--"]
    return [*base, "--", *setup, *command]


def _run(*args: str) -> None:
    result = subprocess.run(args, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise SandboxError(f"{' '.join(args)} failed: {result.stderr.strip()}")


def setup() -> None:
    """Set up the freshly unshared namespaces (run by the process `unshare` started)."""
    _run("ip", "link", "set", "lo", "up")
    _run("ip", "link", "add", BRIDGE, "type", "bridge")
    _run("ip", "addr", "add", f"{GATEWAY_IP}/16", "dev", BRIDGE)
    _run("ip", "link", "set", BRIDGE, "up")
    # Service ClusterIPs need a route to be looked up at all (kube-proxy rewrites them to
    # a pod's address after the lookup); this is the only route besides the pods'.
    _run("ip", "route", "add", SERVICE_NETWORK, "dev", BRIDGE, "src", GATEWAY_IP)
    Path("/proc/sys/net/ipv4/ip_forward").write_text("1\n")  # this namespace's own
    NETNS_DIR.mkdir(parents=True, exist_ok=True)
    _run("mount", "-t", "tmpfs", "-o", "mode=0755", "tmpfs", str(NETNS_DIR))
    resolv = Path(tempfile.mkdtemp(prefix="mlmodel-sandbox-")) / "resolv.conf"
    resolv.write_text(
        f"nameserver {DNS_IP}\n"
        "search svc.cluster.local cluster.local\n"
        "options ndots:5 timeout:1 attempts:2\n"
    )
    _run("mount", "--bind", str(resolv), "/etc/resolv.conf")


def exec_prefix(pid: int | None = None) -> list[str]:
    """A command prefix that runs a command inside the sandbox that `pid` is in (by
    default the one this process is in): `SANDBOX_EXEC` of `make demo --keep`."""
    target = pid if pid is not None else int(os.environ.get(ENV_PID, os.getpid()))
    prefix = ["nsenter", f"--target={target}", "--net", "--mount"]
    # A sandbox made by a normal user has a user namespace of its own (see `main`).
    in_user_namespace = os.environ.get(ENV_USERNS) == "1" if inside() else os.geteuid() != 0
    if in_user_namespace:
        prefix[1:1] = ["--user", "--preserve-credentials"]
    return prefix


def _check_user_namespaces() -> None:
    """As a normal user, fail early and clearly where user namespaces are not allowed."""
    probe = subprocess.run(
        ["unshare", "--user", "--map-root-user", "--net", "true"],
        capture_output=True,
        text=True,
        check=False,
    )
    if probe.returncode != 0:
        raise SandboxError(
            "cannot create the sandbox's namespaces as a normal user "
            f"({probe.stderr.strip() or 'unshare failed'}); unprivileged user namespaces "
            "may be disabled on this machine: run as root, or enable them"
        )


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    setting_up = bool(args) and args[0] == "--setup"
    if setting_up:
        args = args[1:]
    if args and args[0] == "--":
        args = args[1:]
    if not args:
        print("usage: python -m localenv.sandbox -- COMMAND [ARGS...]", file=sys.stderr)
        return 2
    try:
        if setting_up:
            setup()
            os.environ[ENV_FLAG] = "1"
            os.environ[ENV_PID] = str(os.getpid())
        else:
            command = _unshare_command(args)
            if os.geteuid() != 0 and not inside():
                _check_user_namespaces()
                os.environ[ENV_USERNS] = "1"
            args = command
    except (SandboxError, OSError) as error:
        print(f"localenv.sandbox: {error}", file=sys.stderr)
        return 1
    os.execvp(args[0], args)


if __name__ == "__main__":
    sys.exit(main())
