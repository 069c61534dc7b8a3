# avatar-monitor: a small image that runs `avatar-monitor serve`.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    AVATAR_MONITOR_PORT=9465

ENV AVATAR_MONITOR_HISTORY=/var/lib/avatar-monitor/history.sqlite3
WORKDIR /app
# The wire schema the server shares with voice agents: its own distribution, installed first.
COPY agent ./agent
RUN pip install ./agent
COPY pyproject.toml README.md ./
COPY monitor ./monitor
RUN pip install . \
    && useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin monitor

USER 10001
EXPOSE 9465
# Liveness: /healthz fails when the deadline loop stops or stalls. Readiness (/readyz: key pair,
# LiveKit reachable, startup reconciliation done) is for orchestrators that have it (Kubernetes
# readinessProbe); see README "Health".
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ['AVATAR_MONITOR_PORT'] + '/healthz', timeout=2)"]

# LIVEKIT_API_KEY and LIVEKIT_API_SECRET must be given at run time (docker run -e ...).
ENTRYPOINT ["avatar-monitor"]
CMD ["serve"]
