"""A real Prometheus, built from its Go module, on a port of the sandbox's 127.0.0.1,
for the local environment and the e2e tests.

It discovers the runtime pods as a cluster's Prometheus does, through Kubernetes service
discovery (role `pod`), with the very scrape job the repository ships for users
(`examples/prometheus.yaml`: the pods' `prometheus.io/*` annotations, their labels as
`mlops_dev_revision` and friends, `namespace` and `pod`), scraping every second. It keeps
its TSDB in a temporary directory and is queried through its HTTP API.

Operators that run as processes here (not pods) are scraped by one more job, from a file
`scrape_operators` writes, with the operator job's `honor_labels` (the series'
`namespace` is the MLModel's), so the dashboard of examples/grafana/ has their series.

Its port is chosen when the object is made, so its URL can go into MLModels before
it starts; see `port_known_in_advance`.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

from localenv.components.build import ensure as ensure_component

START_TIMEOUT_S = 30.0
SCRAPE_JOB = Path(__file__).resolve().parents[1] / "examples" / "prometheus.yaml"
_LOWEST_PORT = 20000
_EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")


class PrometheusError(RuntimeError):
    pass


def port_known_in_advance(host: str = "127.0.0.1") -> int:
    """A free port below the kernel's ephemeral range, for a server started later.

    A port from `bind(0)` comes from the ephemeral range, which every outgoing
    connection on the machine draws from too: between choosing it and Prometheus
    binding it (seconds, when an environment starts the control plane in between) a
    connection may take it. Below that range only a server asking for that very port
    can, and the URL handed out at construction stays true."""
    try:
        ephemeral_low = int(_EPHEMERAL_RANGE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        ephemeral_low = 32768
    candidates = list(range(_LOWEST_PORT, ephemeral_low))
    random.SystemRandom().shuffle(candidates)  # two processes do not try the same order
    for port in candidates[:200]:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind((host, port))
            except OSError:
                continue
            return port
    raise PrometheusError(f"no free port between {_LOWEST_PORT} and {ephemeral_low} on {host}")


def shipped_scrape_jobs() -> list[dict[str, Any]]:
    """The scrape job of examples/prometheus.yaml, as users put it into their config."""
    config_map = yaml.safe_load(SCRAPE_JOB.read_text())
    jobs: list[dict[str, Any]] = yaml.safe_load(config_map["data"]["mlmodel-scrape.yaml"])
    return jobs


def config(
    kubeconfig: Path, query_log: Path, operators_file: Path, *, pods: bool = True
) -> dict[str, Any]:
    jobs = shipped_scrape_jobs() if pods else []
    for job in jobs:
        for discovery in job.get("kubernetes_sd_configs") or ():
            discovery["kubeconfig_file"] = str(kubeconfig)  # in-cluster: its ServiceAccount
    jobs.append(
        {
            "job_name": "mlmodel-operator-process",
            "honor_labels": True,
            "file_sd_configs": [{"files": [str(operators_file)], "refresh_interval": "1s"}],
        }
    )
    return {
        "global": {
            "scrape_interval": "1s",
            "scrape_timeout": "1s",
            "evaluation_interval": "1s",
            "query_log_file": str(query_log),
        },
        "scrape_configs": jobs,
    }


@dataclass
class Prometheus:
    """`Prometheus(directory, targets_file).start()` ... `.stop()`; `url` is known from
    construction on."""

    directory: Path
    kubeconfig: Path  # whose identity lists and watches pods (service discovery)
    # False: no pod scrape job, only the loopback targets of `scrape_operators` (a
    # benchmark of kwok pods, which serve nothing, scrapes a stand-in instead).
    scrape_pods: bool = True
    port: int = field(default_factory=port_known_in_advance)
    process: subprocess.Popen[bytes] | None = None
    _client: httpx.Client = field(
        default_factory=lambda: httpx.Client(timeout=5.0, trust_env=False)
    )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log(self) -> Path:
        return self.directory / "prometheus.log"

    @property
    def query_log(self) -> Path:
        """Every PromQL query Prometheus answered (its own query log), one JSON a line."""
        return self.directory / "queries.log"

    @property
    def operators_file(self) -> Path:
        return self.directory / "operators.json"

    def scrape_operators(self, ports: list[int]) -> None:
        """Scrape the operator processes listening on these loopback ports (their
        /metrics), replacing the previous list; Prometheus rereads the file within a
        second. Written whole then renamed, so it never reads half a file."""
        targets = [
            {"targets": [f"127.0.0.1:{port}"], "labels": {"pod": f"operator-{port}"}}
            for port in ports
        ]
        self.directory.mkdir(parents=True, exist_ok=True)
        partial = self.operators_file.with_suffix(".tmp")
        partial.write_text(json.dumps(targets))
        partial.replace(self.operators_file)

    def queries(self) -> list[str]:
        if not self.query_log.exists():
            return []
        lines = self.query_log.read_text(errors="replace").splitlines()
        return [str(json.loads(line).get("params", {}).get("query", "")) for line in lines if line]

    def start(self) -> Prometheus:
        binary = ensure_component("prometheus")
        self.directory.mkdir(parents=True, exist_ok=True)
        config_file = self.directory / "prometheus.yml"
        if not self.operators_file.exists():
            self.scrape_operators([])
        config_file.write_text(
            yaml.safe_dump(
                config(self.kubeconfig, self.query_log, self.operators_file, pods=self.scrape_pods)
            )
        )
        self._spawn(binary, config_file)
        try:
            self._wait_ready()
        except PrometheusError:
            self.stop()
            raise
        return self

    def _spawn(self, binary: Path, config_file: Path) -> None:
        with self.log.open("ab") as handle:
            self.process = subprocess.Popen(
                [
                    str(binary),
                    f"--config.file={config_file}",
                    f"--storage.tsdb.path={self.directory / 'data'}",
                    "--storage.tsdb.retention.time=1h",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                    "--log.level=warn",
                ],
                stdin=subprocess.DEVNULL,
                stdout=handle,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process is None or self.process.poll() is not None:
                if "address already in use" in self.tail():
                    raise PrometheusError(
                        f"port {self.port} was taken by another server before Prometheus "
                        "could listen on it"
                    )
                raise PrometheusError(f"prometheus exited; log:\n{self.tail()}")
            with contextlib.suppress(httpx.HTTPError):
                if self._client.get(f"{self.url}/-/ready").status_code == 200:
                    return
            time.sleep(0.2)
        raise PrometheusError(
            f"prometheus not ready within {START_TIMEOUT_S:.0f} s:\n{self.tail()}"
        )

    def tail(self, lines: int = 30) -> str:
        if not self.log.exists():
            return "(no log)"
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def query(self, promql: str) -> list[dict[str, Any]]:
        """An instant query; the result vector (each item: `metric` labels, `value`)."""
        response = self._client.get(f"{self.url}/api/v1/query", params={"query": promql})
        body = response.json()
        if body.get("status") != "success":
            raise PrometheusError(f"query {promql!r} failed: {body}")
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    def values_by(self, promql: str, label: str) -> dict[str, float]:
        """{label value: sample value} of an instant query."""
        return {
            item["metric"].get(label, ""): float(item["value"][1]) for item in self.query(promql)
        }

    def active_targets(self) -> list[dict[str, Any]]:
        body = self._client.get(f"{self.url}/api/v1/targets", params={"state": "active"}).json()
        targets: list[dict[str, Any]] = body["data"]["activeTargets"]
        return targets

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
        self.process = None

    def close(self) -> None:
        self.stop()
        self._client.close()
