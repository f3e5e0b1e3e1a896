"""Operator settings, from flags and MLMODEL_OPERATOR_* environment variables, validated once.

Built by `cli.main` and passed down explicitly: no module-level configuration.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

DEFAULT_RUNTIME_IMAGE = "ghcr.io/mlops-dev/mlmodel-runtime:0.1.0"
DEFAULT_RESOURCES: Mapping[str, Any] = {
    "requests": {"cpu": "100m", "memory": "256Mi"},
    "limits": {"memory": "1Gi"},
}
PULL_POLICIES = ("Always", "IfNotPresent", "Never")
LOG_FORMATS = ("text", "json")
_IMAGE = re.compile(r"^[a-z0-9]+([._/:@-][a-zA-Z0-9_.-]+)*$")
_HTTP_URL = re.compile(r"^https?://[^/?#@\s]+(/[^?#\s]*)?$")


class SettingsError(ValueError):
    """A setting is invalid; the message names it and what is expected."""


@dataclass(frozen=True)
class Settings:
    runtime_image: str = DEFAULT_RUNTIME_IMAGE
    image_pull_policy: str = "IfNotPresent"
    default_resources: Mapping[str, Any] = field(default_factory=lambda: dict(DEFAULT_RESOURCES))
    namespaces: tuple[str, ...] = ()  # empty: every namespace
    log_format: str = "text"
    resync_seconds: float = 30.0
    workers: int = 4
    # A Deployment's or Pod's change is reconciled this long after it, together with
    # every other change of the model's children in that time (see Controller.soon).
    coalesce_seconds: float = 0.5
    lease_namespace: str = "mlmodel-system"
    lease_name: str = "mlmodel-operator-leader"
    lease_duration_seconds: float = 15.0
    identity: str = ""
    health_address: str = "0.0.0.0:8080"
    leader_election: bool = True
    # Canary analysis reads: one deadline per model, and at most this many at once.
    metrics_timeout_seconds: float = 5.0
    metrics_concurrency: int = 32
    # Policies a cluster administrator sets for every MLModel (docs/security.md).
    prometheus_url: str = ""  # the cluster's Prometheus: the default and always allowed
    allowed_prometheus_urls: tuple[str, ...] = ()  # more URL prefixes MLModels may name
    allowed_webhook_urls: tuple[str, ...] = ()  # URL prefixes of rollout webhooks; empty: none
    forbid_unsafe_pickle: bool = False
    allowed_gateways: tuple[str, ...] = ()  # "namespace/name"; empty: any
    allowed_hostnames: tuple[str, ...] = ()  # "host" or "*.suffix"; empty: any
    # A node directory for conversions to reuse (a subdirectory per namespace); "": none.
    convert_cache_host_path: str = ""


def _env(name: str, default: str) -> str:
    return os.environ.get(f"MLMODEL_OPERATOR_{name}", default)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mlmodel-operator",
        description="Run the MLModel operator. Every flag also reads MLMODEL_OPERATOR_<FLAG>.",
    )
    parser.add_argument("--runtime-image", default=_env("RUNTIME_IMAGE", DEFAULT_RUNTIME_IMAGE))
    parser.add_argument(
        "--image-pull-policy",
        default=_env("IMAGE_PULL_POLICY", "IfNotPresent"),
        choices=PULL_POLICIES,
    )
    parser.add_argument(
        "--default-resources",
        default=_env("DEFAULT_RESOURCES", json.dumps(DEFAULT_RESOURCES)),
        help="JSON resource requirements of serving containers that set none",
    )
    parser.add_argument(
        "--namespaces",
        default=_env("NAMESPACES", ""),
        help="comma-separated namespaces to watch (default: all)",
    )
    parser.add_argument("--log-format", default=_env("LOG_FORMAT", "text"), choices=LOG_FORMATS)
    # String defaults go through `type` like flags do, so a bad environment value is a
    # usage error that names the flag, not a traceback.
    parser.add_argument("--resync-seconds", type=float, default=_env("RESYNC_SECONDS", "30"))
    parser.add_argument("--workers", type=int, default=_env("WORKERS", "4"))
    parser.add_argument("--coalesce-seconds", type=float, default=_env("COALESCE_SECONDS", "0.5"))
    parser.add_argument("--lease-namespace", default=_env("LEASE_NAMESPACE", "mlmodel-system"))
    parser.add_argument("--lease-name", default=_env("LEASE_NAME", "mlmodel-operator-leader"))
    parser.add_argument(
        "--lease-duration-seconds", type=float, default=_env("LEASE_DURATION_SECONDS", "15")
    )
    parser.add_argument("--identity", default=_env("IDENTITY", os.environ.get("POD_NAME", "")))
    parser.add_argument("--health-address", default=_env("HEALTH_ADDRESS", "0.0.0.0:8080"))
    parser.add_argument(
        "--metrics-timeout-seconds",
        type=float,
        default=_env("METRICS_TIMEOUT_SECONDS", "5"),
        help="deadline of one model's metrics read (all its queries or scrapes together)",
    )
    parser.add_argument(
        "--metrics-concurrency",
        type=int,
        default=_env("METRICS_CONCURRENCY", "32"),
        help="metrics reads in flight at once, over all models",
    )
    parser.add_argument(
        "--prometheus-url",
        default=_env("PROMETHEUS_URL", ""),
        help="the cluster's Prometheus: used when an MLModel names none, always allowed",
    )
    parser.add_argument(
        "--allowed-prometheus-urls",
        default=_env("ALLOWED_PROMETHEUS_URLS", ""),
        help="comma-separated URL prefixes MLModels may name as their Prometheus "
        "(port '*' for any port); nothing else is contacted",
    )
    parser.add_argument(
        "--allowed-webhook-urls",
        default=_env("ALLOWED_WEBHOOK_URLS", ""),
        help="comma-separated URL prefixes of the rollout webhooks MLModels may call "
        "(port '*' for any port); nothing else is called; empty: none",
    )
    parser.add_argument(
        "--forbid-unsafe-pickle",
        action="store_true",
        default=_env("FORBID_UNSAFE_PICKLE", "false").lower() == "true",
        help="refuse every MLModel with allowUnsafePickle (pickle runs code while loading)",
    )
    parser.add_argument(
        "--allowed-gateways",
        default=_env("ALLOWED_GATEWAYS", ""),
        help="comma-separated namespace/name of the Gateways MLModels may attach to (default: any)",
    )
    parser.add_argument(
        "--allowed-hostnames",
        default=_env("ALLOWED_HOSTNAMES", ""),
        help="comma-separated hostnames or *.suffix patterns MLModels may claim in "
        "routes (default: any)",
    )
    parser.add_argument(
        "--convert-cache-host-path",
        default=_env("CONVERT_CACHE_HOST_PATH", ""),
        help="absolute node directory where pods reuse conversions: <dir>/<namespace> is "
        "mounted into the convert init container (hostPath; see docs/convert.md); "
        "empty: every pod converts (default)",
    )
    parser.add_argument(
        "--no-leader-election",
        action="store_true",
        default=_env("LEADER_ELECTION", "true").lower() == "false",
        help="act without holding the Lease (one replica only)",
    )
    return parser


def parse_settings(argv: Sequence[str] | None = None) -> Settings:
    """Parse and validate; raises SettingsError naming the bad setting."""
    args = build_parser().parse_args(argv)
    # argparse checks `choices` on flags, not on defaults taken from the environment.
    for flag, value, allowed in (
        ("--image-pull-policy", args.image_pull_policy, PULL_POLICIES),
        ("--log-format", args.log_format, LOG_FORMATS),
    ):
        if value not in allowed:
            raise SettingsError(f"{flag} {value!r} is not one of {', '.join(allowed)}")
    if not _IMAGE.match(args.runtime_image):
        raise SettingsError(f"--runtime-image {args.runtime_image!r} is not an image reference")
    try:
        resources = json.loads(args.default_resources)
    except json.JSONDecodeError as error:
        raise SettingsError(f"--default-resources is not JSON: {error}") from None
    if not isinstance(resources, dict) or not set(resources) <= {"limits", "requests"}:
        raise SettingsError("--default-resources must be a JSON object with limits and/or requests")
    if args.resync_seconds <= 0 or args.workers < 1 or args.lease_duration_seconds < 2:
        raise SettingsError(
            "--resync-seconds must be > 0, --workers >= 1, --lease-duration-seconds >= 2"
        )
    if not 0 <= args.coalesce_seconds <= 10:
        raise SettingsError("--coalesce-seconds must be between 0 and 10")
    host, _, port = args.health_address.rpartition(":")
    if not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise SettingsError(f"--health-address {args.health_address!r} is not HOST:PORT")
    namespaces = _list(args.namespaces)
    if args.metrics_timeout_seconds <= 0 or args.metrics_concurrency < 1:
        raise SettingsError("--metrics-timeout-seconds must be > 0, --metrics-concurrency >= 1")
    prometheus_urls = _list(args.allowed_prometheus_urls)
    for url in (args.prometheus_url, *prometheus_urls):
        if url and not _HTTP_URL.match(url):
            raise SettingsError(f"Prometheus URL {url!r} is not an http(s) URL")
    webhook_urls = _list(args.allowed_webhook_urls)
    for url in webhook_urls:
        if not _HTTP_URL.match(url):
            raise SettingsError(f"--allowed-webhook-urls entry {url!r} is not an http(s) URL")
    gateways = _list(args.allowed_gateways)
    for gateway in gateways:
        if gateway.count("/") != 1 or not all(gateway.split("/")):
            raise SettingsError(f"--allowed-gateways entry {gateway!r} is not namespace/name")
    cache = args.convert_cache_host_path
    if cache and (not cache.startswith("/") or ".." in cache.split("/") or not cache.strip("/")):
        raise SettingsError(
            f"--convert-cache-host-path {cache!r} is not an absolute directory of the node "
            "(other than /)"
        )
    return Settings(
        runtime_image=args.runtime_image,
        image_pull_policy=args.image_pull_policy,
        default_resources=resources,
        namespaces=namespaces,
        log_format=args.log_format,
        resync_seconds=args.resync_seconds,
        workers=args.workers,
        coalesce_seconds=args.coalesce_seconds,
        lease_namespace=args.lease_namespace,
        lease_name=args.lease_name,
        lease_duration_seconds=args.lease_duration_seconds,
        identity=args.identity or f"{socket.gethostname()}-{os.getpid()}",
        health_address=f"{host.strip('[]')}:{port}",
        leader_election=not args.no_leader_election,
        metrics_timeout_seconds=args.metrics_timeout_seconds,
        metrics_concurrency=args.metrics_concurrency,
        prometheus_url=args.prometheus_url,
        allowed_prometheus_urls=prometheus_urls,
        allowed_webhook_urls=webhook_urls,
        forbid_unsafe_pickle=args.forbid_unsafe_pickle,
        allowed_gateways=gateways,
        allowed_hostnames=_list(args.allowed_hostnames),
        convert_cache_host_path=cache.rstrip("/"),
    )


def _list(text: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in text.split(",") if item.strip())
