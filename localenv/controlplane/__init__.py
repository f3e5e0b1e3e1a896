"""A real local Kubernetes control plane built from Go modules, for tests and `make cluster-up`."""
