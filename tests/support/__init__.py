"""Helpers that test modules, the benchmarks and `make demo` share: builders, clients, ports and
the real stack's harness; no tests in here."""
