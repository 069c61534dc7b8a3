"""A call's verdict and timeline: its rules, /v1/calls, the status page, the `diagnose` command."""
