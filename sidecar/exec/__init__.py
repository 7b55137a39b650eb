"""exec: running programs next to the workload (process manager, supervisor)."""
