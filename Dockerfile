# syntax=docker/dockerfile:1
#
# One image for every CSMS process: `csms run | gateway | worker | api | migrate | probe`.

ARG PYTHON_IMAGE=python:3.11-slim

# ---------------------------------------------------------------------------
# Build stage: install the project and its dependencies into a virtualenv.
# ---------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS build

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1

RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

WORKDIR /src

# Dependencies first, from pyproject.toml alone, so that a source change does not
# reinstall them.
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt \
    && pip install --no-cache-dir -r /tmp/requirements.txt

# Then the project itself (non-editable, into the virtualenv).
COPY services/ services/
COPY gateway/ gateway/
COPY commands/ commands/
COPY events-worker/ events-worker/
RUN pip install --no-cache-dir . \
    && find /opt/venv -name '__pycache__' -type d -prune -exec rm -rf {} +

# ---------------------------------------------------------------------------
# Runtime stage: the virtualenv, the migrations and an unprivileged user.
# ---------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1

RUN groupadd --system --gid 10001 csms \
    && useradd --system --uid 10001 --gid csms --no-create-home --home-dir /app \
        --shell /usr/sbin/nologin csms \
    && install -d -o csms -g csms /app

COPY --from=build /opt/venv /opt/venv

WORKDIR /app
COPY alembic.ini ./alembic.ini
COPY migrations/ ./migrations/

# /app stays writable by csms (the standalone `run` mode keeps its SQLite file there);
# the code and migrations are root-owned and read-only to it.
USER csms:csms

# 9000: OCPP WebSocket (gateway, run); 8000: HTTP API (api, run).
EXPOSE 9000 8000

ENTRYPOINT ["csms"]
CMD ["run"]
