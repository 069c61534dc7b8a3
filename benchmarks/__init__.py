"""Benchmarks of the sidecar; each module's docstring says how to run it."""
