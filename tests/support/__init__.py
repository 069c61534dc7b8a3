"""Helpers that test modules, the e2e harness and the benchmarks share; no tests in here."""
