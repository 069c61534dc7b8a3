"""Listeners of call transitions: Prometheus metrics, spans and their export, per-call records."""
