# One image for the LiveDrop nodes and for the Locust master and workers (docker-compose.yml).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# Dependencies first, so code changes do not reinstall them. The "load" extra brings Locust and
# websocket-client for the load generator; the nodes do not import them.
COPY pyproject.toml README.md ./
COPY stock ./stock
COPY broadcast ./broadcast
COPY server ./server
COPY standins ./standins
RUN pip install ".[load]"

# The JS viewer client, served at /client/ (the demo viewer page imports it from there).
COPY clients/js/src ./clients/js/src

# The Locust scenario runs from the source tree (`python -m locust -f loadtest/locustfile.py`
# in /app, so `loadtest` is importable).
COPY loadtest ./loadtest

# Never run as root; the load test writes its reports under loadtest/reports.
RUN useradd --system --uid 10001 --home-dir /app livedrop \
    && mkdir -p /app/loadtest/reports \
    && chown livedrop /app/loadtest/reports
USER livedrop

EXPOSE 8000 8089
CMD ["livedrop", "serve", "--host", "0.0.0.0", "--port", "8000"]
