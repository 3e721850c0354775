# syntax=docker/dockerfile:1
# The Rasa image: `rasa run` (through bot/rasa_serve.py, which takes the API token from the
# environment) with the gateway channel, the custom components and a model trained in a build stage.
# Build from the repository root:
#   docker build -f deploy/rasa.Dockerfile -t supportbot-rasa .
# Its entrypoint (deploy/rasa-entrypoint.sh) needs the endpoints file that the gateway image renders
# with `python -m bot.rasa_stores endpoints --out FILE` (tracker on PostgreSQL, locks in Redis).

ARG PYTHON_IMAGE=python:3.10-slim

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential \
 && rm -rf /var/lib/apt/lists/*
# The same place as in a checkout (.venv-rasa), so bot/training.py and the settings' defaults find it.
RUN python -m venv /app/.venv-rasa
COPY requirements/rasa.txt /tmp/requirements/rasa.txt
RUN /app/.venv-rasa/bin/pip install --upgrade pip \
 && /app/.venv-rasa/bin/pip install -r /tmp/requirements/rasa.txt

FROM ${PYTHON_IMAGE} AS base
ENV PATH=/app/.venv-rasa/bin:$PATH \
    PYTHONPATH=/app \
    PYTHONUNBUFFERED=1 \
    RASA_TELEMETRY_ENABLED=false \
    SENTRY_DSN= \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    TF_CPP_MIN_LOG_LEVEL=2 \
    OPENBLAS_NUM_THREADS=1 \
    TF_INTER_OP_PARALLELISM_THREADS=1 \
    TF_INTRA_OP_PARALLELISM_THREADS=1
COPY --from=build /app/.venv-rasa /app/.venv-rasa
WORKDIR /app
COPY . /app

# The model: trained here, named model-<hash of its inputs>.tar.gz like `make train` names it.
FROM base AS model
RUN python -m bot.training --model-dir /app/models

FROM base AS rasa
RUN groupadd --system --gid 10001 supportbot \
 && useradd --system --uid 10001 --gid 10001 --create-home --home-dir /home/supportbot --shell /usr/sbin/nologin supportbot \
 && install -m 0755 /app/deploy/rasa-entrypoint.sh /usr/local/bin/rasa-entrypoint
COPY --from=model /app/models /app/models
USER 10001
EXPOSE 5005
# Rasa answers "/" once its HTTP server runs (it loads the model before it listens).
HEALTHCHECK --interval=15s --timeout=5s --start-period=180s --retries=3 \
  CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:5005/', timeout=4).status != 200)"]
ENTRYPOINT ["rasa-entrypoint"]
