# syntax=docker/dockerfile:1
# Surfaces: the Matrix bot, and (same image) the reference agent.
#
#   docker build -t surfaces:latest .
#   docker run --env-file deploy/bot.env --stop-timeout 30 \
#              -v surfaces-state:/var/lib/surfaces -v surfaces-agents:/agents \
#              -p 127.0.0.1:9464:9464 surfaces:latest
#
# --stop-timeout: SIGTERM gives running turns bot.shutdown_grace_s (20 s) to finish;
# Docker's default of 10 s would kill the bot in the middle of that.
#
# Runtime dependencies only (no Synapse, no test tools). See deploy/README.md.
FROM python:3.11-slim

# Keep SURFACES_VERSION equal to surfaces.__version__ (a test checks it); pass the
# commit with --build-arg SURFACES_REVISION=$(git rev-parse HEAD).
ARG SURFACES_VERSION=0.1.0
ARG SURFACES_REVISION=unknown
LABEL org.opencontainers.image.title="Surfaces" \
      org.opencontainers.image.description="A Matrix bot that gives every Matrix user a private workspace with their own AI agent" \
      org.opencontainers.image.version="${SURFACES_VERSION}" \
      org.opencontainers.image.revision="${SURFACES_REVISION}" \
      org.opencontainers.image.licenses="MIT" \
      org.opencontainers.image.base.name="docker.io/library/python:3.11-slim"

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# A fixed uid/gid, so files the bot writes into the shared /agents volume have an
# owner the agent containers can be configured to match.
ARG SURFACES_UID=10001
ARG SURFACES_GID=10001
RUN groupadd --system --gid "${SURFACES_GID}" surfaces \
 && useradd --system --uid "${SURFACES_UID}" --gid surfaces \
        --home-dir /var/lib/surfaces --no-create-home --shell /usr/sbin/nologin surfaces

WORKDIR /src
COPY pyproject.toml README.md ./
COPY surfaces ./surfaces
COPY matrix_client ./matrix_client
COPY agent_client ./agent_client
RUN pip install --no-cache-dir . \
 && rm -rf /src

# Create and hand over the volume directories before declaring them: changes made to
# a path after VOLUME are discarded, and a fresh named volume copies this ownership.
RUN mkdir -p /var/lib/surfaces /agents \
 && chown surfaces:surfaces /var/lib/surfaces /agents

ENV SURFACES_STATE_DIR=/var/lib/surfaces \
    SURFACES_WORKSPACE_DIR=/agents \
    SURFACES_OPS__ENABLED=true \
    SURFACES_OPS__HOST=0.0.0.0
VOLUME ["/var/lib/surfaces", "/agents"]

USER surfaces
WORKDIR /var/lib/surfaces

# The ops server: /healthz, /readyz, /metrics.
EXPOSE 9464
# Healthy = the sync loop succeeded recently and the database takes writes. The
# command reads the configuration as the bot does (SURFACES_CONFIG and the
# environment), so it finds the ops server wherever ops.host/ops.port put it.
HEALTHCHECK --interval=30s --timeout=10s --start-period=60s --retries=3 \
    CMD ["surfaces", "healthcheck"]

# The bot finishes running turns on SIGTERM (see --stop-timeout above).
STOPSIGNAL SIGTERM
ENTRYPOINT ["surfaces"]
CMD ["run"]
