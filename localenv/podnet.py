"""Pod networking inside the sandbox: a network namespace per pod, wired to the bridge.

What a CNI bridge plugin does for a kubelet, with `ip`: each pod gets a named network
namespace (on the sandbox's private /run/netns), a veth pair whose outer end is a port
of the sandbox's bridge and whose inner end is the pod's `eth0` with the pod's IP, and a
default route through the bridge's address. Processes of the pod enter that namespace
before they exec (`enter`), so `serve --host <pod IP>` binds an address that exists only
there, readiness probes and Services reach it over the bridge, and the API server
accepts it in EndpointSlices (it refuses loopback addresses).

Used by `localenv.podrunner`; needs the sandbox (`localenv.sandbox`).
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from localenv.sandbox import BRIDGE, GATEWAY_IP, NETNS_DIR, POD_NETWORK, require_inside

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


class PodNetworkError(RuntimeError):
    """A pod's network could not be set up; the message has the failing command."""


def _ip(*args: str) -> None:
    result = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise PodNetworkError(f"ip {' '.join(args)}: {result.stderr.strip()}")


@dataclass(frozen=True)
class PodNetns:
    """One pod's network namespace."""

    name: str  # also the file under /run/netns
    ip: str
    host_veth: str

    @property
    def path(self) -> Path:
        return NETNS_DIR / self.name

    def enter(self) -> None:
        """Move the calling process into the pod's network namespace (for preexec_fn:
        after fork, before exec)."""
        fd = os.open(self.path, os.O_RDONLY)
        try:
            if _libc.setns(fd, CLONE_NEWNET) != 0:
                errno = ctypes.get_errno()
                raise OSError(errno, f"setns into {self.path}: {os.strerror(errno)}")
        finally:
            os.close(fd)


def _names(uid: str) -> tuple[str, str]:
    """(netns, host veth) names from the pod's uid: unique, and veth names fit IFNAMSIZ."""
    short = hashlib.sha256(uid.encode()).hexdigest()[:10]
    return f"pod-{short}", f"mlv{short}"


def create(uid: str, ip: str) -> PodNetns:
    """The network of the pod `uid` with address `ip` in the pod network."""
    require_inside("a pod network namespace")
    name, veth = _names(uid)
    prefix = POD_NETWORK.split("/")[1]
    netns = PodNetns(name=name, ip=ip, host_veth=veth)
    if netns.path.exists():  # a previous runner of this sandbox left it: start clean
        delete(netns)
    _ip("netns", "add", name)
    try:
        _ip("link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", name)
        _ip("link", "set", veth, "master", BRIDGE, "up")
        _ip("-n", name, "link", "set", "lo", "up")
        _ip("-n", name, "addr", "add", f"{ip}/{prefix}", "dev", "eth0")
        _ip("-n", name, "link", "set", "eth0", "up")
        _ip("-n", name, "route", "add", "default", "via", GATEWAY_IP)
    except PodNetworkError:
        delete(netns)
        raise
    return netns


def delete(netns: PodNetns) -> None:
    """Remove the namespace; its veth pair goes with it."""
    subprocess.run(["ip", "netns", "del", netns.name], capture_output=True, check=False)
    subprocess.run(["ip", "link", "del", netns.host_veth], capture_output=True, check=False)
