"""Health: plugin status aggregation (statuscheck) and the HTTP probes (probe)."""
