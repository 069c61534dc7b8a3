"""avatar-monitor: observability sidecar and Prometheus exporter for video-avatar calls in
LiveKit rooms."""

__version__ = "0.1.0"
