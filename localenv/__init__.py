"""The local environment: a Kubernetes control plane, the operator, a pod runner,
Prometheus and a load generator, all as processes on this machine's loopback."""
