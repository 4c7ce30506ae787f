# hpsearch: the API (`hpsearch serve`) and the worker (`hpsearch worker`) share this image.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# Only what the distribution needs: never a local .venv, .git or test output.
COPY pyproject.toml constraints.txt README.md ./
COPY api ./api
COPY worker ./worker
COPY search ./search
COPY db ./db
COPY hpsearch ./hpsearch
# Extras to install, e.g. gp (Optuna's GP sampler: PyTorch, which multiplies the image's size,
# so left out unless asked for: `HPSEARCH_EXTRAS=gp docker compose build`).
ARG HPSEARCH_EXTRAS=""
RUN pip install -c constraints.txt ".${HPSEARCH_EXTRAS:+[$HPSEARCH_EXTRAS]}"

# Celery refuses to be comfortable as root, and nothing here needs it.
RUN useradd --create-home --uid 10001 --shell /usr/sbin/nologin hpsearch
USER hpsearch
WORKDIR /home/hpsearch

EXPOSE 8000
CMD ["hpsearch", "serve", "--host", "0.0.0.0", "--port", "8000"]
