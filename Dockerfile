# syntax=docker/dockerfile:1
# The cninfra sidecar image: `docker build -t cninfra-sidecar .`
#
#   --build-arg SIDECAR_BUILD_DATE=$(date -u +%Y-%m-%dT%H:%M:%SZ)
#   --build-arg SIDECAR_COMMIT_HASH=$(git rev-parse HEAD)
#
# Both end up in the status JSON (build_date, commit_hash) and in the OCI labels.
# The image runs as a non-root numeric user and writes nothing outside /tmp, so it
# works with readOnlyRootFilesystem (the Helm chart mounts an emptyDir on /tmp).

ARG PYTHON_IMAGE=python:3.11-slim

# -- build: a virtualenv with the sidecar and every optional plugin's client ----
FROM ${PYTHON_IMAGE} AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore

# The venv lives at the same path in both stages: its scripts have absolute shebangs.
RUN python -m venv /opt/sidecar

WORKDIR /src
# The dependencies first, from the metadata alone (the version is read from
# _version.py; the README, only the long description, is an empty stand-in
# here): a code or README change then rebuilds only the last layers, which
# keeps the skaffold dev loop and the end-to-end tests' image builds fast.
# Every dependency ships manylinux wheels, so no compiler is needed even here.
COPY pyproject.toml ./
COPY sidecar/_version.py sidecar/
RUN touch README.md \
    && /opt/sidecar/bin/pip install ".[etcd,kafka,k8s,operator]" \
    && /opt/sidecar/bin/pip uninstall --yes cninfra-sidecar
COPY README.md ./
COPY sidecar/ sidecar/
# pip byte-compiles what it installs, so the final image never writes __pycache__.
RUN /opt/sidecar/bin/pip install --no-deps . \
    && /opt/sidecar/bin/pip uninstall --yes pip setuptools

# -- final: the base image, the venv and a user; no build tools ----------------
FROM ${PYTHON_IMAGE}

# A fixed numeric uid/gid: Kubernetes' runAsNonRoot can only verify a numeric USER.
RUN groupadd --system --gid 10001 sidecar \
    && useradd --system --uid 10001 --gid 10001 --no-create-home \
       --home-dir /nonexistent --shell /usr/sbin/nologin sidecar

COPY --from=build /opt/sidecar /opt/sidecar
# The embedded defaults, so that `docker run -p 9191:9191 IMAGE` answers /readiness;
# in Kubernetes the chart mounts its ConfigMap over this directory.
COPY examples/config/ /etc/sidecar/

# The build arguments come after every RUN and COPY: a new date or commit then
# changes only the metadata, never a cached layer.
ARG SIDECAR_VERSION=0.1.0
ARG SIDECAR_BUILD_DATE=""
ARG SIDECAR_COMMIT_HASH=""

LABEL org.opencontainers.image.title="cninfra-sidecar" \
      org.opencontainers.image.description="Kubernetes sidecar running the Ligato cn-infra infra plugins: health and readiness, status in etcd and on the Pod, log levels, supervisor" \
      org.opencontainers.image.version="${SIDECAR_VERSION}" \
      org.opencontainers.image.created="${SIDECAR_BUILD_DATE}" \
      org.opencontainers.image.revision="${SIDECAR_COMMIT_HASH}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.base.name="docker.io/library/python:3.11-slim"

ENV PATH=/opt/sidecar/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    CONFIG_DIR=/etc/sidecar \
    HTTP_PORT=9191 \
    SIDECAR_BUILD_DATE=${SIDECAR_BUILD_DATE} \
    SIDECAR_COMMIT_HASH=${SIDECAR_COMMIT_HASH}

USER 10001:10001
WORKDIR /tmp
EXPOSE 9191
# No HEALTHCHECK: Kubernetes ignores it and runs the chart's /liveness and
# /readiness probes instead; outside Kubernetes, `sidecar status` is the check.
ENTRYPOINT ["sidecar", "run"]
