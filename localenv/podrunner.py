"""A process runner standing in for the kubelet of one extra node, `runner-0`.

The e2e tests need serving pods that really convert and serve a model. kwok only
fakes container states, so this runner owns one node of its own (`localenv.node`)
and, for every Pod the scheduler binds to it, does what a kubelet would with local
processes instead of containers:

- gives the pod its own network namespace on the sandbox's bridge (`localenv.podnet`)
  with an IP from the node's podCIDR `10.244.1.0/24`, reports it with phase Pending
  and the init container running; every process of the pod runs in that namespace;
- runs each init container as `mlmodel-runtime` from this venv with the
  container's args and env, paths under its volume mounts (the `models` emptyDir, the
  `pin` ConfigMap, whose items it writes first as the kubelet does, a hostPath volume as
  the node's directory `<state>/hostpath/<path>`, shared by the pods), the report file
  (its termination message) and the PVC mount root rewritten to per-pod paths;
  a failure is reported as the kubelet does (terminated, exit code, reason Error,
  message = the report) and is not retried;
- then runs the main container (`serve`) bound to the pod IP, probes its readiness
  path, reports it ready, restarts it with a backoff when it exits
  (CrashLoopBackOff after CRASH_EXITS quick exits);
- for a pod being deleted: marks it not ready, SIGTERM at once (serve keeps answering,
  unready, for its shutdown delay while routes stop sending to it), waits up to the
  grace period, SIGKILL, then deletes the pod object with gracePeriodSeconds=0 (the
  kubelet's final delete).

Prometheus finds the pods through the API (Kubernetes service discovery), as in a
cluster. Library use: `PodRunner(plane, directory).start()` ... `.stop()`;
command line: `python -m localenv.podrunner --kubeconfig K --state DIR`.
Limits are in docs/e2e.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import functools
import ipaddress
import json
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import httpx

from localenv import node as node_mod
from localenv import podnet
from localenv.kubeapi import ApiAccess, KubeApi

RUNTIME = Path(sys.executable).parent / "mlmodel-runtime"
POLL_S = 0.5
PROBE_S = 0.5
CRASH_WINDOW_S = 10.0  # an exit sooner than this after start is a quick exit
CRASH_EXITS = 3
MAX_RESTARTS = 20
BACKOFF_S = (1.0, 2.0, 4.0, 8.0, 10.0)
STOP_GRACE_S = 5.0
MESSAGE_BYTES = 4096  # the kubelet's limit on a termination message
LOG_FALLBACK_BYTES = 2048

log = logging.getLogger("podrunner")

_libc = ctypes.CDLL(None, use_errno=True)


def _in_pod(netns: podnet.PodNetns | None) -> None:
    """In the child, before exec: SIGKILL it if the runner's thread dies (no strays), and
    move it into the pod's network namespace, where only the pod's IP exists."""
    _libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    if netns is None:
        raise OSError("the pod's network namespace is not set up")
    netns.enter()


def now_text() -> str:
    return node_mod.rfc3339(time.time())


def rewrite_args(args: list[str], replacements: dict[str, str]) -> list[str]:
    """Replace the value of each flag in `replacements`, in `--f=v` or `--f v` form."""
    out: list[str] = []
    index = 0
    while index < len(args):
        flag, equals, _ = args[index].partition("=")
        if flag in replacements:
            out.append(f"{flag}={replacements[flag]}")
            index += 1 if equals else 2
            continue
        out.append(args[index])
        index += 1
    return out


def rebase_arg(
    arg: str,
    mounts: list[dict[str, Any]],
    pod_dir: Path,
    node_volumes: Mapping[str, Path] | None = None,
) -> str:
    """`--flag=/mount/path/x` with `/mount/path` one of `mounts` -> the directory of that
    volume: the node's for a volume in `node_volumes` (hostPath), else the pod's own
    (`pod_dir/<volume name>/x`); anything else as it is."""
    flag, equals, value = arg.partition("=")
    if not equals:
        return arg
    for mount in mounts:
        root = mount["mountPath"].rstrip("/")
        if value == root or value.startswith(root + "/"):
            directory = (node_volumes or {}).get(mount["name"], pod_dir / mount["name"])
            return f"{flag}={directory}{value[len(root) :]}"
    return arg


class IpPool:
    """Pod IPs from the node's podCIDR, handed out round-robin so that an address is
    not reused at once (a process still draining may hold it)."""

    def __init__(self, cidr: str) -> None:
        self._hosts = [str(h) for h in ipaddress.ip_network(cidr).hosts()][1:]
        self._used: set[str] = set()
        self._next = 0

    def take(self, preferred: str | None = None) -> str:
        if preferred in self._hosts and preferred not in self._used:
            self._used.add(preferred)
            return preferred
        for offset in range(len(self._hosts)):
            candidate = self._hosts[(self._next + offset) % len(self._hosts)]
            if candidate not in self._used:
                self._next = (self._next + offset + 1) % len(self._hosts)
                self._used.add(candidate)
                return candidate
        raise RuntimeError("the runner's pod CIDR is exhausted")

    def release(self, address: str) -> None:
        self._used.discard(address)


class ContainerRun:
    """One container's status, as the kubelet reports it."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        self.name: str = spec["name"]
        self.state: dict[str, Any] = {"waiting": {"reason": "PodInitializing"}}
        self.last_state: dict[str, Any] = {}
        self.ready = False
        self.started = False
        self.restarts = 0
        self.container_id = ""

    def status(self) -> dict[str, Any]:
        out = {
            "name": self.name,
            "image": self.spec.get("image", ""),
            "imageID": "",
            "state": self.state,
            "lastState": self.last_state,
            "ready": self.ready,
            "started": self.started,
            "restartCount": self.restarts,
        }
        if self.container_id:
            out["containerID"] = self.container_id
        return out


class PodWorker:
    """Everything the runner does for one pod, from binding to the final delete."""

    def __init__(self, runner: PodRunner, pod: dict[str, Any]) -> None:
        meta, spec = pod["metadata"], pod["spec"]
        self.runner = runner
        self.namespace: str = meta["namespace"]
        self.name: str = meta["name"]
        self.uid: str = meta["uid"]
        self.labels: dict[str, str] = dict(meta.get("labels") or {})
        self.spec = spec
        self.dir = runner.directory / "pods" / f"{self.namespace}_{self.name}_{self.uid[:8]}"
        for sub in ("models", "tmp", "pvc"):
            (self.dir / sub).mkdir(parents=True, exist_ok=True)
        # hostPath volumes are the node's directories, shared by every pod that mounts them.
        self.node_volumes = {
            v["name"]: runner.host_path(v["hostPath"]["path"])
            for v in spec.get("volumes") or ()
            if v.get("hostPath")
        }
        for directory in self.node_volumes.values():
            directory.mkdir(parents=True, exist_ok=True)
        self.ip = runner.ips.take((pod.get("status") or {}).get("podIP"))
        self.netns: podnet.PodNetns | None = None  # set up when the pod starts
        self.inits = [ContainerRun(c) for c in spec.get("initContainers") or ()]
        self.mains = [ContainerRun(c) for c in spec.get("containers") or ()]
        self.phase = "Pending"
        self.initialized = not self.inits
        self.started_at = now_text()
        self.serving: set[str] = set()
        self.processes: dict[str, asyncio.subprocess.Process] = {}
        self.terminating = False
        self.task: asyncio.Task[None] | None = None
        self._transitions: dict[str, tuple[str, str]] = {}
        self._published = ""
        self._publish_lock = asyncio.Lock()
        self.unpublished = False  # the last write failed: the runner's sync writes it again

    @property
    def path(self) -> str:
        return f"/api/v1/namespaces/{self.namespace}/pods/{self.name}"

    def start(self) -> None:
        self.task = asyncio.create_task(self._run(), name=f"pod {self.namespace}/{self.name}")

    # ---- status -------------------------------------------------------------------

    def _condition(
        self, kind: str, ok: bool, reason: str = "", message: str = ""
    ) -> dict[str, Any]:
        status = "True" if ok else "False"
        previous = self._transitions.get(kind)
        if previous is None or previous[0] != status:
            self._transitions[kind] = (status, now_text())
        condition = {
            "type": kind,
            "status": status,
            "lastProbeTime": None,
            "lastTransitionTime": self._transitions[kind][1],
        }
        if not ok:
            condition.update(reason=reason, message=message)
        return condition

    def status(self) -> dict[str, Any]:
        unready = [c.name for c in self.mains if not c.ready]
        ready = not unready and bool(self.mains) and not self.terminating
        pending_init = [c.name for c in self.inits if not c.ready]
        return {
            "phase": self.phase,
            "hostIP": node_mod.HOST_IP,
            "hostIPs": [{"ip": node_mod.HOST_IP}],
            "podIP": self.ip,
            "podIPs": [{"ip": self.ip}],
            "startTime": self.started_at,
            "conditions": [
                self._condition("PodScheduled", True),
                self._condition(
                    "Initialized",
                    self.initialized,
                    "ContainersNotInitialized",
                    f"containers with incomplete status: {pending_init}",
                ),
                self._condition(
                    "ContainersReady",
                    not unready,
                    "ContainersNotReady",
                    f"containers with unready status: {unready}",
                ),
                self._condition(
                    "Ready",
                    ready,
                    "ContainersNotReady",
                    f"containers with unready status: {unready}",
                ),
            ],
            "initContainerStatuses": [c.status() for c in self.inits],
            "containerStatuses": [c.status() for c in self.mains],
        }

    async def publish(self) -> None:
        """Write the status (a merge patch replaces every list whole); skip if unchanged.
        A write that fails (the API server restarting) is not lost: `unpublished` stays
        set and the runner's next sync writes the status again, as the kubelet's status
        manager does. Otherwise a pod that turned ready while the API server was down
        would be reported unready for good, and its rollout judged on that."""
        async with self._publish_lock:
            status = self.status()
            text = json.dumps(status, sort_keys=True)
            if text == self._published:
                self.unpublished = False
                return
            try:
                await self.runner.api.merge_patch(f"{self.path}/status", {"status": status})
                self._published = text
                self.unpublished = False
            except (httpx.HTTPError, RuntimeError) as error:
                self.unpublished = True
                log.warning("%s/%s: status not written: %s", self.namespace, self.name, error)

    # ---- processes ----------------------------------------------------------------

    def _env(self, container: dict[str, Any]) -> dict[str, str]:
        keep = ("PATH", "HOME", "LANG", "LC_ALL")
        env = {k: os.environ[k] for k in keep if k in os.environ}
        env.update(TMPDIR=str(self.dir / "tmp"), HOSTNAME=self.name)
        fields = {
            "metadata.name": self.name,
            "metadata.namespace": self.namespace,
            "metadata.uid": self.uid,
            "status.podIP": self.ip,
            "status.hostIP": node_mod.HOST_IP,
            "spec.nodeName": node_mod.NODE_NAME,
        }
        for item in container.get("env") or ():
            if "value" in item:
                env[item["name"]] = str(item["value"])
            elif (
                path := ((item.get("valueFrom") or {}).get("fieldRef") or {}).get("fieldPath")
            ) in (fields):
                env[item["name"]] = fields[str(path)]
            else:
                log.warning("%s: env %s: only value and fieldRef are supported", self.name, item)
        if container.get("envFrom"):
            log.warning("%s: envFrom is not supported by the pod runner; ignored", self.name)
        return env

    def _argv(self, container: dict[str, Any]) -> list[str] | None:
        command = list(container.get("command") or ())
        if len(command) != 1 or Path(command[0]).name != "mlmodel-runtime":
            return None
        # Paths inside the container's volume mounts become the pod's own directories
        # for those volumes, longest mount path first (as the kubelet's mounts nest);
        # then the flags whose paths the kubelet provides otherwise.
        mounts = sorted(
            (m for m in container.get("volumeMounts") or () if m.get("name") != "model-pvc"),
            key=lambda m: len(m["mountPath"]),
            reverse=True,
        )
        args = [
            rebase_arg(a, mounts, self.dir, self.node_volumes) for a in container.get("args") or ()
        ]
        replacements = {
            "--report-file": str(self.dir / f"{container['name']}.termination-log"),
            "--mount-root": str(self.dir / "pvc"),
            "--host": self.ip,
        }
        return [str(RUNTIME), *rewrite_args(args, replacements)]

    async def _materialise_config_maps(self) -> None:
        """Write each configMap volume's items as files, as the kubelet does at pod start
        (an optional one that does not exist is an empty directory)."""
        for volume in self.spec.get("volumes") or ():
            source = volume.get("configMap")
            if not source:
                continue
            target = self.dir / volume["name"]
            target.mkdir(parents=True, exist_ok=True)
            path = f"/api/v1/namespaces/{self.namespace}/configmaps/{source['name']}"
            config_map = await self.runner.api.get(path)
            data = (config_map or {}).get("data") or {}
            items = source.get("items") or [{"key": k, "path": k} for k in data]
            for item in items:
                if item["key"] in data:
                    (target / item["path"]).write_text(data[item["key"]])

    async def _spawn(self, run: ContainerRun, argv: list[str]) -> asyncio.subprocess.Process:
        logfile = self.dir / f"{run.name}.log"
        with logfile.open("ab") as handle:
            handle.write(f"==== {now_text()} podrunner: {' '.join(argv)}\n".encode())
            handle.flush()
            process = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=handle,
                stderr=asyncio.subprocess.STDOUT,
                env=self._env(run.spec),
                cwd=self.dir,
                start_new_session=True,
                preexec_fn=functools.partial(_in_pod, self.netns),
            )
        self.processes[run.name] = process
        run.container_id = f"podrunner://{process.pid}"
        return process

    def _termination_message(self, run: ContainerRun, failed: bool) -> str:
        report = self.dir / f"{run.name}.termination-log"
        message = report.read_bytes()[:MESSAGE_BYTES] if report.exists() else b""
        policy = run.spec.get("terminationMessagePolicy", "File")
        if not message.strip() and failed and policy == "FallbackToLogsOnError":
            message = (self.dir / f"{run.name}.log").read_bytes()[-LOG_FALLBACK_BYTES:]
        return message.decode(errors="replace")

    def _unsupported(self, run: ContainerRun) -> None:
        run.state = {
            "waiting": {
                "reason": "CreateContainerError",
                "message": "the pod runner only runs the command [mlmodel-runtime]",
            }
        }

    # ---- lifecycle ----------------------------------------------------------------

    async def _run(self) -> None:
        try:
            await self._lifecycle()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("%s/%s: the pod's lifecycle failed", self.namespace, self.name)

    async def _lifecycle(self) -> None:
        self.netns = await asyncio.to_thread(podnet.create, self.uid, self.ip)
        await self._materialise_config_maps()
        for run in self.inits:
            run.state = {"running": {"startedAt": now_text()}}
        await self.publish()
        for run in self.inits:
            if not await self._run_init(run):
                return  # stays Pending with the failure reported; no retry
        self.initialized = True
        await asyncio.gather(*(self._serve_loop(run) for run in self.mains))

    async def _run_init(self, run: ContainerRun) -> bool:
        argv = self._argv(run.spec)
        if argv is None:
            self._unsupported(run)
            await self.publish()
            return False
        started = now_text()
        run.state = {"running": {"startedAt": started}}
        run.started = True
        process = await self._spawn(run, argv)
        await self.publish()
        code = await process.wait()
        self.processes.pop(run.name, None)
        run.started = False
        run.ready = code == 0
        run.state = {
            "terminated": {
                "exitCode": code,
                "reason": "Completed" if code == 0 else "Error",
                "message": self._termination_message(run, failed=code != 0),
                "startedAt": started,
                "finishedAt": now_text(),
                "containerID": run.container_id,
            }
        }
        log.info("%s/%s: init container %s exited %s", self.namespace, self.name, run.name, code)
        await self.publish()
        return code == 0

    def _probe_url(self, run: ContainerRun) -> str | None:
        probe = (run.spec.get("readinessProbe") or {}).get("httpGet")
        if not probe:
            return None
        port = probe.get("port")
        for declared in run.spec.get("ports") or ():
            if declared.get("name") == port:
                port = declared["containerPort"]
        return f"http://{self.ip}:{port}{probe.get('path', '/')}"

    async def _serve_loop(self, run: ContainerRun) -> None:
        argv = self._argv(run.spec)
        if argv is None:
            self._unsupported(run)
            await self.publish()
            return
        quick_exits = 0
        for _attempt in range(MAX_RESTARTS + 1):
            started_at = time.monotonic()
            started = now_text()
            process = await self._spawn(run, argv)
            run.state = {"running": {"startedAt": started}}
            run.started = True
            self.phase = "Running"
            self.serving.add(run.name)
            await self.publish()
            code = await self._watch(run, process)
            self.processes.pop(run.name, None)
            self.serving.discard(run.name)
            quick_exits = quick_exits + 1 if time.monotonic() - started_at < CRASH_WINDOW_S else 0
            backoff = BACKOFF_S[min(quick_exits, len(BACKOFF_S) - 1)]
            run.ready, run.started = False, False
            run.restarts += 1
            run.last_state = {
                "terminated": {
                    "exitCode": code,
                    "reason": "Completed" if code == 0 else "Error",
                    "startedAt": started,
                    "finishedAt": now_text(),
                    "containerID": run.container_id,
                }
            }
            reason = "CrashLoopBackOff" if quick_exits >= CRASH_EXITS else "ContainerCreating"
            run.state = {
                "waiting": {
                    "reason": reason,
                    "message": f"back-off {backoff:g}s restarting failed container={run.name} "
                    f"pod={self.name}_{self.namespace}({self.uid})",
                }
            }
            log.info("%s/%s: %s exited %s", self.namespace, self.name, run.name, code)
            await self.publish()
            await asyncio.sleep(backoff)

    async def _watch(self, run: ContainerRun, process: asyncio.subprocess.Process) -> int:
        """Probe readiness until the process exits; return its exit code."""
        url = self._probe_url(run)
        # As the kubelet: ready at the first success, not ready only after
        # failureThreshold failures in a row, each probe bounded by timeoutSeconds.
        # (Probes run every PROBE_S rather than every periodSeconds, to keep tests fast.)
        probe = run.spec.get("readinessProbe") or {}
        threshold = int(probe.get("failureThreshold", 3))
        timeout = float(probe.get("timeoutSeconds", 1))
        failures = 0
        exited = asyncio.ensure_future(process.wait())
        try:
            while True:
                done, _ = await asyncio.wait({exited}, timeout=PROBE_S)
                if done:
                    return exited.result()
                passed = True if url is None else await self.runner.probe(url, timeout)
                failures = 0 if passed else failures + 1
                ready = passed or (run.ready and failures < threshold)
                if ready != run.ready:
                    run.ready = ready
                    await self.publish()
        finally:
            exited.cancel()

    async def stop_processes(self, grace: float) -> None:
        """SIGTERM every process group, wait up to `grace`, then SIGKILL."""
        processes = [p for p in self.processes.values() if p.returncode is None]
        for process in processes:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
        if processes:
            _, pending = await asyncio.wait(
                [asyncio.ensure_future(p.wait()) for p in processes], timeout=max(grace, 0.1)
            )
            for process in processes:
                if process.returncode is None:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(process.pid, signal.SIGKILL)
            for waiter in pending:
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.wait_for(waiter, timeout=10)
        self.processes.clear()
        self.serving.clear()

    async def terminate(self, grace: float, *, delete: bool) -> None:
        """The kubelet's side of a pod deletion (or, with delete=False, of a runner stop)."""
        self.terminating = True
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)
        for run in self.mains:
            run.ready = False
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.publish(), timeout=3)
        # SIGTERM at once, as the kubelet sends it: serve itself keeps answering (unready)
        # for its --shutdown-delay-s while endpoints and routes stop sending to it.
        await self.stop_processes(grace)
        if self.netns is not None:
            await asyncio.to_thread(podnet.delete, self.netns)
        self.runner.ips.release(self.ip)
        log.info("%s/%s: stopped", self.namespace, self.name)


class PodRunner:
    """The kubelet of `runner-0`. `start()` runs it in a thread with its own event loop;
    `run()` is the coroutine itself (the command line uses it directly)."""

    def __init__(
        self,
        plane: Any,
        directory: Path,
        *,
        poll_interval: float = POLL_S,
        pod_cidr: str = node_mod.POD_CIDR,
    ) -> None:
        self.access = ApiAccess.of(plane)
        self.directory = directory
        self.directory.mkdir(parents=True, exist_ok=True)
        self.log_file = directory / "runner.log"
        self.poll_interval = poll_interval
        self.pod_cidr = pod_cidr  # two runners on one machine need distinct ones
        self.ips = IpPool(pod_cidr)
        self.workers: dict[str, PodWorker] = {}
        self.terminations: dict[str, asyncio.Task[None]] = {}
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._handler: logging.Handler | None = None

    def host_path(self, path: str) -> Path:
        """Where a hostPath volume's `path` of this node is: under the runner's state."""
        return self.directory / "hostpath" / path.lstrip("/")

    # ---- library API --------------------------------------------------------------

    def start(self, timeout: float = 30.0) -> PodRunner:
        """Run in a background thread; return once the node is created and Ready."""
        self._thread = threading.Thread(target=self._thread_main, name="podrunner", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            self.stop()
            raise RuntimeError(f"the pod runner did not start within {timeout:.0f} s")
        if self._error is not None:
            raise RuntimeError(f"the pod runner failed to start: {self._error}") from self._error
        return self

    def stop(self, timeout: float = 60.0) -> None:
        """Stop every process it started, then the thread."""
        if self._loop is not None and self._stop is not None:
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                raise RuntimeError("the pod runner did not stop in time")
            self._thread = None

    def signal_container(self, namespace: str, pod: str, container: str, signum: int) -> None:
        """Send `signum` to a running container's processes, as `kill` inside it would:
        SIGSTOP makes a hung server (its readiness probe then times out), SIGCONT
        brings it back. Raises LookupError when no such container is running."""
        for worker in list(self.workers.values()):
            if (worker.namespace, worker.name) == (namespace, pod):
                process = worker.processes.get(container)
                if process is not None and process.returncode is None:
                    os.killpg(process.pid, signum)
                    return
        raise LookupError(f"no running container {container!r} in pod {namespace}/{pod}")

    def _thread_main(self) -> None:
        try:
            asyncio.run(self._thread_run())
        except BaseException as error:
            self._error = error
            log.exception("the pod runner failed")
        finally:
            self._ready.set()

    async def _thread_run(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        await self.run(self._stop, on_ready=self._ready.set)

    def log_tails(self, lines: int = 30) -> str:
        """The runner's log and every pod's container logs, for a failing test's report."""
        files = [self.log_file, *sorted(self.directory.glob("pods/*/*.log"))]
        parts = []
        for path in files:
            if path.exists():
                tail = path.read_text(errors="replace").splitlines()[-lines:]
                parts.append(f"----- {path.relative_to(self.directory)} -----\n" + "\n".join(tail))
        return "\n".join(parts)

    # ---- the loop -----------------------------------------------------------------

    async def run(
        self, stop: asyncio.Event, *, on_ready: Callable[[], None] = lambda: None
    ) -> None:
        self._handler = logging.FileHandler(self.log_file)
        self._handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        log.addHandler(self._handler)
        log.setLevel(logging.INFO)
        self.api = KubeApi(self.access)
        self.http = httpx.AsyncClient(timeout=1.0, trust_env=False)
        heartbeats: asyncio.Task[None] | None = None
        try:
            node = await node_mod.ensure_node(self.api, self.pod_cidr)
            since = time.time()
            await node_mod.heartbeat(self.api, node_uid=node["metadata"]["uid"], since=since)
            log.info("node %s ready; pods from %s", node_mod.NODE_NAME, self.pod_cidr)
            on_ready()
            heartbeats = asyncio.create_task(self._heartbeats(node["metadata"]["uid"], since))
            while not stop.is_set():
                try:
                    await self._sync()
                except (httpx.HTTPError, RuntimeError) as error:
                    log.warning("sync failed: %s", error)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=self.poll_interval)
        finally:
            if heartbeats is not None:
                heartbeats.cancel()
            await self._shutdown()
            await self.http.aclose()
            await self.api.aclose()
            log.removeHandler(self._handler)
            self._handler.close()

    async def _heartbeats(self, node_uid: str, since: float) -> None:
        while True:
            await asyncio.sleep(node_mod.HEARTBEAT_S)
            try:
                await node_mod.heartbeat(self.api, node_uid=node_uid, since=since)
            except (httpx.HTTPError, RuntimeError) as error:
                log.warning("heartbeat failed: %s", error)

    async def _sync(self) -> None:
        pods = await self.api.get(
            "/api/v1/pods", {"fieldSelector": f"spec.nodeName={node_mod.NODE_NAME}"}
        )
        seen: set[str] = set()
        for pod in (pods or {}).get("items") or ():
            meta = pod["metadata"]
            uid = meta["uid"]
            seen.add(uid)
            if uid in self.terminations:
                continue
            if meta.get("deletionTimestamp"):
                grace = float(
                    meta.get("deletionGracePeriodSeconds")
                    or pod["spec"].get("terminationGracePeriodSeconds")
                    or 30
                )
                self._terminate(uid, pod, grace, delete=True)
            elif uid not in self.workers and pod.get("status", {}).get("phase") not in (
                "Succeeded",
                "Failed",
            ):
                worker = PodWorker(self, pod)
                self.workers[uid] = worker
                log.info("%s/%s: started on %s", worker.namespace, worker.name, worker.ip)
                worker.start()
        for uid in [u for u in self.workers if u not in seen]:
            self._terminate(uid, None, 0.0, delete=False)  # gone from the API: just stop
        for worker in [w for w in self.workers.values() if w.unpublished]:
            log.info("%s/%s: writing its status again", worker.namespace, worker.name)
            await worker.publish()
        for uid in [u for u, task in self.terminations.items() if task.done()]:
            del self.terminations[uid]

    def _terminate(
        self, uid: str, pod: dict[str, Any] | None, grace: float, *, delete: bool
    ) -> None:
        worker = self.workers.pop(uid, None)

        async def finish() -> None:
            if worker is not None:
                await worker.terminate(grace, delete=delete)
            if delete and pod is not None:
                meta = pod["metadata"]
                try:
                    await self.api.delete(
                        f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}",
                        {"gracePeriodSeconds": 0, "preconditions": {"uid": uid}},
                    )
                except (httpx.HTTPError, RuntimeError) as error:
                    # The pod is still listed as deleting, so a later sync (once this
                    # task is done) comes back here and deletes it again.
                    log.warning(
                        "%s/%s: not deleted yet: %s", meta["namespace"], meta["name"], error
                    )
                    return
                log.info("%s/%s: deleted", meta["namespace"], meta["name"])

        self.terminations[uid] = asyncio.create_task(finish())

    async def _shutdown(self) -> None:
        """Stop every process (no strays); mark their pods not ready where possible."""
        for uid in list(self.workers):
            self._terminate(uid, None, STOP_GRACE_S, delete=False)
        if self.terminations:
            await asyncio.gather(*self.terminations.values(), return_exceptions=True)
        self.terminations.clear()
        log.info("stopped")

    async def probe(self, url: str, seconds: float = 1.0) -> bool:
        try:
            response = await self.http.get(url, timeout=seconds)
        except httpx.HTTPError:
            return False
        return 200 <= response.status_code < 400


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m localenv.podrunner",
        description=f"Run the pods bound to node {node_mod.NODE_NAME} as local processes.",
    )
    parser.add_argument("--kubeconfig", type=Path, required=True, help="admin kubeconfig")
    parser.add_argument("--state", type=Path, required=True, help="pod directories and logs")
    args = parser.parse_args(argv)
    runner = PodRunner(ApiAccess.from_kubeconfig(args.kubeconfig), args.state)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # not one line per API call

    async def serve_until_signalled() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await runner.run(stop)

    asyncio.run(serve_until_signalled())
    return 0


if __name__ == "__main__":
    sys.exit(main())
