"""Real servers for the integration tests, started on loopback ports (no mocks)."""
