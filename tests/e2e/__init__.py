"""End-to-end: the sidecar in real pods of a single-node Kubernetes (tests/servers/kubecluster)."""
