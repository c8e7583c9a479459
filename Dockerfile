# rollup as a container image: `rollup serve` by default, `rollup run` for a CronJob.
#
#   docker build -t rollup .
#   docker run --rm -p 127.0.0.1:9108:9108 -v "$PWD/config:/etc/rollup/config:ro" \
#       -v "$PWD/jobs:/etc/rollup/jobs:ro" -v "$PWD/sinks:/etc/rollup/sinks:ro" rollup
#
# Settings come from /etc/rollup/config/rollup.toml (ROLLUP_CONFIG) with jobs/ and sinks/ beside
# it; credentials from the environment (a profile's password_env, ROLLUP_LEDGER); the SQLite
# ledger from /var/lib/rollup (a volume). Not built in CI: see README, "Containers".

ARG PYTHON_VERSION=3.11

FROM python:${PYTHON_VERSION}-slim AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY rollup ./rollup
RUN python -m venv /opt/rollup \
    && /opt/rollup/bin/pip install ".[postgres,elasticsearch,opensearch]"

FROM python:${PYTHON_VERSION}-slim
RUN groupadd --system --gid 10001 rollup \
    && useradd --system --uid 10001 --gid rollup --home-dir /var/lib/rollup --shell /usr/sbin/nologin rollup \
    && mkdir -p /etc/rollup /var/lib/rollup \
    && chown rollup:rollup /var/lib/rollup
COPY --from=build /opt/rollup /opt/rollup
COPY config /etc/rollup/config
COPY jobs /etc/rollup/jobs
COPY sinks /etc/rollup/sinks
ENV PATH=/opt/rollup/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    ROLLUP_CONFIG=/etc/rollup/config/rollup.toml \
    ROLLUP_JOBS_DIR=/etc/rollup/jobs \
    ROLLUP_SINKS_DIR=/etc/rollup/sinks \
    ROLLUP_LEDGER=sqlite:///var/lib/rollup/ledger.sqlite \
    ROLLUP_LOG_FORMAT=json \
    ROLLUP_SERVE__HOST=0.0.0.0 \
    ROLLUP_SERVE__PORT=9108
WORKDIR /var/lib/rollup
VOLUME ["/var/lib/rollup"]
USER 10001:10001
EXPOSE 9108
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('ROLLUP_SERVE__PORT', '9108'), timeout=4)"]
ENTRYPOINT ["rollup"]
CMD ["serve"]
