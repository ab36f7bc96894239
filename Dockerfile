# syntax=docker/dockerfile:1
# Build the wheel exactly as the tests install it (non-editable, from pyproject), then
# copy only the installed virtual environment into a slim, non-root runtime image.
FROM python:3.11-slim AS build
WORKDIR /src
RUN python -m venv /opt/aisre && /opt/aisre/bin/pip install --no-cache-dir "hatchling==1.33.0" build==1.3.0
COPY pyproject.toml README.md ./
COPY src ./src
COPY operator ./operator
COPY agents ./agents
COPY remediation ./remediation
RUN /opt/aisre/bin/python -m build --wheel --no-isolation --outdir /dist . \
 && python -m venv /venv \
 && /venv/bin/pip install --no-cache-dir /dist/*.whl

FROM python:3.11-slim
RUN useradd --uid 10001 --no-create-home --shell /usr/sbin/nologin aisre
COPY --from=build /venv /venv
ENV PATH=/venv/bin:$PATH PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 AISRE_HTTP_HOST=0.0.0.0
USER 10001
EXPOSE 8080
ENTRYPOINT ["aisre", "run"]
