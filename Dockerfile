# syntax=docker/dockerfile:1
# Two stages. `build` makes the wheel exactly as the tests install the project (hatchling
# at pyproject's pinned version, no build isolation, non-editable) and installs it with its
# pinned dependencies into /venv. The runtime stage is the same slim base (so /venv's
# interpreter link resolves) with nothing but that virtual environment: no compilers, no
# pip cache, no sources, a numeric non-root user (runAsNonRoot can check it), and nothing
# written at run time (PYTHONDONTWRITEBYTECODE), so a read-only root filesystem works.
# tests/unit/test_dockerfile.py parses this file and runs the build stage's steps locally.
ARG PYTHON_IMAGE=python:3.13-slim

FROM ${PYTHON_IMAGE} AS build
WORKDIR /src
RUN python -m venv /opt/build && /opt/build/bin/pip install --no-cache-dir "hatchling==1.33.0"
COPY pyproject.toml README.md ./
COPY src ./src
COPY operator ./operator
COPY agents ./agents
COPY remediation ./remediation
RUN /opt/build/bin/pip wheel --no-cache-dir --no-deps --no-build-isolation --wheel-dir /dist .
RUN python -m venv /venv && /venv/bin/pip install --no-cache-dir /dist/aisre-*.whl

FROM ${PYTHON_IMAGE}
RUN useradd --uid 10001 --no-create-home --shell /usr/sbin/nologin aisre
COPY --from=build /venv /venv
ENV PATH=/venv/bin:$PATH PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 AISRE_HTTP_HOST=0.0.0.0
USER 10001:10001
EXPOSE 8080
ENTRYPOINT ["aisre", "run"]
