"""`python -m localenv.controlplane {build,up,down,status}`: the control plane for people.

`up` builds what is missing (outside the network sandbox: builds need the module
proxy), then starts a supervisor in the background, inside a network sandbox of its
own, that runs the control plane with its state under `.cluster/` (or --dir) and
stops it on SIGTERM; `down` signals it and waits. Its addresses exist only inside
that sandbox, so `up` prints the command prefix (SANDBOX_EXEC) that runs kubectl, or
anything else, in there. `make cluster-up` and `make cluster-down` call these.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from localenv import sandbox
from localenv.components.build import ensure as ensure_component
from localenv.controlplane.build import BuildError, ensure_binaries
from localenv.controlplane.cluster import ControlPlaneError, start_control_plane

READY_FILE = "ready"
PID_FILE = "supervisor.pid"
UP_TIMEOUT_S = 1800.0  # the first `up` may build the binaries


def _pid(state_dir: Path) -> int | None:
    try:
        pid = int((state_dir / PID_FILE).read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    return pid


def supervise(state_dir: Path) -> int:
    """Run the control plane in the foreground until SIGTERM or SIGINT."""
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    (state_dir / READY_FILE).unlink(missing_ok=True)
    (state_dir / PID_FILE).write_text(str(os.getpid()))
    try:
        plane = start_control_plane(state_dir)
    except (BuildError, ControlPlaneError) as error:
        print(f"error: {error}", file=sys.stderr, flush=True)
        return 1
    (state_dir / READY_FILE).write_text(plane.server)
    print(f"control plane ready at {plane.server}", flush=True)
    try:
        while not stop.wait(1.0):
            try:
                plane.check()
            except ControlPlaneError as error:
                print(f"error: {error}", file=sys.stderr, flush=True)
                return 1
    finally:
        (state_dir / READY_FILE).unlink(missing_ok=True)
        plane.stop()
        (state_dir / PID_FILE).unlink(missing_ok=True)
    return 0


def _how_to_use(state_dir: Path, pid: int) -> str:
    kubeconfig = (state_dir / "kubeconfig").resolve()
    kubectl = ensure_binaries(quiet=True).path("kubectl")
    return (
        f"KUBECONFIG={kubeconfig}\n"
        f"SANDBOX_EXEC={shlex.join(sandbox.exec_prefix(pid))}\n"
        "The API server's address exists only inside the network sandbox; with the two "
        "variables above exported:\n"
        f"  $SANDBOX_EXEC {kubectl} get nodes"
    )


def up(state_dir: Path) -> int:
    state_dir = state_dir.resolve()
    state_dir.mkdir(parents=True, exist_ok=True)
    running = _pid(state_dir)
    if running is not None and (state_dir / READY_FILE).exists():
        print(f"already running.\n{_how_to_use(state_dir, running)}")
        return 0
    try:
        # Build in the foreground, so people see progress, and outside the sandbox.
        ensure_binaries()
        ensure_component("coredns")
    except BuildError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    log = (state_dir / "supervisor.log").open("ab")
    supervise_command = [
        sys.executable, "-m", "localenv.controlplane", "supervise", "--dir", str(state_dir)
    ]  # fmt: skip
    process = subprocess.Popen(
        [sys.executable, "-m", "localenv.sandbox", "--", *supervise_command],
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    started = time.monotonic()
    while time.monotonic() - started < UP_TIMEOUT_S:
        supervisor = _pid(state_dir)
        if supervisor is not None and (state_dir / READY_FILE).exists():
            print(
                f"control plane ready in {time.monotonic() - started:.1f} s "
                f"(logs in {state_dir / 'logs'}).\n{_how_to_use(state_dir, supervisor)}"
            )
            return 0
        if process.poll() is not None:
            print((state_dir / "supervisor.log").read_text()[-4000:], file=sys.stderr)
            return 1
        time.sleep(0.2)
    print("timed out waiting for the control plane", file=sys.stderr)
    return 1


def down(state_dir: Path) -> int:
    pid = _pid(state_dir)
    if pid is None:
        print("not running")
        return 0
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            print("stopped")
            return 0
        time.sleep(0.2)
    with contextlib.suppress(ProcessLookupError):
        # The supervisor runs in the session `up` started (the sandbox's): all of it.
        os.killpg(os.getpgid(pid), signal.SIGKILL)
    print("killed")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m localenv.controlplane")
    parser.add_argument("command", choices=["build", "up", "down", "supervise", "status"])
    parser.add_argument("--dir", type=Path, default=Path(".cluster"))
    args = parser.parse_args()
    state_dir: Path = args.dir
    if args.command == "build":
        try:
            print(ensure_binaries().directory)
        except BuildError as error:
            print(f"error: {error}", file=sys.stderr)
            return 1
        return 0
    if args.command == "up":
        return up(state_dir)
    if args.command == "down":
        return down(state_dir)
    if args.command == "supervise":
        return supervise(state_dir)
    running = _pid(state_dir) is not None and (state_dir / READY_FILE).exists()
    print("running" if running else "not running")
    return 0 if running else 1


if __name__ == "__main__":
    sys.exit(main())
