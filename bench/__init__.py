"""Benchmarks: each module has ``main()`` that prints its figures; ``python -m bench`` runs all."""
