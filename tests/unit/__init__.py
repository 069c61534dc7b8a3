"""Unit tests, laid out as monitor/ is: tests/unit/<package>/test_<module>.py; no root, no
livekit-server, no Prometheus."""
