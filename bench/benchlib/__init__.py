"""bench/run's modules (standard library only)."""
