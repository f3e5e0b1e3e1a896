"""Programs of the local environment that are not part of Kubernetes itself, each built
from its own Go module: Traefik (the Gateway API data plane), Prometheus, CoreDNS."""
