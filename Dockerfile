# avatar-monitor: a small image that runs `avatar-monitor serve`.
# The base is an argument so that a registry mirror or a stand-in can be named
# (`make image` builds one from Debian's packages where Docker Hub cannot be reached; see
# scripts/build-image.sh). Pinned for reproducible builds as
#   python:3.11-slim@sha256:9c900dea9e8fb7e16277c179b555cc72d29a352dbc33cff48ad5a0412fd5bfc7
# (the multi-arch index digest; Docker Hub is not reachable where this file was last changed, so
# check it with `docker buildx imagetools inspect python:3.11-slim` before passing it as BASE).
ARG BASE=python:3.11-slim
FROM ${BASE}
# pip's CA bundle during the build only (pip trusts its own copy of certifi's otherwise): the
# buildah path of scripts/build-image.sh mounts the host's bundle over the system one and names
# it here, for a network that intercepts TLS. Nothing of it is kept in the image.
ARG PIP_CERT

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/avatar-monitor \
    PATH=/opt/avatar-monitor/bin:$PATH \
    AVATAR_MONITOR_PORT=9465 \
    AVATAR_MONITOR_STATE_FILE=/var/lib/avatar-monitor/state \
    AVATAR_MONITOR_HISTORY=/var/lib/avatar-monitor/history.sqlite3

# A virtualenv: the same on python:3.11-slim and on a Debian base whose system Python is
# externally managed (PEP 668).
RUN python3 -m venv /opt/avatar-monitor
WORKDIR /app
# The wire schema the server shares with voice agents: its own distribution, installed first.
COPY agent ./agent
RUN pip install ./agent
COPY pyproject.toml README.md ./
COPY monitor ./monitor
# The state file's folder (--state-file, and the call history beside it) is the one
# place the process writes: a volume owned by the user it runs as.
RUN pip install . \
    && groupadd --gid 10001 monitor \
    && useradd --uid 10001 --gid 10001 --no-create-home --shell /usr/sbin/nologin monitor \
    && mkdir -p /var/lib/avatar-monitor \
    && chown 10001:10001 /var/lib/avatar-monitor \
    && chmod 0750 /var/lib/avatar-monitor

USER 10001:10001
VOLUME /var/lib/avatar-monitor
EXPOSE 9465
# Liveness: /healthz fails when the deadline loop stops or stalls. Readiness (/readyz: key pair,
# LiveKit reachable, startup reconciliation done) is for orchestrators that have it (Kubernetes
# readinessProbe); see the README's "Health".
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ['AVATAR_MONITOR_PORT'] + '/healthz', timeout=2)"]

# LIVEKIT_API_KEY and LIVEKIT_API_SECRET must be given at run time (docker run -e ...).
ENTRYPOINT ["avatar-monitor"]
CMD ["serve"]
