"""Grafana dashboards and Prometheus rules for avatar-monitor, as code.

`python -m dashboards` (or `make dashboards`) writes the dashboard JSON next to this package and
the rule files under `alerts/`; `python -m dashboards --check` fails when they are out of date.
"""
