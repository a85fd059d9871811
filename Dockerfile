# infersave HTTP service: docker build -t infersave . && docker run --rm -p 8000:8000 infersave
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
COPY pyproject.toml README.md ./
COPY api ./api
COPY catalog ./catalog
COPY formulations ./formulations
COPY solver ./solver
COPY cli ./cli
COPY service ./service
RUN pip install . && rm -rf /src

# run as an unprivileged user; the service keeps its jobs in memory and writes only to /tmp
RUN useradd --create-home --uid 10001 infersave
USER infersave
WORKDIR /home/infersave

EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s \
    CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"
# 0.0.0.0 inside the container only; publish it on the host's loopback with -p 127.0.0.1:8000:8000
CMD ["infersave", "serve", "--host", "0.0.0.0", "--port", "8000"]
