"""Messaging: publishers and consumers over a message broker (Kafka)."""
