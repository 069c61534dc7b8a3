"""Tests of behaviour that crosses modules: fuzzing, differential parity, reliability, exporter
hygiene, generated docs."""
