"""Programs of the local environment that are not part of Kubernetes itself, each built
from its own Go module: Traefik (the Gateway API data plane), Prometheus, CoreDNS, the
real node's containerd, runc and CNI plugins, and Helm for the chart's tests."""
